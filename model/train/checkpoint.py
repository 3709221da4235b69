"""Checkpoints: written atomically, loaded with weights_only=True.

A checkpoint holds the weights, the optimizer state, the step, the RNG state
(the GPU's too, when training on one), the loss scale of a float16 run, the
training config and the tokenizer metadata as plain containers, so that
torch.load(weights_only=True) can read it and a resumed run continues exactly.
It is written to a temporary file in the same folder, flushed to disk, then
renamed over the old one: a crash or a full disk never leaves a torn file.
"""
from __future__ import annotations

import warnings
import zipfile
from pathlib import Path

import torch
import torch.nn as nn

from ..data.tokenizer import Tokenizer, from_meta, vocab_hash
from ..errors import UserError
from ..files import write_atomic
from ..nn.gpt import GPT, GPTConfig
from .optim import load_keeping_rates

FORMAT = 1
RECOVER = ("use the previous checkpoint (a ckpt_<step>.pt if the run kept them), or start again "
           "with --init_from=scratch in a new --out_dir")


def save(path: str | Path, state: dict) -> None:
    write_atomic(path, lambda f: torch.save({"format": FORMAT, **state}, f))


def training_state(modules: dict[str, nn.Module], opt: torch.optim.Optimizer,
                   device: str) -> dict:
    """What a resumed loop needs of what it trains, to continue exactly: each module's weights
    under its name, the optimizer state, and the random streams (dropout draws from them, and
    anything else a step samples from torch's generator)."""
    state = {name: m.state_dict() for name, m in modules.items()}
    state.update(optimizer=opt.state_dict(), rng=torch.get_rng_state())
    if device.startswith("cuda"):  # dropout on a GPU draws from the GPU's own generator
        state["cuda_rng"] = torch.cuda.get_rng_state(device)
    return state


def restore_training(state: dict, modules: dict[str, nn.Module], opt: torch.optim.Optimizer,
                     device: str) -> None:
    """Put back what training_state saved. Each optimizer group keeps the rate this run's
    settings give it (load_keeping_rates), not the one the checkpoint was written with."""
    for name, m in modules.items():
        m.load_state_dict(state[name])
    load_keeping_rates(opt, state["optimizer"])
    torch.set_rng_state(state["rng"].cpu())
    if device.startswith("cuda") and "cuda_rng" in state:  # (none in a checkpoint from a CPU)
        torch.cuda.set_rng_state(state["cuda_rng"].cpu(), device)


def file_of(path: str | Path) -> Path:
    """A checkpoint file as given, or a run folder's latest checkpoint (its ckpt.pt)."""
    path = Path(path)
    return path / "ckpt.pt" if path.is_dir() else path


def load(path: str | Path, device: str = "cpu") -> dict:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"no checkpoint at {path}; train one first, or check the path")
    try:
        with warnings.catch_warnings():  # (a foreign file's pickle protocol: the error below
            warnings.simplefilter("ignore")  # says what matters, in one line)
            state = torch.load(path, map_location=device, weights_only=True)
    except Exception:  # a damaged file fails in many ways inside torch's unpickler, and its
        # messages (cut mid-word, or about weights_only in PyTorch 2.6) mislead: say what it is
        what = ("a torch archive that is damaged, or holds more than tensors and plain containers"
                if zipfile.is_zipfile(path) else
                "not a complete torch file (torch writes zip archives): truncated, or another "
                "kind of file")
        raise UserError(f"{path} is not a tinygpt checkpoint: {what}; {RECOVER}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT or "model" not in state:
        raise UserError(f"{path} is not a tinygpt checkpoint of format {FORMAT} (another "
                        f"program's or version's file?); {RECOVER}")
    return state


def check_resumable(path: str | Path, state: dict) -> None:
    """UserError unless a run can continue from state: every weight at its shape, the
    optimizer state and the step, RNG and precision (else torch fails with a KeyError or a
    page of missing keys, after the run has started)."""
    problems = [f"no {k}" for k in ("optimizer", "step", "rng", "dtype", "model_config")
                if k not in state]
    if not problems:
        problems = weight_problems(state)
        opt = state["optimizer"]
        if not (isinstance(opt, dict) and {"state", "param_groups"} <= opt.keys()):
            problems.append("no optimizer state")
    if problems:
        raise UserError(f"{path} cannot be resumed ({listed(problems)}); {RECOVER}")


def listed(problems: list[str]) -> str:
    """The first three problems, and how many more: one line, however broken the file."""
    more = f" and {len(problems) - 3} more problems" if len(problems) > 3 else ""
    return ", ".join(problems[:3]) + more


def weight_problems(state: dict) -> list[str]:
    """What keeps a checkpoint's weights from being its model_config's model: each weight
    missing, unknown or of another shape. Found on the meta device (shapes only, no memory), so
    a config that asks for a huge model over small weights is named, not allocated."""
    try:
        with torch.device("meta"):
            wanted = GPT(GPTConfig(**state["model_config"])).state_dict()
    except (TypeError, ValueError, AssertionError, RuntimeError) as e:
        return [f"a model_config this version cannot build: {str(e).splitlines()[0][:80]}"]
    weights = state["model"] if isinstance(state["model"], dict) else {}
    problems = [f"weight {k} missing or of another shape" for k, v in wanted.items()
                if getattr(weights.get(k), "shape", None) != v.shape]
    return problems + [f"an unknown weight {k}" for k in weights if k not in wanted]


def load_model(path: str | Path, device: str = "cpu") -> tuple[GPT, dict]:
    """The model of a checkpoint (in eval mode) and the checkpoint dict."""
    state = load(path, device)
    return model_of(state, path, device), state


def model_of(state: dict, path: str | Path, device: str = "cpu") -> GPT:
    """The model (in eval mode) of a checkpoint dict that load() read from path."""
    problems = (weight_problems(state) if isinstance(state.get("model_config"), dict)
                else ["no model_config"])
    if problems:
        raise UserError(f"checkpoint {path} does not fit this version's model "
                        f"({listed(problems)}); retrain or use a matching version")
    model = GPT(GPTConfig(**state["model_config"]))  # (running out of memory here is said as such)
    model.load_state_dict(state["model"])
    return model.to(device).eval()


def tokenizer_of(state: dict, path: str | Path) -> Tokenizer:
    """The checkpoint's tokenizer, refused unless it has exactly one token per row of the
    model's embedding: any other pairing would decode every id as some other token."""
    meta = state.get("tokenizer") or {}
    tok = from_meta(meta)
    rows = (state.get("model_config") or {}).get("vocab_size")
    chars = getattr(tok, "chars", [])
    if tok.vocab_size != rows or len(set(chars)) != len(chars):
        raise UserError(f"checkpoint {path} holds a tokenizer of {tok.vocab_size} tokens (hash "
                        f"{vocab_hash(meta)}) for a model of {rows}: they do not belong together; "
                        "use a checkpoint written by tinygpt train")
    return tok
