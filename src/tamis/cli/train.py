"""`tamis train`: fine-tune on curated data with pre-flight checks and monitoring."""

from __future__ import annotations

import json

import typer
import yaml

from tamis.cli.common import console, out, user_errors
from tamis.errors import TamisError


@user_errors
def train(
    config: str | None = typer.Option(None, "--config", "-c", help="train.yaml"),
    task: str | None = typer.Option(None, help="sft or classification"),
    model: str | None = typer.Option(
        None, help="HF name or folder (default: offline SmolLM2 / MiniLM)"
    ),
    train_file: list[str] = typer.Option(None, "--train-file", help="training data (any format)"),
    eval_file: list[str] = typer.Option(None, "--eval-file", help="evaluation data"),
    output: str | None = typer.Option(None, "--output", "-o", help="run folder"),
    max_steps: int | None = typer.Option(None, help="stop after this many optimiser steps"),
    epochs: float | None = typer.Option(None, help="epochs (when max_steps is not set)"),
    learning_rate: float | None = typer.Option(None, help="peak learning rate"),
    batch_size: int | None = typer.Option(None, help="examples per device step"),
    max_length: int | None = typer.Option(None, help="tokens per example"),
    seed: int | None = typer.Option(None, help="random seed"),
    full: bool = typer.Option(False, "--full", help="full fine-tuning instead of LoRA"),
    group_by_length: bool = typer.Option(
        False, "--group-by-length", help="shuffled batches of like lengths: less padding, faster"
    ),
    set_: list[str] = typer.Option(None, "--set", help="any other config key: --set lora_r=16"),
    dry_run: bool = typer.Option(False, "--dry-run", help="pre-flight checks only"),
    show: int = typer.Option(0, help="print this many rendered examples, trained tokens in ⟦⟧"),
    resume: bool = typer.Option(False, help="continue from the last checkpoint in the run folder"),
    as_json: bool = typer.Option(False, "--json", help="print the result as JSON"),
) -> None:
    """Fine-tune (LoRA or full) with pre-flight checks, spike and overfitting detection."""
    from tamis.train.config import TrainConfig
    from tamis.train.trainer import train as run

    overrides = {
        "task": task,
        "model": model,
        "train_file": list(train_file) if train_file else None,
        "eval_file": list(eval_file) if eval_file else None,
        "output": output,
        "max_steps": max_steps,
        "epochs": epochs,
        "learning_rate": learning_rate,
        "batch_size": batch_size,
        "max_length": max_length,
        "seed": seed,
        "lora": False if full else None,
        "group_by_length": True if group_by_length else None,
    }
    for item in set_ or []:
        if "=" not in item:
            raise TamisError(f"--set takes key=value, not {item!r}")
        key, value = item.split("=", 1)
        overrides[key.strip()] = yaml.safe_load(value)
    cfg = TrainConfig.load(config, **overrides)
    res = run(
        cfg,
        dry_run=dry_run,
        show=show,
        resume=resume,
        echo=lambda s: console.print(s, highlight=False),
    )
    summary = {
        "output": res.output,
        "preflight": res.preflight.to_json(),
        "metrics": res.metrics,
        "alerts": len(res.monitor.get("alerts", [])),
    }
    if as_json:
        out.print_json(json.dumps(summary, default=str))
        return
    pre = summary["preflight"]
    out.print(
        f"pre-flight: {pre['examples']} examples, {pre['no_trained_token']['count']} with nothing "
        f"to train, {pre['truncated_answers']['count']} answers cut, "
        f"EOS trained: {pre['eos_trained']}"
    )
    if not dry_run:
        m = res.metrics
        shown = {k: round(v, 4) for k, v in m.items() if isinstance(v, float)}
        out.print(f"done: {shown}; {summary['alerts']} alerts; run folder {res.output}")
