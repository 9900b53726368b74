"""Training and monitoring on real data, on CPU, small shapes: SmolLM2 LoRA on gsm8k, MiniLM
classification on banking77, a corrupted batch flagged with its ids, overfitting stopped."""

from __future__ import annotations

import csv
import json
import random
import re
from pathlib import Path

import pytest
import yaml

from conftest import DATA
from tamis.pipeline.recipe import Recipe
from tamis.train.monitor import MonitorCore, OverfitDetector, SpikeDetector

pytest.importorskip("peft")


def test_spike_detector_flags_a_jump_not_noise() -> None:
    rng = random.Random(0)
    d = SpikeDetector(window=30, z=6.0)
    flags = [d.update(2.0 - 0.01 * i + rng.gauss(0, 0.05)) for i in range(40)]
    assert not any(flags)
    assert d.update(6.0)  # a loss three times its recent level
    assert not d.update(1.6)  # and the history was not raised by it


def test_overfit_detector_needs_worse_eval_and_better_train() -> None:
    d = OverfitDetector(patience=3)
    assert d.update(1.0, 1.2) is None
    assert d.update(0.8, 1.1) is None  # the best eval
    assert d.update(0.9, 1.15) is None  # eval worse, but train worse too: not overfitting
    assert d.update(0.6, 1.15) is None
    assert d.update(0.4, 1.2) is None
    assert "for 3 evaluations" in (d.update(0.3, 1.3) or "")


