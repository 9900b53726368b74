"""The Format interface and registry. A format turns one input object into a Record.

`detect` says whether an object looks like this format; `to_record` never raises on a
well-formed object of another shape: missing fields become turns with `None` content so that the
structure operator reports them as a reason, rather than the record vanishing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from tamis.records.model import Record, Source, Turn, parts_text

LABEL_FIELDS = ("label", "labels", "category", "class", "intent", "target", "sentiment")
# a top-level system prompt: `system`, or OpenOrca's `system_prompt`
SYSTEM_FIELDS = ("system", "system_prompt")
# the list of turns of a chat: OpenAI's `messages`, ShareGPT's `conversations`, lmsys' singular
CHAT_FIELDS = ("messages", "conversations", "conversation")


@dataclass(frozen=True)
class FieldMap:
    """Names of the input's fields, for inputs that do not use the usual ones."""

    text_field: str | None = None
    label_field: str | None = None
    id_field: str = "id"
    messages_field: str | None = None
    instruction_field: str | None = None
    input_field: str | None = None
    output_field: str | None = None
    prompt_field: str | None = None
    completion_field: str | None = None
    system_field: str = "system"


class Format:
    """One input format: detect it, and read an object of it as a Record."""

    name: ClassVar[str]
    description: ClassVar[str]
    recipe: ClassVar[str]  # name of the default recipe for this format

    def detect(self, obj: dict[str, Any], fields: FieldMap) -> bool:
        raise NotImplementedError

    def turns(self, obj: dict[str, Any], fields: FieldMap) -> list[Turn]:
        raise NotImplementedError

    def label_path(self, obj: dict[str, Any], fields: FieldMap) -> str | None:
        return None

    def reading(self, obj: dict[str, Any], fields: FieldMap) -> str:
        """Which of the format's other field names this object uses, for the detection message
        (e.g. "question as instruction, answer as output"); '' for the usual ones."""
        return ""

    def to_record(self, obj: Any, source: Source, fields: FieldMap, default_id: str) -> Record:
        turns = self.turns(obj, fields)
        lp = self.label_path(obj, fields)
        used = {t.path[0] for t in turns} | ({lp} if lp else set())
        rid = obj.get(fields.id_field, default_id) if fields.id_field in obj else default_id
        meta = {k: v for k, v in obj.items() if k not in used and k != fields.id_field}
        return Record(
            id=rid,
            turns=turns,
            raw=obj,
            format=self.name,
            source=source,
            label=obj.get(lp) if lp else None,
            label_path=(lp,) if lp else None,
            meta=meta,
        )


FORMATS: dict[str, Format] = {}


def register_format(cls: type[Format]) -> type[Format]:
    FORMATS[cls.name] = cls()
    return cls


def system_turn(obj: dict[str, Any], fields: FieldMap) -> list[Turn]:
    """A top-level system prompt field, when the object has one."""
    names = SYSTEM_FIELDS if fields.system_field == "system" else (fields.system_field,)
    for name in names:
        # null is no system prompt: a Parquet or Arrow column holds null where a row has none
        if obj.get(name) is not None:
            return [Turn("system", obj[name], (name,))]
    return []


def message_turn(m: dict[str, Any], path: tuple[str | int, ...], role: str) -> Turn:
    """A `{role, content, ...}` message at `path` (OpenAI messages, prompt/completion lists).

    The message's other fields go to `Turn.extra`, but not null ones: Parquet and Arrow give
    every message every field any message has (`"tool_calls": null` on each user turn). A
    content of text parts (`[{"type": "text", "text": ...}]`) reads as its text, its path into
    the part when there is one; a list holding an image, audio or file part stays a list."""
    extra = {k: v for k, v in m.items() if k not in ("role", "content") and v is not None}
    content, at = m.get("content"), (*path, "content")
    text = parts_text(content)
    if text is not None:
        content, at = text, ((*at, 0, "text") if len(m["content"]) == 1 else at)
    return Turn(str(m.get("role", role)), content, at, extra=extra or None)


def chat_field(obj: dict[str, Any], fields: FieldMap, key: str, default: str) -> str:
    """The field holding an object's turns: the one given, else the first of CHAT_FIELDS whose
    value is a list of turns that have `key` ("role" for OpenAI, "from" for ShareGPT)."""
    if fields.messages_field:
        return fields.messages_field
    for name in CHAT_FIELDS:
        turns = obj.get(name)
        if (
            isinstance(turns, list)
            and turns
            and all(isinstance(t, dict) and key in t for t in turns[:3])
        ):
            return name
    return default
