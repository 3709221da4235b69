"""The `tinygpt` command: one verb per step of the pipeline, found in one table (COMMANDS).

Each verb's options are the fields of a dataclass (model/args.py reads them, model/usage.py
prints them for `tinygpt <verb> --help`); train and the instruct verbs also read a TOML file
of settings (TrainConfig, InstructConfig) that the command line overrides.
"""
from __future__ import annotations

import json
import os
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

# Before numpy loads: OpenBLAS's threads spin while they wait, as OpenMP's do. Beside a training
# run the report's small fits took 4:53 with them against 28 s without; alone, redrawing
# docs/scaling/data-axis took 29.0 s with them and 28.2 s without. A user's own setting wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

# Variables that hold a CPU to a smaller one's kernels (docs/cpu-class stands in for an AVX2 CPU
# with them). torch.compile's on-disk kernel cache is not keyed on them: 3x56 compiled under the
# full ISA, then rerun from that cache with them set, went NaN within 100 steps, where the same
# run on a cache of its own trains to 1.5613. So each setting of them gets its own cache.
ISA_LIMITS = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS")
if any(os.environ.get(k) for k in ISA_LIMITS) and "TORCHINDUCTOR_CACHE_DIR" not in os.environ:
    _tag = re.sub(r"[^A-Za-z0-9]+", "_", "-".join(os.environ.get(k, "") for k in ISA_LIMITS))
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = os.path.join(
        tempfile.gettempdir(), f"torchinductor_{os.getuid()}_isa_{_tag}")

from ..args import parse, positional, typed
from ..errors import UserError, check_values, exits_cleanly, one_of
from ..infer.sampler import SampleArgs
from ..studies.fewshot.fewshot_options import FewshotArgs, LmEvalArgs
from ..studies.instruct.chat import ChatArgs
from ..studies.instruct.settings import InstructConfig, load_instruct
from ..train.train_config import RULES as TRAIN_RULES
from ..train.train_config import TrainConfig
from .bench import BenchArgs
from .bench import main as bench_main
from ..files import read_json
from .usage import usage


@dataclass(frozen=True)
class Command:
    run: Callable[..., None]  # called with the options, and the settings' overrides if any
    about: str                # one line, for `tinygpt --help`
    options: type             # the dataclass the command line fills
    settings: type | None = None  # a dataclass read from a TOML file first; run() receives
                                  # the command line's {key: text} overrides of it


@dataclass
class PrepareArgs:
    dataset: str = "shakespeare"  # "shakespeare" (embedded), a text file or folder, or hf:<name>
    tokenizer: str = "char"       # "char" | "gpt2"
    data_root: str = "data"       # where the token files are written

    def validate(self) -> None:
        check_values(vars(self), {k: TRAIN_RULES[k] for k in ("dataset", "tokenizer",
                                                              "data_root")})


def cmd_prepare(a: PrepareArgs) -> None:
    from ..data.prepare import prepare

    folder = prepare(a.dataset, a.tokenizer, a.data_root)
    counts = json.loads((folder / "meta.json").read_text())["counts"]
    print(f"prepared {folder}: {counts['train']['tokens']:,} train and "
          f"{counts['val']['tokens']:,} val tokens")


@dataclass
class TrainArgs:
    config: str = positional(default="")  # a TOML recipe: a file, or a shipped one's name


def cmd_train(a: TrainArgs, overrides: dict[str, str]) -> None:
    from ..train.train_config import config_from
    from ..train.trainer import train

    # checked, the model's shape included, before any data is prepared
    summary = train(config_from(a.config or None, overrides))
    print(f"done: val loss {summary['val_loss']:.4f} after {summary['tokens']:,} tokens "
          f"in {summary['wall_s']:.0f} s")


def cmd_sample(a: SampleArgs) -> None:
    from dataclasses import replace

    from ..export.hf_folder import is_export
    from ..files import read_utf8
    from ..infer.sampler import run, unescape
    from ..train.checkpoint import file_of
    from ..train.device import set_threads

    set_threads(a.threads)  # (checked before the checkpoint is read)
    prompt = a.prompt
    if prompt.startswith("FILE:"):
        path = Path(prompt[5:])
        if not path.is_file():
            problem = "is a folder" if path.is_dir() else "not found"
            raise UserError(f"prompt file {path} {problem}; give --prompt=FILE:<path of a text file>")
        prompt = read_utf8(path)
    opts = replace(a, prompt=prompt, stop=unescape(a.stop))
    if a.ckpt and is_export(a.ckpt):
        ckpt = Path(a.ckpt)  # a folder of tinygpt export: read as it is
    else:
        ckpt = file_of(a.ckpt) if a.ckpt else Path(a.out_dir) / "ckpt.pt"
    run(ckpt, opts, a.num_samples, a.device)


