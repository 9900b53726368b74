"""`tamis train`: fine-tune on curated data through transformers + peft, watched by the monitor.

Pre-flight checks run first (also alone with `dry_run`): every example rendered, what is trained,
what max_length cuts, whether the end-of-turn token is trained, tokens per role. Then a
`transformers.Trainer` runs with the `TamisMonitor` callback, TensorBoard logs, checkpoints for
`resume`, and the run folder gets the adapter or model, tokenizer, `run.json` and `monitor.json`.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from tamis.errors import TamisError
from tamis.models.loading import quiet_transformers
from tamis.records.formats import FieldMap
from tamis.records.io import Reader
from tamis.records.model import Record
from tamis.train.config import TrainConfig
from tamis.train.data import (
    IGNORE,
    ClassificationCollator,
    Example,
    ListDataset,
    SFTCollator,
    classification_example,
    sft_example,
    text_only,
)
from tamis.train.monitor import IdTrackingCollator, MonitorCore, monitor_callback


@dataclass
class Preflight:
    examples: int
    no_trained_token: list[Any] = field(default_factory=list)
    truncated: list[Any] = field(default_factory=list)
    eos_trained: bool | None = None
    tokens_per_role: dict[str, dict[str, int]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "examples": self.examples,
            "no_trained_token": {
                "count": len(self.no_trained_token),
                "ids": self.no_trained_token[:50],
            },
            "truncated_answers": {"count": len(self.truncated), "ids": self.truncated[:50]},
            "eos_trained": self.eos_trained,
            "tokens_per_role": self.tokens_per_role,
            "warnings": self.warnings,
        }


@dataclass
class TrainResult:
    output: str
    preflight: Preflight
    metrics: dict[str, Any] = field(default_factory=dict)
    monitor: dict[str, Any] = field(default_factory=dict)


def _read(files: list[str], cfg: TrainConfig) -> list[Record]:
    fields = FieldMap(label_field=cfg.label_field, text_field=cfg.text_field)
    return list(Reader(files, fields=fields))


def _histogram(values: list[int]) -> dict[str, int]:
    if not values:
        return {}
    edges = [16, 32, 64, 128, 256, 512, 1024, 2048]
    out: Counter[str] = Counter()
    for v in values:
        b = next((e for e in edges if v <= e), None)
        out[f"<={b}" if b else f">{edges[-1]}"] += 1
    return dict(sorted(out.items(), key=lambda kv: int(kv[0].strip("<=>"))))


def preflight(
    examples: list[Example],
    tok: Any,
    task: str,
    max_length: int | None = None,
    model: str | None = None,
) -> Preflight:
    """What will be trained: examples with nothing to learn, cut answers, EOS, tokens per role.

    `max_length` and `model` only shape the advice: a cut answer teaches the model to stop
    mid-answer, and the `token_length` operator drops such records before training."""
    p = Preflight(len(examples))
    if task != "sft":
        return p
    p.no_trained_token = [e.id for e in examples if e.trained_tokens == 0]
    p.truncated = [e.id for e in examples if e.truncated]
    end_ids = {tok.eos_token_id}
    im_end = tok.convert_tokens_to_ids("<|im_end|>") if "<|im_end|>" in tok.get_vocab() else None
    if im_end is not None:
        end_ids.add(im_end)
    p.eos_trained = any(
        lab in end_ids
        for e in examples
        if isinstance(e.labels, list)
        for lab in e.labels
        if lab != IGNORE
    )
    roles: dict[str, list[int]] = {}
    for e in examples:
        for role, n in e.role_tokens.items():
            roles.setdefault(role, []).append(n)
    p.tokens_per_role = {r: _histogram(v) for r, v in sorted(roles.items())}
    if p.no_trained_token:
        p.warnings.append(f"{len(p.no_trained_token)} examples have no trained token")
    if p.truncated:
        limit = max_length if max_length is not None else "MAX_LENGTH"
        tokenizer = f", tokenizer: {model}" if model else ""
        p.warnings.append(
            f"{len(p.truncated)} assistant answers are cut by max_length: a cut answer teaches the "
            "model to stop mid-answer; raise max_length, or drop them first with tamis clean and "
            f"the token_length operator ({{token_length: {{max_tokens: {limit}{tokenizer}}}}})"
        )
    if p.eos_trained is False:
        p.warnings.append(
            "the end-of-turn token is never trained: the model will not learn to stop"
        )
    return p


def render_marked(example: Example, tok: Any) -> str:
    """The example's text with trained tokens between ⟦ and ⟧ (what the loss sees)."""
    if isinstance(example.labels, int):
        return f"{example.text}\n→ label {example.labels}"
    out, inside = [], False
    for tid, lab in zip(example.input_ids, example.labels, strict=True):
        trained = lab != IGNORE
        if trained and not inside:
            out.append("⟦")
        if not trained and inside:
            out.append("⟧")
        inside = trained
        out.append(tok.decode([tid]))
    if inside:
        out.append("⟧")
    return "".join(out)


