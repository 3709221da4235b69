"""What every stage of the pipeline shares: its settings and folder, the tokenizer, the plays'
texts, the prompts of each stage, and where each model is (trained first if missing).

Prompts are drawn once per seed: SFT's demonstrations, the reward model's ranked prompts and
PPO's prompts from the training plays, disjoint; the prompts every model is scored on, and
those that test the reward model, from the held-out plays.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from functools import cached_property
from pathlib import Path

import numpy as np

from ...data.prepare import Batches, dataset_dir, held_out_text, prepare
from ...data.tokenizer import Tokenizer
from ...errors import UserError
from ...files import read_json, write_json
from .settings import InstructConfig, load_instruct
from .task import Instruction, instructions, vocabulary_of

PPO_POOL = 1000      # training prompts PPO draws its rollouts from
RM_TEST_PROMPTS = 200  # held-out prompts whose K ranked samples test the reward models


@dataclass
class Context:
    cfg: InstructConfig
    root: Path
    name: str  # the preset's name, e.g. laptop

    @cached_property
    def batches(self) -> Batches:
        """The plays' token files (of the base study's data set): the held-out windows of the
        alignment tax and PPO-ptx's pretraining windows."""
        plan = self.plan
        prepare(plan.dataset, plan.tokenizer)
        return Batches(dataset_dir(plan.dataset, plan.tokenizer), plan.block_size)

    @cached_property
    def plan(self):
        from ..common.plan import load_plan
        return load_plan(self.cfg.base_preset)

    @property
    def tok(self) -> Tokenizer:
        return self.batches.tokenizer

    @property
    def newline(self) -> int:
        return self.tok.encode("\n")[0]

    @cached_property
    def train_text(self) -> str:
        return self.tok.decode(np.asarray(self.batches.splits["train"]).tolist())

    @cached_property
    def held_out_text(self) -> str:
        return held_out_text(dataset_dir(self.plan.dataset, self.plan.tokenizer))

    @cached_property
    def vocabulary(self) -> frozenset[str]:
        return vocabulary_of(self.train_text)

    @cached_property
    def train_items(self) -> list[Instruction]:
        c = self.cfg
        return instructions(self.train_text, c.sft_prompts + c.rm_prompts + PPO_POOL, c.seed)

    @cached_property
    def held_out_items(self) -> list[Instruction]:
        c = self.cfg
        return instructions(self.held_out_text, c.eval_prompts + RM_TEST_PROMPTS, c.seed + 1)

    @property
    def sft_items(self) -> list[Instruction]:
        return self.train_items[:self.cfg.sft_prompts]

    @property
    def rm_items(self) -> list[Instruction]:
        return self.train_items[self.cfg.sft_prompts:self.cfg.sft_prompts + self.cfg.rm_prompts]

    @property
    def ppo_items(self) -> list[Instruction]:
        return self.train_items[self.cfg.sft_prompts + self.cfg.rm_prompts:]

    @property
    def eval_items(self) -> list[Instruction]:
        return self.held_out_items[:self.cfg.eval_prompts]

    @property
    def rm_test_items(self) -> list[Instruction]:
        return self.held_out_items[self.cfg.eval_prompts:]

    def base(self, size: str) -> Path:
        """The base model of a size: the finished run of the base study, trained now if the
        study folder lacks it (the study's own recipe, so `tinygpt study` of that plan reuses it)."""
        from ..common.runner import ready, run_specs
        plan = self.plan
        ready(plan)
        specs = [s for s in plan.runs() if s.size == size and s.seed == self.cfg.base_seed]
        if not specs:
            raise UserError(f"the {self.cfg.base_preset} study has no {size} run of seed "
                            f"{self.cfg.base_seed}; choose sizes from its [lr] table")
        folder = Path(self.cfg.base) / specs[0].name
        if not (folder / "summary.json").exists():
            print(f"instruct: no finished base model {folder}; training it now", flush=True)
            run_specs(plan, specs[:1], Path(self.cfg.base), threads=self.cfg.threads)
        return folder / "ckpt.pt"

    def stage(self, name: str) -> Path:
        """A stage's folder: root/name, or root/runs/name in a committed copy (docs/instruct
        keeps each stage's metrics and summary there, without its checkpoints)."""
        from ..common.runner import runs_folder
        return runs_folder(self.root) / name

    def finished(self, name: str) -> dict | None:
        path = self.stage(name) / "summary.json"
        return read_json(path) if path.exists() else None

    def sft_model(self, size: str):
        """The fine-tuned model of a size (for training) and its checkpoint, or a UserError
        naming the command that makes it."""
        from .models import load_policy
        self.needs(f"sft-{size}", f"tinygpt sft --size={size}")
        return load_policy(self.stage(f"sft-{size}") / "ckpt.pt")

    def needs(self, name: str, command: str) -> dict:
        """The summary of a stage another one builds on, or a UserError naming the command."""
        summary = self.finished(name)
        if summary is None:
            raise UserError(f"{self.stage(name)} is not finished; run {command} first "
                            f"(or tinygpt instruct --preset={self.name})")
        return summary


SETTINGS = "instruct.json"  # the settings a pipeline folder was made with, for its report


def save_settings(ctx: Context) -> None:
    write_json(ctx.root / SETTINGS, {"preset": ctx.name, **asdict(ctx.cfg)})


def seed_contexts(ctx: Context) -> list[Context]:
    """The one-seed pipeline of each training seed of a seeded one, in <out>/seed-<s>/."""
    return [Context(replace(ctx.cfg, seed=seed, seeds=1), ctx.root / f"seed-{seed}", ctx.name)
            for seed in ctx.cfg.seed_list()]


def recorded_context(root: Path, preset: str = "") -> Context:
    """The context of a pipeline folder, for redrawing its report: the settings it recorded, or
    the named preset's where it recorded none (folders from before the record)."""
    if preset:
        cfg, name = load_instruct(preset, {})
        return Context(cfg, root, name)
    path = root / SETTINGS
    if not path.exists():
        raise UserError(f"{root} records no settings ({SETTINGS}); name its preset: "
                        f"tinygpt report {root} --preset=<laptop, quick or a .toml>")
    settings = read_json(path, f"name its preset: tinygpt report {root} --preset=<preset>")
    name = settings.pop("preset")
    try:
        return Context(InstructConfig(**settings).validate(), root, name)
    except TypeError as e:  # JSON, but not the settings' fields
        raise UserError(f"{path} is damaged ({str(e)[:80]}); name its preset: "
                        f"tinygpt report {root} --preset=<preset>") from None
