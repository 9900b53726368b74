"""OpenAI chat: `messages`, a list of `{"role", "content"}`; optional `tools` and others kept.

A content given as a list of text parts (`[{"type": "text", "text": ...}]`, as the chat API and
multimodal data sets write it) reads as its text; one with an image, audio or file part stays a
list, which `structure` reports (a text fine-tune cannot use it). See `base.message_turn`.

The same turns under `conversations` or `conversation` (lmsys-chat-1m) read the same way.
"""

from __future__ import annotations

from typing import Any

from tamis.records.formats.base import (
    FieldMap,
    Format,
    chat_field,
    message_turn,
    register_format,
    system_turn,
)
from tamis.records.model import Turn


@register_format
class OpenAIChat(Format):
    name = "openai"
    description = "messages: [{role, content}, ...] (+ tools)"
    recipe = "sft"

    def _field(self, obj: dict[str, Any], fields: FieldMap) -> str:
        return chat_field(obj, fields, "role", "messages")

    def detect(self, obj: dict[str, Any], fields: FieldMap) -> bool:
        msgs = obj.get(self._field(obj, fields))
        return isinstance(msgs, list) and all(isinstance(m, dict) and "role" in m for m in msgs[:3])

    def reading(self, obj: dict[str, Any], fields: FieldMap) -> str:
        f = self._field(obj, fields)
        return "" if f == "messages" or fields.messages_field else f"turns from '{f}'"

    def turns(self, obj: dict[str, Any], fields: FieldMap) -> list[Turn]:
        f = self._field(obj, fields)
        turns = system_turn(obj, fields)
        msgs = obj.get(f)
        if not isinstance(msgs, list):
            return [*turns, Turn("user", None, (f,))]
        for i, m in enumerate(msgs):
            if not isinstance(m, dict):
                turns.append(Turn("?", m, (f, i)))
                continue
            turns.append(message_turn(m, (f, i), "?"))
        return turns