def _fingerprint(records: list[Record]) -> str:
    h = hashlib.blake2b(digest_size=16)
    for r in records:
        h.update(str(r.id).encode())
        h.update(r.content_key().encode("utf-8", "surrogatepass"))
    return h.hexdigest()


def _versions() -> dict[str, str]:
    out = {}
    import importlib.metadata

    for mod in ("tamis", "torch", "transformers", "peft", "trl"):
        try:
            out[mod] = importlib.metadata.version(mod)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def _sampling(shuffle: bool, group_by_length: bool) -> str:
    """The Trainer's sampler: input order, shuffled, or shuffled in batches of like lengths."""
    if not shuffle:
        return "sequential"
    return "group_by_length" if group_by_length else "random"


def train(
    cfg: TrainConfig,
    *,
    dry_run: bool = False,
    show: int = 0,
    resume: bool = False,
    echo: Any = print,
    extra_callbacks: list[Any] | None = None,
) -> TrainResult:
    """Pre-flight, then (unless dry_run) fine-tune; returns what was written where."""
    train_records = text_only(_read(cfg.train_file, cfg), "training", echo)
    if not train_records:
        raise TamisError("the training set is empty", cfg.train_file[0])
    eval_records = text_only(_read(cfg.eval_file, cfg), "eval", echo) if cfg.eval_file else []
    if not eval_records and cfg.val_fraction > 0:
        rng = random.Random(cfg.seed)
        idx = list(range(len(train_records)))
        rng.shuffle(idx)
        k = max(1, int(len(idx) * cfg.val_fraction))
        held = set(idx[:k])
        eval_records = [r for i, r in enumerate(train_records) if i in held]
        train_records = [r for i, r in enumerate(train_records) if i not in held]

    from transformers import AutoTokenizer

    from tamis.models.causal_lm import resolve_model

    model_path = resolve_model(cfg.model, cfg.task)
    tok = AutoTokenizer.from_pretrained(model_path)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    label_ids: dict[str, int] = {}
    if cfg.task == "classification":
        labels = sorted({str(r.label) for r in train_records if r.label is not None})
        if not labels:
            raise TamisError("classification needs labels: none found (use label_field)")
        eval_labels = {str(r.label) for r in eval_records if r.label is not None}
        if eval_labels - set(labels):
            missing = sorted(eval_labels - set(labels))[:10]
            raise TamisError(f"the eval set has labels the training set lacks: {missing}")
        label_ids = {lab: i for i, lab in enumerate(labels)}

        def make(r: Record) -> Example:
            return classification_example(r, tok, label_ids, cfg.max_length)

        unlabelled = sum(r.label is None for r in train_records)
        if unlabelled:
            echo(f"warning: {unlabelled} training records have no label and are left out")
        train_records = [r for r in train_records if r.label is not None]
    else:

        def make(r: Record) -> Example:
            return sft_example(r, tok, cfg.max_length)

    train_ex = [make(r) for r in train_records]
    eval_ex = [make(r) for r in eval_records]
    pre = preflight(train_ex, tok, cfg.task, cfg.max_length, cfg.model)
    for w in pre.warnings:
        echo(f"warning: {w}")
    if cfg.task == "sft" and train_ex and all(e.truncated for e in train_ex):
        raise TamisError(f"every example's answer is cut by max_length {cfg.max_length}; raise it")
    for e in train_ex[:show]:
        echo(f"--- {e.id} ---\n{render_marked(e, tok)}")
    os.makedirs(cfg.output, exist_ok=True)
    with open(os.path.join(cfg.output, "preflight.json"), "w", encoding="utf-8") as fh:
        json.dump(pre.to_json(), fh, indent=2, default=str)
    if dry_run:
        return TrainResult(cfg.output, pre)
    usable = [e for e in train_ex if e.trained_tokens > 0]
    if not usable:
        raise TamisError("no example has a trained token: nothing to learn")
    return _fit(
        cfg,
        model_path,
        tok,
        usable,
        eval_ex,
        label_ids,
        pre,
        train_records,
        resume,
        echo,
        extra_callbacks or [],
    )


