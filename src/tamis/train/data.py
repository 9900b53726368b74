"""Records to training examples, with the record ids carried along.

SFT: each record's conversation is rendered with the tokenizer's chat template; only assistant
tokens (and the end-of-turn token that closes each answer) are trained. The assistant spans are
found by rendering the conversation up to each answer with and without it, so any chat template
works without hand-written markers. Classification: text and label id.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from typing import Any

from tamis.errors import TamisError
from tamis.records.model import Record, Turn

IGNORE = -100


@dataclass
class Example:
    id: Any
    input_ids: list[int]
    labels: list[int] | int
    text: str = ""
    truncated: bool = False  # an assistant answer was cut by max_length
    role_tokens: dict[str, int] = field(default_factory=dict)

    @property
    def trained_tokens(self) -> int:
        if isinstance(self.labels, int):
            return 1
        return sum(1 for x in self.labels if x != IGNORE)

    def feature(self) -> dict[str, Any]:
        return {
            "input_ids": self.input_ids,
            "attention_mask": [1] * len(self.input_ids),
            "labels": self.labels,
            "tamis_id": str(self.id),
            "tamis_text": self.text[:300],
        }


def _written_calls(turn: Turn) -> str:
    """A tool-calling turn as text, for a chat template that knows no tool calls: its words, then
    each call as `<tool_call>{"name", "arguments"}</tool_call>` (the Hermes / Qwen layout)."""
    out = [turn.text] if turn.text.strip() else []
    for call in (turn.extra or {}).get("tool_calls", []):
        fn = call.get("function", call) if isinstance(call, dict) else {}
        args = fn.get("arguments", {})
        if isinstance(args, str):
            with contextlib.suppress(ValueError):
                args = json.loads(args)
        body = json.dumps({"name": fn.get("name"), "arguments": args}, ensure_ascii=False)
        out.append(f"<tool_call>\n{body}\n</tool_call>")
    return "\n".join(out)


def _messages(record: Record, tools: bool = False) -> list[dict[str, Any]]:
    """The record as the chat template's messages. A turn that calls tools is trained on: with a
    template that renders `tool_calls` (`tools`) as structured calls, else written into its text;
    a tool result is a `tool` turn for such a template and a `user` turn for the others."""
    msgs: list[dict[str, Any]] = []
    for t in record.turns:
        if t.calls_tools:
            if tools:
                calls = t.extra["tool_calls"]  # type: ignore[index]
                msgs.append({"role": "assistant", "content": t.text, "tool_calls": calls})
            else:
                msgs.append({"role": "assistant", "content": _written_calls(t)})
        elif isinstance(t.content, str) and t.content:
            keep = (
                ("system", "user", "assistant", "tool")
                if tools
                else ("system", "user", "assistant")
            )
            msg: dict[str, Any] = {
                "role": t.role if t.role in keep else "user",
                "content": t.content,
            }
            if tools and t.role == "tool" and t.extra and "tool_call_id" in t.extra:
                msg["tool_call_id"] = t.extra["tool_call_id"]
            msgs.append(msg)
    return msgs


def _knows_tools(tok: Any) -> bool:
    """Whether the tokenizer's chat template renders structured tool calls."""
    return "tool_calls" in str(getattr(tok, "chat_template", None) or "")


def _render(
    tok: Any,
    messages: list[dict[str, Any]],
    generation_prompt: bool,
    tools: list[Any] | None = None,
) -> str:
    if not messages:  # a record with no text, or the part before an opening answer
        return ""  # (templates refuse an empty conversation)
    kwargs = {"tools": tools} if tools else {}
    return tok.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=generation_prompt, **kwargs
    )


