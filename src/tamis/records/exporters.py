"""Export records to what training stacks take: OpenAI fine-tuning, TRL, Axolotl, LLaMA-Factory.

Each exporter turns a Record into one JSON object; `export` writes the file and, where the stack
needs one, the config entry beside it (LLaMA-Factory's `dataset_info.json`, an Axolotl
`datasets:` snippet). A classification record becomes a chat whose answer is its label.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator
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


def to_trl(rec: Record) -> dict[str, Any]:
    """TRL SFTTrainer: conversational `messages`, or `text` for plain-text records."""
    if rec.format == "text":
        return {"text": rec.turns[0].text if rec.turns else ""}
    return {"messages": _chat(rec)}


def to_trl_prompt_completion(rec: Record) -> dict[str, Any]:
    """TRL conversational prompt-completion: everything before the last answer is the prompt."""
    msgs = _chat(rec)
    last = max((i for i, m in enumerate(msgs) if m["role"] == "assistant"), default=len(msgs))
    return {"prompt": msgs[:last], "completion": msgs[last : last + 1]}


def to_axolotl(rec: Record) -> dict[str, Any]:
    """Axolotl `type: chat_template` rows: {"messages": [{"role", "content"}, ...]}."""
    return {"messages": _chat(rec)}


_SHAREGPT_ROLE = {"user": "human", "assistant": "gpt", "tool": "observation"}


def to_llamafactory(rec: Record) -> dict[str, Any]:
    """LLaMA-Factory sharegpt rows: `conversations` of {from, value} and a `system` field."""
    msgs = _chat(rec)
    system = "\n\n".join(m["content"] for m in msgs if m["role"] == "system")
    conv = [
        {"from": _SHAREGPT_ROLE.get(m["role"], m["role"]), "value": m["content"]}
        for m in msgs
        if m["role"] != "system"
    ]
    out: dict[str, Any] = {"conversations": conv}
    if system:
        out["system"] = system
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


def sidecar(to: str, path: str, name: str | None = None) -> tuple[str, str] | None:
    """The config a stack needs next to the data file: (file name, text), or None."""
    base = os.path.basename(path)
    name = name or os.path.splitext(base)[0]
    if to == "llamafactory":
        entry = {
            name: {
                "file_name": base,
                "formatting": "sharegpt",
                "columns": {"messages": "conversations", "system": "system"},
                "tags": {
                    "role_tag": "from",
                    "content_tag": "value",
                    "user_tag": "human",
                    "assistant_tag": "gpt",
                    "observation_tag": "observation",
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


def export(records: Iterable[Record], path: str, to: str) -> list[str]:
    """Write `records` exported to `to` at `path`, plus its sidecar; return the files written."""
    from tamis.records.io import write_objects

    if to not in EXPORTERS:
        from tamis.errors import TamisError

        raise TamisError(f"unknown export target '{to}'; choose from {sorted(EXPORTERS)}")
    write_objects(export_objects(records, to), path)
    written = [path]
    side = sidecar(to, path)
    if side:
        side_path = os.path.join(os.path.dirname(os.path.abspath(path)), side[0])
        with open(side_path, "w", encoding="utf-8") as fh:
            fh.write(side[1])
        written.append(side_path)
    return written