def _fit(
    cfg: TrainConfig,
    model_path: str,
    tok: Any,
    train_ex: list[Example],
    eval_ex: list[Example],
    label_ids: dict[str, int],
    pre: Preflight,
    records: list[Record],
    resume: bool,
    echo: Any,
    extra_callbacks: list[Any],
) -> TrainResult:
    import torch
    from transformers import Trainer, TrainingArguments, set_seed

    set_seed(cfg.seed)
    model = _load_model(cfg, model_path, label_ids)
    collate = (
        SFTCollator(tok.pad_token_id)
        if cfg.task == "sft"
        else ClassificationCollator(tok.pad_token_id)
    )
    tracker = IdTrackingCollator(collate)
    core = MonitorCore(
        cfg.output,
        on_spike=cfg.on_spike,
        spike_z=cfg.spike_z,
        overfit_patience=cfg.overfit_patience,
        max_gap_ratio=cfg.max_gap_ratio,
        stop_on_overfit=cfg.stop_on_overfit,
        webhook=cfg.webhook,
        collator=tracker,
        echo=echo,
        grad_accum=cfg.grad_accum,
        max_grad_norm=cfg.max_grad_norm,
    )
    tracker.active = lambda: bool(model.training)
    has_eval = bool(eval_ex)
    cuda = torch.cuda.is_available()
    compute_metrics = _classification_metrics if cfg.task == "classification" else None
    phases = _phases(cfg, train_ex, tok, label_ids)
    metrics: dict[str, Any] = {}
    trainer = None
    for n, (name, examples, over) in enumerate(phases):
        sub = "" if len(phases) == 1 else f"phase-{n + 1}-{name}"
        args = TrainingArguments(
            output_dir=os.path.join(cfg.output, "checkpoints", sub),
            per_device_train_batch_size=cfg.batch_size,
            per_device_eval_batch_size=cfg.batch_size,
            gradient_accumulation_steps=cfg.grad_accum,
            learning_rate=over.get("learning_rate", cfg.learning_rate),
            lr_scheduler_type=cfg.scheduler,
            warmup_steps=cfg.warmup_ratio,  # transformers 5: a float below 1 is a ratio
            num_train_epochs=over.get("epochs", cfg.epochs),
            max_steps=over.get("max_steps", cfg.max_steps),
            weight_decay=cfg.weight_decay,
            # with on_spike: skip the monitor clips, after judging the raw gradient norm
            max_grad_norm=0.0 if (cfg.monitor and cfg.on_spike == "skip") else cfg.max_grad_norm,
            logging_nan_inf_filter=False,  # a NaN loss must reach the monitor, not be averaged
            logging_steps=1,
            train_sampling_strategy=_sampling(
                over.get("shuffle", cfg.shuffle), cfg.group_by_length
            ),
            eval_strategy="steps" if has_eval else "no",
            eval_steps=cfg.eval_steps,
            save_strategy="steps",
            save_steps=cfg.eval_steps if has_eval else cfg.save_steps,
            save_total_limit=3,
            load_best_model_at_end=has_eval,
            metric_for_best_model="eval_loss" if has_eval else None,
            greater_is_better=False if has_eval else None,
            report_to=[r for r in cfg.report_to if r != "none"],
            seed=cfg.seed,
            data_seed=cfg.seed,
            remove_unused_columns=False,
            use_cpu=not cuda,
            bf16=bool(cuda and torch.cuda.is_bf16_supported()),
            disable_tqdm=True,
            dataloader_num_workers=0,
        )
        os.environ["TENSORBOARD_LOGGING_DIR"] = os.path.join(cfg.output, "logs", sub)
        trainer = Trainer(
            model=model,
            args=args,
            train_dataset=ListDataset([e.feature() for e in examples]),
            eval_dataset=ListDataset([e.feature() for e in eval_ex]) if has_eval else None,
            data_collator=tracker if cfg.monitor else collate,
            callbacks=[monitor_callback(core)] * cfg.monitor + extra_callbacks,
            compute_metrics=compute_metrics,
            optimizers=(_optimizer(cfg, model, over), None),
        )
        from transformers.trainer_callback import PrinterCallback

        trainer.remove_callback(PrinterCallback)  # the monitor reports; no raw dicts on stdout
        _loggers_after_monitor(trainer)
        ckpt = None
        if resume:
            ckpt = _last_complete_checkpoint(args.output_dir)
            if ckpt is None:
                echo("no checkpoint to resume from: starting from the beginning")
        if len(phases) > 1:
            echo(f"phase {n + 1}/{len(phases)}: {name} ({len(examples)} examples)")
        out = trainer.train(resume_from_checkpoint=ckpt)
        metrics = dict(out.metrics)
        core.step_offset += trainer.state.global_step  # one run, one log: steps continue
        if core.stopped:
            break
    assert trainer is not None
    if has_eval:
        metrics.update(trainer.evaluate())
    _finish_trackers(cfg)
    final_dir = os.path.join(cfg.output, "adapter" if cfg.lora else "model")
    with quiet_transformers():  # no "Writing model shards" bar in the middle of a report
        trainer.save_model(final_dir)
    tok.save_pretrained(final_dir)
    if not cfg.keep_checkpoints:
        shutil.rmtree(os.path.join(cfg.output, "checkpoints"), ignore_errors=True)
    core.write_summary()
    run = {
        "config": cfg.to_dict(),
        "model": model_path,
        "data_fingerprint": _fingerprint(records),
        "train_examples": len(train_ex),
        "eval_examples": len(eval_ex),
        "labels": label_ids or None,
        "versions": _versions(),
        "metrics": metrics,
        "best": core.best,
        "alerts": len(core.alerts),
        "saved": final_dir,
    }
    with open(os.path.join(cfg.output, "train.yaml"), "w", encoding="utf-8") as fh:
        import yaml

        yaml.safe_dump(cfg.to_dict(), fh, sort_keys=False)
    with open(os.path.join(cfg.output, "run.json"), "w", encoding="utf-8") as fh:
        json.dump(run, fh, indent=2, default=str)
    return TrainResult(cfg.output, pre, metrics, core.summary())


