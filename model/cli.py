"""The `tinygpt` command: subcommands mirror the verbs of the pipeline.

    tinygpt prepare [--dataset=shakespeare] [--tokenizer=char]
    tinygpt train [configs/x.toml] [--key=value ...]
    tinygpt sample --out_dir=out/x [--prompt=...] [--num_samples=3]
    tinygpt bench [--config=nano-cpu] [--vs=baseline]
    tinygpt study [--preset=laptop] [--dataset=my.txt]    (the scaling study)
    tinygpt study --preset=emergence                      (in-context copying switching on)
    tinygpt sweep [--preset=laptop]                       (its learning-rate sweep)
    tinygpt report out/study-laptop                       (fits, plots, report again)
    tinygpt fewshot out/study-laptop/*/ [--items=200]     (few-shot and in-context study)
    tinygpt instruct [--preset=laptop] [--key=value ...]  (SFT, reward models, PPO, DPO, report)
    tinygpt sft [--size=4x104] | rm [--size=...] | ppo [--rm_size=...] [--ptx] | dpo
                                                          (one stage of it)
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .errors import UserError, exits_cleanly

COMMANDS = ("prepare", "train", "sample", "bench", "study", "sweep", "report", "fewshot",
            "instruct", "sft", "rm", "ppo", "dpo")


def cmd_prepare(argv: list[str]) -> None:
    p = argparse.ArgumentParser(prog="tinygpt prepare", description="tokenize a corpus into data/")
    p.add_argument("--dataset", default="shakespeare",
                   help="'shakespeare' (embedded), a text file or folder, or hf:<name>")
    p.add_argument("--tokenizer", default="char", choices=("char", "gpt2"))
    p.add_argument("--data_root", default="data")
    args = p.parse_args(argv)
    from .data import prepare

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

    paths = [a for a in argv if not a.startswith("-")]
    if len(paths) > 1:
        raise UserError(f"expected at most one config file, got {', '.join(paths)}; "
                        "overrides look like --key=value")
    cfg = load_config(paths[0] if paths else None, [a for a in argv if a.startswith("-")])
    summary = train(cfg)
    print(f"done: val loss {summary['val_loss']:.4f} after {summary['tokens']:,} tokens "
          f"in {summary['wall_s']:.0f} s")


def cmd_sample(argv: list[str]) -> None:
    from .sampler import SampleOptions, run, unescape

    p = argparse.ArgumentParser(prog="tinygpt sample", description="sample from a checkpoint")
    p.add_argument("--out_dir", default="out/shakespeare-char", help="folder holding ckpt.pt")
    p.add_argument("--ckpt", default="",
                   help="a checkpoint file or run folder (overrides --out_dir)")
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
            problem = "is a folder" if path.is_dir() else "not found"
            raise UserError(f"prompt file {path} {problem}; give --prompt=FILE:<path of a text file>")
        from .files import read_utf8
        prompt = read_utf8(path)
    opts = SampleOptions(prompt, a.max_new_tokens, a.temperature, a.top_k, a.top_p, a.seed,
                         unescape(a.stop), not a.no_cache, a.crop)
    from .checkpoint import file_of
    run(file_of(a.ckpt) if a.ckpt else Path(a.out_dir) / "ckpt.pt", opts, a.num_samples, a.device)


def cmd_fewshot(argv: list[str]) -> None:
    from .fewshot.run import main as fewshot_main
    fewshot_main(argv)


def cmd_bench(argv: list[str]) -> None:
    from .bench import main as bench_main
    bench_main(argv)


def study_args(prog: str, argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=prog)
    p.add_argument("--preset", default="laptop",
                   help="laptop | quick | gpu | emergence | emergence-quick, or a plan .toml")
    p.add_argument("--dataset", default="", help="train on this text file, folder or hf:<name>")
    p.add_argument("--out", default="", help="folder of the runs (default out/<study>)")
    p.add_argument("--wandb", default="disabled", choices=("disabled", "offline", "online"))
    p.add_argument("--threads", type=int, default=0)
    return p.parse_args(argv)


def check_summaries(root: Path) -> None:
    """UserError naming the first damaged summary.json of a study folder (edited by hand, or
    torn on a full disk), instead of a JSONDecodeError from the runner or the report."""
    for path in sorted(root.glob("*/summary.json")):
        try:
            if isinstance(json.loads(path.read_text()), dict):
                continue
            problem = "not a JSON object"
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            problem = f"not JSON: {getattr(e, 'msg', None) or e.reason}"
        raise UserError(f"{path} is damaged ({problem}); delete it and tinygpt study redoes it "
                        "from the run's checkpoint")


def load_study(prog: str, argv: list[str], kind: str):
    from .scaling.plan import load_plan

    a = study_args(prog, argv)
    plan = load_plan(a.preset)
    if a.dataset:
        plan.dataset = a.dataset
        plan.name += "-" + Path(a.dataset.removeprefix("hf:")).stem
    root = Path(a.out or f"out/{kind}-{plan.name}")
    check_summaries(root)
    return plan, root, dict(wandb=a.wandb, threads=a.threads)


def cmd_study(argv: list[str]) -> None:
    from .scaling.plan import read_plan

    if read_plan(study_args("tinygpt study", argv).preset)[1].get("kind") == "emergence":
        return emergence_study(argv)
    from .scaling.report import write_report
    from .scaling.runner import run_study

    plan, root, kw = load_study("tinygpt study", argv, "study")
    run_study(plan, root, **kw)
    print(f"report: {write_report(root, plan, command=' '.join(['tinygpt', 'study', *argv]))}")


def emergence_study(argv: list[str]) -> None:
    """tinygpt study --preset=emergence: the grid of depths and widths, then its report."""
    from .emergence.plan import load_emergence_plan
    from .emergence.report import write_report
    from .emergence.runner import run_emergence
    from .scaling.plan import read_plan

    a = study_args("tinygpt study", argv)
    plan = load_emergence_plan(*read_plan(a.preset))
    if a.dataset:
        plan.dataset = a.dataset
        plan.name += "-" + Path(a.dataset.removeprefix("hf:")).stem
    root = Path(a.out or f"out/{plan.name}")
    check_summaries(root)
    run_emergence(plan, root, a.wandb, a.threads)
    print(f"report: {write_report(root, command=' '.join(['tinygpt', 'study', *argv]))}")


def cmd_sweep(argv: list[str]) -> None:
    from .scaling.sweep import run_sweep

    plan, root, kw = load_study("tinygpt sweep", argv, "sweep")
    run_sweep(plan, root, **kw)


def cmd_report(argv: list[str]) -> None:
    from .scaling.plan import load_plan
    from .scaling.report import write_report

    p = argparse.ArgumentParser(prog="tinygpt report")
    p.add_argument("root", help="the study folder, e.g. out/study-laptop")
    p.add_argument("--preset", default="", help="its plan (default: read from the folder)")
    a = p.parse_args(argv)
    root = Path(a.root)
    plan_file = root / "plan.json"
    if not a.preset and not plan_file.exists():
        raise UserError(f"{root} holds no study (plan.json missing); run tinygpt study first")
    check_summaries(root)
    if plan_file.exists() and json.loads(plan_file.read_text()).get("kind") == "emergence":
        from .emergence.report import write_report as write_emergence_report
        print(f"report: {write_emergence_report(root)}")
        return
    plan = load_plan(a.preset) if a.preset else None
    print(f"report: {write_report(root, plan)}")


def instruct_context(verb: str, argv: list[str]):
    """The pipeline's context from --preset, --out and InstructConfig overrides, and the
    verb's own options (--size, --rm_size, --ptx)."""
    from .device import set_threads
    from .instruct.context import Context
    from .instruct.options import load_instruct

    p = argparse.ArgumentParser(prog=f"tinygpt {verb}",
                                epilog="any other --key=value sets a field of "
                                       "model/instruct/options.py:InstructConfig")
    p.add_argument("--preset", default="laptop", help="laptop | quick, or a preset .toml")
    p.add_argument("--out", default="", help="the pipeline's folder (default out/instruct-<preset>)")
    if verb in ("sft", "rm"):
        p.add_argument("--size", default="", help="the model size (default: the policy's for "
                                                  "sft, the largest reward model's for rm)")
    if verb == "ppo":
        p.add_argument("--rm_size", default="", help="the reward model to optimise against "
                                                     "(default the largest)")
        p.add_argument("--ptx", action="store_true", help="add the pretraining term (PPO-ptx)")
    a, rest = p.parse_known_args(argv)
    cfg, name = load_instruct(a.preset, rest)
    set_threads(cfg.threads)
    return Context(cfg, Path(a.out or f"out/instruct-{name}"), name), a


