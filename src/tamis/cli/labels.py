"""`tamis label-issues`: records whose label looks wrong, ranked, with per-class noise."""

from __future__ import annotations

import json

import typer
from rich.markup import escape
from rich.table import Table

from tamis.cli.common import FORMAT_HELP, INPUTS_HELP, console, out, user_errors


@user_errors
def label_issues(
    inputs: list[str] = typer.Argument(..., help=INPUTS_HELP),
    output: str = typer.Option(..., "-o", "--out", help="folder for label_issues.jsonl"),
    label_field: str | None = typer.Option(None, help="the label column (default: detected)"),
    text_field: str | None = typer.Option(None, help="the text column (default: detected)"),
    format: str | None = typer.Option(None, "--format", help=FORMAT_HELP),
    folds: int = typer.Option(5, help="cross-validation folds"),
    seed: int = typer.Option(0, help="fold assignment seed"),
    rank: str = typer.Option(
        "embeddings",
        help="embeddings (fast), or training: as many flags, chosen by what a MiniLM fine-tune "
        "cannot learn (area under the margin; better, a fine-tune's cost)",
    ),
    epochs: float | None = typer.Option(
        None, help="--rank training: epochs of the fine-tune (default: 3, or at least 150 steps)"
    ),
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON"),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="print nothing but errors"),
) -> None:
    """Find wrong labels (cross-validated probabilities + confident learning)."""
    from tamis.ops.labels import label_issues_report

    doing = "embedding and cross-validating" + (", then fine-tuning" if rank == "training" else "")
    status = console.status(doing, spinner="dots") if not quiet else _null()

    def progress(step: int, steps: int) -> None:  # the fine-tune of --rank training
        if not quiet:
            status.update(f"fine-tuning MiniLM to rank the flags: step {step}/{steps}")

    with status:
        report = label_issues_report(
            inputs,
            output,
            label_field=label_field,
            text_field=text_field,
            format=format,
            folds=folds,
            seed=seed,
            rank=rank,
            epochs=epochs,
            progress=progress,
        )
    if as_json:
        out.print_json(json.dumps(report, default=str))
        return
    if quiet:
        return
    table = Table(title=f"{report['flagged']:,} of {report['records']:,} records flagged")
    for col in ("label", "count", "share", "flagged", "est. noise"):
        table.add_column(col, justify="left" if col == "label" else "right")
    for c in sorted(report["classes"], key=lambda c: -(c["estimated_noise"] or 0)):
        noise = c["estimated_noise"]
        table.add_row(
            escape(str(c["label"])),
            f"{c['count']:,}",
            f"{c['share']:.1%}",
            str(c["flagged"]),
            "" if noise is None else f"{noise:.1%}",
        )
    out.print(table)
    out.print(f"ranked issues: {output}/label_issues.jsonl · report: {output}/label_report.json")


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *a: object) -> None:
        return None
