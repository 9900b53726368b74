"""`tamis convert`: write records in their own format or exported for a training stack."""

from __future__ import annotations

import os

import typer

from tamis.cli.common import (
    INPUTS_HELP,
    EncodingOpt,
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
from tamis.errors import TamisError
from tamis.records.exporters import EXPORTERS, TARGET_NAMES, export
from tamis.records.io import Quarantined, Reader, beside, write, write_objects


def convert(
    inputs: list[str] = typer.Argument(..., help=INPUTS_HELP),
    output: str = typer.Option(
        ..., "--output", "-o", help="output file (.jsonl .json .csv .parquet)"
    ),
    to: str = typer.Option(
        "same", help=f"'same' (the input's own fields) or one of: {', '.join(EXPORTERS)}"
    ),
    format: str = FormatOpt,
    encoding: str = EncodingOpt,
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
    reader = Reader(list(o["inputs"]), format=o["format"], fields=fields, encoding=o["encoding"])
    skipped = None
    if o["to"] == "same":
        n = write(reader, o["output"])
        written = [o["output"]]
    else:
        done = export(reader, o["output"], o["to"])
        n, skipped = done.written, done
        written = [f for f in done.files if f != done.skipped_path]
    _quarantine(reader.quarantined, str(o["output"]))
    if skipped is not None and skipped.skipped:
        target = TARGET_NAMES[str(o["to"])]
        why = ", ".join(f"{code} {k:,}" for code, k in skipped.reasons.most_common())
        console.print(
            f"[yellow]left out[/] {skipped.skipped:,} record{'' if skipped.skipped == 1 else 's'} "
            f"{target} would refuse or learn "
            f"nothing from ({why}): {skipped.skipped_path}",
            highlight=False,
        )
        if not n:  # no empty file left for a later step to train on
            for path in written:
                os.remove(path)
            raise TamisError(
                f"none of the records can go to {target} ({why}); see {skipped.skipped_path}"
                + ("; plain text trains with --to trl" if "no_answer" in skipped.reasons else "")
            )
    console.print(
        f"wrote {', '.join(written)} ({n:,} record{'' if n == 1 else 's'})", highlight=False
    )
    if o["to"] == "openai" and 0 < n < 10:
        console.print(
            f"[yellow]note[/] OpenAI fine-tuning takes at least 10 examples; this file has {n}",
            highlight=False,
        )


def _quarantine(items: list[Quarantined], output: str) -> None:
    """Input lines that could not be read as records: a few named on the terminal, all of them
    in `<stem>.quarantine.jsonl` beside the output (as `tamis clean` keeps them)."""
    path = beside(output, "quarantine.jsonl")
    if os.path.exists(path):  # a stale file from an earlier run would tell of lines not here
        os.remove(path)
    if not items:
        return
    write_objects((q.to_json() for q in items), path)
    for q in items[:5]:
        console.print(f"[yellow]skipped[/] {q.source}:{q.line}: {q.error}", highlight=False)
    more = f" ({len(items) - 5:,} more)" if len(items) > 5 else ""
    console.print(
        f"[yellow]left out[/] {len(items):,} unreadable line{'' if len(items) == 1 else 's'}"
        f"{more}, kept with their errors in {path}",
        highlight=False,
    )
