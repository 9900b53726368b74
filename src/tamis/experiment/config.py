"""experiment.yaml: the data, the arms, the seeds and the one training budget all arms share."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any

import yaml

from tamis.errors import TamisError

STANDARD_ARMS = ("raw", "curated", "random")


@dataclass
class ExperimentConfig:
    """Example (classification)::

    task: classification
    train: ../shared/data/banking77/train.csv   # the raw data, as it came
    test: ../shared/data/banking77/test.csv     # held out, never cleaned or trained on
    recipe: classification                      # the clean recipe of the curated arm
    label_issues: drop                          # flag, drop or relabel wrong labels in curated
    label_rank: embeddings                      # or training: flags chosen by a fine-tune's AUM
    arms: [raw, curated, random]
    growth: [0.1, 0.25, 0.5, 1.0]               # fractions of curated ("start small")
    extra_arms:
      - {name: ceiling, data: clean_train.csv}  # a file as it is
      - {name: strict, recipe: strict.yaml}     # a second recipe over the raw data
    seeds: [0, 1, 2]
    metric: accuracy
    training: {epochs: 1, batch_size: 32, learning_rate: 5.0e-5, lora: false}
    evaluation: {limit: 500, max_new_tokens: 128}
    """

    task: str = "classification"
    train: list[str] = field(default_factory=list)
    test: list[str] = field(default_factory=list)
    model: str | None = None
    label_field: str | None = None
    text_field: str | None = None
    recipe: str | None = None
    label_issues: str | None = "drop"  # drop, relabel, flag or none (classification only)
    label_rank: str = "embeddings"  # label_issues' rank: embeddings or training
    arms: list[str] = field(default_factory=lambda: list(STANDARD_ARMS))
    growth: list[float] = field(default_factory=list)
    extra_arms: list[dict[str, Any]] = field(default_factory=list)
    seeds: list[int] = field(default_factory=lambda: [0])
    metric: str | None = None  # default: accuracy (classification), perplexity (sft)
    train_args: dict[str, Any] = field(default_factory=dict)
    eval_args: dict[str, Any] = field(default_factory=dict)
    workers: int = 1

    @classmethod
    def load(cls, path: str | None, **overrides: Any) -> ExperimentConfig:
        data: dict[str, Any] = {}
        base = "."
        if path:
            try:
                with open(path, encoding="utf-8") as fh:
                    data = yaml.safe_load(fh) or {}
            except OSError as e:
                raise TamisError(f"cannot read the experiment config: {e}", path) from None
            except yaml.YAMLError as e:
                raise TamisError(f"not valid YAML: {e}", path) from None
            base = os.path.dirname(os.path.abspath(path))
        data.update({k: v for k, v in overrides.items() if v is not None})
        return cls.from_dict(data, base)

    @classmethod
    def from_dict(cls, data: dict[str, Any], base: str = ".") -> ExperimentConfig:
        data = dict(data)
        if "train" in data and isinstance(data["train"], dict):
            raise TamisError("'train' is the raw data file(s); training options go in train_args")
        for key in ("train_args", "eval_args"):
            short = key.split("_")[0] + "ing" if key == "train_args" else "evaluation"
            if short in data:
                data[key] = data.pop(short)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise TamisError(f"unknown experiment keys {unknown}; known: {sorted(names)}")
        for key in ("train", "test"):
            v = data.get(key)
            if isinstance(v, str):
                v = [v]
            data[key] = [p if os.path.isabs(p) else os.path.join(base, p) for p in v or []]
        for arm in data.get("extra_arms") or []:
            for key in ("data", "recipe"):
                p = arm.get(key)
                if (
                    isinstance(p, str)
                    and not os.path.isabs(p)
                    and os.path.exists(os.path.join(base, p))
                ):
                    arm[key] = os.path.join(base, p)
        cfg = cls(**data)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        if self.task not in ("sft", "classification"):
            raise TamisError(f"task must be sft or classification, not {self.task!r}")
        if not self.train:
            raise TamisError("give the raw training data: train")
        if not self.test:
            raise TamisError("give the held-out test data: test")
        bad = [a for a in self.arms if a not in STANDARD_ARMS]
        if bad:
            raise TamisError(f"unknown arms {bad}; standard arms: {list(STANDARD_ARMS)}")
        for g in self.growth:
            if not 0 < float(g) <= 1:
                raise TamisError(f"growth fractions are in (0, 1], not {g}")
        for arm in self.extra_arms:
            if "name" not in arm or not ({"data", "recipe"} & set(arm)):
                raise TamisError(f"an extra arm needs a name and data or recipe: {arm}")
        if self.label_issues not in (None, "none", "flag", "drop", "relabel"):
            raise TamisError("label_issues is drop, relabel, flag or none")
        from tamis.ops.labels import RANKS

        if self.label_rank not in RANKS:
            raise TamisError("label_rank is embeddings or training")
        if not self.seeds:
            raise TamisError("give at least one seed")

    @property
    def main_metric(self) -> str:
        return self.metric or ("accuracy" if self.task == "classification" else "perplexity")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
