"""`tamis profile`: see a dataset before training on it (sizes, tokens, languages, labels,
duplicates, clean signals, topics, diversity and bias signals), as HTML, JSON and a summary."""

from __future__ import annotations

from typing import Any

__all__ = ["profile"]


def profile(*args: Any, **kwargs: Any) -> Any:
    """`tamis.profile.profile(inputs, out, ...)`: see `tamis.profile.run.profile`."""
    from tamis.profile.run import profile as _profile

    return _profile(*args, **kwargs)
