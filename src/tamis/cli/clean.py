"""`tamis clean` and `tamis check`."""

from __future__ import annotations

import os

import typer
from rich.markup import escape
from rich.table import Table

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
    out,
    print_json,
    user_errors,
)
from tamis.pipeline.recipe import BUILTIN
from tamis.pipeline.runner import check as run_check
from tamis.pipeline.runner import clean as run_clean


def _summary_table(summary: dict) -> Table:
    c = summary["counts"]
    t = Table(title=f"tamis clean · recipe {summary['recipe']}", title_justify="left")
    t.add_column("operator")
    t.add_column("dropped", justify="right")
    t.add_column("reasons")
    t.add_column("changes")
    for op in summary["operators"]:
        reasons = ", ".join(f"{k} {v}" for k, v in op["reasons"].items())
        fixes = ", ".join(f"{k} {v}" for k, v in op["changes"].items())
        t.add_row(op["op"], str(op["rejected"]), reasons, fixes)
    t.caption = (
        f"input {c['input']} = kept {c['kept']} + rejected {c['rejected']} + "
        f"quarantined {c['quarantined']}"
    )
    return t


def _notes(notes: dict) -> str:
    """One line for an operator's notes, e.g. MinHash's bands and rows."""
    parts = []
    if "bands" in notes:
        parts.append(
            f"{notes['bands']} bands x {notes['rows']} rows for Jaccard {notes['threshold']}"
        )
    for key, label in (
        ("candidate_pairs", "candidate pairs"),
        ("unlike_answers", "set apart for unlike answers"),
        ("similar_pairs", "similar pairs"),
        ("clusters", "clusters"),
        ("flagged", "flagged"),
        ("learnt_from", "answers learnt from"),
    ):
        if key in notes:
            parts.append(f"{notes[key]:,} {label}")
    if "skipped" in notes:  # e.g. `endings` with too few answers to learn from
        parts.append(f"skipped: {notes['skipped']}")
    return "; ".join(parts)


def clean(
    inputs: list[str] = typer.Argument(..., help=INPUTS_HELP),
    output: str = typer.Option(..., "--output", "-o", help="output folder"),
    recipe: str = typer.Option(
        None,
        "--recipe",
        "-r",
        help=f"recipe YAML, or built-in {'/'.join(BUILTIN)} (default: by format)",
    ),
    workers: int = typer.Option(
        min(2, os.cpu_count() or 1), "--workers", "-w", help="processes to use"
    ),
    resume: bool = typer.Option(False, help="continue an interrupted run into the same folder"),
    batch_size: int = typer.Option(1000, help="records per batch"),
    cache_dir: str = typer.Option(None, help="signal cache folder (default ~/.cache/tamis)"),
    no_cache: bool = typer.Option(False, "--no-cache", help="do not read or write cached signals"),
    max_record_mb: float = typer.Option(4.0, help="quarantine records larger than this"),
    against: list[str] = typer.Option(
        None, "--against", help="evaluation/test files: drop records that overlap them"
    ),
    reference: str = typer.Option(
        None, "--reference", help="examples or a .md description of the target domain"
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
    quiet: bool = typer.Option(False, "--quiet", "-q", help="print nothing but errors"),
    json_out: bool = typer.Option(False, "--json", help="print the summary as JSON"),
) -> None:
    """Clean a dataset: keep what is good, reject the rest with reasons, lose nothing."""
    user_errors(_clean)(**locals())


def _clean(**o: object) -> None:
    fields = field_map(
        o["text_field"],
        o["label_field"],
        o["id_field"],
        o["messages_field"],
        o["instruction_field"],
        o["input_field"],
        o["output_field"],
    )
    res = run_clean(
        o["inputs"],
        o["output"],
        o["recipe"],
        workers=o["workers"],
        batch_size=o["batch_size"],
        resume=o["resume"],
        format=o["format"],
        fields=fields,
        encoding=o["encoding"],
        cache_dir=o["cache_dir"],
        use_cache=not o["no_cache"],
        max_record_mb=o["max_record_mb"],
        progress=not o["quiet"],
        against=o["against"] or None,
        reference=o["reference"],
    )
    s = res.summary
    if o["json_out"]:
        print_json(s)
        return
    if o["quiet"]:
        return
    for f in s["inputs"]:
        console.print(f"[dim]read[/] {f['path']} as {f['detected']}", highlight=False)
    for w in s["warnings"]:
        console.print(f"[yellow]warning:[/] {w}", highlight=False)
    out.print(_summary_table(s))
    for op in s["operators"]:
        if op.get("notes"):
            out.print(f"[dim]{op['op']}:[/] {_notes(op['notes'])}", highlight=False)
    rps = s["timings"]["records_per_second"]
    out.print(f"wrote {o['output']}/ ({', '.join(res.files)}) · {rps} records/s", highlight=False)


def check(
    inputs: list[str] = typer.Argument(..., help=INPUTS_HELP),
    recipe: str = typer.Option(None, "--recipe", "-r", help="recipe YAML or built-in name"),
    fail_over: float = typer.Option(
        0, help="exit 1 when findings exceed this: a count, or a fraction of records if < 1"
    ),
    examples: int = typer.Option(3, help="examples to show per finding type"),
    workers: int = typer.Option(min(2, os.cpu_count() or 1), "--workers", "-w"),
    against: list[str] = typer.Option(
        None, "--against", help="evaluation/test files: report records that overlap them"
    ),
    reference: str = typer.Option(
        None, "--reference", help="examples or a .md description of the target domain"
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
    quiet: bool = typer.Option(False, "--quiet", "-q", help="print nothing; use the exit code"),
    json_out: bool = typer.Option(False, "--json", help="print findings as JSON"),
) -> None:
    """Find problems without writing a dataset; exit 1 over --fail-over (a CI gate)."""
    user_errors(_check)(**locals())


def _check(**o: object) -> None:
    fields = field_map(
        o["text_field"],
        o["label_field"],
        o["id_field"],
        o["messages_field"],
        o["instruction_field"],
        o["input_field"],
        o["output_field"],
    )
    res = run_check(
        o["inputs"],
        o["recipe"],
        examples=o["examples"],
        workers=o["workers"],
        format=o["format"],
        fields=fields,
        encoding=o["encoding"],
        progress=not o["quiet"],
        against=o["against"] or None,
        reference=o["reference"],
    )
    limit = o["fail_over"]
    allowed = limit * res.input if 0 < limit < 1 else limit
    failed = res.total > allowed
    if o["json_out"]:
        print_json(
            {
                "input": res.input,
                "findings_total": res.total,
                "fail_over": limit,
                "failed": failed,
                "findings": res.findings,
            }
        )
    elif not o["quiet"]:
        t = Table(title="tamis check", title_justify="left")
        t.add_column("finding")
        t.add_column("records", justify="right")
        t.add_column("examples")
        for name, f in res.findings.items():
            ex = "\n".join(escape(f"{e['id']}: {e['text']}") for e in f["examples"])
            t.add_row(name, str(f["count"]), ex)
        t.caption = f"{res.total} of {res.input} records have findings (fail over {limit})"
        out.print(t)
    if failed:
        raise typer.Exit(1)
