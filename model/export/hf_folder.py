"""A run as a Hugging Face GPT-2 folder, and back.

`tinygpt export RUN_DIR --to DIR` writes model.safetensors, config.json and the tokenizer
files (tokenizer_files.py), which transformers' GPT2LMHeadModel and AutoTokenizer load with
no tinygpt code; `tinygpt sample --ckpt=DIR` reads the folder back through read().

The GPT-2 block maps one to one, with three differences of layout (transformers'
modeling_gpt2.py): its linear layers are Conv1D, whose weight is (in, out), the transpose of
nn.Linear's; it always has biases (a model trained with bias=False gets zeros, which change
nothing); and the head is tied to the token table, so only the table is stored.
"""
from __future__ import annotations

import os
from dataclasses import fields
from pathlib import Path

import torch

from ..errors import UserError
from ..files import read_json, write_atomic, write_json
from ..nn.gpt import GPT, GPTConfig
from ..train import checkpoint
from .tokenizer_files import read_tokenizer, tokenizer_files

# GPTConfig's defaults are GPT-2's block, which GPT2LMHeadModel computes. These fields may take
# any value (shapes, and what changes only training or the initial weights); any other field
# away from its default is something transformers' GPT-2 lacks, so a new option of the network
# is refused here without being listed.
ANY_VALUE = {"vocab_size", "block_size", "n_layer", "n_head", "n_embd", "dropout", "bias",
             "zero_init"}
# How the refusal names the options a user meets most (the modern arch's); others by field
SAID = {"pos": "rotary positions", "norm": "RMSNorm", "qk_norm": "QK-norm",
        "mlp": "the squared-ReLU MLP", "softcap": "a logit softcap", "smear_keys": "smeared keys"}
LN_EPS = 1e-5  # nn.LayerNorm's default, which the model uses
WEIGHTS = "model.safetensors"


def refusal(cfg: GPTConfig) -> str | None:
    """Why transformers' GPT-2 cannot compute this model, or None when it can."""
    lacks = [SAID.get(f.name, f"{f.name}={getattr(cfg, f.name)!r}") for f in fields(cfg)
             if f.name not in ANY_VALUE and getattr(cfg, f.name) != f.default]
    if not lacks:
        return None
    return (f"its block has {', '.join(lacks)}, which transformers' GPT2LMHeadModel lacks"
            "; only models with GPT-2's block (--arch=gpt2, no options beside it) can be exported")


def names(n_layer: int) -> list[tuple[str, str, bool]]:
    """(tinygpt name, transformers name, transposed) of every stored weight."""
    pairs = [("wte.weight", "transformer.wte.weight", False),
             ("wpe.weight", "transformer.wpe.weight", False)]
    for i in range(n_layer):
        ours, theirs = f"blocks.{i}.", f"transformer.h.{i}."
        for a, b, conv in (("ln1", "ln_1", False), ("attn.qkv", "attn.c_attn", True),
                           ("attn.proj", "attn.c_proj", True), ("ln2", "ln_2", False),
                           ("mlp.fc", "mlp.c_fc", True), ("mlp.proj", "mlp.c_proj", True)):
            pairs += [(f"{ours}{a}.weight", f"{theirs}{b}.weight", conv),
                      (f"{ours}{a}.bias", f"{theirs}{b}.bias", False)]
    return pairs + [("ln_f.weight", "transformer.ln_f.weight", False),
                    ("ln_f.bias", "transformer.ln_f.bias", False)]


def hf_weights(model: GPT) -> dict[str, torch.Tensor]:
    """The model's weights under transformers' names and layout, in float32."""
    ours = model.state_dict()
    out = {}
    for name, theirs, conv in names(model.cfg.n_layer):
        w = ours.get(name)
        if w is None:  # a bias the model was trained without: zeros, one per output
            w = torch.zeros(ours[name.removesuffix("bias") + "weight"].shape[0])
        out[theirs] = (w.t() if conv else w).float().contiguous()
    return out