@dataclass
class ExportArgs:
    run: str = positional()  # the run folder (its ckpt.pt) or a checkpoint file
    to: str = ""             # the folder to write: new, or empty


def cmd_export(a: ExportArgs) -> None:
    from ..export.hf_folder import export

    if not a.to:
        raise UserError("say where to write the model: tinygpt export RUN_DIR --to DIR")
    folder = export(a.run, a.to)
    print(f"exported {folder}: {', '.join(sorted(p.name for p in folder.iterdir()))}; load it "
          "with transformers' AutoModelForCausalLM and AutoTokenizer.from_pretrained")


@dataclass
class StudyArgs:
    preset: str = "laptop"   # a preset of configs/study (laptop, quick, emergence, ...) or a plan .toml
    dataset: str = ""        # train on this text file, folder or hf:<name> (default: the plan's)
    out: str = ""            # folder of the runs (default: out/study-<plan>, out/sweep-<plan>;
                             # out/<plan> for tinygpt emergence)
    wandb: str = "disabled"  # "disabled" | "offline" | "online"
    threads: int = 0         # CPU threads; 0 keeps torch's default (or, with --jobs, shares cores)
    jobs: int = 0            # runs trained at once, each its own process; 0: one per core
                             # (one thread each) on a CPU, one on a GPU

    def validate(self) -> None:
        check_values(vars(self), {**{k: TRAIN_RULES[k] for k in ("wandb", "threads")},
                                  "jobs": (lambda v: v >= 0, "0 (choose) or more")})


# what the reports read from every run's summary.json (a scaling or an emergence study's)
SUMMARY_KEYS = ("name", "val_loss", "steps", "tokens", "flops", "wall_s", "n_nonemb")


def check_summaries(root: Path) -> None:
    """UserError naming the first damaged summary.json of a study folder (edited by hand, or
    torn on a full disk), instead of a JSONDecodeError from the runner or the report."""
    from ..studies.common.runner import runs_folder

    for path in sorted(runs_folder(root).glob("*/summary.json")):
        read_json(path, "delete it and tinygpt study redoes it from the run's checkpoint",
                  SUMMARY_KEYS)


def study_root(plan, a: StudyArgs, default: str) -> Path:
    """The study's folder, with --dataset applied to the plan (and named in it)."""
    if a.dataset:
        plan.dataset = a.dataset
        plan.name += "-" + Path(a.dataset.removeprefix("hf:")).stem
    root = Path(a.out or default.format(name=plan.name))
    check_summaries(root)
    return root


def study_command(a: StudyArgs, verb: str = "study") -> str:
    """The command that reruns the study, for its report (threads and wandb change no result)."""
    given = [f"--{k}={getattr(a, k)}" for k in ("dataset", "out") if getattr(a, k)]
    return " ".join([f"tinygpt {verb}", f"--preset={a.preset}", *given])


def cmd_study(a: StudyArgs) -> None:
    from ..studies.common.plan import load_plan
    from ..studies.common.runner import run_study
    from ..studies.scaling.scaling_report import write_report

    plan = load_plan(a.preset)
    root = study_root(plan, a, "out/study-{name}")
    run_study(plan, root, a.wandb, a.threads, a.jobs)
    print(f"report: {write_report(root, plan, command=study_command(a))}")


@dataclass
class EmergenceArgs(StudyArgs):
    preset: str = "emergence"  # an emergence plan of configs/study (emergence, emergence-text,
                               # emergence-synthetic, emergence-quick) or a plan .toml


def cmd_emergence(a: EmergenceArgs) -> None:
    """The grid of depths and widths over seeds, then its verdicts and report."""
    from ..studies.common.plan import read_plan
    from ..studies.emergence.emergence_plan import load_emergence_plan
    from ..studies.emergence.emergence_report import write_report
    from ..studies.emergence.emergence_runner import run_emergence

    plan = load_emergence_plan(*read_plan(a.preset))
    root = study_root(plan, a, "out/{name}")
    run_emergence(plan, root, a.wandb, a.threads, a.jobs)
    print(f"report: {write_report(root, command=study_command(a, 'emergence'))}")


@dataclass
class SweepArgs(StudyArgs):
    tokens: int = 0          # tokens a run (default: the preset's [sweep] tokens); e.g. the
                             # study's own budget, to check rates chosen at a smaller one

    def validate(self) -> None:
        super().validate()
        check_values(vars(self), {"tokens": (lambda v: v >= 0, "0 (the preset's) or more")})


