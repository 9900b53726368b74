"""Loading Hugging Face models with a report of only the surprises.

transformers 5 prints a "LOAD REPORT" table for every weight a checkpoint lacks, with the advice
"Consider training on your downstream task". tamis knows two such gaps are by design: the new
classification head it is about to train, and the BERT pooler of a mean-pooled model (the pooler is
replaced, so it is never saved). Printed on every arm of an experiment, that table read as if the
trained model were broken; a gap tamis did not expect is still reported, as a Python warning.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """transformers' own warnings and progress bars off for the block, then as they were."""
    from transformers.utils import logging as tl

    level, bars = tl.get_verbosity(), tl.is_progress_bar_enabled()
    tl.set_verbosity_error()
    tl.disable_progress_bar()
    try:
        yield
    finally:
        tl.set_verbosity(level)
        if bars:
            tl.enable_progress_bar()


def surprises(info: dict[str, Any], expected_missing: Sequence[str] = ()) -> dict[str, list[str]]:
    """What a load left out or could not place, by kind, less the missing weights whose names
    contain one of `expected_missing` (e.g. "classifier." for a head about to be trained)."""
    found = {
        "newly initialised (not in the checkpoint)": [
            k for k in info.get("missing_keys", []) if not any(p in k for p in expected_missing)
        ],
        "in the checkpoint but not in the model": list(info.get("unexpected_keys", [])),
        "newly initialised (another shape in the checkpoint)": [
            k[0] if isinstance(k, tuple) else k for k in info.get("mismatched_keys", [])
        ],
    }
    return {kind: sorted(keys) for kind, keys in found.items() if keys}


def from_pretrained(
    cls: Any,
    path: str,
    expected_missing: Sequence[str] = (),
    after: Any = None,
    **kw: Any,
) -> Any:
    """`cls.from_pretrained(path, **kw)` without transformers' load report; a weight that is
    missing, unexpected or of another shape and not named by `expected_missing` is reported as one
    warning. `after(model)` may return more expected names once the model's config is known."""
    with quiet_transformers():
        model, info = cls.from_pretrained(path, output_loading_info=True, **kw)
    expected = list(expected_missing) + list(after(model) if after else [])
    found = surprises(info, expected)
    if found:
        shown = "; ".join(
            f"{kind}: {', '.join(keys[:8])}"
            + (f" and {len(keys) - 8} more" if len(keys) > 8 else "")
            for kind, keys in found.items()
        )
        warnings.warn(f"loading {path}: {shown}", stacklevel=2)
    return model
