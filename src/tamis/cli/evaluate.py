"""`tamis eval`, `tamis serve` and `tamis experiment`: measure what curation bought."""

from __future__ import annotations

import json

import typer
from rich.table import Table

from tamis.cli.common import LabelFieldOpt, TextFieldOpt, console, out, user_errors
from tamis.errors import TamisError


@user_errors
def eval_cmd(
    model: str = typer.Argument(..., help="a `tamis train` run folder, a model folder or smollm2"),
    data: list[str] = typer.Option(..., "--data", "-d", help="held-out data (any format)"),
    output: str = typer.Option("out/eval", "--output", "-o", help="folder for the report"),
    base: str | None = typer.Option(None, help="a second model, evaluated side by side"),
    general: list[str] = typer.Option(None, "--general", help="general held-out data (forgetting)"),
    max_forgetting: float = typer.Option(0.1, help="relative worsening that counts as forgetting"),
    task: str | None = typer.Option(None, help="sft or classification (default: the run's)"),
    limit: int | None = typer.Option(None, help="evaluate only the first N records"),
    no_generation: bool = typer.Option(False, "--no-generation", help="perplexity only (sft)"),
    max_new_tokens: int = typer.Option(256, help="answer length cap when generating"),
    judge: str | None = typer.Option(
        None, help="LLM judge: local, local:MODEL, or an OpenAI-compatible base URL"
    ),
    judge_model: str | None = typer.Option(None, help="model name at the judge endpoint"),
    judge_key_env: str = typer.Option("OPENAI_API_KEY", help="env variable holding the key"),
    criteria: list[str] = typer.Option(None, "--criterion", help="judge criteria (repeatable)"),
    judge_limit: int = typer.Option(20, help="judge only the first N answers"),
    defect_checks: list[str] = typer.Option(
        None,
        "--defect-check",
        help="operators that check generated answers (repeatable; default structure, heuristics;"
        " none to skip)",
    ),
    resamples: int = typer.Option(1000, help="bootstrap resamples for intervals"),
    text_field: str | None = TextFieldOpt,
    label_field: str | None = LabelFieldOpt,
    as_json: bool = typer.Option(False, "--json", help="print metrics.json"),
) -> None:
    """Evaluate a model: accuracy/F1 or perplexity, exact match, ROUGE-L, chrF, LLM judge."""
    from tamis.evaluate.defects import DEFAULT_OPS
    from tamis.evaluate.judge import make_judge
    from tamis.evaluate.run import evaluate
    from tamis.records.formats import FieldMap

    j = (
        make_judge(judge, criteria or None, model=judge_model, api_key_env=judge_key_env)
        if judge and judge.startswith("http")
        else make_judge(judge, criteria or None)
    )
    res = evaluate(
        model,
        list(data),
        output,
        base=base,
        general=list(general) if general else None,
        task=task,
        fields=FieldMap(text_field=text_field, label_field=label_field),
        limit=limit,
        generation=not no_generation,
        max_new_tokens=max_new_tokens,
        judge=j,
        judge_limit=judge_limit,
        defect_ops=_defect_ops(defect_checks, DEFAULT_OPS),
        max_forgetting=max_forgetting,
        resamples=resamples,
        echo=lambda s: console.print(s, highlight=False),
    )
    if as_json:
        out.print_json(json.dumps(res.to_json(), default=float))
        return
    m = res.model
    keys = ["accuracy", "macro_f1", "perplexity", "exact_match", "contains_answer", "rouge_l"]
    keys += ["defect_rate"]
    table = Table("metric", "model", *(["base", "difference", "95% CI"] if res.base else []))
    comp = {r["metric"]: r for r in res.comparison}
    for k in keys + ["chrf"]:
        if not isinstance(m.get(k), int | float):
            continue
        row = [k, f"{m[k]:.4f}"]
        if res.base:
            c = comp.get(k)
            row += [f"{res.base.get(k, float('nan')):.4f}"]
            row += [f"{c['diff']:+.4f}", f"[{c['ci_low']:+.4f}, {c['ci_high']:+.4f}]"] if c else []
        table.add_row(*row)
    out.print(table)
    d = m.get("defects")
    if d and d["by_reason"]:
        found = ", ".join(f"{k} {v}" for k, v in d["by_reason"].items())
        out.print(f"defects in generated answers (not in the references): {found}")
    if res.forgetting:
        f = res.forgetting
        state = "[red]FORGOT[/]" if f["forgot"] else "ok"
        out.print(
            f"forgetting check ({f['metric']}): {f['before']:.4g} -> {f['after']:.4g}: {state}"
        )
    out.print(f"report: {output}/report.html · metrics: {output}/metrics.json")
    if res.forgetting and res.forgetting["forgot"]:
        raise typer.Exit(1)


def _defect_ops(given: list[str] | None, default: tuple[str, ...]) -> tuple[str, ...]:
    if not given:
        return default
    return () if [g.lower() for g in given] == ["none"] else tuple(given)


@user_errors
def serve(
    model: str | None = typer.Argument(None, help="model folder (default: the offline SmolLM2)"),
    host: str = typer.Option("127.0.0.1", help="address to listen on"),
    port: int = typer.Option(8000, help="port"),
) -> None:
    """Serve a local causal LM as an OpenAI-compatible endpoint (for the HTTP judge)."""
    from tamis.evaluate.serve import serve as run

    console.print(f"serving {model or 'smollm2'} at http://{host}:{port}/v1")
    run(model, host, port)


@user_errors
def experiment(
    config: str = typer.Option(..., "--config", "-c", help="experiment.yaml"),
    output: str = typer.Option("out/experiment", "--output", "-o", help="experiment folder"),
    only: list[str] = typer.Option(None, "--only", help="run only these arms"),
    as_json: bool = typer.Option(False, "--json", help="print results.json"),
) -> None:
    """Raw vs curated vs random vs growth: train and evaluate each arm over seeds."""
    from tamis.experiment import ExperimentConfig, run_experiment
    from tamis.experiment.report import table_rows

    cfg = ExperimentConfig.load(config)
    res = run_experiment(
        cfg, output, echo=lambda s: console.print(s, highlight=False), only=list(only or [])
    )
    if as_json:
        out.print_json(json.dumps(res.to_json(), default=float))
        return
    rows = table_rows(res)
    if not rows:
        raise TamisError("no arm was run")
    table = Table(*rows[0].keys())
    for r in rows:
        table.add_row(*(f"{v:.4f}" if isinstance(v, float) else str(v) for v in r.values()))
    out.print(table)
    out.print(f"report: {output}/report.html · results: {output}/results.json")