def cmd_sweep(a: SweepArgs) -> None:
    from ..studies.common.plan import load_plan
    from ..studies.scaling.sweep import run_sweep

    plan = load_plan(a.preset)
    run_sweep(plan, study_root(plan, a, "out/sweep-{name}"), tokens=a.tokens, wandb=a.wandb,
              threads=a.threads, jobs=a.jobs)


@dataclass
class ReportArgs:
    root: str = positional()  # the study or instruct folder, e.g. out/study-laptop
    preset: str = ""          # its plan or instruct preset (default: read from the folder)


def cmd_report(a: ReportArgs) -> None:
    from ..studies.common.plan import load_plan
    from ..studies.scaling.scaling_report import write_report

    root = Path(a.root)
    plan_file = root / "plan.json"
    # an instruct folder: one seed's (results.json), or one over seeds (instruct.json only)
    if not plan_file.exists() and any((root / f).exists() for f in ("results.json",
                                                                   "instruct.json")):
        from ..studies.instruct.context import recorded_context
        from ..studies.instruct.instruct_report import write_report as write_instruct_report
        from ..studies.instruct.seeded_report import write_seeded_report
        ctx = recorded_context(root, a.preset)
        write = write_seeded_report if ctx.cfg.seeds > 1 else write_instruct_report
        print(f"report: {write(ctx)}")
        return
    if not a.preset and not plan_file.exists():
        raise UserError(f"{root} holds no study (plan.json missing); run tinygpt study first")
    check_summaries(root)
    # --preset stands in for a plan.json that is missing or damaged, never for a readable one:
    # another plan would title the report, and give its command, after a study not run
    recorded = None
    if plan_file.exists():
        try:
            recorded = read_json(plan_file, "name the study's plan instead: tinygpt report "
                                            f"{root} --preset=<preset or plan.toml>")
        except UserError:
            if not a.preset:
                raise
    if recorded is not None and recorded.get("kind") == "emergence":
        from ..studies.emergence.emergence_report import write_report as write_emergence_report
        print(f"report: {write_emergence_report(root)}")
        return
    plan = load_plan(a.preset) if a.preset else None
    if plan is not None and recorded is not None and recorded.get("name") != plan.name:
        raise UserError(f"{root} is a study of the plan {recorded.get('name')!r}, not "
                        f"{plan.name!r} (--preset={a.preset}); leave --preset out to report it")
    print(f"report: {write_report(root, plan)}")


def cmd_fewshot(a: FewshotArgs) -> None:
    from ..studies.fewshot.run import main
    main(a)


def cmd_lmeval(a: LmEvalArgs) -> None:
    from ..studies.fewshot.harness import main
    main(a)


@dataclass
class InstructArgs:
    preset: str = "laptop"  # laptop | quick, or a preset .toml
    out: str = ""           # the pipeline's folder (default: out/instruct-<preset>)


@dataclass
class SizeArgs(InstructArgs):
    size: str = ""          # the model's size (default: for sft policy_size, for rm the largest
                            # of rm_sizes)


@dataclass
class PpoArgs(InstructArgs):
    rm_size: str = ""       # the reward model to optimise against (default: the largest)
    variant: str = ""       # "" (β = kl_beta), ptx (with the pretraining term) or sweep

    def validate(self) -> None:
        check_values(vars(self), {"variant": one_of("", "ptx", "sweep")})


def instruct_context(a: InstructArgs, overrides: dict[str, str]):
    """The pipeline's context: the preset's settings with the command line's overrides."""
    from ..studies.instruct.context import Context
    from ..train.device import set_threads

    cfg, name = load_instruct(a.preset, overrides)
    set_threads(cfg.threads)
    return Context(cfg, Path(a.out or f"out/instruct-{name}"), name)


def one_seed_context(a: InstructArgs, overrides: dict[str, str]):
    """instruct_context for a command that trains one stage of one seed; a UserError saying how
    to name one seed of a pipeline over seeds."""
    ctx = instruct_context(a, overrides)
    if ctx.cfg.seeds > 1:
        raise UserError(f"a stage trains one seed; for seed S of this pipeline over "
                        f"{ctx.cfg.seeds} seeds add --seeds=1 --seed=S --out={ctx.root}/seed-S")
    return ctx


def cmd_instruct(a: InstructArgs, overrides: dict[str, str]) -> None:
    from ..studies.instruct.pipeline import run_pipeline
    from ..studies.instruct.seeded import run_seeds
    ctx = instruct_context(a, overrides)
    print(f"report: {(run_seeds if ctx.cfg.seeds > 1 else run_pipeline)(ctx)}")