def _finish_trackers(cfg: TrainConfig) -> None:
    """Close the W&B run (transformers leaves it open): its files are complete when `train`
    returns, and the next run in the same process starts a run of its own."""
    import sys

    wandb = sys.modules.get("wandb")
    if "wandb" in cfg.report_to and wandb is not None and getattr(wandb, "run", None) is not None:
        wandb.finish()


def _last_complete_checkpoint(folder: str) -> str | None:
    """The newest checkpoint that was written to the end (a kill can leave a half-written one:
    the trainer state is saved last)."""
    if not os.path.isdir(folder):
        return None
    found = []
    for name in os.listdir(folder):
        path = os.path.join(folder, name)
        complete = os.path.exists(os.path.join(path, "trainer_state.json"))
        if name.startswith("checkpoint-") and name[11:].isdigit() and complete:
            found.append((int(name[11:]), path))
    return max(found)[1] if found else None


def _loggers_after_monitor(trainer: Any) -> None:
    """Move reporting callbacks (TensorBoard, MLflow, W&B) after the monitor, so that the
    perplexity it adds to each log reaches them."""
    handler = trainer.callback_handler
    names = {"TamisMonitor"}
    monitors = [c for c in handler.callbacks if type(c).__name__ in names]
    if not monitors:
        return
    loggers = [
        c
        for c in handler.callbacks
        if type(c).__name__ in ("TensorBoardCallback", "MLflowCallback", "WandbCallback")
    ]
    for c in loggers:
        handler.callbacks.remove(c)
        handler.callbacks.append(c)


