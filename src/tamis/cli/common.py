"""Options and output helpers shared by the commands."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import typer
from rich.console import Console

from tamis.errors import TamisError
from tamis.records.formats import FORMATS, FieldMap

console = Console(stderr=True)
out = Console()
F = TypeVar("F", bound=Callable[..., Any])

INPUTS_HELP = (
    "files, globs or datasets save_to_disk folders (JSONL, JSON, CSV/TSV, TXT, Parquet, Arrow; "
    "also gzip, bzip2, xz or zstd compressed)"
)
FORMAT_HELP = f"input format, when detection is wrong: {', '.join(FORMATS)}"


def user_errors(fn: F) -> F:
    """Turn TamisError into one line on stderr and exit 2 (no traceback for a user error)."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except TamisError as e:
            console.print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
            raise typer.Exit(e.exit_code) from None
        except KeyboardInterrupt:
            console.print("interrupted; run again with --resume to continue")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def field_map(
    text_field: str | None,
    label_field: str | None,
    id_field: str,
    messages_field: str | None,
    instruction_field: str | None,
    input_field: str | None,
    output_field: str | None,
) -> FieldMap:
    return FieldMap(
        text_field=text_field,
        label_field=label_field,
        id_field=id_field,
        messages_field=messages_field,
        instruction_field=instruction_field,
        input_field=input_field,
        output_field=output_field,
    )


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n")


# Reusable typer option declarations
FormatOpt = typer.Option(None, "--format", "-f", help=FORMAT_HELP)
EncodingOpt = typer.Option(
    None, help="text files' encoding when not UTF-8, e.g. cp1252 (UTF-16 with a BOM is read)"
)
TextFieldOpt = typer.Option(None, help="field holding the text (plain text / classification)")
LabelFieldOpt = typer.Option(None, help="field holding the label (classification)")
IdFieldOpt = typer.Option("id", help="field holding a record id (else file:line)")
MessagesFieldOpt = typer.Option(None, help="field holding the chat turns (OpenAI / ShareGPT)")
InstructionFieldOpt = typer.Option(None, help="Alpaca instruction field")
InputFieldOpt = typer.Option(None, help="Alpaca input field")
OutputFieldOpt = typer.Option(None, help="Alpaca output field")
