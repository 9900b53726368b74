"""Watching a training run: loss spikes traced to the examples that caused them, overfitting.

`SpikeDetector` and `OverfitDetector` are plain classes (testable without a model);
`TamisMonitor` is a `transformers.TrainerCallback` that feeds them, usable inside any HF Trainer.
To name the examples of a step, the data collator is wrapped by `IdTrackingCollator`, which
records the record ids of every batch it builds; the callback takes the ids collated since the
previous step.
"""

from __future__ import annotations

import json
import math
import os
import time
import urllib.request
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

ID_KEY = "tamis_id"


class SpikeDetector:
    """A robust rolling z-score: (x - median) / (1.4826 MAD) over the last `window` values.

    A value is a spike when its z-score passes `z`, it is at least `min_ratio` times the median
    and above it by `min_delta` (so that neither a flat, noiseless history nor a loss near zero
    makes every wiggle a spike). The spike is not added to the history, so one bad step does
    not raise the bar for the next.
    """

    def __init__(
        self,
        window: int = 50,
        z: float = 6.0,
        min_history: int = 10,
        min_ratio: float = 1.5,
        min_delta: float = 0.0,
    ):
        self.values: deque[float] = deque(maxlen=window)
        self.z, self.min_history, self.min_ratio = z, min_history, min_ratio
        self.min_delta = min_delta

    def score(self, x: float) -> float:
        """The z-score of `x` against the history (0 until there is enough history)."""
        if len(self.values) < self.min_history:
            return 0.0
        vals = sorted(self.values)
        med = vals[len(vals) // 2]
        mad = sorted(abs(v - med) for v in vals)[len(vals) // 2]
        scale = 1.4826 * mad + 1e-3 * abs(med) + 1e-12
        return (x - med) / scale

    def update(self, x: float) -> bool:
        """Add a value; True when it is a spike."""
        if len(self.values) >= self.min_history:
            vals = sorted(self.values)
            med = vals[len(vals) // 2]
            if self.score(x) > self.z and x > self.min_ratio * med and x - med > self.min_delta:
                return True
        self.values.append(x)
        return False


class OverfitDetector:
    """Overfitting: for `patience` evaluations in a row, eval loss stays above its best (by more
    than `tolerance`) while train loss is below what it was at that best; or a train/eval gap
    (eval loss / train loss) beyond `max_gap_ratio`."""

    def __init__(
        self, patience: int = 3, max_gap_ratio: float | None = None, tolerance: float = 0.01
    ):
        self.patience, self.max_gap_ratio, self.tolerance = patience, max_gap_ratio, tolerance
        self.history: list[tuple[float, float]] = []  # (train loss, eval loss)
        self.best: tuple[float, float] | None = None  # (train, eval) at the best eval loss
        self.worse = 0

    def update(self, train_loss: float, eval_loss: float) -> str | None:
        """Add an evaluation; a reason string when the run is overfitting."""
        self.history.append((train_loss, eval_loss))
        if self.best is None or eval_loss < self.best[1]:
            self.best, self.worse = (train_loss, eval_loss), 0
        elif eval_loss > self.best[1] * (1 + self.tolerance) and train_loss < self.best[0]:
            self.worse += 1
        else:
            self.worse = 0
        if self.worse >= self.patience:
            return (
                f"eval loss {eval_loss:.4f} has stayed above its best {self.best[1]:.4f} for "
                f"{self.worse} evaluations while train loss fell to {train_loss:.4f} "
                f"(from {self.best[0]:.4f})"
            )
        if self.max_gap_ratio and train_loss > 0 and eval_loss / train_loss > self.max_gap_ratio:
            return f"eval/train loss ratio {eval_loss / train_loss:.2f} over {self.max_gap_ratio}"
        return None


class IdTrackingCollator:
    """Wraps a data collator: drops the `tamis_id` (and `tamis_text`) fields from the features
    and remembers them, batch by batch, for the monitor.

    Only batches built while `active()` is true are remembered (the trainer passes
    `lambda: model.training`, so evaluation batches are not taken for training ones). The data
    loader may build the next batch before a step ends, so the monitor takes the oldest batches.
    """

    def __init__(
        self,
        collate: Callable[[list[dict[str, Any]]], Any],
        active: Callable[[], bool] | None = None,
    ):
        self.collate = collate
        self.active = active or (lambda: True)
        self.batches: deque[list[tuple[Any, str]]] = deque()

    def __call__(self, features: list[dict[str, Any]]) -> Any:
        clean, seen = [], []
        for f in features:
            f = dict(f)
            rid = f.pop(ID_KEY, None)
            text = f.pop("tamis_text", "")
            seen.append((rid, text))
            clean.append(f)
        if self.active():
            self.batches.append(seen)
        return self.collate(clean)

    def take(self, n: int = 1) -> list[tuple[Any, str]]:
        """The ids and texts of the oldest `n` batches (one optimiser step)."""
        out: list[tuple[Any, str]] = []
        for _ in range(min(n, len(self.batches))):
            out.extend(self.batches.popleft())
        return out


@dataclass
class Alert:
    kind: str  # loss_spike, grad_spike, non_finite, overfitting
    step: int
    message: str
    values: dict[str, float] = field(default_factory=dict)
    examples: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "step": self.step,
            "message": self.message,
            "values": self.values,
            "examples": self.examples,
            "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }


def _make_callback_base() -> type:
    from transformers import TrainerCallback

    return TrainerCallback


class MonitorCore:
    """What the callback does, apart from transformers: metrics, alerts, files."""

    def __init__(
        self,
        run_dir: str,
        on_spike: str = "warn",
        spike_z: float = 6.0,
        spike_window: int = 50,
        overfit_patience: int = 3,
        max_gap_ratio: float | None = None,
        stop_on_overfit: bool = True,
        webhook: str | None = None,
        collator: IdTrackingCollator | None = None,
        echo: Callable[[str], None] | None = None,
        grad_accum: int = 1,
        max_grad_norm: float = 1.0,
    ):
        if on_spike not in ("warn", "skip", "stop"):
            raise ValueError("on_spike must be warn, skip or stop")
        self.run_dir = run_dir
        os.makedirs(run_dir, exist_ok=True)
        self.on_spike = on_spike
        self.loss_spikes = SpikeDetector(spike_window, spike_z, min_delta=0.25)
        self.grad_spikes = SpikeDetector(spike_window, spike_z)
        self.overfit = OverfitDetector(overfit_patience, max_gap_ratio)
        self.stop_on_overfit = stop_on_overfit
        self.webhook = webhook
        self.collator = collator
        self.grad_accum = grad_accum
        self.max_grad_norm = max_grad_norm
        self.echo = echo or (lambda s: None)
        self.alerts: list[Alert] = []
        self.last_train_loss: float | None = None
        self.best: dict[str, Any] = {}
        self.final: dict[str, float] = {}
        self.step_examples: list[tuple[Any, str]] = []
        self.history: list[dict[str, float]] = []  # per logged step: step, loss, grad_norm
        self.since_eval: list[float] = []  # train losses since the last evaluation
        self.step_offset = 0  # steps of earlier phases: one run, one log
        self.stopped = False  # a stop was asked (NaN, spike with on_spike stop, overfitting)
        self.skipped: set[int] = set()  # steps whose update was skipped (on_spike: skip)

    def end_step(self) -> None:
        if self.collator is not None:
            self.step_examples = self.collator.take(self.grad_accum)

    def before_update(self, step: int, grad_norm: float) -> bool:
        """With `on_spike: skip`: True when this step's gradient norm is a spike, so that the
        caller drops the gradients and the optimiser leaves the weights as they were."""
        if self.on_spike != "skip" or not math.isfinite(grad_norm):
            return False
        if self.grad_spikes.update(grad_norm):
            self.skipped.add(step)
            self.alert(
                "grad_spike",
                step,
                f"gradient norm {grad_norm:.4f} far above its recent median: update skipped",
                {"grad_norm": grad_norm, "skipped": 1.0},
            )
            return True
        return False

    def on_train_log(self, step: int, logs: dict[str, float]) -> str | None:
        """Feed one step's logs; returns "stop" when the run must stop."""
        loss = logs.get("loss")
        grad = logs.get("grad_norm")
        self.history.append(
            {
                "step": step,
                "loss": loss,
                "grad_norm": grad,
                "ids": [rid for rid, _ in self.step_examples],
            }
        )
        action = None
        if loss is not None:
            self.final["train_loss"] = loss
            self.final["train_perplexity"] = _ppl(loss)
            if not math.isfinite(loss):
                self.alert("non_finite", step, f"loss is {loss}", {"loss": loss})
                return "stop"
            self.last_train_loss = loss
            self.since_eval.append(loss)
            if self.loss_spikes.update(loss):
                self.alert(
                    "loss_spike",
                    step,
                    f"loss {loss:.4f} far above its recent median",
                    {"loss": loss, "z": round(self.loss_spikes.score(loss), 2)},
                )
                action = self.on_spike
        if self.on_spike == "skip":
            grad = None  # judged before the update, in before_update
        if grad is not None and math.isfinite(grad) and self.grad_spikes.update(grad):
            self.alert(
                "grad_spike",
                step,
                f"gradient norm {grad:.4f} far above its recent median",
                {"grad_norm": grad, "z": round(self.grad_spikes.score(grad), 2)},
            )
            action = action or self.on_spike
        return "stop" if action == "stop" else None

    def on_eval(self, step: int, metrics: dict[str, float]) -> str | None:
        loss = metrics.get("eval_loss")
        if loss is None:
            return None
        metrics = {**metrics, "eval_perplexity": _ppl(loss)}
        self.final.update({k: v for k, v in metrics.items() if isinstance(v, int | float)})
        if not self.best or loss < self.best["eval_loss"]:
            self.best = {"step": step, "eval_loss": loss, "eval_perplexity": _ppl(loss)}
        if self.since_eval:
            train_loss = sum(self.since_eval) / len(self.since_eval)  # smoother than one step
            self.since_eval = []
            why = self.overfit.update(train_loss, loss)
            if why:
                self.alert(
                    "overfitting",
                    step,
                    why,
                    {"eval_loss": loss, "train_loss": self.last_train_loss},
                )
                if self.stop_on_overfit:
                    return "stop"
        return None

    def alert(self, kind: str, step: int, message: str, values: dict[str, float]) -> None:
        examples = (
            [
                {"id": rid, "text": " ".join(str(text).split())[:160]}
                for rid, text in self.step_examples
            ]
            if kind != "overfitting"
            else []
        )
        a = Alert(kind, step, message, values, examples)
        self.alerts.append(a)
        with open(os.path.join(self.run_dir, "alerts.jsonl"), "a", encoding="utf-8") as fh:
            fh.write(json.dumps(a.to_json(), ensure_ascii=False, default=str) + "\n")
        ids = ", ".join(str(e["id"]) for e in examples[:8])
        self.echo(
            f"[alert] step {step}: {kind}: {message}" + (f" (examples: {ids})" if ids else "")
        )
        if self.webhook:
            _post(self.webhook, a.to_json())

    def summary(self) -> dict[str, Any]:
        return {
            "alerts": [a.to_json() for a in self.alerts],
            "best": self.best,
            "final": self.final,
            "steps": self.history,
        }

    def write_summary(self) -> None:
        with open(os.path.join(self.run_dir, "monitor.json"), "w", encoding="utf-8") as fh:
            json.dump(self.summary(), fh, indent=2, ensure_ascii=False, default=str)
            fh.write("\n")


def _ppl(loss: float) -> float:
    return math.exp(min(loss, 50.0)) if math.isfinite(loss) else float("inf")


def _post(url: str, payload: dict[str, Any]) -> None:
    try:
        req = urllib.request.Request(
            url, json.dumps(payload).encode(), {"Content-Type": "application/json"}
        )
        urllib.request.urlopen(req, timeout=5).close()
    except Exception:  # an unreachable webhook must not stop training
        pass


def monitor_callback(core: MonitorCore) -> Any:
    """A `transformers.TrainerCallback` around `core`."""
    base = _make_callback_base()

    class TamisMonitor(base):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            self.core = core

        def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if self.core.collator is not None:  # batches a previous phase built but never ran
                self.core.collator.batches.clear()

        def on_pre_optimizer_step(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if self.core.on_spike != "skip" or kw.get("model") is None:
                return
            import torch

            params = [p for p in kw["model"].parameters() if p.grad is not None]
            if not params:
                return
            # the trainer's own clipping is off with on_spike: skip (see trainer.py), so this is
            # the raw norm; clip here, after deciding
            norm = float(torch.norm(torch.stack([p.grad.detach().norm(2) for p in params]), 2))
            self.core.end_step()  # this step's examples, for the alert
            if self.core.before_update(state.global_step + 1 + self.core.step_offset, norm):
                for p in params:
                    p.grad = None  # the optimiser skips parameters without gradients
            elif self.core.max_grad_norm:
                torch.nn.utils.clip_grad_norm_(params, self.core.max_grad_norm)

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if self.core.on_spike != "skip":
                self.core.end_step()

        def on_log(
            self, args: Any, state: Any, control: Any, logs: dict | None = None, **kw: Any
        ) -> None:
            logs = logs if logs is not None else {}
            # perplexity next to each loss; the trainer puts this callback before the loggers
            if isinstance(logs.get("loss"), int | float):
                logs["perplexity"] = _ppl(logs["loss"])
            if isinstance(logs.get("eval_loss"), int | float):
                logs["eval_perplexity"] = _ppl(logs["eval_loss"])
            step = state.global_step + self.core.step_offset
            if "loss" in logs and self.core.on_train_log(step, logs) == "stop":
                control.should_training_stop = True
                self.core.stopped = True
            if "eval_loss" in logs and self.core.on_eval(step, logs) == "stop":
                control.should_training_stop = True
                self.core.stopped = True

        def on_train_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            self.core.write_summary()

    return TamisMonitor()


__all__: Sequence[str] = (
    "Alert",
    "IdTrackingCollator",
    "MonitorCore",
    "OverfitDetector",
    "SpikeDetector",
    "monitor_callback",
)


def progress_callback() -> Any:
    """A rich progress bar with the current loss, perplexity, gradient norm and learning rate
    (on a terminal only)."""
    import sys

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    base = _make_callback_base()

    class TamisProgress(base):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            self.bar: Any = None
            self.task: Any = None

        def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if not sys.stderr.isatty():
                return
            self.bar = Progress(
                TextColumn("training"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[figures]}"),
                TimeElapsedColumn(),
                transient=True,
            )
            self.task = self.bar.add_task("train", total=state.max_steps or None, figures="")
            self.bar.start()

        def on_log(
            self, args: Any, state: Any, control: Any, logs: dict | None = None, **kw: Any
        ) -> None:
            if self.bar is None or not logs or "loss" not in logs:
                return
            grad = logs.get("grad_norm", float("nan"))
            lr = logs.get("learning_rate", 0.0)
            figures = (
                f"loss {logs['loss']:.4f} · ppl {_ppl(logs['loss']):.2f} · "
                f"grad {grad:.3f} · lr {lr:.2e}"
            )
            self.bar.update(self.task, completed=state.global_step, figures=figures)

        def on_train_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if self.bar is not None:
                self.bar.stop()
                self.bar = None

    return TamisProgress()