def _phases(
    cfg: TrainConfig, train_ex: list[Example], tok: Any, label_ids: dict[str, int]
) -> list[tuple[str, list[Example], dict[str, Any]]]:
    """(name, examples, overrides) per phase; one phase of everything when none are set.

    A phase may name its own `train_file`, `epochs` / `max_steps` and `learning_rate`, and
    `order_by: {signals: OUT/signals.parquet, column: op.signal, descending: false}` to run its
    examples in the order of a curation signal (easy to hard), without shuffling.
    """
    if not cfg.phases:
        return [("all", train_ex, {})]
    out = []
    for i, ph in enumerate(cfg.phases):
        ph = dict(ph)
        name = str(ph.pop("name", f"phase{i + 1}"))
        examples = train_ex
        if ph.get("train_file"):
            files = ph.pop("train_file")
            records = _read([files] if isinstance(files, str) else list(files), cfg)
            if cfg.task == "sft":
                examples = [sft_example(r, tok, cfg.max_length) for r in records]
            else:
                examples = [
                    classification_example(r, tok, label_ids, cfg.max_length)
                    for r in records
                    if str(r.label) in label_ids
                ]
            examples = [e for e in examples if e.trained_tokens > 0]
        order = ph.pop("order_by", None)
        if order:
            import pyarrow.parquet as pq

            table = pq.read_table(order["signals"], columns=["id", order["column"]]).to_pylist()
            value = {row["id"]: row[order["column"]] for row in table}
            missing = float("inf")
            examples = sorted(
                examples,
                key=lambda e: value.get(str(e.id)) if value.get(str(e.id)) is not None else missing,
                reverse=bool(order.get("descending", False)),
            )
            ph["shuffle"] = False
        unknown = set(ph) - {"epochs", "max_steps", "learning_rate", "shuffle"}
        if unknown:
            raise TamisError(f"phase {name!r}: unknown keys {sorted(unknown)}")
        if not examples:
            raise TamisError(f"phase {name!r} has no examples")
        out.append((name, examples, ph))
    return out


def _load_model(cfg: TrainConfig, path: str, label_ids: dict[str, int]) -> Any:
    from peft import LoraConfig, get_peft_model

    if cfg.task == "classification":
        from transformers import AutoModelForSequenceClassification

        kw: dict[str, Any] = {}
        if cfg.dropout is not None:
            kw["hidden_dropout_prob"] = cfg.dropout
        from tamis.models.loading import from_pretrained

        # the head is new (it is what training is for) and a mean-pooled model has no pooler
        expected = ["classifier.", "score."] + ["pooler."] * (cfg.pooling == "mean")
        model = from_pretrained(
            AutoModelForSequenceClassification,
            path,
            expected,
            num_labels=len(label_ids),
            id2label={i: lab for lab, i in label_ids.items()},
            label2id=label_ids,
            **kw,
        )
        if cfg.pooling == "mean":
            from tamis.models.pooling import use_mean_pooling

            use_mean_pooling(model)
        targets = cfg.target_modules or ["query", "value"]
        task = "SEQ_CLS"
    else:
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(path)
        targets = cfg.target_modules or ["q_proj", "v_proj"]
        task = "CAUSAL_LM"
    if not cfg.lora:
        return model
    lora = LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=targets,
        task_type=task,
    )
    return get_peft_model(model, lora)


def _optimizer(cfg: TrainConfig, model: Any, over: dict[str, Any]) -> Any:
    """AdamW; with `head_learning_rate`, the classification head gets its own rate (a new
    head learns from scratch, the encoder only adjusts). None: the Trainer builds its own."""
    if not cfg.head_learning_rate or cfg.task != "classification":
        return None
    import torch

    lr = over.get("learning_rate", cfg.learning_rate)
    head, body = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (head if ("classifier" in name or ".score." in name) else body).append(p)
    groups = [{"params": body, "lr": lr}, {"params": head, "lr": cfg.head_learning_rate}]
    return torch.optim.AdamW(
        [g for g in groups if g["params"]], lr=lr, weight_decay=cfg.weight_decay
    )


def _classification_metrics(pred: Any) -> dict[str, float]:
    import numpy as np
    from sklearn.metrics import accuracy_score, f1_score

    logits, labels = pred.predictions, pred.label_ids
    if isinstance(logits, tuple):
        logits = logits[0]
    guess = np.argmax(logits, axis=-1)
    return {
        "accuracy": float(accuracy_score(labels, guess)),
        "macro_f1": float(f1_score(labels, guess, average="macro")),
    }
