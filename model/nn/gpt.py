"""The GPT: its config, attention, MLP, block, model; parameter and FLOP counts.

Read top to bottom. One dataclass, GPTConfig, says everything about the network's shape (kept
here, beside the code that reads it, as nanoGPT keeps it in model.py: a new option is a field
and the code it switches). The default is GPT-2's pre-norm block; each option (rotary,
RMSNorm, QK-norm, ReLU², zero-init, softcap) changes one small thing and is named where it acts.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


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


class RMSNorm(nn.RMSNorm):
    """nn.RMSNorm with its gain cast to the input's dtype: under bf16 autocast
    the stock module sees bf16 input and an fp32 gain and falls back to a slow
    unfused path, a sizeable share of a training step at the ladder's sizes
    (docs/measurements.md)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x, self.normalized_shape, self.weight.to(x.dtype), self.eps)


def make_norm(cfg: GPTConfig, dim: int) -> nn.Module:
    if cfg.norm == "rmsnorm":
        return RMSNorm(dim, eps=1e-6)
    return nn.LayerNorm(dim, bias=cfg.bias)


def rotary_tables(head_dim: int, length: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin for rotary position embedding, each (length, head_dim): the angles of the
    head_dim/2 pairs written twice, and sin negated in the first half (apply_rotary)."""
    inv_freq = 1.0 / (10000 ** (torch.arange(0, head_dim, 2, device=device).float() / head_dim))
    angles = torch.outer(torch.arange(length, device=device).float(), inv_freq)
    return angles.cos().repeat(1, 2), torch.cat((-angles.sin(), angles.sin()), dim=-1)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate pairs (first half, second half) of each head by position-dependent angles:
    (x1, x2) -> (x1 cos - x2 sin, x2 cos + x1 sin). With rotary_tables' signed, doubled tables
    that is x cos + (x2, x1) sin, three passes over x where the halves took seven (0.45 against
    0.35 ms forward and backward for the speedrun's queries, AVX2 kernels)."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.addcmul(x * cos.to(x.dtype), torch.cat((x2, x1), dim=-1), sin.to(x.dtype))


def make_dropout(p: float) -> nn.Module:
    """Dropout, or nothing at p=0: even a no-op Dropout has a fixed cost per call that shows in
    single-token decoding (docs/measurements.md)."""
    return nn.Dropout(p) if p else nn.Identity()


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool,
              dropout: float) -> torch.Tensor:
    """Scaled dot-product attention. On CPU it runs in fp32 even under bf16 autocast: torch's
    CPU flash-attention kernel is slower in bf16 than in fp32 for forward + backward at these
    shapes (docs/measurements.md), and at small head sizes the casts cost little."""
    if q.dtype == torch.bfloat16 and q.is_cpu:
        with torch.autocast("cpu", enabled=False):  # autocast would cast back to bf16
            y = F.scaled_dot_product_attention(q.float(), k.float(), v.float(),
                                               is_causal=causal, dropout_p=dropout)
        return y.to(q.dtype)
    return F.scaled_dot_product_attention(q, k, v, is_causal=causal, dropout_p=dropout)


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.n_head, self.head_dim = cfg.n_head, cfg.n_embd // cfg.n_head
        self.qkv = nn.Linear(cfg.n_embd, 3 * cfg.n_embd, bias=cfg.bias)
        self.proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.proj.residual = True  # marks the GPT-2 scaled init
        self.q_norm = make_norm(cfg, self.head_dim) if cfg.qk_norm else None
        self.k_norm = make_norm(cfg, self.head_dim) if cfg.qk_norm else None
        # Smeared keys: one gate logit per head, starting at an even mix (sigmoid(0) = 1/2).
        self.smear = nn.Parameter(torch.zeros(self.n_head)) if cfg.smear_keys else None
        self.dropout = cfg.dropout

    def smear_keys(self, k: torch.Tensor, before: torch.Tensor | None = None) -> torch.Tensor:
        """k_j <- g·k_j + (1-g)·k_{j-1}, g = sigmoid(smear) per head (Olsson et al. 2022): a key
        then also says which token came before it, so a single layer can look for "the token
        after an earlier copy of mine", the induction pattern that otherwise needs a
        previous-token head in an earlier layer. The first position mixes with `before`, the
        (unsmeared) key just before k's first position when decoding continues (B, h, 1, hd),
        and with a zero key at the start of a sequence."""
        B, h, T, hd = k.shape
        if before is None:
            before = k.new_zeros(B, h, 1, hd)
        shifted = torch.cat((before, k[:, :, :-1]), dim=2)  # (B, h, T, hd): k_{j-1} at j
        gate = torch.sigmoid(self.smear).to(k.dtype).view(1, h, 1, 1)
        return gate * k + (1 - gate) * shifted

    def qkv_heads(self, x: torch.Tensor, rotary=None):
        """Queries, keys and values (B, h, T, hd) as attention uses them."""
        B, T, C = x.shape
        # (3, B, h, T, hd): one permute instead of a transpose each
        q, k, v = self.qkv(x).view(B, T, 3, self.n_head, self.head_dim).permute(2, 0, 3, 1, 4)
        return *self.ready(q, k, rotary), v

    def ready(self, q: torch.Tensor, k: torch.Tensor, rotary=None,
              before: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Projected queries and keys (B, h, T, hd) made ready for attention: normed, smeared
        (before: see smear_keys) and rotated, as the architecture says."""
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        if self.smear is not None:
            k = self.smear_keys(k, before)
        if rotary is not None:
            q, k = apply_rotary(q, *rotary), apply_rotary(k, *rotary)
        return q, k

    def probabilities(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """Causal attention probabilities (B, h, T, T) of queries and keys from qkv_heads, in
        fp32: the fused kernel attention() calls never forms them."""
        T = q.size(2)
        scores = (q @ k.transpose(-2, -1)).float() / math.sqrt(self.head_dim)
        causal = torch.ones(T, T, dtype=torch.bool, device=q.device).tril()
        return scores.masked_fill(~causal, float("-inf")).softmax(-1)

    def forward(self, x, rotary=None, maps: list[torch.Tensor] | None = None):
        """maps, when given, receives this layer's attention probabilities (GPT.attention_maps)."""
        B, T, C = x.shape
        q, k, v = self.qkv_heads(x, rotary)
        if maps is not None:
            maps.append(self.probabilities(q, k))
        y = attention(q, k, v, True, self.dropout if self.training else 0.0)
        return self.proj(y.transpose(1, 2).reshape(B, T, C))  # (B, h, T, hd) -> (B, T, C)


class SquaredReLU(torch.autograd.Function):
    """relu(x)², with a backward of two passes over memory: g·2·relu(x), which is 0 where
    x <= 0. Autograd's own chain (square's 2·x·g, then relu's mask) takes five, and these
    activations are the step's largest: 73.0 against 74.9 ms a speedrun step (AVX2 kernels)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        r = torch.relu(x)
        ctx.save_for_backward(r)
        return r * r

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (r,) = ctx.saved_tensors
        return grad.mul(r).mul_(2)


class MLP(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.fc = nn.Linear(cfg.n_embd, 4 * cfg.n_embd, bias=cfg.bias)
        self.proj = nn.Linear(4 * cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.proj.residual = True
        self.relu2 = cfg.mlp == "relu2"

    def forward(self, x):
        h = self.fc(x)
        if not self.relu2:
            # Exact (erf) GELU, as nanoGPT: on CPU it is faster than GPT-2's tanh form on
            # training-sized tensors, though slower on a single decoded token's.
            return self.proj(F.gelu(h))
        if torch.is_grad_enabled():
            return self.proj(SquaredReLU.apply(h))
        # in place where no backward needs h: an evaluation's h is the largest activation
        # (16 MiB a layer at the speedrun's 128 windows a pass), and two fresh copies of it cost
        # 0.14-0.28 s of the speedrun's 5.1-5.3 s whole-split evaluation in fp32 (AVX2 kernels)
        return self.proj(torch.relu_(h).square_())


class Block(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.ln1, self.attn = make_norm(cfg, cfg.n_embd), CausalSelfAttention(cfg)
        self.ln2, self.mlp = make_norm(cfg, cfg.n_embd), MLP(cfg)
        self.drop = make_dropout(cfg.dropout)

    def forward(self, x, rotary=None, maps: list[torch.Tensor] | None = None):
        x = x + self.drop(self.attn(self.ln1(x), rotary, maps))
        return x + self.drop(self.mlp(self.ln2(x)))


class GPT(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.cfg = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.wpe = nn.Embedding(cfg.block_size, cfg.n_embd) if cfg.pos == "learned" else None
        self.drop = make_dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = make_norm(cfg, cfg.n_embd)
        self.head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        self.head.weight = self.wte.weight  # tied input and output embeddings
        if cfg.pos == "rope":
            cos, sin = rotary_tables(cfg.n_embd // cfg.n_head, cfg.block_size)
            self.register_buffer("rope_cos", cos, persistent=False)
            self.register_buffer("rope_sin", sin, persistent=False)
        self.apply(self._init_weights)

    def _init_weights(self, m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            # GPT-2: residual projections shrink with depth so the residual
            # stream's variance does not grow with n_layer.
            std = 0.02 / math.sqrt(2 * self.cfg.n_layer) if getattr(m, "residual", False) else 0.02
            if getattr(m, "residual", False) and self.cfg.zero_init:
                std = 0.0
            nn.init.normal_(m.weight, 0.0, std) if std else nn.init.zeros_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, 0.0, 0.02)

    def hidden(self, idx: torch.Tensor, blocks: nn.ModuleList | None = None,
               maps: list[torch.Tensor] | None = None) -> torch.Tensor:
        """The final normed hidden states (B, T, n_embd): what the language-model head reads,
        and what the reward and value heads of the InstructGPT stages read (model/instruct).
        blocks: what runs as the blocks, by default self.blocks; training may pass compiled
        copies of them (train/step.py). maps: see attention_maps."""
        T = idx.size(1)
        if T > self.cfg.block_size:
            raise ValueError(f"sequence of {T} tokens exceeds block_size {self.cfg.block_size}")
        x = self.wte(idx)
        rotary = None
        if self.wpe is not None:
            x = x + self.wpe.weight[:T]  # a slice: no index tensor to build
        else:
            rotary = (self.rope_cos[:T], self.rope_sin[:T])
        x = self.drop(x)
        for block in self.blocks if blocks is None else blocks:
            x = block(x, rotary, maps)
        return self.ln_f(x)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None,
                reduction: str = "mean", blocks: nn.ModuleList | None = None):
        """Logits for idx (B, T) and, with targets, the cross-entropy loss; blocks as in hidden.
        Decoding with a cache of earlier positions' keys and values runs the same network in
        decode.py."""
        logits = self.logits(self.hidden(idx, blocks))
        if targets is None:
            return logits, None
        loss = F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.reshape(-1),
                               ignore_index=-1, reduction=reduction)
        return logits, loss

    @torch.inference_mode()
    def attention_maps(self, idx: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Logits of idx and every layer's attention probabilities (B, n_head, T, T), from one
        forward pass: what the in-context instruments read (studies/common/icl.py)."""
        maps: list[torch.Tensor] = []
        return self.logits(self.hidden(idx, maps=maps)), maps

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        """The language-model head on final hidden states, softcapped when the config says."""
        logits = F.linear(h, self.head.weight)  # the module's call costs more than one token's work
        if self.cfg.softcap:
            logits = self.cfg.softcap * torch.tanh(logits / self.cfg.softcap)
        return logits

    def num_params(self, non_embedding: bool = True) -> int:
        """Parameter count; non_embedding drops the token and position tables
        (Kaplan's N; the tied head is the token table, so it is dropped too)."""
        n = sum(p.numel() for p in self.parameters())
        if non_embedding:
            n -= self.wte.weight.numel()
            if self.wpe is not None:
                n -= self.wpe.weight.numel()
        return n


def n_nonemb_formula(cfg: GPTConfig) -> int:
    """Kaplan's N = 12·n_layer·d², plus the small norm and bias terms this
    implementation really has, so that it equals GPT.num_params() exactly."""
    d, L = cfg.n_embd, cfg.n_layer

    def norm(dim: int) -> int:  # only LayerNorm with bias has a second vector
        return 2 * dim if cfg.bias and cfg.norm == "layernorm" else dim

    per_layer = 12 * d * d + 2 * norm(d)
    if cfg.qk_norm:
        per_layer += 2 * norm(d // cfg.n_head)
    if cfg.smear_keys:
        per_layer += cfg.n_head
    if cfg.bias:
        per_layer += 3 * d + d + 4 * d + d  # qkv, attn proj, fc, mlp proj
    return L * per_layer + norm(d)


def flops_per_token(cfg: GPTConfig, n_nonemb: int | None = None) -> int:
    """Training FLOPs per token, forward + backward:
    6·N + 6·n_layer·n_ctx·d (attention scores) + 6·d·V (unembedding).
    At tiny width the last two terms are large; never use bare 6·N there."""
    N = n_nonemb if n_nonemb is not None else 12 * cfg.n_layer * cfg.n_embd ** 2
    return 6 * N + 6 * cfg.n_layer * cfg.block_size * cfg.n_embd + 6 * cfg.n_embd * cfg.vocab_size
