"""`tamis experiment`: two arms end to end on CPU, resumable; config errors are clear."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from conftest import banking_rows

pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")


def test_two_arms_end_to_end_and_resume(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from tamis.cli.main import app
    from tamis.testing.defects import corrupt_classification

    noisy, truth = corrupt_classification(banking_rows("train.csv", 40), noise=0.3, seed=0)
    (tmp_path / "raw.jsonl").write_text("".join(json.dumps(r) + "\n" for r in noisy))
    (tmp_path / "test.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in banking_rows("test.csv", 15))
    )
    config = {
        "task": "classification",
        "train": "raw.jsonl",  # relative to the config file
        "test": "test.jsonl",
        "arms": ["raw", "curated"],
        "growth": [0.5],
        "seeds": [0],
        "training": {
            "max_steps": 6,
            "batch_size": 16,
            "learning_rate": 5e-5,
            "head_learning_rate": 5e-3,
            "pooling": "mean",
            "lora": False,
            "max_length": 48,
        },
    }
    cfg_file = tmp_path / "experiment.yaml"
    cfg_file.write_text(yaml.safe_dump(config))
    out = tmp_path / "exp"
    args = ["experiment", "-c", str(cfg_file), "-o", str(out)]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    results = json.loads((out / "results.json").read_text())
    arms = {a["arm"]: a for a in results["arms"]}
    assert set(arms) == {"raw", "curated", "growth-0.5"}
    assert arms["raw"]["n_train"] == len(noisy)
    # curated: cleaned with the default recipe + label issues: fewer rows, flips removed
    kept = {
        json.loads(x)["id"]
        for x in (out / "clean" / "curated" / "kept.jsonl").read_text().splitlines()
    }
    assert arms["curated"]["n_train"] == len(kept) < len(noisy)
    flipped = [r["id"] for r, t in zip(noisy, truth, strict=True) if t == "flipped"]
    assert sum(i not in kept for i in flipped) / len(flipped) > 0.5
    assert arms["growth-0.5"]["n_train"] == round(0.5 * len(kept))
    for a in arms.values():
        acc = a["summary"]["accuracy"]
        assert 0 <= acc["mean"] <= 1 and a["runs"][0]["metrics"]["n"] == 60
    # each run keeps its model, not the checkpoints a finished run no longer needs
    runs = sorted((out / "runs").glob("*/seed-0"))
    assert len(runs) == 3
    assert all((r / "model").is_dir() and not (r / "checkpoints").exists() for r in runs)
    html = (out / "report.html").read_text()
    assert html.count("data:image/png") >= 3  # bars, size curve, learning curves
    assert "accuracy" in res.output  # the terminal table
    # resumable: a second call retrains nothing
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0 and again.output.count("done before, reused") == 3
    assert json.loads((out / "results.json").read_text()) == results


def test_config_errors_name_the_problem(tmp_path: Path) -> None:
    from tamis.errors import TamisError
    from tamis.experiment import ExperimentConfig

    with pytest.raises(TamisError, match="unknown arms"):
        ExperimentConfig.from_dict({"train": "a", "test": "b", "arms": ["cleaned"]})
    with pytest.raises(TamisError, match="held-out"):
        ExperimentConfig.from_dict({"train": "a"})
    with pytest.raises(TamisError, match="growth"):
        ExperimentConfig.from_dict({"train": "a", "test": "b", "growth": [1.5]})
    with pytest.raises(TamisError, match="unknown experiment keys"):
        ExperimentConfig.from_dict({"train": "a", "test": "b", "epochs": 3})
    with pytest.raises(TamisError, match="label_rank is embeddings or training"):
        ExperimentConfig.from_dict({"train": "a", "test": "b", "label_rank": "fine-tune"})
