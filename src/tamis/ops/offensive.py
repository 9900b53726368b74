"""`offensive`: profane or abusive text, by alt-profanity-check's bundled linear model."""

from __future__ import annotations

from typing import Any

from tamis.ops.base import Operator, Param, Reason, joined, register
from tamis.records.model import Record


@register
class Offensive(Operator):
    name = "offensive"
    description = "offensive or profane text (alt-profanity-check probability, offline)"
    requires = ("profanity_check",)
    extra = "filters"
    cacheable = True
    params = {
        "threshold": Param(0.9, "drop when the probability of offensive text reaches this"),
        "roles": Param(["user", "assistant", "text"], "roles whose text is scored", compute=True),
    }
    signals = {"offensive_prob": "float32"}
    reasons = {"offensive": "likely offensive or profane"}

    def setup(self) -> None:
        from profanity_check import predict_prob

        self._predict = predict_prob

    def compute(self, records: list[Record]) -> list[dict[str, Any]]:
        roles = tuple(self.p["roles"])
        texts = [joined(r, roles) for r in records]
        probs = self._predict(texts) if texts else []
        return [{"offensive_prob": float(p)} for p in probs]

    def decide(self, record: Record, signals: dict[str, Any]) -> list[Reason]:
        prob = signals.get("offensive_prob") or 0.0
        if prob >= self.p["threshold"]:
            return [Reason(self.name, "offensive", prob)]
        return []
