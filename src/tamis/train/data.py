"""Records to training examples, with the record ids carried along.

SFT: each record's conversation is rendered with the tokenizer's chat template; only assistant
tokens (and the end-of-turn token that closes each answer) are trained. The assistant spans are
found by rendering the conversation up to each answer with and without it, so any chat template
works without hand-written markers. Classification: text and label id.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tamis.errors import TamisError
from tamis.records.model import Record

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


def _messages(record: Record) -> list[dict[str, str]]:
    msgs = []
    for t in record.turns:
        if isinstance(t.content, str) and t.content:
            role = t.role if t.role in ("system", "user", "assistant") else "user"
            msgs.append({"role": role, "content": t.content})
    return msgs


def _render(tok: Any, messages: list[dict[str, str]], generation_prompt: bool) -> str:
    return tok.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=generation_prompt
    )


def sft_example(record: Record, tok: Any, max_length: int) -> Example:
    """One chat-templated example; labels are IGNORE outside assistant answers."""
    msgs = _messages(record)
    full = _render(tok, msgs, False)
    spans: list[tuple[int, int]] = []
    role_chars: list[tuple[int, int, str]] = []
    prev_end = 0
    for i, m in enumerate(msgs):
        upto = _render(tok, msgs[: i + 1], False)
        if m["role"] == "assistant":
            start = len(_render(tok, msgs[:i], True))
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
