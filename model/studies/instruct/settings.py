"""The pipeline's settings: one typed dataclass, presets in configs/instruct/*.toml, and
command-line overrides, read as `tinygpt train` reads its config (model/args.py). The comment
on each field is its help in `tinygpt instruct --help`."""
from __future__ import annotations

from dataclasses import asdict, dataclass

from ...args import typed
from ...errors import UserError, check_values, fraction, positive, whole
from ...files import preset_file
from ...nn.config import SIZES
from ...train.train_config import read_toml


@dataclass
class InstructConfig:
    # the preset
    description: str = ""            # a line on what the preset is for (a note in the file)
    # where the base models come from: the runs of a scaling study (trained if missing)
    base: str = "out/study-laptop-4M"  # folder of the study's runs, <size>-...-s<seed>/ckpt.pt
    base_preset: str = "laptop-4M"   # the study plan that trains a missing base model
    base_seed: int = 1337            # the seed of the base runs used
    policy_size: str = "4x104"       # the model SFT, PPO and DPO fine-tune
    rm_sizes: str = "2x48,3x56,4x104"  # reward models, smallest to largest (comma-separated)
    seed: int = 1337                 # draws the prompts, batches and rollouts
    seeds: int = 1                   # training seeds seed, seed+1, ...: over 1, each retrains
                                     # every stage in <out>/seed-<s>/ and the report pools them
    # prompts (task.py): training prompts come from the training plays, the rest from held-out ones
    sft_prompts: int = 3000          # demonstrations for SFT
    rm_prompts: int = 2000           # prompts whose K samples the labeller ranks for the RM
    k: int = 4                       # completions ranked per prompt (InstructGPT: 4 to 9)
    eval_prompts: int = 256          # held-out prompts every model is scored on
    eval_samples: int = 4            # answers sampled per held-out prompt and model
    max_new_tokens: int = 64         # a completion's length; a line must end within it
    # SFT
    sft_steps: int = 600             # optimizer steps of supervised fine-tuning
    sft_batch: int = 32              # demonstrations per step
    sft_lr: float = 1e-3             # learning rate of SFT
    # reward model
    rm_epochs: int = 3               # passes over the ranked prompts (InstructGPT: 1)
    rm_batch: int = 16               # prompts per step, each with its K completions
    rm_lr: float = 2e-3              # learning rate of the reward model
    # PPO
    ppo_iters: int = 100             # iterations: rollouts, then epochs of updates on them
    ppo_batch: int = 64              # rollouts per iteration
    ppo_epochs: int = 2              # passes over each iteration's rollouts
    ppo_minibatch: int = 32          # rollouts per update (ppo_batch must be a multiple)
    ppo_lr: float = 5e-5             # learning rate of the policy and value function
    kl_beta: float = 0.05            # β of the per-token KL penalty (InstructGPT: 0.02)
    clip: float = 0.2                # ε of L^CLIP and of the value loss
    gamma: float = 1.0               # discount of rewards over a completion's tokens
    gae_lambda: float = 0.95         # λ of generalised advantage estimation
    vf_coef: float = 0.5             # weight of the value loss
    ptx_coef: float = 1.0            # γ of the pretraining term in the PPO-ptx run
    ptx_batch: int = 8               # windows of training plays per PPO-ptx minibatch
    sweep_beta: float = 0.0          # β of the reward-model-size sweep (Gao et al.: no penalty)
    sweep_lr: float = 1e-4           # learning rate of the sweep, to travel far from SFT
    ppo_eval_every: int = 10         # iterations between evaluations along PPO
    ppo_eval_prompts: int = 64       # held-out prompts of each evaluation along PPO
    # DPO, from the same ranked pairs as the reward model
    dpo_steps: int = 200             # optimizer steps of DPO
    dpo_batch: int = 32              # pairs per step
    dpo_lr: float = 5e-5             # learning rate of DPO
    dpo_beta: float = 0.1            # β of DPO: how far the policy may move from SFT's
    # best-of-n beside PPO (Gao et al.): the reward model keeps the best of n SFT answers
    bon_n: str = "1,2,4,8,16"        # the n compared (comma-separated); max(n) answers a prompt
    # evaluation and system
    eval_every: int = 100            # steps between SFT, RM and DPO evaluations
    val_batches: int = 20            # windows of held-out plays for the alignment tax, x16
    threads: int = 0                 # CPU threads; 0 keeps torch's default

    def sizes(self) -> list[str]:
        return [s.strip() for s in self.rm_sizes.split(",") if s.strip()]

    def bon_ns(self) -> list[int]:
        """bon_n as numbers, smallest first; a UserError for anything but whole numbers ≥ 1."""
        try:
            ns = sorted({int(n) for n in self.bon_n.split(",") if n.strip()})
        except ValueError:
            ns = []
        if not ns or ns[0] < 1:
            raise UserError(f"bon_n must be whole numbers of 1 or more, comma-separated, e.g. "
                            f"1,2,4,8,16; got {self.bon_n!r}")
        return ns

    def seed_list(self) -> list[int]:
        """The training seeds: seed, seed+1, ... (seeds of them)."""
        return [self.seed + i for i in range(self.seeds)]

    def validate(self) -> "InstructConfig":
        check_values(asdict(self), RULES)
        for size in [self.policy_size, *self.sizes()]:
            if size not in SIZES:
                raise UserError(f"size {size!r} is unknown; known sizes: {', '.join(SIZES)}")
        self.bon_ns()
        if not self.sizes():
            raise UserError("rm_sizes is empty; name at least one size, e.g. 2x48,3x56,4x104")
        if self.ppo_batch % self.ppo_minibatch:
            raise UserError(f"ppo_batch={self.ppo_batch} is not a multiple of "
                            f"ppo_minibatch={self.ppo_minibatch}")
        return self


RULES = {
    **{k: (whole, "a whole number, at least 1") for k in (
        "seeds", "sft_prompts", "rm_prompts", "eval_prompts", "eval_samples", "max_new_tokens",
        "sft_steps", "sft_batch", "rm_epochs", "rm_batch", "ppo_iters", "ppo_batch",
        "ppo_epochs", "ppo_minibatch", "ptx_batch", "ppo_eval_every", "ppo_eval_prompts",
        "dpo_steps", "dpo_batch", "eval_every", "val_batches")},
    "k": (lambda v: whole(v) and v >= 2, "at least 2 (a ranking needs two completions)"),
    **{k: (positive, "a positive number") for k in (
        "sft_lr", "rm_lr", "ppo_lr", "sweep_lr", "dpo_lr", "dpo_beta", "clip")},
    **{k: (lambda v: v >= 0, "0 or more") for k in (
        "kl_beta", "sweep_beta", "vf_coef", "ptx_coef", "threads")},
    **{k: (fraction, "a number from 0 to 1") for k in ("gamma", "gae_lambda")},
}


def load_instruct(preset: str, cli: dict[str, str]) -> tuple[InstructConfig, str]:
    """The preset's settings with the command line's {key: text} overrides, checked, and the
    preset's name."""
    path = preset_file("instruct", preset, "instruct preset")
    values = read_toml(str(path), "instruct preset")
    return typed(InstructConfig, values, cli, str(path)), path.stem