def test_monitor_writes_alerts_with_the_step_examples(tmp_path: Path) -> None:
    from tamis.train.monitor import IdTrackingCollator

    tracker = IdTrackingCollator(lambda feats: feats)
    core = MonitorCore(str(tmp_path), collator=tracker)
    for step in range(1, 21):
        tracker([{"tamis_id": f"r{step}", "tamis_text": "ok"}])
        core.end_step()
        assert core.on_train_log(step, {"loss": 1.0 + 0.01 * (step % 3), "grad_norm": 1.0}) is None
    tracker([{"tamis_id": "bad1", "tamis_text": "zzz"}, {"tamis_id": "bad2", "tamis_text": "qqq"}])
    core.end_step()
    core.on_train_log(21, {"loss": 9.0, "grad_norm": 1.0})
    assert core.on_train_log(22, {"loss": float("nan")}) == "stop"
    alerts = [json.loads(x) for x in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    assert alerts[0]["kind"] == "loss_spike" and alerts[0]["step"] == 21
    assert [e["id"] for e in alerts[0]["examples"]] == ["bad1", "bad2"]
    assert alerts[1]["kind"] == "non_finite"


def _b77(tmp: Path, n_per_class: int = 30, scramble: list[int] | None = None) -> Path:
    with open(DATA / "banking77" / "train.csv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    keep = ["card_arrival", "exchange_rate", "lost_or_stolen_phone", "age_limit"]
    picked = []
    for c in keep:
        picked += [r for r in rows if r["category"] == c][:n_per_class]
    random.Random(0).shuffle(picked)
    out = tmp / "b77.jsonl"
    out.write_text("".join(json.dumps({"id": f"r{i}", **r}) + "\n" for i, r in enumerate(picked)))
    return out


def _flipped_batch(tmp: Path) -> tuple[Path, list[int]]:
    """200 real questions of two intents in a fixed order; the 8 at rows 160-167 (the batch of
    step 21 at batch size 8, in input order) have their labels flipped."""
    with open(DATA / "banking77" / "train.csv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    two = ("card_arrival", "exchange_rate")
    picked = [r for r in rows if r["category"] == two[0]][:100]
    picked += [r for r in rows if r["category"] == two[1]][:100]
    random.Random(0).shuffle(picked)
    picked = [{"id": f"r{i}", **r} for i, r in enumerate(picked)]
    bad = list(range(160, 168))
    for i in bad:
        picked[i]["id"] = f"flipped{i}"
        picked[i]["category"] = two[1] if picked[i]["category"] == two[0] else two[0]
    data = tmp / "two.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in picked))
    return data, bad


def test_group_by_length_batches_like_lengths(tmp_path: Path) -> None:
    """`--group-by-length`: each step's batch holds questions of like token lengths, so far less
    padding goes through the model than in shuffled batches of the same questions."""
    import numpy as np
    from transformers import AutoTokenizer
    from typer.testing import CliRunner

    from tamis.cli.main import app
    from tamis.models.embeddings import default_model_path

    data = _b77(tmp_path)  # 120 real questions, 4 to 40 words
    args = ["train", "--task", "classification", "--train-file", str(data), "-o"]
    args += [str(tmp_path / "run"), "--max-steps", "6", "--batch-size", "4", "--group-by-length"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["config"]["group_by_length"] is True
    tok = AutoTokenizer.from_pretrained(default_model_path())
    rows = [json.loads(x) for x in data.read_text().splitlines()]
    length = {r["id"]: len(tok(r["text"])["input_ids"]) for r in rows}

    def padding(batches: list[list[str]]) -> float:
        """Share of padding tokens: every example padded to its batch's longest."""
        sizes = [max(length[i] for i in b) * len(b) for b in batches]
        return 1 - sum(length[i] for b in batches for i in b) / sum(sizes)

    steps = json.loads((tmp_path / "run" / "monitor.json").read_text())["steps"]
    assert len(steps) == 6 and all(len(s["ids"]) == 4 for s in steps)
    rng = np.random.default_rng(0)
    ids = list(length)
    shuffled = np.mean(
        [
            padding(np.array(ids)[rng.permutation(120)[:24]].reshape(6, 4).tolist())
            for _ in range(200)
        ]
    )
    assert shuffled > 0.2  # these questions vary in length
    assert padding([s["ids"] for s in steps]) < shuffled / 2


def test_minilm_classification_trains_and_reports_accuracy(tmp_path: Path) -> None:
    from tamis.train import TrainConfig
    from tamis.train.trainer import train

    data = _b77(tmp_path)
    cfg = TrainConfig(
        task="classification",
        train_file=[str(data)],
        val_fraction=0.2,
        output=str(tmp_path / "run"),
        max_steps=12,
        batch_size=16,
        learning_rate=5e-3,
        max_length=48,
        eval_steps=6,
    )
    res = train(cfg, echo=lambda s: None)
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["metrics"]["eval_accuracy"] > 0.5  # 4 classes: chance is 0.25
    assert "eval_macro_f1" in run["metrics"]
    assert (tmp_path / "run" / "adapter" / "adapter_config.json").exists()
    events = list((tmp_path / "run" / "logs").glob("events.out.tfevents.*"))  # TensorBoard
    assert events and b"perplexity" in events[0].read_bytes()
    assert (tmp_path / "run" / "train.yaml").exists()
    steps = res.monitor["steps"]
    assert steps[-1]["loss"] < steps[0]["loss"]


def test_mlflow_and_wandb_receive_loss_and_perplexity(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """report_to reaches MLflow (local file store) and W&B (offline run files), perplexity too:
    the monitor runs before the loggers."""
    pytest.importorskip("mlflow")
    pytest.importorskip("wandb")
    from tamis.train import TrainConfig
    from tamis.train.trainer import train

    mlruns = tmp_path / "mlruns"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlruns.as_uri())
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    cfg = TrainConfig(
        task="classification",
        train_file=[str(_b77(tmp_path, n_per_class=10))],
        val_fraction=0.25,
        output=str(tmp_path / "run"),
        max_steps=4,
        batch_size=8,
        learning_rate=5e-3,
        max_length=48,
        eval_steps=2,
        report_to=["mlflow", "wandb"],
    )
    train(cfg, echo=lambda s: None)
    metric_files = {p.name for p in mlruns.rglob("metrics/*")}
    assert {"loss", "perplexity", "eval_loss", "eval_perplexity"} <= metric_files
    runs = list((tmp_path / "wandb").glob("offline-run-*/run-*.wandb"))
    blob = runs[0].read_bytes() if runs else b""
    assert b"train/perplexity" in blob and b"eval/perplexity" in blob  # W&B prefixes the keys


@pytest.mark.parametrize("on_spike", ["warn", "skip"])
def test_corrupted_batch_is_flagged_with_exactly_its_ids(tmp_path: Path, on_spike: str) -> None:
    """Input order, batch 8: the batch of step 21 holds 8 real questions with flipped labels.

    warn: a loss spike at step 21 naming exactly those ids; skip: the raw gradient norm of that
    step is judged before the update, which is dropped, and the alert names the same ids.
    """
    from tamis.train import TrainConfig
    from tamis.train.trainer import train

    data, bad = _flipped_batch(tmp_path)
    cfg = TrainConfig(
        task="classification",
        train_file=[str(data)],
        output=str(tmp_path / "run"),
        max_steps=22,
        batch_size=8,
        learning_rate=5e-3,
        max_length=48,
        shuffle=False,
        on_spike=on_spike,
        report_to=["none"],
    )
    train(cfg, echo=lambda s: None)
    alerts = [json.loads(x) for x in (tmp_path / "run" / "alerts.jsonl").read_text().splitlines()]
    if on_spike == "warn":
        found = [a for a in alerts if a["kind"] == "loss_spike"]
    else:
        found = [a for a in alerts if a["values"].get("skipped")]
    assert [a["step"] for a in found] == [21]
    assert {e["id"] for e in found[0]["examples"]} == {f"flipped{i}" for i in bad}


@pytest.fixture(scope="module")
def gsm16(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("gguf")
    gsm = json.loads((DATA / "instruct" / "gsm_8k_train.json").read_text())[:16]
    path = tmp_path_factory.mktemp("gsm") / "gsm16.jsonl"
    path.write_text("".join(json.dumps({"id": f"g{i}", **o}) + "\n" for i, o in enumerate(gsm)))
    return path


def test_dry_run_shows_the_loss_mask_and_preflight(tmp_path: Path, gsm16: Path) -> None:
    from typer.testing import CliRunner

    from tamis.cli.main import app

    args = ["train", "--train-file", str(gsm16), "-o", str(tmp_path / "run"), "--dry-run"]
    result = CliRunner().invoke(app, [*args, "--show", "1", "--max-length", "160"])
    assert result.exit_code == 0, result.output
    assert "⟦" in result.output and "⟧" in result.output  # trained tokens marked
    pre = json.loads((tmp_path / "run" / "preflight.json").read_text())
    assert pre["examples"] == 16 and pre["eos_trained"] is True
    assert 0 < pre["truncated_answers"]["count"] < 16  # 160 tokens cut the longer answers
    # ... and the warning says how to drop them before training, with a recipe step that builds
    step = re.search(r"\{token_length: .*\}\}", " ".join(pre["warnings"])).group(0)
    assert yaml.safe_load(step) == {"token_length": {"max_tokens": 160}}
    Recipe.from_dict({"name": "fit", "ops": [yaml.safe_load(step)]}).build()
    assert set(pre["tokens_per_role"]) >= {"user", "assistant"}
    # refused with exit 2: an empty training set, every answer cut, eval labels training lacks
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    bad = CliRunner().invoke(app, ["train", "--train-file", str(empty), "--dry-run"])
    assert bad.exit_code == 2
    cut = CliRunner().invoke(app, [*args, "--max-length", "24"])
    assert cut.exit_code == 2 and "max_length" in cut.output
    tr, ev = tmp_path / "tr.jsonl", tmp_path / "ev.jsonl"
    tr.write_text('{"text": "where is my card", "label": "card_arrival"}\n')
    ev.write_text('{"text": "what rate do you use", "label": "exchange_rate"}\n')
    cls = ["train", "--task", "classification", "--train-file", str(tr), "--eval-file", str(ev)]
    mismatch = CliRunner().invoke(app, [*cls, "-o", str(tmp_path / "c"), "--dry-run"])
    assert mismatch.exit_code == 2 and "exchange_rate" in mismatch.output


def test_an_answer_without_a_prompt_is_rendered_and_trained(gsm16: Path) -> None:
    """A record whose prompt is empty (its first message is the answer) used to crash the chat
    template, which refuses an empty conversation, when the answer's start was rendered."""
    from transformers import AutoTokenizer

    import tamis
    from tamis.models.causal_lm import cached_smollm2
    from tamis.train.data import IGNORE, sft_example

    tok = AutoTokenizer.from_pretrained(cached_smollm2())
    rec = next(iter(tamis.read(str(gsm16))))
    rec.turns = [t for t in rec.turns if t.role == "assistant"]
    ex = sft_example(rec, tok, 10**6)
    trained = tok.decode(
        [i for i, lab in zip(ex.input_ids, ex.labels, strict=True) if lab != IGNORE]
    )
    assert rec.turns[0].content in trained


def test_records_with_image_parts_are_left_out_of_training(tmp_path: Path, gsm16: Path) -> None:
    """A message with an image part cannot be rendered as text: the record is left out with a
    warning, not trained as an answer to a question the model never sees."""
    from typer.testing import CliRunner

    from tamis.cli.main import app

    rows = [json.loads(x) for x in gsm16.read_text().splitlines()]
    out = []
    for i, o in enumerate(rows):
        user = [{"type": "text", "text": o["instruction"]}]
        if i < 3:
            user.append({"type": "image_url", "image_url": {"url": "https://example.com/a.png"}})
        out.append(
            {
                "messages": [
                    {"role": "user", "content": user},
                    {"role": "assistant", "content": o["output"]},
                ]
            }
        )
    src = tmp_path / "parts.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in out))
    args = ["train", "--train-file", str(src), "-o", str(tmp_path / "run"), "--dry-run"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "3 training records hold non-text content" in res.output.replace("\n", " ")
    assert json.loads((tmp_path / "run" / "preflight.json").read_text())["examples"] == 13


def test_smollm2_lora_loss_goes_down_and_adapter_reloads(tmp_path: Path, gsm16: Path) -> None:
    from tamis.train import TrainConfig
    from tamis.train.trainer import train

    cfg = TrainConfig(
        task="sft",
        train_file=[str(gsm16)],
        output=str(tmp_path / "run"),
        max_steps=8,
        batch_size=2,
        max_length=256,
        learning_rate=2e-3,
        report_to=["none"],
    )
    res = train(cfg, echo=lambda s: None)
    losses = [s["loss"] for s in res.monitor["steps"]]
    assert sum(losses[-2:]) / 2 < sum(losses[:2]) / 2
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["train_examples"] == 16 and run["data_fingerprint"]
    from peft import PeftModel

    from tamis.models.causal_lm import load_causal_lm

    base, _ = load_causal_lm()
    model = PeftModel.from_pretrained(base, str(tmp_path / "run" / "adapter"))
    assert any("lora" in n for n, _ in model.named_parameters())


def test_overfitting_stops_the_run_and_keeps_the_best_checkpoint(tmp_path: Path) -> None:
    """32 training questions, half with random labels, trained far too long: the model memorises
    the noise, clean eval loss climbs, the monitor stops the run and the best checkpoint stays."""
    from tamis.train import TrainConfig
    from tamis.train.trainer import train

    with open(DATA / "banking77" / "train.csv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    keep = ["card_arrival", "exchange_rate", "lost_or_stolen_phone", "age_limit"]
    rng = random.Random(0)
    train_rows, eval_rows = [], []
    for c in keep:
        of_class = [r for r in rows if r["category"] == c]
        train_rows += of_class[:8]
        eval_rows += of_class[100:130]
    for i, r in enumerate(train_rows):
        train_rows[i] = {"id": f"t{i}", **r}
        if i % 2 == 0:
            train_rows[i]["category"] = rng.choice(keep)
    tr, ev = tmp_path / "train.jsonl", tmp_path / "eval.jsonl"
    tr.write_text("".join(json.dumps(r) + "\n" for r in train_rows))
    ev.write_text("".join(json.dumps({"id": f"e{i}", **r}) + "\n" for i, r in enumerate(eval_rows)))
    cfg = TrainConfig(
        task="classification",
        train_file=[str(tr)],
        eval_file=[str(ev)],
        output=str(tmp_path / "run"),
        max_steps=200,
        batch_size=8,
        learning_rate=1e-2,
        max_length=32,
        eval_steps=4,
        overfit_patience=3,
        report_to=["none"],
    )
    res = train(cfg, echo=lambda s: None)
    assert "overfitting" in [a["kind"] for a in res.monitor["alerts"]]
    assert res.monitor["steps"][-1]["step"] < 200  # stopped early
    best = res.monitor["best"]
    assert res.metrics["eval_loss"] == pytest.approx(best["eval_loss"], rel=1e-3)  # restored
    assert json.loads((tmp_path / "run" / "monitor.json").read_text())["best"] == best


def test_resume_after_an_interruption_continues_with_the_same_data_order(tmp_path: Path) -> None:
    from transformers import TrainerCallback

    from tamis.train import TrainConfig
    from tamis.train.trainer import train

    data = _b77(tmp_path, n_per_class=20)

    def cfg(out: str) -> TrainConfig:
        return TrainConfig(
            task="classification",
            train_file=[str(data)],
            output=str(tmp_path / out),
            max_steps=12,
            batch_size=8,
            save_steps=4,
            learning_rate=5e-3,
            max_length=32,
            report_to=["none"],
        )

    class StopAt8(TrainerCallback):  # an interruption after the step-8 checkpoint
        def on_step_end(self, args, state, control, **kw):  # noqa: ANN001, ANN003, ANN201
            if state.global_step == 8:
                control.should_training_stop = True

    whole = train(cfg("whole"), echo=lambda s: None).monitor["steps"]
    train(cfg("cut"), echo=lambda s: None, extra_callbacks=[StopAt8()])
    rest = train(cfg("cut"), echo=lambda s: None, resume=True).monitor["steps"]
    assert [s["step"] for s in rest] == [9, 10, 11, 12]
    assert [s["ids"] for s in rest] == [s["ids"] for s in whole[8:]]


def test_phases_run_as_one_log_in_curriculum_order(tmp_path: Path) -> None:
    """General data first, then the task data from short to long questions by a curation signal."""
    import yaml

    from tamis.pipeline.runner import clean
    from tamis.train import TrainConfig
    from tamis.train.trainer import train

    data = _b77(tmp_path, n_per_class=10)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({"name": "h", "ops": [{"heuristics": {}}]}))
    clean(str(data), str(tmp_path / "cleaned"), str(recipe))
    signals = str(tmp_path / "cleaned" / "signals.parquet")
    cfg = TrainConfig(
        task="classification",
        train_file=[str(data)],
        output=str(tmp_path / "run"),
        batch_size=4,
        learning_rate=5e-3,
        max_length=32,
        report_to=["none"],
        phases=[
            {"name": "general", "max_steps": 3},
            {
                "name": "easy-to-hard",
                "max_steps": 4,
                "learning_rate": 1e-3,
                "order_by": {"signals": signals, "column": "heuristics.chars_prompt"},
            },
        ],
    )
    res = train(cfg, echo=lambda s: None)
    steps = res.monitor["steps"]
    assert [s["step"] for s in steps] == list(range(1, 8))  # one log across both phases
    rows = {json.loads(x)["id"]: json.loads(x)["text"] for x in data.read_text().splitlines()}
    lengths = [len(rows[i]) for s in steps[3:] for i in s["ids"]]
    assert lengths == sorted(lengths)  # the second phase runs short questions first
    assert (tmp_path / "run" / "checkpoints" / "phase-2-easy-to-hard").is_dir()


def test_kill_minus_nine_then_resume_keeps_the_data_order(tmp_path: Path) -> None:
    """A real kill (SIGKILL) of `tamis train` after a checkpoint; --resume goes on from it and
    every later step sees the same examples as an uninterrupted run."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from tamis.train import TrainConfig
    from tamis.train.trainer import train

    data = _b77(tmp_path, n_per_class=40)
    common = dict(
        task="classification",
        train_file=[str(data)],
        max_steps=60,
        batch_size=8,
        save_steps=4,
        learning_rate=5e-3,
        max_length=32,
        report_to=["none"],
    )
    whole = train(TrainConfig(output=str(tmp_path / "whole"), **common), echo=lambda s: None)
    run = tmp_path / "killed"
    cmd = [sys.executable, "-m", "tamis.cli.main", "train", "--task", "classification"]
    cmd += ["--train-file", str(data), "-o", str(run), "--max-steps", "60", "--batch-size", "8"]
    cmd += ["--learning-rate", "5e-3", "--max-length", "32", "--set", "save_steps=4"]
    cmd += ["--set", "report_to=[none]"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (run / "checkpoints" / "checkpoint-12").exists() and time.time() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (run / "run.json").exists()  # it really died before the end
    # a checkpoint the kill cut short (no trainer state yet) is not resumed from
    done = sorted(
        int(p.parent.name.split("-")[1])
        for p in (run / "checkpoints").glob("checkpoint-*/trainer_state.json")
    )
    rest = train(TrainConfig(output=str(run), **common), echo=lambda s: None, resume=True)
    steps = rest.monitor["steps"]
    assert steps[0]["step"] == max(done) + 1 and steps[-1]["step"] == 60
    assert [s["ids"] for s in steps] == [s["ids"] for s in whole.monitor["steps"][max(done) :]]


def test_a_trained_mean_pooled_classifier_loads_without_a_load_report(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """transformers 5 prints a LOAD REPORT for the new head before training and for the pooler a
    mean-pooled model never saves; both are by design, so neither is shown. A random head at
    evaluation is not by design, and stays reported (as a warning)."""
    import warnings

    from tamis.evaluate.predict import load
    from tamis.train import TrainConfig
    from tamis.train.trainer import train

    data = _b77(tmp_path)
    cfg = TrainConfig(
        task="classification",
        train_file=[str(data)],
        output=str(tmp_path / "run"),
        max_steps=2,
        batch_size=16,
        max_length=32,
        lora=False,
        pooling="mean",
        monitor=False,
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train(cfg, echo=lambda s: None)
        loaded = load(str(tmp_path / "run"))
    assert loaded.labels  # the trained head came back
    assert "LOAD REPORT" not in capfd.readouterr().err
    assert not [w for w in caught if "newly initialised" in str(w.message)]
    with pytest.warns(
        UserWarning,
        match=r"newly initialised \(not in the checkpoint\): classifier\.bias, classifier\.weight",
    ):
        load("minilm", task="classification")  # the base encoder: its head is random
    assert "LOAD REPORT" not in capfd.readouterr().err


def test_tool_calls_are_trained_not_dropped(tmp_path: Path) -> None:
    """A function-calling record (a real Toolformer call as an OpenAI tool call, null content):
    its call is in the trained tokens, written as text for SmolLM2's template, which knows no
    tool calls, and passed as structured `tool_calls` (with `tools`) to a template that does."""
    pytest.importorskip("gguf")
    from transformers import AutoTokenizer

    import tamis
    from tamis.models.causal_lm import cached_smollm2
    from tamis.train.data import IGNORE, sft_example
    from test_records import _function_calling

    obj = _function_calling(1)[0]
    obj["messages"][1]["content"] = None
    obj["messages"].append({"role": "tool", "tool_call_id": "call_0", "content": "Paris, 1789"})
    obj["messages"].append({"role": "assistant", "content": "It began in 1789."})
    path = tmp_path / "call.jsonl"
    path.write_text(json.dumps(obj) + "\n")
    (rec,) = tamis.read(str(path))
    call = obj["messages"][1]["tool_calls"][0]["function"]
    tok = AutoTokenizer.from_pretrained(cached_smollm2())
    ex = sft_example(rec, tok, 512)
    trained = tok.decode([t for t, y in zip(ex.input_ids, ex.labels, strict=True) if y != IGNORE])
    assert (
        f'"name": "{call["name"]}"' in trained and json.loads(call["arguments"])["query"] in trained
    )
    assert "It began in 1789." in trained and "Paris, 1789" not in trained  # the result is read
    tok.chat_template = (  # tools first, as real templates put them in the system prompt
        "{% if tools %}[tools {{ tools | length }}]{% endif %}"
        "{% for m in messages %}<{{ m.role }}>{{ m.content or '' }}"
        "{% for c in m.tool_calls or [] %}[call {{ c.function.name }}]{% endfor %}</{{ m.role }}>"
        "{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}"
    )
    ex = sft_example(rec, tok, 512)
    assert f"[call {call['name']}]" in ex.text and "[tools 1]" in ex.text
    assert "<tool>Paris, 1789</tool>" in ex.text and "<tool_call>" not in ex.text