def cmd_instruct(argv: list[str]) -> None:
    from .instruct.pipeline import run_pipeline
    ctx, _ = instruct_context("instruct", argv)
    print(f"report: {run_pipeline(ctx)}")


def cmd_sft(argv: list[str]) -> None:
    from .instruct.sft import run_sft
    ctx, a = instruct_context("sft", argv)
    print(run_sft(ctx, a.size or ctx.cfg.policy_size))


def cmd_rm(argv: list[str]) -> None:
    from .instruct.rm import run_rm
    ctx, a = instruct_context("rm", argv)
    print(run_rm(ctx, a.size or ctx.cfg.sizes()[-1]))


def cmd_ppo(argv: list[str]) -> None:
    from .instruct.ppo import run_ppo
    ctx, a = instruct_context("ppo", argv)
    print(run_ppo(ctx, a.rm_size or ctx.cfg.sizes()[-1], a.ptx))


def cmd_dpo(argv: list[str]) -> None:
    from .instruct.dpo import run_dpo
    ctx, _ = instruct_context("dpo", argv)
    print(run_dpo(ctx))


@exits_cleanly
def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in COMMANDS:
        if argv and argv[0] in ("-h", "--help"):
            print(__doc__.strip())
            return 0
        print(__doc__.strip(), file=sys.stderr)
        if argv:
            print(f"error: unknown command {argv[0]!r}; commands: {', '.join(COMMANDS)}",
                  file=sys.stderr)
        return 2
    globals()[f"cmd_{argv[0]}"](argv[1:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
