"""Training: per-event features, the model registry, drift checks and evaluation. No torch at import."""
