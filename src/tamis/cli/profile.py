"""`tamis profile`: look at a dataset before training on it."""

from __future__ import annotations

import json

import typer

from tamis.cli.common import (
    INPUTS_HELP,
    EncodingOpt,
    FormatOpt,
    LabelFieldOpt,
    TextFieldOpt,
    console,
    out,
    user_errors,
)


@user_errors
def profile(
    inputs: list[str] = typer.Argument(..., help=INPUTS_HELP),
    output: str = typer.Option("out/profile", "--output", "-o", help="folder for the report"),
    signals: str | None = typer.Option(
        None, help="the output folder of a `tamis clean` run over the same data"
    ),
    sample: int = typer.Option(5000, help="records sampled for topics and languages"),
    topics: int | None = typer.Option(None, help="number of topic clusters (default: by size)"),
    no_topics: bool = typer.Option(False, "--no-topics", help="skip embeddings and topics"),
    tokenizer: str | None = typer.Option(
        None, help="tokenizer for token counts (default: SmolLM2's; 'words' for none)"
    ),
    format: str | None = FormatOpt,
    encoding: str | None = EncodingOpt,
    text_field: str | None = TextFieldOpt,
    label_field: str | None = LabelFieldOpt,
    as_json: bool = typer.Option(False, "--json", help="print profile.json"),
) -> None:
    """Profile a dataset: sizes, tokens, languages, labels, duplicates, topics, bias (HTML)."""
    from tamis.profile.run import profile as run
    from tamis.records.formats import FieldMap

    prof = run(
        list(inputs),
        output,
        signals=signals,
        fields=FieldMap(text_field=text_field, label_field=label_field),
        format=format,
        encoding=encoding,
        tokenizer=tokenizer,
        topics=not no_topics,
        sample=sample,
        n_topics=topics,
        echo=lambda s: console.print(s, highlight=False),
    )
    if as_json:
        out.print_json(json.dumps(prof.data, default=str))
        return
    for line in prof.summary_lines():
        out.print(line, highlight=False, soft_wrap=True, markup=False)  # the data's own text
    out.print(f"report: {output}/report.html · numbers: {output}/profile.json")
