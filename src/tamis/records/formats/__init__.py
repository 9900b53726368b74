"""Input formats: one module each, registered by name. `detect_format` picks one for a file."""

from __future__ import annotations

from collections import Counter
from typing import Any

from tamis.errors import InputError
from tamis.records.formats import alpaca, openai, prompt_completion, sharegpt, text  # noqa: F401
from tamis.records.formats.base import FORMATS, FieldMap, Format

# Most specific first: an object with `messages` and `text` is a chat.
DETECT_ORDER = ("openai", "sharegpt", "alpaca", "prompt_completion", "text_label", "text")
# Formats a row may be read in when it is not of its file's format: those whose fields say so
# plainly (a `text` field alone does not: an Alpaca row with one is still a damaged Alpaca row).
ROW_FORMATS = ("openai", "sharegpt", "alpaca", "prompt_completion")


def row_format(fmt: Format, obj: Any, fields: FieldMap) -> Format:
    """The format to read one row in: its file's, unless the row is not of it and plainly of
    another chat or instruction format. A file can mix them (inputs of several formats cleaned
    together keep each record in its own in kept.jsonl); read in the file's format, such a row
    would lose its conversation (an OpenAI row read as Alpaca has no output)."""
    if not isinstance(obj, dict) or fmt.detect(obj, fields):
        return fmt
    for name in ROW_FORMATS:
        other = FORMATS[name]
        if other is not fmt and other.detect(obj, fields):
            return other
    return fmt


def detect_format(sample: list[Any], fields: FieldMap, path: str) -> tuple[Format, str]:
    """Pick the format most of the sampled objects match; return it and a sentence saying why."""
    votes: Counter[str] = Counter()
    readings: dict[str, Counter[str]] = {}
    dicts = [o for o in sample if isinstance(o, dict)]
    for obj in dicts:
        for name in DETECT_ORDER:
            if FORMATS[name].detect(obj, fields):
                votes[name] += 1
                readings.setdefault(name, Counter())[FORMATS[name].reading(obj, fields)] += 1
                break
    if not votes:
        keys = sorted({k for o in dicts for k in o})[:12]
        raise InputError(
            f"could not detect the format (fields seen: {keys or 'none'}); "
            "pass --format, or map fields with --text-field/--label-field",
            path,
        )
    name, n = votes.most_common(1)[0]
    reading = readings[name].most_common(1)[0][0]
    why = f"{name} ({n}/{len(sample)} sampled rows match{'; ' + reading if reading else ''})"
    return FORMATS[name], why


__all__ = [
    "DETECT_ORDER",
    "FORMATS",
    "ROW_FORMATS",
    "FieldMap",
    "Format",
    "detect_format",
    "row_format",
]
