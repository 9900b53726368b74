"""Fine-tuning on curated data, watched: config, data (ids carried), pre-flight checks, the
trainer (transformers + peft) and the monitor (loss spikes, overfitting)."""

from tamis.train.config import TrainConfig
from tamis.train.monitor import MonitorCore, OverfitDetector, SpikeDetector, monitor_callback

__all__ = [
    "MonitorCore",
    "OverfitDetector",
    "SpikeDetector",
    "TrainConfig",
    "monitor_callback",
    "train",
]


def train(*args, **kwargs):  # noqa: ANN002, ANN003, ANN201
    """`tamis.train.train(TrainConfig(...))`: see `tamis.train.trainer.train`."""
    from tamis.train.trainer import train as _train

    return _train(*args, **kwargs)
