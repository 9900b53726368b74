"""Operators registered outside tamis, for the tests of how workers find them
(tests/test_workers.py). Not a test module: the workers import it by name."""

from __future__ import annotations

from typing import Any

from tamis.ops.base import Operator, Reason, register
from tamis.records.model import Record


@register
class LongQuestion(Operator):
    name = "long_question"
    description = "questions over 200 characters (a plugin operator)"
    signals = {"question_chars": "int32"}
    reasons = {"long_question": "the question is long"}

    def compute(self, records: list[Record]) -> list[dict[str, Any]]:
        return [{"question_chars": len(r.turns[0].text)} for r in records]

    def decide(self, record: Record, s: dict[str, Any]) -> list[Reason]:
        n = s["question_chars"]
        return [Reason(self.name, "long_question", n)] if n > 200 else []


@register
class BrokenSetup(Operator):
    name = "broken_setup"
    description = "an operator whose model cannot load (fails in `setup`, in every worker)"
    signals = {"x": "int32"}

    def setup(self) -> None:
        raise OSError("the model file is missing")

    def compute(self, records: list[Record]) -> list[dict[str, Any]]:
        return [{"x": 0} for _ in records]
