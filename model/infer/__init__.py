"""Inference: autoregressive generation (generate) and the `sample` verb (sampler)."""
