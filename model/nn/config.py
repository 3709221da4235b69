"""The registry of named sizes and architectures.

Sizes and architecture variants are named here so that configs, the scaling ladder and the
benchmark all refer to the same definitions (litgpt's registry idea); the network's one
dataclass, GPTConfig, lives with the network in gpt.py.
"""
from __future__ import annotations

from dataclasses import replace

from .gpt import GPTConfig

# Architecture presets. "gpt2" is the plain baseline block every comparison is
# made against; "modern" switches on the cheap options measured to help at tiny
# scale in modded-nanogpt and nanochat.
ARCHS: dict[str, dict] = {
    "gpt2": dict(pos="learned", norm="layernorm", qk_norm=False, mlp="gelu",
                 zero_init=False, softcap=0.0),
    "modern": dict(pos="rope", norm="rmsnorm", qk_norm=True, mlp="relu2",
                   zero_init=True, softcap=15.0),
}

# Named sizes: (n_layer, n_head, n_embd). The "NxD" names are the scaling
# ladder (about 2x apart in non-embedding parameters); the rest are the
# reference shapes of nanoGPT and GPT-2 used by recipes and the benchmark.
SIZES: dict[str, tuple[int, int, int]] = {
    "2x24": (2, 2, 24),
    "2x32": (2, 2, 32),
    "2x48": (2, 3, 48),
    "3x56": (3, 4, 56),
    "4x72": (4, 4, 72),
    "4x104": (4, 4, 104),
    "5x128": (5, 4, 128),
    "6x160": (6, 5, 160),
    "6x192": (6, 6, 192),        # larger sizes for the GPU study
    "8x256": (8, 8, 256),
    "8x320": (8, 10, 320),
    "nano-cpu": (4, 4, 128),     # nanoGPT's shakespeare_char CPU recipe
    "nano-gpu": (6, 6, 384),     # nanoGPT's shakespeare_char GPU recipe
    "gpt2-124m": (12, 12, 768),
}
LADDER = ("2x24", "2x32", "2x48", "3x56", "4x72", "4x104", "5x128", "6x160")


def named(size: str, arch: str = "gpt2", **overrides) -> GPTConfig:
    """A GPTConfig for a named size and architecture, with field overrides."""
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; known sizes: {', '.join(SIZES)}")
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}; known: {', '.join(ARCHS)}")
    n_layer, n_head, n_embd = SIZES[size]
    cfg = GPTConfig(n_layer=n_layer, n_head=n_head, n_embd=n_embd, **ARCHS[arch])
    return replace(cfg, **overrides)
