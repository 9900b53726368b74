"""Prompt/completion: two strings, or (TRL's conversational form) two lists of messages."""

from __future__ import annotations

from typing import Any

from tamis.records.formats.base import FieldMap, Format, message_turn, register_format
from tamis.records.model import Turn


@register_format
class PromptCompletion(Format):
    name = "prompt_completion"
    description = "prompt / completion (strings or lists of messages)"
    recipe = "sft"

    def detect(self, obj: dict[str, Any], fields: FieldMap) -> bool:
        return (fields.prompt_field or "prompt") in obj and (
            fields.completion_field or "completion"
        ) in obj

    def turns(self, obj: dict[str, Any], fields: FieldMap) -> list[Turn]:
        turns: list[Turn] = []
        for key, role in (
            (fields.prompt_field or "prompt", "user"),
            (fields.completion_field or "completion", "assistant"),
        ):
            value = obj.get(key)
            if isinstance(value, list) and value and all(isinstance(m, dict) for m in value):
                turns += [message_turn(m, (key, i), role) for i, m in enumerate(value)]
            else:
                turns.append(Turn(role, value, (key,)))
        return turns
