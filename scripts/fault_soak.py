"""Fault soak (issue 12): kill -9 train, prepare and a study at random moments, resume after
every kill, and check that the end result is the uninterrupted run's, nothing duplicated or
lost; then try a list of bad inputs and record how each one ends.

    OMP_NUM_THREADS=1 python scripts/fault_soak.py [--kills=30] [--seed=0]

Tiny models on a synthetic corpus, in a temporary folder; a few minutes on two cores. Prints
the figures quoted in docs/reliability.md; exits 1 if any check fails.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
WORDS = ("the king queen lord lady love death night day sword crown heart blood sweet fair good "
         "my thy thou art shall will not what why how come go speak hear see").split()
TINY = ["--n_layer=2", "--n_head=2", "--n_embd=32", "--block_size=32", "--batch_size=4",
        "--warmup_iters=2", "--eval_batches=2", "--dtype=float32", "--threads=1", "--seed=3"]
# the only fields of metrics.jsonl that may differ between runs (wall_s: evaluations carry the
# time into the run since commit 8153891)
TIMING = ("tok_per_s", "mfu", "wall_s")
STUDY_PLAN = """description = "fault soak"
dataset = "{corpus}"
block_size = 32
batch_size = 4
tokens = [3000]
evals = 3
[train]
warmup_iters = 2
eval_batches = 2
dtype = "float32"
[lr]
"2x24" = 1e-2
"2x32" = 1e-2
"2x48" = 1e-2
"""


def write_corpus(folder: Path, lines: int, seed: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    for i in range(3):
        text = "\n".join(" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 9))).capitalize()
                         + rng.choice(".,;!?") for _ in range(lines))
        (folder / f"work{i}.txt").write_text(text + "\n")
    return folder


class Soak:
    def __init__(self, work: Path, rng: random.Random):
        self.work, self.rng = work, rng
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1",
                    "TINYGPT_CACHE": str(work / "cache"), "WANDB_MODE": "disabled"}
        self.failures: list[str] = []
        self.kills: dict[str, dict[str, int]] = {}

    def start(self, *argv: str, **kw) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "model.cli", *argv], cwd=self.work,
                                env={**self.env, **kw.pop("env", {})}, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True, start_new_session=True, **kw)

    def finish(self, *argv: str) -> float:
        """Run a command to its end; its wall time."""
        t0 = time.perf_counter()
        proc = self.start(*argv)
        _, err = proc.communicate()
        if proc.returncode:
            self.fail(f"{' '.join(argv[:1])} ended with {proc.returncode}: {err.strip()[-300:]}")
        return time.perf_counter() - t0

    def kill(self, proc: subprocess.Popen, what: str, moment: str, within: float,
             watch: Path | None = None) -> bool:
        """kill -9 proc at a random time within `within` s, or the moment `watch` appears (a
        write in progress). Counts the kill under what/moment; False if proc ended first."""
        deadline = time.perf_counter() + (within if watch else self.rng.uniform(0, within))
        hit = False
        while time.perf_counter() < deadline and proc.poll() is None:
            if watch is not None and watch.exists():
                hit = True
                break
            if watch is None:
                time.sleep(0.005)
        if proc.poll() is not None:
            proc.communicate()
            return False
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        label = f"{moment} (caught mid-write)" if hit else "random moment"
        self.kills.setdefault(what, {}).setdefault(label, 0)
        self.kills[what][label] += 1
        return True

    def fail(self, message: str) -> None:
        self.failures.append(message)
        print(f"  FAIL: {message}", flush=True)


def curve(out: Path) -> list[dict]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


def same_weights(a: Path, b: Path) -> bool:
    x, y = (torch.load(p, weights_only=True)["model"] for p in (a, b))
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


def soak_train(s: Soak, corpus: Path, kills: int) -> None:
    args = ["train", f"--dataset={corpus}", *TINY, "--max_iters=40", "--eval_interval=8",
            "--log_interval=2", "--init_from=auto"]
    wall = s.finish(*args, f"--out_dir={s.work / 'train-ref'}")
    out = s.work / "train-soak"
    moments = [("random", None), ("checkpoint write", out / "ckpt.pt.tmp"),
               ("metrics rewrite", out / "metrics.jsonl.tmp")]
    done = 0
    while done < kills:
        moment, watch = moments[done % len(moments)]
        done += s.kill(s.start(*args, f"--out_dir={out}"), "train", moment, wall, watch)
    s.finish(*args, f"--out_dir={out}")
    ref, got = curve(s.work / "train-ref"), curve(out)
    if got != ref:
        s.fail(f"train: metrics differ from the uninterrupted run ({len(got)} rows vs {len(ref)})")
    if not same_weights(s.work / "train-ref" / "ckpt.pt", out / "ckpt.pt"):
        s.fail("train: final weights differ from the uninterrupted run")
    print(f"train: {kills} kills, {len(got)} metric rows identical to the uninterrupted run's: "
          f"{got == ref}", flush=True)


def soak_prepare(s: Soak, corpus: Path, kills: int) -> None:
    args = ["prepare", f"--dataset={corpus}"]
    wall = s.finish(*args, f"--data_root={s.work / 'data-ref'}")
    done = 0
    while done < kills:
        done += s.kill(s.start(*args, f"--data_root={s.work / 'data-soak'}"), "prepare",
                       "random", wall)
    s.finish(*args, f"--data_root={s.work / 'data-soak'}")
    ref, got = (sorted(p.relative_to(d) for p in d.rglob("*") if p.is_file())
                for d in (s.work / "data-ref", s.work / "data-soak"))
    same = ref == got and all((s.work / "data-ref" / p).read_bytes()
                              == (s.work / "data-soak" / p).read_bytes() for p in ref)
    if not same:
        s.fail(f"prepare: files differ from an uninterrupted prepare ({got} vs {ref})")
    print(f"prepare: {kills} kills, prepared files byte-identical, no temporary folder left: "
          f"{same}", flush=True)


def soak_study(s: Soak, corpus: Path, kills: int) -> None:
    plan = s.work / "soak-plan.toml"
    plan.write_text(STUDY_PLAN.format(corpus=corpus))
    args = ["study", f"--preset={plan}"]
    wall = s.finish(*args, f"--out={s.work / 'study-ref'}")
    done = 0
    while done < kills:
        done += s.kill(s.start(*args, f"--out={s.work / 'study-soak'}"), "study", "random", wall)
    s.finish(*args, f"--out={s.work / 'study-soak'}")
    runs = sorted(p.parent.name for p in (s.work / "study-ref").glob("*/summary.json"))
    same = runs == sorted(p.parent.name for p in (s.work / "study-soak").glob("*/summary.json"))
    for run in runs if same else []:
        a, b = (json.loads((s.work / d / run / "summary.json").read_text())
                for d in ("study-ref", "study-soak"))
        same &= a["val_loss"] == b["val_loss"] and a["steps"] == b["steps"]
        same &= curve(s.work / "study-ref" / run) == curve(s.work / "study-soak" / run)
    if not same:
        s.fail("study: runs, summaries or curves differ from the uninterrupted study")
    print(f"study: {kills} kills, {len(runs)} runs with summaries and curves identical: {same}",
          flush=True)


def bad_inputs(s: Soak, corpus: Path) -> list[tuple[str, str, str]]:
    """(input, expected, outcome) for each bad input tried."""
    w = s.work
    run = w / "bad-run"
    s.finish("train", f"--dataset={corpus}", *TINY, "--max_iters=2", "--eval_interval=1",
             f"--out_dir={run}")
    edited = w / "edited"
    shutil.copytree(corpus, edited)
    s.finish("train", f"--dataset={edited}", *TINY, "--max_iters=2", "--eval_interval=1",
             f"--out_dir={w / 'edited-run'}")
    for f in edited.iterdir():
        f.write_text(f.read_text().replace("a", "x"))
    state = torch.load(run / "ckpt.pt", weights_only=True)
    state.pop("optimizer")
    (w / "no-opt").mkdir()
    torch.save(state, w / "no-opt" / "ckpt.pt")
    (w / "noise").mkdir()
    (w / "noise" / "ckpt.pt").write_bytes(os.urandom(4096))
    (w / "a-folder").mkdir()
    (w / "bad.toml").write_text("max_iters = [")
    (w / "rich.txt").write_text("".join(chr(0x20000 + i) for i in range(70_000)) * 2)
    damaged = w / "damaged-study"
    shutil.copytree(w / "study-ref", damaged)
    next(damaged.glob("*/summary.json")).write_text('{"val_loss": ')
    train = ["train", f"--dataset={corpus}", *TINY, "--max_iters=2", f"--out_dir={w / 'x'}"]
    sample = ["sample", f"--out_dir={run}", "--max_new_tokens=20"]
    memory = 3 << 30
    cases = [
        ("train --seed=-1", [*train, "--seed=-1"], {}),
        ("train --seed=99999999999999999999999", [*train, "--seed=99999999999999999999999"], {}),
        ("train --threads=100000", [*train, "--threads=100000"], {}),
        ("train --weight_decay=inf", [*train, "--weight_decay=inf"], {}),
        ("train --max_iters=ten", [*train, "--max_iters=ten"], {}),
        ("train --bogus=1", [*train, "--bogus=1"], {}),
        ("train a config path that is a folder", ["train", str(w / "a-folder")], {}),
        ("train a config that is not TOML", ["train", str(w / "bad.toml")], {}),
        ("train --init_from=resume, no checkpoint", [*train, "--init_from=resume"], {}),
        ("train resume on an edited corpus (same vocabulary size)",
         ["train", f"--dataset={edited}", *TINY, "--max_iters=4", "--eval_interval=1",
          f"--out_dir={w / 'edited-run'}", "--init_from=resume"], {}),
        ("train resume from a checkpoint without optimizer state",
         [*train[:-1], f"--out_dir={w / 'no-opt'}", "--init_from=resume"], {}),
        ("train --n_embd=40000 --n_head=1 under ulimit -v 3G",
         [*train, "--n_embd=40000", "--n_head=1", "--n_layer=1"], {"memory": memory}),
        ("sample --seed=-1", [*sample, "--seed=-1"], {}),
        ("sample --temperature=1e-45", [*sample, "--temperature=1e-45"], {}),
        ("sample --top_p=0", [*sample, "--top_p=0"], {}),
        ("sample a checkpoint of random bytes", ["sample", f"--out_dir={w / 'noise'}"], {}),
        ("bench --fixed_minutes=nan", ["bench", "--fixed_minutes=nan"], {}),
        ("bench --threads=100000", ["bench", "--threads=100000"], {}),
        ("prepare a corpus of 70,000 distinct characters",
         ["prepare", f"--dataset={w / 'rich.txt'}"], {}),
        ("prepare --tokenizer=gpt2 with HOME=/dev/null", ["prepare", "--tokenizer=gpt2"],
         {"env": {"HOME": "/dev/null", "TINYGPT_CACHE": ""}}),
        ("report on a study with a damaged summary.json", ["report", str(damaged)], {}),
        ("study resumed with a damaged summary.json",
         ["study", f"--preset={w / 'soak-plan.toml'}", f"--out={damaged}"], {}),
        ("sample --max_new_tokens=100000000000 --stop=e (accepted)",
         [*sample[:-1], "--max_new_tokens=100000000000", "--stop=e"], {"ok": True}),
        ("sample --ckpt=RUN_FOLDER (accepted)", ["sample", f"--ckpt={run}", "--max_new_tokens=5"],
         {"ok": True}),
    ]
    cases += audit_cases(s, corpus, run, train)  # issue 28
    results = []
    for label, argv, opts in cases:
        limit = opts.get("memory")
        kept = {f: f.read_bytes() for f in opts.get("kept", ())}
        proc = s.start(*argv, env=opts.get("env", {}), preexec_fn=(
            (lambda: resource.setrlimit(resource.RLIMIT_AS, (limit, limit))) if limit else None))
        _, err = proc.communicate()
        got = outcome(proc.returncode, err)
        if any(f.read_bytes() != b for f, b in kept.items()):  # a damaged file is left as it is
            got += ", but the damaged file was changed"
        results.append((label, "accepted" if opts.get("ok") else "one-line error", got))
    # a second train on an out_dir a first one is training in
    first = s.start(*train[:-2], "--max_iters=400", f"--out_dir={w / 'busy'}")
    while first.poll() is None and not (w / "busy" / "train.lock").exists():
        time.sleep(0.01)
    second = s.start(*train[:-1], f"--out_dir={w / 'busy'}", "--init_from=auto")
    _, err = second.communicate()
    os.killpg(first.pid, signal.SIGKILL)
    first.communicate()
    results.append(("a second train in a busy out_dir", "one-line error",
                    outcome(second.returncode, err)))
    return results


DAMAGE = {"truncated": b'{"name": "x", "val_lo', "garbled": b"\xff\xfe\x00{[",
          "of the wrong type": b"[1, 2]"}


def audit_cases(s: Soak, corpus: Path, run: Path, train: list[str]) -> list:
    """Issue 28's cases: every JSON state file a study or a resume reads, damaged three ways
    (one line, the file kept as it is), and the audit's other bad inputs."""
    w, cases = s.work, []
    plan = w / "soak-plan.toml"
    for i, (name, damage) in enumerate(DAMAGE.items()):
        for state, command in (("plan.json", "report"), ("summary.json", "report"),
                               ("timing.json", "study")):
            study = w / f"damaged-{state}-{i}"
            shutil.copytree(w / "study-ref", study)
            path = next(study.glob(f"*/{state}")) if state == "summary.json" else study / state
            path.write_bytes(damage)
            argv = (["report", str(study)] if command == "report"
                    else ["study", f"--preset={plan}", f"--out={study}"])
            cases.append((f"{command} with {state} {name}", argv, {"kept": [path]}))
    lines = {"a [1, 2] line": b"[1, 2]\n", "a non-UTF-8 byte": b'{"step": 1}\xff\n',
             'a "step": "ten" line': b'{"step": "ten", "val_loss": 1.0}\n'}
    for i, (name, line) in enumerate(lines.items()):
        folder = w / f"metrics-{i}"
        shutil.copytree(run, folder)
        (folder / "metrics.jsonl").write_bytes(line + (run / "metrics.jsonl").read_bytes())
        cases.append((f"train resumed on metrics.jsonl with {name}",
                      [*train[:-2], "--max_iters=4", f"--out_dir={folder}", "--init_from=resume"],
                      {"kept": [folder / "metrics.jsonl"]}))
    other = w / "same-chars"  # another corpus of the same characters
    shutil.copytree(corpus, other)
    (other / "work0.txt").write_text((other / "work1.txt").read_text())
    bad_plans = {"seeds = [true]": ("tokens", "seeds = [true]\ntokens"),
                 'name = "../../escaped"': ("tokens", 'name = "../../escaped"\ntokens'),
                 "evals = 1": ("evals = 3", "evals = 1"),
                 "[train] max_iters": ("[train]", "[train]\nmax_iters = 5")}
    for label, (old, new) in bad_plans.items():
        path = w / f"plan-{len(cases)}.toml"
        path.write_text(plan.read_text().replace(old, new, 1))
        cases.append((f"study with a plan of {label}", ["study", f"--preset={path}",
                                                        f"--out={w / 'never'}"], {}))
    os.mkfifo(w / "fifo")
    (w / "dangling").symlink_to(w / "nowhere")
    return cases + [
        ("prepare --dataset=data (prepared data only)", ["prepare", "--dataset=data"], {}),
        ("train resume onto another corpus of the same characters",
         [*train[:-2], "--max_iters=4", f"--dataset={other}", f"--out_dir={run}",
          "--init_from=resume"], {}),
        ("report --preset=quick on another plan's study",
         ["report", str(w / "study-ref"), "--preset=quick"], {}),
        ("prepare --dataset=<a FIFO>", ["prepare", f"--dataset={w / 'fifo'}"], {}),
        ("train with RANK=0 and no torchrun", train, {"env": {"RANK": "0"}}),
        ("fewshot RUN --out=RUN", ["fewshot", str(run), f"--out={run}"], {}),
        ("train --out_dir=<a dangling link>", [*train[:-1], f"--out_dir={w / 'dangling'}"], {}),
        ("train --warmup_iters=1000000 (accepted, with a warning)",
         [*train[:-1], f"--out_dir={w / 'warm'}", "--warmup_iters=1000000"], {"ok": True}),
    ]


