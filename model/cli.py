"""The `tinygpt` command: subcommands mirror the verbs of the pipeline.

    tinygpt prepare [--dataset=shakespeare] [--tokenizer=char]
    tinygpt train [configs/x.toml] [--key=value ...]
    tinygpt sample --out_dir=out/x [--prompt=...] [--num_samples=3]
    tinygpt bench [--config=nano-cpu] [--vs=baseline]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import UserError, exits_cleanly

COMMANDS = ("prepare", "train", "sample", "bench")


def cmd_prepare(argv: list[str]) -> None:
    p = argparse.ArgumentParser(prog="tinygpt prepare", description="tokenize a corpus into data/")
    p.add_argument("--dataset", default="shakespeare",
                   help="'shakespeare' (embedded), a text file or folder, or hf:<name>")
    p.add_argument("--tokenizer", default="char", choices=("char", "gpt2"))
    p.add_argument("--data_root", default="data")
    args = p.parse_args(argv)
    from .data import prepare
    import json

    folder = prepare(args.dataset, args.tokenizer, args.data_root)
    counts = json.loads((folder / "meta.json").read_text())["counts"]
    print(f"prepared {folder}: {counts['train']['tokens']:,} train and "
          f"{counts['val']['tokens']:,} val tokens")


def cmd_train(argv: list[str]) -> None:
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__.strip() + "\n\nTrain keys (see configs/ and model/options.py):")
        from dataclasses import fields
        from .options import TrainConfig
        print(", ".join(f.name for f in fields(TrainConfig)))
        return
    from .options import load_config
    from .trainer import train

    paths = [a for a in argv if not a.startswith("--")]
    if len(paths) > 1:
        raise UserError(f"expected at most one config file, got {', '.join(paths)}; "
                        "overrides look like --key=value")
    cfg = load_config(paths[0] if paths else None, [a for a in argv if a.startswith("--")])
    summary = train(cfg)
    print(f"done: val loss {summary['val_loss']:.4f} after {summary['tokens']:,} tokens "
          f"in {summary['wall_s']:.0f} s")


def cmd_sample(argv: list[str]) -> None:
    from .sampler import SampleOptions, run

    p = argparse.ArgumentParser(prog="tinygpt sample", description="sample from a checkpoint")
    p.add_argument("--out_dir", default="out/shakespeare-char", help="folder holding ckpt.pt")
    p.add_argument("--ckpt", default="", help="a checkpoint file (overrides --out_dir)")
    p.add_argument("--prompt", default="", help="text to continue; FILE:path reads a file")
    p.add_argument("--num_samples", type=int, default=1)
    p.add_argument("--max_new_tokens", type=int, default=500)
    p.add_argument("--temperature", type=float, default=0.8)
    p.add_argument("--top_k", type=int, default=200)
    p.add_argument("--top_p", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--stop", default="", help="stop a sample at this string")
    p.add_argument("--no_cache", action="store_true", help="recompute the context every step")
    p.add_argument("--crop", action="store_true", help="keep the end of a too-long prompt")
    p.add_argument("--device", default="auto")
    a = p.parse_args(argv)
    prompt = a.prompt
    if prompt.startswith("FILE:"):
        path = Path(prompt[5:])
        if not path.is_file():
            raise UserError(f"prompt file {path} not found")
        from .data import read_utf8
        prompt = read_utf8(path)
    opts = SampleOptions(prompt, a.max_new_tokens, a.temperature, a.top_k, a.top_p, a.seed,
                         a.stop.encode().decode("unicode_escape"), not a.no_cache, a.crop)
    run(a.ckpt or Path(a.out_dir) / "ckpt.pt", opts, a.num_samples, a.device)


def cmd_bench(argv: list[str]) -> None:
    from .bench import main as bench_main
    bench_main(argv)


@exits_cleanly
def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in COMMANDS:
        print(__doc__.strip(), file=sys.stderr)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    globals()[f"cmd_{argv[0]}"](argv[1:])
    return 0
