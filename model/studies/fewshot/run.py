"""`tinygpt fewshot <checkpoints...>`: every task at every k, the controls and the
in-context instruments for each checkpoint; then results.json, figures and fewshot.md.

The tasks run on the last checkpoint of each run (the points of the metric-vs-N plots);
the cheaper instruments run on every checkpoint given, so several ckpt_<step>.pt of a run
trace them over training. Python API: evaluate_checkpoint(path, options) for one
checkpoint, run_fewshot(paths, out, options) for a set. Results are written after every
checkpoint and reused on a rerun with the same options: an interrupted evaluation picks up
where it stopped.
"""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

from ...data.prepare import held_out_text, held_out_tokens, prepare, prepared_meta
from ...data.tokenizer import check_same_vocab
from ...errors import UserError, make_dir
from ...files import REDO, read_json, write_json
from ...train.checkpoint import file_of, load_model, tokenizer_of
from ...train.device import pick_device, set_threads
from ...train.train_config import TrainConfig
from ..common.icl import icl_score, induction_probe, loss_by_position, probe_pool, text_repeat_loss
from ..common.task_scoring import Options, evaluate_tasks
from .fewshot_options import FewshotArgs, parse_tasks
from .fewshot_plots import write_figures
from .fewshot_section import write_section


def prepared_corpus(path: Path, state: dict, dataset: str = "") -> Path:
    """The prepared data of the corpus the checkpoint at path was trained on, or of dataset
    if given (prepared now where it is not yet), refused unless its vocabulary is the
    checkpoint's: an edited corpus would be scored under other ids."""
    trained = state["train_config"]
    if not dataset:
        dataset = trained["dataset"]
        local = not (dataset == "shakespeare" or dataset.startswith("hf:"))
        if local and not Path(dataset).exists():  # a relative path, from another folder
            raise UserError(f"corpus {dataset} (the path {path} was trained with) does not exist "
                            f"from {Path.cwd()}; run from the folder it was trained in, or "
                            "pass --dataset=<the corpus>")
    folder = prepare(dataset, state["tokenizer"]["kind"],
                     trained.get("data_root", TrainConfig.data_root))
    check_same_vocab(state["tokenizer"], prepared_meta(folder)["tokenizer"],
                     f"the corpus {dataset}", f"restore the text {path} was trained on")
    return folder


def checkpoint_identity(path: Path, model, state: dict) -> dict:
    """Who a checkpoint is: its run, step, N and val loss (the run's final full-split value
    from summary.json when this is the final step, else the value logged at this step)."""
    summary_file = path.parent / "summary.json"
    summary = read_json(summary_file) if summary_file.exists() else {}
    final = summary.get("steps") == state["step"]
    return {"checkpoint": str(path), "mtime": path.stat().st_mtime,
            "run": summary.get("name", path.parent.name), "step": state["step"],
            "n_nonemb": model.num_params(), "block_size": model.cfg.block_size,
            "n_layer": model.cfg.n_layer,
            "val_loss": summary["val_loss"] if final else state.get("val_loss")}


def evaluate_checkpoint(path: str | Path, opts: Options = Options(),
                        with_tasks: bool = True, dataset: str = "") -> dict:
    """Every number of the study for one checkpoint: task scores (unless with_tasks is False)
    and the in-context instruments, on the held-out text of dataset (default: the corpus the
    checkpoint names)."""
    t0 = time.perf_counter()
    path = Path(path)
    model, state = load_model(path, opts.device)
    entry = checkpoint_identity(path, model, state)
    tokenizer = tokenizer_of(state, path)
    folder = prepared_corpus(path, state, dataset)
    text = held_out_text(folder)
    entry["tasks"] = evaluate_tasks(model, tokenizer, text, opts) if with_tasks else {}
    tokens = held_out_tokens(folder)
    losses = loss_by_position(model, tokens, opts.windows, device=opts.device)
    entry["icl"] = {**icl_score(losses, opts.seed),
                    "loss_by_position": losses.mean(0).round(5).tolist()}
    pool = probe_pool(tokens, model.cfg.vocab_size)
    entry["induction"] = induction_probe(model, pool, seed=opts.seed, device=opts.device)
    text = text_repeat_loss(model, tokens, device=opts.device)
    entry["induction"]["text_repeat_loss"] = [text["first"], text["second"]]
    entry["seconds"] = time.perf_counter() - t0
    return entry


