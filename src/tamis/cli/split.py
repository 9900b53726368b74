"""`tamis split` and `tamis leakage`."""

from __future__ import annotations

import json

import typer
from rich.markup import escape
from rich.table import Table

from tamis.cli.common import FORMAT_HELP, INPUTS_HELP, console, out, user_errors


@user_errors
def split(
    inputs: list[str] = typer.Argument(..., help=INPUTS_HELP),
    output: str = typer.Option(..., "-o", "--out", help="folder for the split files"),
    ratios: str = typer.Option("0.8,0.1,0.1", help="shares of the splits, comma-separated"),
    names: str | None = typer.Option(None, help="split names (default train,val,test)"),
    stratify_by: str | None = typer.Option(
        None, help="label (default when there are labels), length, or a field name"
    ),
    group_by: str | None = typer.Option(None, help="records sharing this field stay together"),
    seed: int = typer.Option(0, help="random seed"),
    near_threshold: float = typer.Option(
        0.5, help="near-duplicates (MinHash Jaccard) at or above this stay together"
    ),
    format: str | None = typer.Option(None, "--format", help=FORMAT_HELP),
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON"),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="print nothing but errors"),
) -> None:
    """Stratified splits where duplicates and groups never straddle, checked for leakage."""
    from tamis.split import split as do_split

    res = do_split(
        inputs,
        output,
        [float(x) for x in ratios.split(",")],
        stratify_by=stratify_by,
        group_by=group_by,
        seed=seed,
        names=names.split(",") if names else None,
        near_threshold=near_threshold,
        format=format,
    )
    rep = res.report
    if as_json:
        out.print_json(json.dumps(rep, default=str))
    elif not quiet:
        table = Table(title=f"{rep['records']:,} records, stratified by {rep['stratified_by']}")
        table.add_column("split")
        table.add_column("records", justify="right")
        table.add_column("share", justify="right")
        table.add_column("file")
        for name, s in rep["splits"].items():
            table.add_row(name, f"{s['records']:,}", f"{s['share']:.1%}", res.files[name])
        out.print(table)
        chk = rep["leakage_check"]
        g = rep["groups"]
        out.print(
            f"{g['count']:,} groups ({g['records_in_multi_record_groups']:,} records share a "
            "group with another); leakage check: "
            + (
                "[green]no exact or near overlap between splits[/]"
                if chk["ok"]
                else f"[red]{chk['exact_and_near_overlaps']} overlaps[/]"
            )
        )
    if not rep["leakage_check"]["ok"]:
        raise typer.Exit(1)


@user_errors
def leakage(
    a: str = typer.Argument(..., help="the training set (file or glob)"),
    b: str = typer.Argument(..., help="the evaluation or test set (file or glob)"),
    near_threshold: float = typer.Option(0.5, help="MinHash Jaccard for near overlap"),
    semantic_threshold: float = typer.Option(0.95, help="MiniLM cosine for semantic overlap"),
    no_semantic: bool = typer.Option(False, "--no-semantic", help="skip the embedding check"),
    examples: int = typer.Option(5, help="examples to show per kind"),
    output: str | None = typer.Option(None, "-o", "--out", help="also write the report (JSON)"),
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON"),
    format: str | None = typer.Option(None, "--format", help=FORMAT_HELP),
) -> None:
    """Exact, near and semantic overlap of B with A; exit 1 when exact or near overlap exists."""
    from tamis.split import leakage as do_leakage

    with console.status("comparing", spinner="dots"):
        rep = do_leakage(
            a,
            b,
            near_threshold=near_threshold,
            semantic_threshold=None if no_semantic else semantic_threshold,
            examples=examples,
            format=format,
        )
    summary = rep.summary()
    if output:
        with open(output, "w", encoding="utf-8") as fh:
            json.dump(summary, fh, indent=2, ensure_ascii=False, default=str)
    if as_json:
        out.print_json(json.dumps(summary, default=str))
    else:
        table = Table(title=f"{b}: {rep.b_count:,} records against {a}: {rep.a_count:,}")
        table.add_column("overlap")
        table.add_column(f"records of {b}", justify="right")
        table.add_column("share", justify="right")
        for kind in rep.checked:
            n = rep.leaked(kind)
            table.add_row(kind, f"{n:,}", f"{n / max(1, rep.b_count):.1%}")
        out.print(table)
        for kind in rep.checked:
            for ex in summary["examples"][kind]:
                b = escape(f"{ex['b_id']}: {ex['b']}")  # the data's own text, not markup
                a = escape(f"{ex['a_id']}: {ex['a']}")
                out.print(
                    f"[bold]{kind}[/] {ex['score']:.2f}  {b}\n      ≈ {a}",
                    highlight=False,
                )
    if rep.leaked("exact") or rep.leaked("near"):
        raise typer.Exit(1)