def hf_config(cfg: GPTConfig, special: dict[str, int | None]) -> dict:
    """config.json: GPT-2's fields, with the exact (erf) GELU the model uses."""
    return {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2",
            "vocab_size": cfg.vocab_size, "n_positions": cfg.block_size, "n_embd": cfg.n_embd,
            "n_layer": cfg.n_layer, "n_head": cfg.n_head, "n_inner": None,
            "activation_function": "gelu", "layer_norm_epsilon": LN_EPS,
            "resid_pdrop": cfg.dropout, "embd_pdrop": cfg.dropout, "attn_pdrop": cfg.dropout,
            "initializer_range": 0.02, "scale_attn_weights": True,
            "scale_attn_by_inverse_layer_idx": False, "reorder_and_upcast_attn": False,
            "tie_word_embeddings": True, "use_cache": True, "torch_dtype": "float32",
            **special}


def export(run_dir: str | Path, to: str | Path) -> Path:
    """Write the run's model as a transformers folder `to` (new, or empty); returns it."""
    from safetensors.torch import save as safetensors_bytes

    to = Path(to)
    if to.exists() and (not to.is_dir() or any(to.iterdir())):
        raise UserError(f"{to} already exists and is not an empty folder; give --to a new path")
    path = checkpoint.file_of(run_dir)
    model, state = checkpoint.load_model(path)
    why = refusal(model.cfg)
    if why:
        raise UserError(f"cannot export {path}: {why}")
    tok = checkpoint.tokenizer_of(state, path)
    files, special = tokenizer_files(tok, model.cfg.block_size)
    # Written into a sibling folder renamed into place at the end: an interrupted export
    # leaves no folder that looks complete.
    part = to.with_name(to.name + ".partial")
    part.mkdir(parents=True, exist_ok=True)
    data = safetensors_bytes(hf_weights(model), metadata={"format": "pt"})
    write_atomic(part / WEIGHTS, lambda f: f.write(data), WEIGHTS, "export again")
    write_json(part / "config.json", hf_config(model.cfg, special))
    for name, content in files.items():
        write_json(part / name, content)
    os.replace(part, to)  # (onto an empty folder too)
    return to


def is_export(path: str | Path) -> bool:
    """Whether path is a folder export() wrote (rather than a run folder or a checkpoint)."""
    path = Path(path)
    return (path / "config.json").is_file() and (path / WEIGHTS).is_file()


def read(folder: str | Path, device: str = "cpu"):
    """The model (eval mode) and tokenizer of an exported folder."""
    from safetensors.torch import load_file

    folder = Path(folder)
    hf = read_json(folder / "config.json", "export the run again")
    unlike = {k: hf.get(k) for k, v in (("model_type", "gpt2"), ("activation_function", "gelu"),
                                        ("layer_norm_epsilon", LN_EPS)) if hf.get(k) != v}
    if unlike:
        raise UserError(f"{folder} is not a model tinygpt can run ({unlike} in config.json); "
                        "give a folder written by tinygpt export")
    cfg = GPTConfig(vocab_size=hf["vocab_size"], block_size=hf["n_positions"],
                    n_layer=hf["n_layer"], n_head=hf["n_head"], n_embd=hf["n_embd"], bias=True)
    weights = load_file(folder / WEIGHTS)
    missing = [theirs for _, theirs, _ in names(cfg.n_layer) if theirs not in weights]
    if missing:
        raise UserError(f"{folder / WEIGHTS} lacks {missing[0]} ({len(missing)} weights missing); "
                        "export the run again")
    ours = {name: (weights[theirs].t() if conv else weights[theirs])
            for name, theirs, conv in names(cfg.n_layer)}
    model = GPT(cfg)
    model.load_state_dict({**ours, "head.weight": ours["wte.weight"]})
    return model.to(device).eval(), read_tokenizer(folder, cfg.vocab_size)

