"""The few-shot tasks run by lm-evaluation-harness, offline: a cross-check of our scorer.

Each case (task, k, shuffled control) becomes an lm-eval task file over a local JSON-lines
file of its prompts, of output type loglikelihood: lm-eval's log-likelihood of the target
after the context is our summed log-probability, and its is_greedy (every target token the
argmax) our exact match. lm-eval runs the run exported to transformers (model/export/hf_folder.py)
through its own Hugging Face backend, so no tinygpt code computes its numbers. One change to
that backend: it moves a context's trailing spaces into the continuation, and our prompts end
in ": " with the target after the space; TinygptHF keeps the split where the task file puts it.
The modern block, which transformers lacks, cannot be cross-checked this way.
"""
from __future__ import annotations

import functools
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ...data.prepare import held_out_text
from ...errors import UserError
from ...export.hf_folder import export
from ...files import write_atomic, write_json
from ...infer.sampler import start_token
from ...train.checkpoint import file_of, load_model, tokenizer_of
from ...train.device import set_threads
from ..common.task_scoring import Options, prompt_groups, score_prompts
from .fewshot_options import LmEvalArgs, parse_ks, parse_tasks
from .run import prepared_corpus

TOLERANCE = 1e-4  # nats: what "equal" means for a log-likelihood summed over a target


def task_name(task: str, k: int, shuffled: bool) -> str:
    return f"tinygpt_{task}_k{k}" + ("_shuffled" if shuffled else "")


def write_tasks(folder: Path, groups: list) -> list[str]:
    """One lm-eval task file (JSON, which YAML reads) and its data per case; their names."""
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for task, k, shuffled, prompts in groups:
        name = task_name(task, k, shuffled)
        rows = "".join(json.dumps({"context": p.context, "target": p.target}) + "\n"
                       for p in prompts).encode()
        write_atomic(folder / f"{name}.jsonl", lambda f: f.write(rows), f"{name}.jsonl")
        write_json(folder / f"{name}.yaml", {
            "task": name, "dataset_path": "json", "test_split": "train",
            "dataset_kwargs": {"data_files": {"train": str((folder / f"{name}.jsonl").resolve())}},
            "output_type": "loglikelihood",
            # column names, read as they are (no template rendering, no stripping)
            "doc_to_text": "context", "doc_to_target": "target", "target_delimiter": "",
            "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True}]})
        names.append(name)
    return names


@functools.cache
def backend() -> str:
    """lm-eval's Hugging Face backend with our split of context and target, registered once."""
    from lm_eval.api.registry import register_model
    from lm_eval.models.huggingface import HFLM

    @register_model("tinygpt-hf")
    class TinygptHF(HFLM):
        def _encode_pair(self, context: str, continuation: str):
            return self.tok_encode(context), self.tok_encode(continuation)

    return "tinygpt-hf"


def lm_eval_scores(model_dir: Path, task_dir: Path, names: list[str], batch_size: int,
                   start: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per task, lm-eval's log-likelihood and is_greedy of every prompt, in file order. start
    is the token an empty context would begin with (the backend asks for one; a character
    vocabulary has no end-of-text to default to)."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    results = lm_eval.simple_evaluate(
        model=backend(), model_args={"pretrained": str(model_dir), "dtype": "float32",
                                     "prefix_token_id": start},
        device="cpu", tasks=names, task_manager=TaskManager(include_path=str(task_dir)),
        batch_size=batch_size, log_samples=True, bootstrap_iters=0)
    out = {}
    for name in names:
        samples = sorted(results["samples"][name], key=lambda s: s["doc_id"])
        pairs = [s["resps"][0][0] for s in samples]  # each request's (loglikelihood, is_greedy)
        out[name] = (np.array([p[0] for p in pairs]), np.array([bool(p[1]) for p in pairs]))
    return out


def cross_check(run: str | Path, out: Path, opts: Options, dataset: str = "") -> list[dict]:
    """The tasks of a run scored by our scorer and by lm-eval on its export in out/model (the
    task files in out/tasks); one row per case, also written to out/cross_check.json."""
    if out.exists() and any(out.iterdir()):
        raise UserError(f"{out} is not empty; give --out a new folder")
    path = file_of(run)
    model, state = load_model(path)
    tok = tokenizer_of(state, path)
    export(path, out / "model")  # (refuses the modern block, in one line, before any work)
    text = held_out_text(prepared_corpus(path, state, dataset))
    groups, _ = prompt_groups(tok, text, model.cfg.block_size, opts)
    theirs = lm_eval_scores(out / "model", out / "tasks", write_tasks(out / "tasks", groups),
                            opts.batch_size, start_token(tok))
    rows = []
    for task, k, shuffled, prompts in groups:
        ours = score_prompts(model, tok, prompts, opts.batch_size)
        loglik, greedy = theirs[task_name(task, k, shuffled)]
        rows.append({"task": task, "k": k, "shuffled": shuffled, "n": len(prompts),
                     "exact_match": float(ours["exact"].mean()),
                     "lm_eval_exact_match": float(greedy.mean()),
                     "same_exact": bool((ours["exact"] == greedy).all()),
                     "max_loglik_diff": float(np.abs(ours["logprob"] - loglik).max())})
    write_json(out / "cross_check.json", {"checkpoint": str(path), "options": asdict(opts),
                                          "tolerance": TOLERANCE, "cases": rows})
    return rows


def main(a: LmEvalArgs) -> None:
    """`tinygpt lmeval`: the cross-check, one line per case, refused unless they agree."""
    set_threads(a.threads)
    opts = Options(a.items, a.seed, parse_tasks(a.tasks), batch_size=a.batch_size,
                   ks=parse_ks(a.ks))
    rows = cross_check(a.run, Path(a.out), opts, a.dataset)
    for r in rows:
        print(f"{r['task']} k={r['k']}{' shuffled' if r['shuffled'] else ''}: exact match "
              f"{r['exact_match']:.3f} here, {r['lm_eval_exact_match']:.3f} by lm-eval "
              f"({'same' if r['same_exact'] else 'NOT the same'} items); max |log-likelihood "
              f"difference| {r['max_loglik_diff']:.1e} nats")
    worst = max(r["max_loglik_diff"] for r in rows)
    if worst > TOLERANCE or not all(r["same_exact"] for r in rows):
        raise UserError(f"lm-eval disagrees with tinygpt's scorer (largest log-likelihood "
                        f"difference {worst:.1e} nats, tolerance {TOLERANCE}); see "
                        f"{Path(a.out) / 'cross_check.json'}")
    print(f"lm-eval agrees on {len(rows)} cases: log-likelihoods within {worst:.1e} nats, the "
          f"same exact matches; its task files: {Path(a.out) / 'tasks'}")
