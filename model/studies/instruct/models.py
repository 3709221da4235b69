"""The pipeline's models: policies are plain GPTs; the reward model and the value function are
a GPT body with a scalar head (InstructGPT initialises both from a fine-tuned language model).
"""
from __future__ import annotations

import copy
from pathlib import Path

import torch
import torch.nn as nn

from ...nn.gpt import GPT, GPTConfig
from ...train import checkpoint


class ScalarModel(nn.Module):
    """A GPT body and a linear head to one number per position: the reward model reads it at a
    completion's last token, the value function at every token. The head starts at zero, so
    a new model says 0 everywhere rather than noise."""

    def __init__(self, body: GPT):
        super().__init__()
        self.body = body
        self.head = nn.Linear(body.cfg.n_embd, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.head(self.body.hidden(idx)).squeeze(-1)  # (B, T, 1) -> (B, T)

    def at(self, idx: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """The scalar at position index[b] of each row b, (B,): the reward of a completion."""
        return self(idx)[torch.arange(idx.size(0)), index]


def load_policy(path: str | Path) -> tuple[GPT, dict]:
    """A trained language model (base or fine-tuned) for training, and its checkpoint."""
    model, state = checkpoint.load_model(path)
    return model.train(), state


def frozen(model: nn.Module) -> nn.Module:
    """A copy that is never trained: the SFT reference of the KL penalty and of DPO."""
    ref = copy.deepcopy(model).eval()
    for p in ref.parameters():
        p.requires_grad_(False)
    return ref


def load_scalar(path: str | Path) -> tuple[ScalarModel, dict]:
    """A trained reward model and its checkpoint (with its normalisation)."""
    state = checkpoint.load(path)
    model = ScalarModel(GPT(GPTConfig(**state["model_config"])))
    model.load_state_dict(state["model"])
    return model.eval(), state
