"""`tamis convert`: write records in their own format or exported for a training stack."""

from __future__ import annotations

import typer

from tamis.cli.common import (
    FormatOpt,
    IdFieldOpt,
    InputFieldOpt,
    InstructionFieldOpt,
    LabelFieldOpt,
    MessagesFieldOpt,
    OutputFieldOpt,
    TextFieldOpt,
    console,
    field_map,
    user_errors,
)
from tamis.records.exporters import EXPORTERS, export
from tamis.records.io import Reader, write


def convert(
    inputs: list[str] = typer.Argument(..., help="files or globs"),
    output: str = typer.Option(
        ..., "--output", "-o", help="output file (.jsonl .json .csv .parquet)"
    ),
    to: str = typer.Option(
        "same", help=f"'same' (the input's own fields) or one of: {', '.join(EXPORTERS)}"
    ),
    format: str = FormatOpt,
    text_field: str = TextFieldOpt,
    label_field: str = LabelFieldOpt,
    id_field: str = IdFieldOpt,
    messages_field: str = MessagesFieldOpt,
    instruction_field: str = InstructionFieldOpt,
    input_field: str = InputFieldOpt,
    output_field: str = OutputFieldOpt,
) -> None:
    """Convert between formats, or export for OpenAI, TRL, Axolotl or LLaMA-Factory."""
    user_errors(_convert)(**locals())


def _convert(**o: object) -> None:
    fields = field_map(
        o["text_field"],
        o["label_field"],
        o["id_field"],
        o["messages_field"],
        o["instruction_field"],
        o["input_field"],
        o["output_field"],
    )
    reader = Reader(list(o["inputs"]), format=o["format"], fields=fields)
    if o["to"] == "same":
        n = write(reader, o["output"])
        written = [o["output"]]
    else:
        written = export(reader, o["output"], o["to"])
        n = None
    for q in reader.quarantined:
        console.print(f"[yellow]skipped[/] {q.source}:{q.line}: {q.error}", highlight=False)
    console.print(
        f"wrote {', '.join(written)}" + (f" ({n} records)" if n is not None else ""),
        highlight=False,
    )
