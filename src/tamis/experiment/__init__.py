"""`tamis experiment`: raw vs curated vs random-same-size vs a growth schedule, each trained by
`tamis train` and evaluated by `tamis eval` on the same held-out set, over seeds."""

from tamis.experiment.config import ExperimentConfig
from tamis.experiment.runner import run_experiment

__all__ = ["ExperimentConfig", "run_experiment"]
