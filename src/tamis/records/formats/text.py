"""Plain text (`text`), and text with a label (classification: `text` + `label`/`category`/...)."""

from __future__ import annotations

from typing import Any

from tamis.records.formats.base import LABEL_FIELDS, FieldMap, Format, register_format
from tamis.records.model import Turn

TEXT_FIELDS = ("text", "content", "sentence", "tweet", "document")


def text_field(obj: dict[str, Any], fields: FieldMap) -> str | None:
    if fields.text_field:
        return fields.text_field if fields.text_field in obj else None
    return next((k for k in TEXT_FIELDS if k in obj), None)


def label_field(obj: dict[str, Any], fields: FieldMap) -> str | None:
    if fields.label_field:
        return fields.label_field if fields.label_field in obj else None
    return next((k for k in LABEL_FIELDS if k in obj), None)


@register_format
class TextLabel(Format):
    name = "text_label"
    description = "text + label (classification)"
    recipe = "classification"

    def detect(self, obj: dict[str, Any], fields: FieldMap) -> bool:
        return text_field(obj, fields) is not None and label_field(obj, fields) is not None

    def turns(self, obj: dict[str, Any], fields: FieldMap) -> list[Turn]:
        f = text_field(obj, fields) or fields.text_field or "text"
        return [Turn("text", obj.get(f), (f,))]

    def label_path(self, obj: dict[str, Any], fields: FieldMap) -> str | None:
        return label_field(obj, fields) or fields.label_field or "label"


@register_format
class Text(Format):
    name = "text"
    description = "plain text (one field)"
    recipe = "text"

    def detect(self, obj: dict[str, Any], fields: FieldMap) -> bool:
        return text_field(obj, fields) is not None

    def turns(self, obj: dict[str, Any], fields: FieldMap) -> list[Turn]:
        f = text_field(obj, fields) or fields.text_field or "text"
        return [Turn("text", obj.get(f), (f,))]
