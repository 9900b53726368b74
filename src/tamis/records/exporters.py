"""Export records to what training stacks take: OpenAI fine-tuning, TRL, Axolotl, LLaMA-Factory.

Each exporter turns a Record into one JSON object; `export` writes the file and, where the stack
needs one, the config entry beside it (LLaMA-Factory's `dataset_info.json`, an Axolotl
`datasets:` snippet). A classification record becomes a chat whose answer is its label.

An object the target would refuse or learn nothing from (OpenAI rejects an example without an
assistant message, LLaMA-Factory skips a conversation whose turns do not alternate user/assistant,
a prompt-completion row needs both) is not written: it goes to `<name>.skipped.jsonl` beside the
output with its reason, in the shape of `tamis clean`'s rejected.jsonl, so records in = exported +
skipped and nothing is lost without a word.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml

from tamis.records.model import Record


def _chat(rec: Record) -> list[dict[str, str]]:
    msgs = rec.messages()
    if rec.label is not None and not any(m["role"] == "assistant" for m in msgs):
        msgs.append({"role": "assistant", "content": str(rec.label)})
    return msgs


def to_openai(rec: Record) -> dict[str, Any]:
    """OpenAI chat fine-tuning: {"messages": [...]} (plus `tools` when the input had them)."""
    out: dict[str, Any] = {"messages": _chat(rec)}
    if "tools" in rec.meta:
        out["tools"] = rec.meta["tools"]
    return out


def _with_tools(out: dict[str, Any], rec: Record) -> dict[str, Any]:
    """The record's tool definitions beside its messages, where the input had them."""
    if "tools" in rec.meta:
        out["tools"] = rec.meta["tools"]
    return out


def to_trl(rec: Record) -> dict[str, Any]:
    """TRL SFTTrainer: conversational `messages` (+ `tools`), or `text` for plain-text records."""
    if rec.format == "text":
        return {"text": rec.turns[0].text if rec.turns else ""}
    return _with_tools({"messages": _chat(rec)}, rec)


def to_trl_prompt_completion(rec: Record) -> dict[str, Any]:
    """TRL conversational prompt-completion: everything before the last answer is the prompt."""
    msgs = _chat(rec)
    last = max((i for i, m in enumerate(msgs) if m["role"] == "assistant"), default=len(msgs))
    return _with_tools({"prompt": msgs[:last], "completion": msgs[last : last + 1]}, rec)


def to_axolotl(rec: Record) -> dict[str, Any]:
    """Axolotl `type: chat_template` rows: {"messages": [{"role", "content"}, ...]} (+ `tools`)."""
    return _with_tools({"messages": _chat(rec)}, rec)


_SHAREGPT_ROLE = {"user": "human", "assistant": "gpt", "tool": "observation"}