def sft_example(record: Record, tok: Any, max_length: int) -> Example:
    """One chat-templated example; labels are IGNORE outside assistant answers."""
    structured = _knows_tools(tok)
    msgs = _messages(record, structured)
    tools = record.meta.get("tools") if structured else None
    full = _render(tok, msgs, False, tools)  # what training_text gives
    spans: list[tuple[int, int]] = []
    role_chars: list[tuple[int, int, str]] = []
    prev_end = 0
    for i, m in enumerate(msgs):
        upto = _render(tok, msgs[: i + 1], False, tools)
        if m["role"] == "assistant":
            start = len(_render(tok, msgs[:i], True, tools))
            if not full.startswith(upto):
                raise TamisError(f"record {record.id}: the chat template does not render prefixes")
            spans.append((start, len(upto)))
        role_chars.append((prev_end, len(upto), m["role"]))
        prev_end = len(upto)
    enc = tok(full, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    labels = [
        tid if any(a <= s < b for a, b in spans) else IGNORE
        for tid, (s, _) in zip(ids, offsets, strict=True)
    ]
    role_tokens: dict[str, int] = {}
    for s, _ in offsets:
        role = next((r for a, b, r in role_chars if a <= s < b), "template")
        role_tokens[role] = role_tokens.get(role, 0) + 1
    truncated = False
    if len(ids) > max_length:
        cut = offsets[max_length][0]
        truncated = any(a < cut < b or a >= cut for a, b in spans)
        ids, labels = ids[:max_length], labels[:max_length]
    return Example(record.id, ids, labels, full, truncated, role_tokens)


def training_text(record: Record, tok: Any) -> tuple[str, bool]:
    """The text training tokenizes for `record`, and whether with the tokenizer's special tokens:
    the chat-templated conversation (as `sft_example`), or a classification record's text (as
    `classification_example`). Without a chat template, the turns one per line."""
    if record.format == "text_label":
        return classification_text(record), True
    if not getattr(tok, "chat_template", None):
        return "\n".join(m["content"] or "" for m in _messages(record)), False
    structured = _knows_tools(tok)
    tools = record.meta.get("tools") if structured else None
    return _render(tok, _messages(record, structured), False, tools), False


def text_only(records: list[Record], which: str, echo: Any) -> list[Record]:
    """The records without a non-text turn (image, audio or file parts), saying how many were
    left out: rendered as text, such a turn would vanish and leave an answer to a question the
    model never saw (`tamis train` and `tamis eval`)."""
    keep = [r for r in records if r.non_text_turn() is None]
    if len(keep) < len(records):
        echo(
            f"warning: {len(records) - len(keep)} {which} records hold non-text content (image, "
            "audio or file parts) and are left out"
        )
    return keep


def classification_text(record: Record) -> str:
    """What a classifier reads of a record: its string turns, one per line (train and eval)."""
    return "\n".join(t.content for t in record.turns if isinstance(t.content, str))


def classification_example(
    record: Record, tok: Any, label_ids: dict[str, int], max_length: int
) -> Example:
    text = classification_text(record)
    enc = tok(text, truncation=True, max_length=max_length)
    return Example(record.id, enc["input_ids"], label_ids[str(record.label)], text)


class SFTCollator:
    """Right-pads input ids (pad token), attention masks (0) and labels (IGNORE)."""

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        n = max(len(f["input_ids"]) for f in features)
        batch: dict[str, list[list[int]]] = {"input_ids": [], "attention_mask": [], "labels": []}
        for f in features:
            pad = n - len(f["input_ids"])
            batch["input_ids"].append(list(f["input_ids"]) + [self.pad_id] * pad)
            batch["attention_mask"].append(list(f["attention_mask"]) + [0] * pad)
            batch["labels"].append(list(f["labels"]) + [IGNORE] * pad)
        return {k: torch.tensor(v) for k, v in batch.items()}


class ClassificationCollator:
    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        n = max(len(f["input_ids"]) for f in features)
        return {
            "input_ids": torch.tensor(
                [list(f["input_ids"]) + [self.pad_id] * (n - len(f["input_ids"])) for f in features]
            ),
            "attention_mask": torch.tensor(
                [[1] * len(f["input_ids"]) + [0] * (n - len(f["input_ids"])) for f in features]
            ),
            "labels": torch.tensor([f["labels"] for f in features]),
        }


class ListDataset:
    """A list of feature dicts as a torch-style dataset (what Trainer needs)."""

    def __init__(self, features: list[dict[str, Any]]):
        self.features = features

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.features[i]
