"""`tamis train` configuration: a YAML file whose every key is also a command-line flag."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import yaml

from tamis.errors import TamisError


@dataclass
class TrainConfig:
    task: str = "sft"  # sft or classification
    model: str | None = None  # default: offline SmolLM2 (sft) or MiniLM (classification)
    train_file: list[str] = field(default_factory=list)
    eval_file: list[str] = field(default_factory=list)
    val_fraction: float = 0.0  # split off by tamis split when no eval_file
    output: str = "out/train"
    label_field: str | None = None
    text_field: str | None = None
    # LoRA (peft) or full fine-tuning
    lora: bool = True
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    target_modules: list[str] | None = None  # default: q_proj, v_proj (sft), query, value (cls)
    # optimisation
    learning_rate: float = 2e-4
    scheduler: str = "linear"
    warmup_ratio: float = 0.0
    epochs: float = 1.0
    max_steps: int = -1
    batch_size: int = 4
    grad_accum: int = 1
    max_length: int = 256
    seed: int = 0
    shuffle: bool = True  # False: input order (curricula, reproducing a known batch)
    # shuffled batches of like lengths (transformers' LengthGroupedSampler): less padding, 1.6x
    # faster SmolLM2 LoRA steps on gsm8k at batch 8; off by default, as batches then differ in
    # length by design (the loss moves with it); ignored with shuffle: false
    group_by_length: bool = False
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    dropout: float | None = None  # model dropout override (regularisation)
    # classification: "mean" reads the encoder by its mean token state (sentence encoders)
    pooling: str = "cls"
    head_learning_rate: float | None = None  # classification head's own learning rate
    eval_steps: int = 50
    save_steps: int = 50
    # False: no checkpoints kept once the run ends (resume needs them; a finished run has its
    # model); `tamis experiment` turns them off, a full fine-tune's three are ~800 MB a run
    keep_checkpoints: bool = True
    # phases: [{name, train_file?, epochs?|max_steps?, learning_rate?, order_by?}], run in order
    phases: list[dict[str, Any]] = field(default_factory=list)
    # monitoring
    monitor: bool = True  # False: no TamisMonitor callback (for measuring its overhead)
    on_spike: str = "warn"  # warn, skip, stop
    spike_z: float = 6.0
    overfit_patience: int = 3
    max_gap_ratio: float | None = None
    stop_on_overfit: bool = True
    webhook: str | None = None
    report_to: list[str] = field(default_factory=lambda: ["tensorboard"])

    @classmethod
    def load(cls, path: str | None, **overrides: Any) -> TrainConfig:
        data: dict[str, Any] = {}
        if path:
            try:
                with open(path, encoding="utf-8") as fh:
                    data = yaml.safe_load(fh) or {}
            except OSError as e:
                raise TamisError(f"cannot read the config: {e}", path) from None
        data.update({k: v for k, v in overrides.items() if v is not None})
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise TamisError(f"unknown config keys {unknown}; known: {sorted(names)}")
        for key in ("train_file", "eval_file"):
            if isinstance(data.get(key), str):
                data[key] = [data[key]]
        for f in dataclasses.fields(cls):
            v = data.get(f.name)
            # YAML reads 1e-3 (no dot) as a string: numbers are numbers
            if isinstance(v, str) and "float" in str(f.type):
                try:
                    data[f.name] = float(v)
                except ValueError:
                    raise TamisError(f"{f.name} must be a number, not {v!r}") from None
        cfg = cls(**data)
        if cfg.pooling not in ("cls", "mean"):
            raise TamisError(f"pooling must be cls or mean, not {cfg.pooling!r}")
        if cfg.task not in ("sft", "classification"):
            raise TamisError(f"task must be sft or classification, not {cfg.task!r}")
        if not cfg.train_file:
            raise TamisError("give the training data: train_file in the config or --train-file")
        return cfg

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