def _call(call: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI tool call as LLaMA-Factory writes one: {"name", "arguments": {...}}."""
    fn = call.get("function", call)
    args = fn.get("arguments", {})
    if isinstance(args, str):
        with contextlib.suppress(ValueError):  # not JSON: kept as the text it is
            args = json.loads(args)
    return {"name": fn.get("name"), "arguments": args}


def to_llamafactory(rec: Record) -> dict[str, Any]:
    """LLaMA-Factory sharegpt rows: `conversations` of {from, value} and a `system` field; a tool
    call is a `function_call` turn (its calls as JSON), tool definitions a `tools` JSON string."""
    msgs = _chat(rec)
    system = "\n\n".join(m["content"] or "" for m in msgs if m["role"] == "system")
    conv = []
    for m in msgs:
        if m["role"] == "system":
            continue
        if m["role"] == "assistant" and m.get("tool_calls"):
            calls = [_call(c) for c in m["tool_calls"]]
            value = json.dumps(calls[0] if len(calls) == 1 else calls, ensure_ascii=False)
            conv.append({"from": "function_call", "value": value})
            continue
        conv.append({"from": _SHAREGPT_ROLE.get(m["role"], m["role"]), "value": m["content"]})
    out: dict[str, Any] = {"conversations": conv}
    if system:
        out["system"] = system
    if "tools" in rec.meta:
        tools = [t.get("function", t) if isinstance(t, dict) else t for t in rec.meta["tools"]]
        out["tools"] = json.dumps(tools, ensure_ascii=False)
    return out


EXPORTERS: dict[str, Callable[[Record], dict[str, Any]]] = {
    "openai": to_openai,
    "trl": to_trl,
    "trl-prompt-completion": to_trl_prompt_completion,
    "axolotl": to_axolotl,
    "llamafactory": to_llamafactory,
}


def export_objects(records: Iterable[Record], to: str) -> Iterator[dict[str, Any]]:
    fn = EXPORTERS[to]
    for rec in records:
        yield fn(rec)


# what each target refuses, or reads and learns nothing from: (reason code, words for people)
NO_ANSWER = ("no_answer", "no assistant message with text: nothing to learn from")
OPENAI_ROLES = {"system", "developer", "user", "assistant", "tool", "function"}


def _has_answer(msgs: list[dict[str, Any]]) -> bool:
    """An assistant message with text, or one that calls tools (what function-calling data
    teaches)."""
    return any(
        m["role"] == "assistant" and (str(m["content"] or "").strip() or m.get("tool_calls"))
        for m in msgs
    )


def _check_openai(obj: dict[str, Any]) -> tuple[str, str] | None:
    """OpenAI's fine-tuning file checks: known roles, and an assistant message to learn from."""
    roles = sorted({m["role"] for m in obj["messages"]} - OPENAI_ROLES)
    if roles:
        return "unknown_role", f"role {', '.join(roles)} is not one OpenAI takes"
    return None if _has_answer(obj["messages"]) else NO_ANSWER


def _check_trl(obj: dict[str, Any]) -> tuple[str, str] | None:
    if "text" in obj:
        return None if str(obj["text"]).strip() else ("empty", "no text")
    if any(str(m["content"] or "").strip() or m.get("tool_calls") for m in obj["messages"]):
        return None
    return "empty", "no text"


def _check_prompt_completion(obj: dict[str, Any]) -> tuple[str, str] | None:
    if not _has_answer(obj["completion"]):
        return NO_ANSWER
    if not any(str(m["content"] or "").strip() for m in obj["prompt"]):
        return "no_prompt", "nothing before the answer to prompt it"
    return None


def _check_axolotl(obj: dict[str, Any]) -> tuple[str, str] | None:
    """Axolotl's chat_template trains on assistant turns: a row without one teaches nothing."""
    return None if _has_answer(obj["messages"]) else NO_ANSWER


def _check_llamafactory(obj: dict[str, Any]) -> tuple[str, str] | None:
    """LLaMA-Factory's sharegpt reader skips a conversation unless its turns alternate
    human/observation and gpt/function_call, starting with human, in pairs."""
    conv = obj["conversations"]
    if not any(
        m["from"] in ("gpt", "function_call") and str(m["value"] or "").strip() for m in conv
    ):
        return NO_ANSWER
    for i, m in enumerate(conv):
        want = ("human", "observation") if i % 2 == 0 else ("gpt", "function_call")
        if m["from"] not in want:
            return (
                "turn_order",
                f"turn {i + 1} is '{m['from']}' where LLaMA-Factory needs {' or '.join(want)}",
            )
    if len(conv) % 2:
        return "turn_order", "the conversation ends on a user turn: LLaMA-Factory needs pairs"
    return None


def _non_text(rec: Record) -> tuple[str, str] | None:
    """A turn holding a list or an object (an image, audio or file part): no target takes it as
    text, and written as text it would be Python's repr of the parts."""
    t = rec.non_text_turn()
    return None if t is None else ("non_text", f"{t.field} is not text (image, audio, file parts)")


CHECKS: dict[str, Callable[[dict[str, Any]], tuple[str, str] | None]] = {
    "openai": _check_openai,
    "trl": _check_trl,
    "trl-prompt-completion": _check_prompt_completion,
    "axolotl": _check_axolotl,
    "llamafactory": _check_llamafactory,
}
TARGET_NAMES = {
    "openai": "OpenAI fine-tuning",
    "trl": "TRL",
    "trl-prompt-completion": "TRL prompt-completion",
    "axolotl": "Axolotl",
    "llamafactory": "LLaMA-Factory",
}


@dataclass
class Exported:
    """What `export` wrote: the files (data first, then its sidecar and the skipped records if
    any), how many records went out, and how many were skipped, by reason."""

    files: list[str]
    written: int = 0
    skipped: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    skipped_path: str | None = None


def sidecar(to: str, path: str, name: str | None = None) -> tuple[str, str] | None:
    """The config a stack needs next to the data file: (file name, text), or None."""
    base = os.path.basename(path)
    name = name or os.path.splitext(base)[0]
    if to == "llamafactory":
        entry = {
            name: {
                "file_name": base,
                "formatting": "sharegpt",
                "columns": {"messages": "conversations", "system": "system", "tools": "tools"},
                "tags": {
                    "role_tag": "from",
                    "content_tag": "value",
                    "user_tag": "human",
                    "assistant_tag": "gpt",
                    "observation_tag": "observation",
                    "function_tag": "function_call",
                },
            }
        }
        return "dataset_info.json", json.dumps(entry, indent=2) + "\n"
    if to == "axolotl":
        cfg = {
            "datasets": [
                {
                    "path": base,
                    "ds_type": "json",
                    "type": "chat_template",
                    "field_messages": "messages",
                    "message_property_mappings": {"role": "role", "content": "content"},
                }
            ]
        }
        return "axolotl_datasets.yaml", yaml.safe_dump(cfg, sort_keys=False)
    return None


def _merged(to: str, side_path: str, text: str) -> str:
    """LLaMA-Factory's dataset_info.json with the entries already there kept: it names every data
    set of its folder (train and eval, say), and a config picks them by name. (Axolotl's snippet
    is written afresh: whether a second file trains or evaluates is the config's choice.)"""
    if to != "llamafactory" or not os.path.exists(side_path):
        return text
    try:
        with open(side_path, encoding="utf-8") as fh:
            entries = json.load(fh)
    except (OSError, ValueError):  # unreadable: written afresh
        return text
    if not isinstance(entries, dict):
        return text
    entries.update(json.loads(text))
    return json.dumps(entries, indent=2) + "\n"


def skipped_path_for(path: str) -> str:
    """Where the records a target cannot take go: `<stem>.skipped.jsonl` beside the output."""
    from tamis.records.io import beside

    return beside(path, "skipped.jsonl")


def export(records: Iterable[Record], path: str, to: str) -> Exported:
    """Write `records` exported to `to` at `path`, plus its sidecar; the records the target would
    refuse or learn nothing from go to `<stem>.skipped.jsonl` with their reason instead."""
    from tamis.errors import TamisError
    from tamis.records.io import dumps, write_objects

    if to not in EXPORTERS:
        raise TamisError(f"unknown export target '{to}'; choose from {sorted(EXPORTERS)}")
    fn, check = EXPORTERS[to], CHECKS[to]
    result = Exported([path])
    skipped = skipped_path_for(path)
    if os.path.exists(skipped):  # a stale file from an earlier run would tell of records not here
        os.remove(skipped)
    sink: Any = None

    def good() -> Iterator[dict[str, Any]]:
        nonlocal sink
        for rec in records:
            obj = fn(rec)
            problem = _non_text(rec) or check(obj)
            if problem is None:
                yield obj
                continue
            if sink is None:
                sink = open(skipped, "w", encoding="utf-8")  # noqa: SIM115 - closed below
            code, detail = problem
            why = {"op": f"export:{to}", "reason": code, "detail": detail}
            sink.write(dumps({"id": rec.id, "record": rec.raw, "reasons": [why]}) + "\n")
            result.skipped += 1
            result.reasons[code] += 1

    try:
        result.written = write_objects(good(), path)
    finally:
        if sink is not None:
            sink.close()
    side = sidecar(to, path)
    if side:
        side_path = os.path.join(os.path.dirname(os.path.abspath(path)), side[0])
        text = _merged(to, side_path, side[1])
        with open(side_path, "w", encoding="utf-8") as fh:
            fh.write(text)
        result.files.append(side_path)
    if result.skipped:
        result.skipped_path = skipped
        result.files.append(skipped)
    return result
