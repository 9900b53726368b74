"""Alpaca: `instruction`, optional `input`, and `output` (or `response`, as in GPTeacher)."""

from __future__ import annotations

from typing import Any

from tamis.records.formats.base import FieldMap, Format, register_format, system_turn
from tamis.records.model import Turn

OUTPUT_NAMES = ("output", "response")


@register_format
class Alpaca(Format):
    name = "alpaca"
    description = "instruction / input / output (or response)"
    recipe = "sft"

    def detect(self, obj: dict[str, Any], fields: FieldMap) -> bool:
        ins = fields.instruction_field or "instruction"
        return ins in obj and (
            (fields.output_field or "") in obj or any(k in obj for k in OUTPUT_NAMES)
        )

    def turns(self, obj: dict[str, Any], fields: FieldMap) -> list[Turn]:
        ins = fields.instruction_field or "instruction"
        inp = fields.input_field or "input"
        out = fields.output_field or next((k for k in OUTPUT_NAMES if k in obj), "output")
        turns = system_turn(obj, fields)
        turns.append(Turn("user", obj.get(ins), (ins,)))
        if inp in obj:
            turns.append(Turn("user", obj[inp], (inp,)))
        turns.append(Turn("assistant", obj.get(out), (out,)))
        return turns
