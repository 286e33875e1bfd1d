"""Detectors that share one contract (see `authml.detect.base`). torch is imported only by the
autoencoder module, and only when it is used."""
