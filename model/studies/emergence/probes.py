"""The instruments the emergence study reads at every evaluation of every run.

All of them run on held-out material: synthetic copy sequences from a stream training never
draws, random repeated tokens, and the corpus's held-out works. The few-shot tasks run at a
few steps only (they cost more than the rest together).
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch

from ...nn.gpt import GPT
from ..common.icl import (copy_probe, icl_score, induction_probe, loss_by_position,
                          probe_pool, text_repeat_loss)
from ..common.task_scoring import Options, evaluate_tasks


class Probes:
    """on_eval for train(): the instrument readings of a model at one step, as a flat record
    (plus a compact "fewshot" table at the few-shot steps). A light reading (full=False, between
    evaluations) is the synthetic copy probe and prefix matching alone, the two curves a
    transition is read from: forward passes over 64 x block_size + 16 x 100 tokens, a fifth of
    a full reading's 384 x block_size + 1,600 at block_size 128 (the held-out text's repeat
    and position losses are the rest)."""

    def __init__(self, text: str, tokenizer, fewshot_steps: set[int], opts: Options,
                 icl_windows: int = 256):
        self.text, self.tokenizer = text, tokenizer
        self.tokens = np.array(tokenizer.encode(text))
        self.pool = probe_pool(self.tokens, tokenizer.vocab_size)
        self.fewshot_steps, self.opts, self.icl_windows = fewshot_steps, opts, icl_windows

    @torch.no_grad()
    def __call__(self, model: GPT, step: int, full: bool = True) -> dict:
        model.eval()
        device = str(model.wte.weight.device)  # the training run's: a GPU where it has one
        copy = copy_probe(model, n_seq=64, device=device)
        induction = induction_probe(model, self.pool, n_seq=16, device=device)
        record = {"copy_loss": copy["copy_loss"], "copy_acc": copy["copy_acc"],
                  "other_loss": copy["other_loss"], "copy_chance": copy["chance"],
                  "prefix_matching": induction["best"],
                  "prefix_chance": induction["chance"], "random_copy_gain": induction["copy_gain"]}
        if not full:
            return record
        text = text_repeat_loss(model, self.tokens, n_seq=64, device=device)
        icl = icl_score(loss_by_position(model, self.tokens, self.icl_windows, device=device))
        record |= {"text_first": text["first"], "text_second": text["second"],
                   "text_copy_gain": text["gain"], "text_copy_gain_ci": text["gain_ci"],
                   "icl_score": icl["score"]}
        if step in self.fewshot_steps:
            opts = dataclasses.replace(self.opts, device=device)
            record["fewshot"] = compact(evaluate_tasks(model, self.tokenizer, self.text, opts))
        return record


def compact(tasks: dict) -> dict:
    """Exact match with its Wilson interval, the per-character accuracy, the exact match that
    accuracy predicts and the task's chance level, per task and k (and for the
    shuffled-demonstration control), without the per-item lists."""
    keep = ("n", "exact_match", "exact_ci", "char_accuracy", "exact_from_chars", "chance",
            "loglik_per_char")
    return {name: {part: {k: {key: v[key] for key in keep} for k, v in t[part].items()}
                   for part in ("k", "shuffled")} | {"skipped_k": t["skipped_k"]}
            for name, t in tasks.items()}
