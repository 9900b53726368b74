"""Alpaca: `instruction`, optional `input`, and `output`, under the names instruction data sets use
for them: `response` (GPTeacher, Dolly), `question`/`answer` (the original GSM8K), `query`,
`prompt`/`response`, `context` as the input (Dolly), `system_prompt` (OpenOrca)."""

from __future__ import annotations

from typing import Any

from tamis.records.formats.base import FieldMap, Format, register_format, system_turn
from tamis.records.model import Turn

INSTRUCTION_NAMES = ("instruction", "question", "query", "prompt")
INPUT_NAMES = ("input", "context")
OUTPUT_NAMES = ("output", "response", "answer")


def _names(obj: dict[str, Any], fields: FieldMap) -> tuple[str | None, str, str | None]:
    """The instruction, input and output fields of `obj`: the ones given, else the first usual
    name it has (None: the object has none)."""
    # the usual names first, without a generator: this runs for every record
    ins = fields.instruction_field or (
        "instruction"
        if "instruction" in obj
        else next((k for k in INSTRUCTION_NAMES if k in obj), None)
    )
    inp = fields.input_field or (
        "input" if "input" in obj else next((k for k in INPUT_NAMES if k in obj), "input")
    )
    out = fields.output_field or (
        "output" if "output" in obj else next((k for k in OUTPUT_NAMES if k in obj), None)
    )
    return ins, inp, out


@register_format
class Alpaca(Format):
    name = "alpaca"
    description = "instruction / input / output (or question / answer, prompt / response, ...)"
    recipe = "sft"

    def detect(self, obj: dict[str, Any], fields: FieldMap) -> bool:
        ins, _, out = _names(obj, fields)
        return ins is not None and ins in obj and out is not None and out in obj

    def reading(self, obj: dict[str, Any], fields: FieldMap) -> str:
        ins, inp, out = _names(obj, fields)
        said = [
            f"{name} as {role}"
            for name, role in ((ins, "instruction"), (inp, "input"), (out, "output"))
            if name and name != role and name in obj
        ]
        return ", ".join(said)

    def turns(self, obj: dict[str, Any], fields: FieldMap) -> list[Turn]:
        ins, inp, out = _names(obj, fields)
        ins, out = ins or "instruction", out or "output"
        turns = system_turn(obj, fields)
        turns.append(Turn("user", obj.get(ins), (ins,)))
        if inp in obj:
            turns.append(Turn("user", obj[inp], (inp,), is_input=True))
        turns.append(Turn("assistant", obj.get(out), (out,)))
        return turns
