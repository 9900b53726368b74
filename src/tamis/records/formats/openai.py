"""OpenAI chat: `messages`, a list of `{"role", "content"}`; optional `tools` and others kept.

A content given as a list of text parts (`[{"type": "text", "text": ...}]`, as the chat API and
multimodal data sets write it) reads as its text; one with an image, audio or file part stays a
list, which `structure` reports (a text fine-tune cannot use it).

The same turns under `conversations` or `conversation` (lmsys-chat-1m) read the same way.
"""

from __future__ import annotations

from typing import Any

from tamis.records.formats.base import (
    FieldMap,
    Format,
    chat_field,
    register_format,
    system_turn,
)
from tamis.records.model import Turn, parts_text


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
            # a null field is an absent one: Parquet and Arrow give every message every field
            # any message has (`"tool_calls": null` on each user turn)
            extra = {k: v for k, v in m.items() if k not in ("role", "content") and v is not None}
            extra = extra or None
            content, path = m.get("content"), (f, i, "content")
            text = parts_text(content)
            if text is not None:  # content as a list of text parts reads as its text
                content, path = (text, (*path, 0, "text")) if len(content) == 1 else (text, path)
            turns.append(Turn(str(m.get("role", "?")), content, path, extra=extra))
        return turns
