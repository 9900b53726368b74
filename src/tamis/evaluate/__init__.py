"""Evaluation: metrics (classification, generation), an LLM judge (local or OpenAI-compatible
HTTP), side-by-side comparison with bootstrap intervals, and the forgetting check."""

from __future__ import annotations

from typing import Any

__all__ = ["evaluate"]


def evaluate(*args: Any, **kwargs: Any) -> Any:
    """`tamis.evaluate.evaluate(model, data, out, ...)`: see `tamis.evaluate.run.evaluate`."""
    from tamis.evaluate.run import evaluate as _evaluate

    return _evaluate(*args, **kwargs)
