"""Completions of instructions, and what each model says of them.

Every prompt is exactly PROMPT_CHARS tokens (task.py pads them), so a batch of prompts is one
(B, P) tensor, every completion starts at position P and decoding needs no padding masks.
A completion is max_new tokens long as sampled; its mask keeps it up to and including its
first newline, where the line (and the episode) ends.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ...infer.generate import generate
from ...nn.gpt import GPT
from .task import Instruction


@dataclass
class Rollout:
    tokens: torch.Tensor  # (B, P + T): prompt and completion
    mask: torch.Tensor    # (B, T): 1 on the completion's tokens up to its newline, then 0
    prompt_len: int

    @property
    def completion(self) -> torch.Tensor:
        return self.tokens[:, self.prompt_len:]  # (B, T)

    def last_index(self) -> torch.Tensor:
        """(B,): the position in tokens of each completion's last kept token."""
        return self.prompt_len + self.mask.sum(1).long() - 1


def encode_prompts(tok, items: list[Instruction]) -> torch.Tensor:
    return torch.tensor([tok.encode(it.prompt) for it in items], dtype=torch.long)  # (B, P)


def line_mask(completion: torch.Tensor, newline: int) -> torch.Tensor:
    """1 up to and including the first newline of each row (B, T); all 1 if it has none."""
    is_nl = (completion == newline).long()
    before = is_nl.cumsum(1) - is_nl  # newlines strictly before each position
    return (before == 0).float()


@torch.no_grad()
def sample(policy: GPT, prompts: torch.Tensor, max_new: int, seed: int, newline: int,
           temperature: float = 1.0) -> Rollout:
    """One completion per prompt row, sampled from the full distribution (no top-k: PPO's
    probability ratios are of the policy as it samples)."""
    was_training = policy.training
    policy.eval()
    tokens = generate(policy, prompts, max_new, temperature=temperature, seed=seed)
    policy.train(was_training)
    P = prompts.size(1)
    return Rollout(tokens, line_mask(tokens[:, P:], newline), P)


def with_completions(tok, items: list[Instruction], texts: list[str], max_new: int) -> Rollout:
    """A Rollout of given completion texts (demonstrations, stored samples), each cut or
    padded with newlines to max_new tokens."""
    prompts = encode_prompts(tok, items)
    rows = [(tok.encode(t) + tok.encode("\n") * max_new)[:max_new] for t in texts]
    completion = torch.tensor(rows, dtype=torch.long)  # (B, T)
    return Rollout(torch.cat((prompts, completion), 1), line_mask(completion, tok.stoi["\n"]),
                   prompts.size(1))


def completion_logprobs(model: GPT, r: Rollout) -> torch.Tensor:
    """log π(y_t | x, y_<t) of each completion token, (B, T); gradients flow when enabled."""
    logits, _ = model(r.tokens[:, :-1])  # position i predicts token i + 1
    logits = logits[:, r.prompt_len - 1:].float()  # (B, T, V): the completion's predictions
    return torch.gather(F.log_softmax(logits, -1), 2, r.completion.unsqueeze(-1)).squeeze(-1)


def decode(tok, r: Rollout) -> list[str]:
    """The completions as text, each up to and including its newline."""
    lengths = r.mask.sum(1).long().tolist()
    return [tok.decode(row[:n]) for row, n in zip(r.completion.tolist(), lengths)]
