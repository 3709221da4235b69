"""GPTConfig and the registry of named sizes and architectures.

One dataclass says everything about a network's shape; sizes and architecture
variants are named here so that configs, the scaling ladder and the benchmark
all refer to the same definitions (litgpt's registry idea).
"""
from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class GPTConfig:
    # Each field's comment is also its option's help in `tinygpt train --help` (TrainConfig
    # takes every field but vocab_size as an option).
    vocab_size: int = 65      # tokens in the vocabulary (the prepared data decides it)
    block_size: int = 256     # context length in tokens
    n_layer: int = 4          # transformer blocks
    n_head: int = 4           # attention heads per block
    n_embd: int = 128         # width of the residual stream
    dropout: float = 0.0      # dropout probability (0 for these small models)
    bias: bool = False        # biases in the linear layers and norms
    pos: str = "learned"      # "learned" (GPT-2) | "rope" (rotary)
    norm: str = "layernorm"   # "layernorm" (GPT-2) | "rmsnorm"
    qk_norm: bool = False     # normalise queries and keys per head
    mlp: str = "gelu"         # "gelu" (GPT-2) | "relu2" (squared ReLU)
    zero_init: bool = False   # residual output projections start at zero
    softcap: float = 0.0      # tanh cap on the logits; 0 means off
    smear_keys: bool = False  # each key mixed with the previous position's (Olsson et al. 2022)

    def __post_init__(self) -> None:
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd={self.n_embd} is not divisible by n_head={self.n_head}")
        if self.pos == "rope" and (self.n_embd // self.n_head) % 2:
            raise ValueError("rotary positions need an even head size (n_embd / n_head)")
        for name, value, allowed in (("pos", self.pos, POS), ("norm", self.norm, NORMS),
                                     ("mlp", self.mlp, MLPS)):
            if value not in allowed:
                raise ValueError(f"{name}={value!r} is not one of {', '.join(allowed)}")


POS = ("learned", "rope")
NORMS = ("layernorm", "rmsnorm")
MLPS = ("gelu", "relu2")

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
