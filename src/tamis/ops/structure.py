"""`structure`: records whose shape is wrong for training, whatever their text says."""

from __future__ import annotations

from typing import Any

from tamis.ops.base import Operator, Param, Reason, register
from tamis.records.model import Record

CHAT_FORMATS = ("openai", "sharegpt", "prompt_completion")
KNOWN_ROLES = ("system", "user", "assistant", "tool", "text")


@register
class Structure(Operator):
    name = "structure"
    description = (
        "missing or empty required fields, non-string content, unknown roles, chat turns out of "
        "order, empty assistant turns, a last turn that is not the assistant's, missing labels"
    )
    params = {
        "require_assistant_last": Param(True, "a chat must end with an assistant turn"),
        "allow_empty_input": Param(True, "an empty Alpaca `input` is fine (it is optional)"),
    }
    signals = {"n_turns": "int32", "n_assistant": "int32"}
    reasons = {
        "missing_field": "a required field is absent",
        "empty_field": "a required field is empty",
        "non_string": "content is not a string (number, list, object)",
        "unknown_role": "a turn's role is not system/user/assistant/tool",
        "out_of_order": "user and assistant turns do not alternate",
        "empty_assistant": "an assistant turn is empty",
        "last_not_assistant": "the conversation does not end with the assistant",
        "missing_label": "a classification record has no label",
    }

    def compute(self, records: list[Record]) -> list[dict[str, Any]]:
        return [
            {
                "n_turns": len(r.turns),
                "n_assistant": sum(t.role == "assistant" for t in r.turns),
            }
            for r in records
        ]

    def decide(self, record: Record, signals: dict[str, Any]) -> list[Reason]:
        out: list[Reason] = []
        for t in record.turns:
            # an input may be empty (by option); a tool call's content may be null or empty
            may_be_empty = (t.is_input and self.p["allow_empty_input"]) or t.calls_tools
            if t.content is None:
                if not may_be_empty:
                    out.append(Reason(self.name, "missing_field", detail=t.field))
            elif not isinstance(t.content, str):
                out.append(Reason(self.name, "non_string", detail=t.field))
            elif not t.content.strip() and not may_be_empty:
                code = "empty_assistant" if t.role == "assistant" else "empty_field"
                out.append(Reason(self.name, code, detail=t.field))
            if t.role not in KNOWN_ROLES:
                out.append(Reason(self.name, "unknown_role", detail=f"{t.field}: {t.role!r}"))
        if record.format == "text_label" and (record.label is None or str(record.label) == ""):
            out.append(Reason(self.name, "missing_label"))
        if record.format in CHAT_FORMATS:
            out.extend(self._order(record))
        return out

    def _order(self, record: Record) -> list[Reason]:
        roles = [t.role for t in record.turns if t.role in ("user", "assistant", "tool")]
        out: list[Reason] = []
        prev = None
        for i, r in enumerate(roles):
            first_bad = i == 0 and r != "user"
            repeat = r == prev and r != "tool"
            if first_bad or repeat:
                out.append(Reason(self.name, "out_of_order", detail=f"turn {i + 1} is {r}"))
                break
            prev = r
        if self.p["require_assistant_last"] and roles and roles[-1] != "assistant":
            out.append(Reason(self.name, "last_not_assistant"))
        return out
