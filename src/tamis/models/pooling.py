"""Mean pooling for BERT-style sequence classifiers.

A sentence-embedding encoder such as MiniLM was trained to be read by the mean of its token
states, not by the [CLS] pooler that `AutoModelForSequenceClassification` puts on top; fine-tuning
it through the CLS pooler learns far more slowly (issue 5 measured 0.60 vs 0.90 accuracy on
banking77). This swaps the pooler for a masked mean of the last hidden states and records the
choice in the model config (`tamis_pooling`), so that loading the model again re-applies it.
"""

from __future__ import annotations

from typing import Any

from tamis.errors import TamisError


def use_mean_pooling(model: Any) -> Any:
    import torch
    from torch import nn

    class MeanPooler(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.mask: torch.Tensor | None = None

        def forward(self, hidden: torch.Tensor) -> torch.Tensor:
            m = self.mask
            self.mask = None
            if m is None or tuple(m.shape[:2]) != tuple(hidden.shape[:2]):
                return hidden.mean(1)
            w = m.to(hidden.dtype).unsqueeze(-1)
            return (hidden * w).sum(1) / w.sum(1).clamp(min=1.0)

    base = getattr(model, getattr(model, "base_model_prefix", ""), None)
    if base is None or not hasattr(base, "pooler"):
        raise TamisError("pooling: mean works for BERT-style encoders (a model with a pooler)")
    pooler = MeanPooler()
    base.pooler = pooler

    def keep_mask(_module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        mask = kwargs.get("attention_mask")
        if mask is None and len(args) > 1:
            mask = args[1]
        pooler.mask = mask

    base.register_forward_pre_hook(keep_mask, with_kwargs=True)
    model.config.tamis_pooling = "mean"
    return model