def checkpoint_paths(args: list[str], out: Path) -> list[Path]:
    """Files as given; a run folder stands for its final ckpt.pt. The output folder is left
    out: `out/study-laptop/*/` matches it once the study's fewshot/ folder exists."""
    paths = []
    for a in args:
        if Path(a).resolve() != out.resolve():
            paths.append(file_of(a))
        elif file_of(a).is_file():  # a run folder, not the glob's output folder
            raise UserError(f"--out={out} is the run folder given to evaluate; give the few-shot "
                            "results a folder of their own")
    if not paths:
        raise UserError("no checkpoint to evaluate (the only folder given is --out); give run "
                        "folders or checkpoint files")
    return paths


def previous_results(path: Path, opts: Options) -> dict[tuple[str, float], dict]:
    """Entries of an earlier run with the same options, by (checkpoint, modification time)."""
    if not path.exists():
        return {}
    old = read_json(path, keys=("options", "models"))
    if old["options"] != json.loads(json.dumps(dataclasses.asdict(opts))):
        return {}
    try:
        return {(e["checkpoint"], e["mtime"]): e for e in old["models"]}
    except (TypeError, KeyError):
        raise UserError(f"{path} is damaged (a model's entry without its checkpoint and "
                        f"time); {REDO}") from None


def last_of_each_run(paths: list[Path]) -> set[Path]:
    """Per run folder, the checkpoint the tasks run on: ckpt.pt (the trainer rewrites it at
    every evaluation, so it is the latest) or else the highest-numbered ckpt_<step>.pt."""
    runs: dict[Path, list[Path]] = {}
    for p in paths:
        runs.setdefault(p.parent, []).append(p)
    return {max(ps, key=lambda p: (p.name == "ckpt.pt", p.name)) for ps in runs.values()}


def run_fewshot(paths: list[Path], out: Path, opts: Options = Options(),
                every_checkpoint: bool = False, dataset: str = "") -> dict:
    """Instruments on every checkpoint, tasks on the last of each run (or on every one), once
    per run and step; then the figures and fewshot.md."""
    make_dir(out, "out")
    cached = previous_results(out / "results.json", opts)
    with_tasks = set(paths) if every_checkpoint else last_of_each_run(paths)
    results, kept = {"options": dataclasses.asdict(opts), "models": []}, {}
    for i, path in enumerate(paths, 1):
        wants_tasks = path in with_tasks and bool(opts.tasks)
        entry = cached.get((str(path), path.stat().st_mtime if path.exists() else None))
        if entry is None or (wants_tasks and not entry["tasks"]):
            entry = evaluate_checkpoint(path, opts, wants_tasks, dataset)
        key = (entry["run"], entry["step"])
        # ckpt.pt repeats its run's last ckpt_<step>.pt: keep one, the one with task scores
        if key not in kept or (entry["tasks"] and not kept[key]["tasks"]):
            kept[key] = entry
        results["models"] = list(kept.values())
        write_json(out / "results.json", results)
        print(f"[{i}/{len(paths)}] {entry['run']} step {entry['step']}: N {entry['n_nonemb']:,}, "
              f"ICL score {entry['icl']['score']:+.3f}, best prefix-matching "
              f"{entry['induction']['best']:.3f}{', tasks' if entry['tasks'] else ''} "
              f"({entry['seconds']:.0f} s)", flush=True)
    write_figures(results, out)
    print(f"results: {out / 'results.json'}\nreport: {write_section(results, out)}")
    return results


def main(a: FewshotArgs) -> None:
    """`tinygpt fewshot <checkpoints...>`: the study of the given checkpoints into a.out."""
    set_threads(a.threads)
    opts = Options(a.items, a.seed, parse_tasks(a.tasks), a.windows, a.batch_size,
                   pick_device(a.device))
    out = Path(a.out)
    run_fewshot(checkpoint_paths(list(a.checkpoints), out), out, opts, a.every_checkpoint,
                a.dataset)