def cmd_sft(a: SizeArgs, overrides: dict[str, str]) -> None:
    from ..studies.instruct.sft import run_sft
    ctx = one_seed_context(a, overrides)
    print(run_sft(ctx, a.size or ctx.cfg.policy_size))


def cmd_rm(a: SizeArgs, overrides: dict[str, str]) -> None:
    from ..studies.instruct.rm import run_rm
    ctx = one_seed_context(a, overrides)
    print(run_rm(ctx, a.size or ctx.cfg.sizes()[-1]))


def cmd_ppo(a: PpoArgs, overrides: dict[str, str]) -> None:
    from ..studies.instruct.ppo import run_ppo
    ctx = one_seed_context(a, overrides)
    print(run_ppo(ctx, a.rm_size or ctx.cfg.sizes()[-1], a.variant))


def cmd_dpo(a: InstructArgs, overrides: dict[str, str]) -> None:
    from ..studies.instruct.dpo import run_dpo
    print(run_dpo(one_seed_context(a, overrides)))


def cmd_chat(a: ChatArgs) -> None:
    from ..studies.instruct.chat import main
    main(a)


COMMANDS: dict[str, Command] = {
    "prepare": Command(cmd_prepare, "tokenize a corpus into data/", PrepareArgs),
    "train": Command(cmd_train, "train a model from a TOML recipe and command-line overrides",
                     TrainArgs, TrainConfig),
    "sample": Command(cmd_sample, "sample text from a checkpoint", SampleArgs),
    "export": Command(cmd_export, "a run as a Hugging Face transformers folder (GPT-2 block)",
                      ExportArgs),
    "bench": Command(bench_main, "training and decoding speed, MFU; or a fixed-time comparison; "
                                 "or the speedrun", BenchArgs),
    "study": Command(cmd_study, "the scaling study: sizes, fits, plots and report", StudyArgs),
    "emergence": Command(cmd_emergence, "the in-context copying study: depths and widths over "
                                        "seeds, its verdicts and report", EmergenceArgs),
    "sweep": Command(cmd_sweep, "the learning-rate sweep behind a study preset's [lr] table",
                     SweepArgs),
    "report": Command(cmd_report, "fits, plots and report of a study or instruct folder, again",
                      ReportArgs),
    "fewshot": Command(cmd_fewshot, "few-shot tasks and in-context instruments of checkpoints",
                       FewshotArgs),
    "lmeval": Command(cmd_lmeval, "the few-shot tasks run by lm-evaluation-harness on the run's "
                                  "export, checked against tinygpt's scorer", LmEvalArgs),
    "instruct": Command(cmd_instruct, "the InstructGPT pipeline: SFT, reward models, PPO, DPO, "
                                      "report", InstructArgs, InstructConfig),
    "sft": Command(cmd_sft, "supervised fine-tuning, one stage of instruct", SizeArgs,
                   InstructConfig),
    "rm": Command(cmd_rm, "a reward model from rankings, one stage of instruct", SizeArgs,
                  InstructConfig),
    "ppo": Command(cmd_ppo, "PPO against a reward model, one stage of instruct", PpoArgs,
                   InstructConfig),
    "dpo": Command(cmd_dpo, "DPO from the ranked pairs, one stage of instruct", InstructArgs,
                   InstructConfig),
    "chat": Command(cmd_chat, "talk in the terminal with an SFT, PPO or DPO model of instruct",
                    ChatArgs),
}


def overview() -> str:
    width = max(map(len, COMMANDS))
    return "\n".join(["usage: tinygpt <command> [--key=value ...]", "",
                      *(f"  {verb:<{width}}  {c.about}" for verb, c in COMMANDS.items()), "",
                      "tinygpt <command> --help lists its options."])


def run_command(verb: str, argv: list[str]) -> None:
    """Read the verb's options (checked) and its settings' overrides, then run it."""
    command = COMMANDS[verb]
    settings = (command.settings,) if command.settings else ()
    texts, *overrides = parse(argv, command.options, *settings)
    command.run(typed(command.options, {}, texts), *overrides)


@exits_cleanly
def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    verb, rest = (argv[0], argv[1:]) if argv else ("", [])
    if verb in ("-h", "--help"):
        print(overview())
        return 0
    if verb not in COMMANDS:
        print(overview(), file=sys.stderr)
        if verb:
            print(f"error: unknown command {verb!r}; commands: {', '.join(COMMANDS)}",
                  file=sys.stderr)
        return 2
    if "-h" in rest or "--help" in rest:
        command = COMMANDS[verb]
        print(usage(f"tinygpt {verb}", command.about, command.options, command.settings))
        return 0
    run_command(verb, rest)
    return 0