def outcome(code: int, err: str) -> str:
    # (a notice such as "tinygpt: data/x was prepared from an older x" may come first)
    lines = [line for line in err.strip().splitlines() if not line.startswith("tinygpt: ")]
    if code == 0:
        return "accepted"
    if code < 0:
        return f"killed by signal {-code}"
    if "Traceback" in err:
        return "traceback"
    if code == 2 and len(lines) == 1 and lines[0].startswith("error: "):
        return "one-line error"
    return f"exit {code}, {len(lines)} lines"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kills", type=int, default=30, help="kill -9s in all (half in train)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--keep", action="store_true", help="keep the work folder")
    a = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tinygpt-soak-"))
    s = Soak(work, random.Random(a.seed))
    t0 = time.perf_counter()
    corpus = write_corpus(work / "corpus", 400)
    n_train = a.kills // 2
    n_prepare = (a.kills - n_train) // 2
    soak_train(s, corpus, n_train)
    soak_prepare(s, write_corpus(work / "big-corpus", 40_000, seed=1), n_prepare)
    soak_study(s, corpus, a.kills - n_train - n_prepare)
    print("kills:", json.dumps(s.kills, indent=1))
    results = bad_inputs(s, corpus)
    width = max(len(label) for label, *_ in results)
    for label, expected, got in results:
        mark = "ok " if got == expected else "BAD"
        print(f"  {mark} {label:<{width}}  {got}")
        if got != expected:
            s.fail(f"{label}: expected {expected}, got {got}")
    good = sum(got == expected for _, expected, got in results)
    print(f"bad inputs: {good} of {len(results)} ended as expected")
    print(f"{len(s.failures)} failures in {time.perf_counter() - t0:.0f} s (work folder {work})")
    if not a.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if s.failures else 0


if __name__ == "__main__":
    sys.exit(main())
