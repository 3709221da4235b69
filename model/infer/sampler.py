"""Sampling text from a checkpoint, streamed to stdout as it is generated."""
from __future__ import annotations

import sys
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch

from ..errors import UserError, check_values
from ..export import hf_folder
from ..train import checkpoint
from ..train.device import pick_device
from .generate import stream


@dataclass
class SampleOptions:
    prompt: str = ""            # text to continue (FILE:path reads a file); empty starts afresh
    max_new_tokens: int = 500   # tokens generated per sample, at most
    temperature: float = 0.8    # 0 is greedy; higher is more random
    top_k: int = 200            # sample from the k most likely tokens; 0 is off
    top_p: float = 1.0          # sample from the smallest set of this much probability; 1 is off
    seed: int = 1337            # seeds the first sample; the next ones take seed+1, ...
    stop: str = ""              # end a sample at this string (backslash escapes read: "\n\n")
    cache: bool = True          # reuse earlier positions' keys and values (--no_cache recomputes)
    crop: bool = False          # keep the end of a prompt longer than the context

    def validate(self) -> "SampleOptions":
        check_values(vars(self), {
            "max_new_tokens": (lambda v: v >= 1, "at least 1"),
            # below 1e-6 the logits overflow float32 (NaN); it is greedy long before that
            "temperature": (lambda v: v == 0 or v >= 1e-6,
                            "0 (greedy) or more, and at least 1e-6 if not 0"),
            "seed": (lambda v: 0 <= v < 2 ** 63, "from 0 to 2**63 - 1"),
            "top_k": (lambda v: v >= 0, "0 (off) or more"),
            "top_p": (lambda v: 0 < v <= 1, "above 0 and at most 1 (1 is off)")})
        return self


@dataclass
class SampleArgs(SampleOptions):
    """`tinygpt sample`: the sampling options, and which checkpoint, how often and where."""
    # the model
    out_dir: str = "out/shakespeare-char"  # the run folder whose ckpt.pt is sampled
    ckpt: str = ""              # a checkpoint file, a run folder or a folder written by
                                # tinygpt export (overrides --out_dir)
    num_samples: int = 1        # samples drawn, one after the other
    device: str = "auto"        # "auto" | "cpu" | "cuda" (or cuda:N) | "mps"
    threads: int = 0            # CPU threads; 0 keeps torch's default (1 beside another job)

    def validate(self) -> "SampleArgs":
        super().validate()
        check_values(vars(self), {"num_samples": (lambda v: v >= 1, "at least 1")})
        return self


def unescape(text: str) -> str:
    """Read backslash escapes (--stop="\\n\\n") and keep every other character as typed."""
    try:  # non-Latin-1 characters become \\uXXXX first, so the codec gives them back unchanged
        return text.encode("latin-1", "backslashreplace").decode("unicode_escape")
    except UnicodeDecodeError as e:
        raise UserError(f"cannot read the escapes in {text!r} ({e.reason}); "
                        "write a backslash as \\\\") from None


def start_token(tok) -> int:
    """What an empty prompt starts from: end-of-text (BPE) or a newline (chars)."""
    if hasattr(tok, "eot"):
        return tok.eot
    return tok.stoi.get("\n", 0)


def prompt_ids(tok, text: str, block_size: int, crop: bool) -> list[int]:
    if not text:
        return [start_token(tok)]
    ids = tok.encode(text)
    if len(ids) > block_size:
        if not crop:
            raise UserError(f"the prompt is {len(ids)} tokens but the model's context is "
                            f"{block_size}; shorten it or pass --crop to keep its last {block_size}")
        ids = ids[-block_size:]
    return ids


def could_start(text: str, stop: str) -> int:
    """How many characters at the end of text could be the beginning of stop: they are held
    back until the next tokens show whether stop follows."""
    for n in range(min(len(stop) - 1, len(text)), 0, -1):
        if text.endswith(stop[:n]):
            return n
    return 0


# stream() allocates room for all its new tokens up front; asked for no more than this per
# call, a cap meant as "until --stop" (--max_new_tokens=100000000000) costs 8 MB, not 800 GB.
CHUNK = 1 << 20


def tokens(model, ids: list[int], opts: SampleOptions, seed: int) -> Iterator[int]:
    """opts.max_new_tokens new token ids after ids, CHUNK at a time. The first chunk is what a
    single call of stream() gives; each later one continues from the last block_size tokens
    with a seed of its own (the sequence stays reproducible)."""
    device = model.wte.weight.device
    left, part, context = opts.max_new_tokens, 0, deque(ids, maxlen=model.cfg.block_size)
    while left > 0:
        n = min(left, CHUNK)
        idx = torch.tensor([list(context)], device=device)
        chunk_seed = seed if part == 0 else (seed * 1_000_003 + part) % 2 ** 63
        for token in stream(model, idx, n, opts.temperature, opts.top_k, opts.top_p,
                            chunk_seed, opts.cache):
            context.append(token.item())
            yield context[-1]
        left, part = left - n, part + 1


def sample_text(model, tok, opts: SampleOptions, seed: int) -> Iterator[str]:
    """Yield pieces of new text; stops early at opts.stop, of which no character is yielded."""
    ids = prompt_ids(tok, opts.prompt, model.cfg.block_size, opts.crop)
    new: list[int] = []
    shown = 0  # characters of the decoded text yielded so far
    for token in tokens(model, ids, opts, seed):
        new.append(token)
        text = tok.decode(new)
        if opts.stop and opts.stop in text:
            yield text[shown:text.index(opts.stop)]
            return
        if not text.endswith("\ufffd"):  # a multi-byte character still incomplete
            end = len(text) - could_start(text, opts.stop)
            if end > shown:
                yield text[shown:end]
                shown = end
    rest = tok.decode(new)[shown:]  # the cap came first: what was held back is not the stop
    if rest:
        yield rest


def load(ckpt: str | Path, device: str):
    """The model (eval mode) and tokenizer of a checkpoint, or of a folder `tinygpt export`
    wrote."""
    if hf_folder.is_export(ckpt):
        return hf_folder.read(ckpt, device)
    model, state = checkpoint.load_model(ckpt, device)
    return model, checkpoint.tokenizer_of(state, ckpt)


def run(ckpt: str | Path, opts: SampleOptions, num_samples: int = 1, device: str = "auto",
        out=None) -> list[str]:
    """Print num_samples samples from a checkpoint; returns them too."""
    out = out or sys.stdout
    opts.validate()
    device = pick_device(device)
    model, tok = load(ckpt, device)
    prompt_ids(tok, opts.prompt, model.cfg.block_size, opts.crop)  # refuse a bad prompt up front
    samples = []
    for i in range(num_samples):
        out.write(opts.prompt)
        pieces = []
        for piece in sample_text(model, tok, opts, opts.seed + i):
            out.write(piece)
            out.flush()
            pieces.append(piece)
        out.write("\n---------------\n")
        samples.append("".join(pieces))
    return samples
