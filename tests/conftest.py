"""Shared fixtures: paths to the real data in ../shared/data, small slices of it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"


def data_files() -> list[Path]:
    """Every data file in ../shared/data (not licences or READMEs)."""
    return sorted(
        p
        for p in DATA.rglob("*")
        if p.is_file() and p.suffix in (".csv", ".json", ".txt", ".jsonl", ".parquet")
    )


@pytest.fixture(scope="session")
def gsm8k() -> list[dict]:
    return json.loads((DATA / "instruct" / "gsm_8k_train.json").read_text())


@pytest.fixture()
def gsm_file(tmp_path: Path, gsm8k: list[dict]) -> Path:
    """The first 200 gsm8k records as JSONL."""
    p = tmp_path / "gsm.jsonl"
    p.write_text("".join(json.dumps(o) + "\n" for o in gsm8k[:200]))
    return p


# SmolLM2 converted from its GGUF file once (`make setup` does it), not once per test session:
# the conversion takes about a minute on 2 cores and is the same every time
MODEL_DIR = os.environ.get("TAMIS_MODEL_DIR") or os.path.join(
    os.environ.get("TAMIS_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "tamis"),
    "models",
)


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the signal cache out of the home folder during tests (not the converted models)."""
    monkeypatch.setenv("TAMIS_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))
    monkeypatch.setenv("TAMIS_MODEL_DIR", _model_dir(tmp_path_factory))


def _model_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """MODEL_DIR, or a folder of this session where it cannot be written (a read-only home)."""
    try:
        os.makedirs(MODEL_DIR, exist_ok=True)
        if os.access(MODEL_DIR, os.W_OK):
            return MODEL_DIR
    except OSError:
        pass
    return str(tmp_path_factory.getbasetemp() / "models")


BANKING_INTENTS = ["card_arrival", "exchange_rate", "lost_or_stolen_phone", "age_limit"]


def banking_rows(
    name: str = "train.csv", per_class: int = 40, intents: list[str] | None = None
) -> list[dict]:
    """The first `per_class` real banking77 rows of each of a few intents, grouped by intent."""
    import csv

    with open(DATA / "banking77" / name, encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    return [
        r
        for c in intents or BANKING_INTENTS
        for r in [x for x in rows if x["category"] == c][:per_class]
    ]
