"""Offline models: sentence embeddings (MiniLM) now; the causal LM (SmolLM2) with training."""
