"""ShareGPT: `conversations`, a list of `{"from": ..., "value": ...}` turns (also under
`messages` or `conversation`)."""

from __future__ import annotations

from typing import Any

from tamis.records.formats.base import (
    FieldMap,
    Format,
    chat_field,
    register_format,
    system_turn,
)
from tamis.records.model import Turn

ROLE_OF = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "chatgpt": "assistant",
    "bard": "assistant",
    "bing": "assistant",
    "model": "assistant",
    "system": "system",
    "tool": "tool",
    "function": "tool",
    "function_call": "assistant",
    "observation": "tool",
}


@register_format
class ShareGPT(Format):
    name = "sharegpt"
    description = "conversations: [{from, value}, ...]"
    recipe = "sft"

    def _field(self, obj: dict[str, Any], fields: FieldMap) -> str:
        return chat_field(obj, fields, "from", "conversations")

    def detect(self, obj: dict[str, Any], fields: FieldMap) -> bool:
        conv = obj.get(self._field(obj, fields))
        return isinstance(conv, list) and all(
            isinstance(t, dict) and "from" in t and "value" in t for t in conv[:3]
        )

    def reading(self, obj: dict[str, Any], fields: FieldMap) -> str:
        f = self._field(obj, fields)
        return "" if f == "conversations" or fields.messages_field else f"turns from '{f}'"

    def turns(self, obj: dict[str, Any], fields: FieldMap) -> list[Turn]:
        f = self._field(obj, fields)
        turns = system_turn(obj, fields)
        conv = obj.get(f)
        if not isinstance(conv, list):
            return [*turns, Turn("user", None, (f,))]
        for i, t in enumerate(conv):
            if not isinstance(t, dict):
                turns.append(Turn("?", t, (f, i)))
                continue
            who = str(t.get("from", "?"))
            turns.append(Turn(ROLE_OF.get(who.lower(), who), t.get("value"), (f, i, "value")))
        return turns
