"""fewshot.md: the few-shot section of the study report, written from results.json."""
from __future__ import annotations

from pathlib import Path

from ..common.icl import INDUCTION_FORMED, WEAK_FACTOR
from ..common.tasks import END, SEP, TASKS
from .analysis import GAIN_K, beyond_controls, finals, gain, gain_k, tracks, trend

METRIC_NAMES = {"exact_match": "exact match", "loglik_per_char": "log-likelihood per char"}
KIND_NAMES = {"copy": "copy: the answer is the query",
              "recall": "recall: the answer is in the prompt",
              "transform": "transform: a rule named by the examples", "control": "negative control"}


def ci(pair, digits: int = 3) -> str:
    return f"[{pair[0]:.{digits}f}, {pair[1]:.{digits}f}]"


def number(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def setup(results: dict) -> list[str]:
    o = results["options"]
    return [
        "## Few-shot and in-context learning", "",
        f"{o['items']} prompts per task and k (resolution {1 / o['items']:.3f} in exact match), "
        f"seed {o['seed']}, k in {{0, 1, 2, 4, 8, 16}} where the prompt fits the context. Lines "
        f"read `input{SEP}target`, ended by {END!r}; the target and its end of line are scored "
        "by teacher forcing in one forward pass. Exact match: greedy decoding writes every target "
        "character (Wilson 95% interval). Log-likelihood per char: mean over items (normal 95% "
        "interval). Sampled exact match: the mean product of the target characters' "
        "probabilities, the chance that sampling at temperature 1 writes the whole target (not "
        "what greedy exact match predicts: a correct argmax at p = 0.6 over 6 characters gives "
        "greedy exact match 1 and 0.047 here); char accuracy, the mean share of target characters "
        "the argmax gets right, is the continuous metric that greedy exact match follows "
        "(Schaeffer et al. 2023), and EM from char acc the exact match it predicts if characters "
        "are right independently (mean over items of acc^length, the end of line counted). "
        "Chance: a guesser without the skill; for recall, the answer of a random demonstration "
        "(1/k when their answers differ); otherwise the commonest answer every time. "
        f"Gain: score at k={GAIN_K} (or the largest k <= {GAIN_K} that "
        "fits) minus at k=0, on the same queries except for the recall tasks (their k-shot query "
        "is one of the demonstrations, so a different item than at k=0); 95% CI: Newcombe's "
        "interval for exact match (paired where the queries are), paired bootstrap or normal "
        "two-sample interval for log-likelihood. Trend: least-squares slope of the gain per "
        "decade of non-embedding N, t 95% CI from the models' scatter about the line (one seed "
        "and learning rate per size, so the scatter between models counts, not only item noise). "
        "Shuffled: the "
        "same demonstrations with their targets permuted among themselves.", ""]


def task_table(models: list[dict], name: str) -> list[str]:
    k = gain_k(models, name)
    head = (f"| model | N | val loss | EM k=0 | EM k={k} | chance k={k} | EM gain | "
            f"sampled EM k={k} | char acc k={k} | EM from char acc k={k} | EM k={k} shuffled | "
            f"loglik k=0 | loglik k={k} | loglik gain |")
    lines = [head, "|---|---:|---:|---|---|---:|---|---:|---:|---:|---:|---:|---:|---|"]
    paired = not TASKS[name].recall
    for m in models:
        r = m["tasks"][name]
        lo, hi = r["k"]["0"], r["k"][str(k)]
        shuffled = r["shuffled"].get(str(k))
        shuffled = f"{shuffled['exact_match']:.3f}" if shuffled else "n/a"
        ge, gl = gain(r, k, "exact_match", paired), gain(r, k, "loglik_per_char", paired)
        lines.append(
            f"| {m['run']} | {m['n_nonemb']:,} | {number(m['val_loss'])} | "
            f"{lo['exact_match']:.3f} {ci(lo['exact_ci'])} | "
            f"{hi['exact_match']:.3f} {ci(hi['exact_ci'])} | {number(hi.get('chance'))} | "
            f"{ge['value']:+.3f} {ci(ge['ci'])} | {hi['predicted_exact']:.3f} | "
            f"{hi['char_accuracy']:.3f} | {number(hi.get('exact_from_chars'))} | {shuffled} | "
            f"{lo['loglik_per_char']:.3f} | "
            f"{hi['loglik_per_char']:.3f} | {gl['value']:+.3f} {ci(gl['ci'])} |")
    return lines


def trend_line(t: dict | None, metric: str) -> str:
    if t is None:
        return f"- {METRIC_NAMES[metric]}: needs at least three sizes"
    return (f"- {METRIC_NAMES[metric]}: gain from k=0 to k={t['k']} **{t['verdict']}** with N "
            f"(slope {t['slope']:+.3f} per decade {ci(t['ci'])}; gains "
            + ", ".join(f"{g:+.3f}" for g in t["gains"]) + ")")


def task_sections(models: list[dict], names: list[str]) -> tuple[list[str], dict]:
    lines, trends = [], {"exact_match": {}, "loglik_per_char": {}}
    for name in names:
        task = TASKS[name]
        unseen = ", the answer never in the prompt" if task.unseen else ""
        lines += [f"### {name} ({KIND_NAMES[task.kind]}{unseen})", "", task.about, ""]
        if gain_k(models, name) is None:
            lines += ["No k between 1 and 8 fits every model's context.", ""]
            continue
        lines += task_table(models, name) + [""]
        for metric in trends:
            trends[metric][name] = trend(models, name, metric)
            lines.append(trend_line(trends[metric][name], metric))
        lines.append("")
    return lines, trends


def verdicts(trends: dict, names: list[str]) -> list[str]:
    controls = {n for n in names if TASKS[n].control}
    lines = ["### Does the in-context gain grow with N?", ""]
    for metric, by_task in trends.items():
        found = beyond_controls(by_task, controls)
        shown = ", ".join(f"{n} ({t['verdict']})" for n, t in by_task.items()
                          if n in controls and t) or "none evaluated"
        lines.append(f"- {METRIC_NAMES[metric]}: {len(found)} task(s) beyond the controls: "
                     f"{', '.join(found) or 'none'}. Controls: {shown}. "
                     f"Goal (at least two): {'met' if len(found) >= 2 else 'not met'}.")
    return lines + ["", "A task counts when the lower 95% bound of its slope is above zero, so is "
                    "that of the slope of its gain minus each control's gain (model by model), "
                    "and the largest model's gain is above zero (lower 95% bound).", ""]


def instruments(models: list[dict]) -> list[str]:
    if not models:
        return []
    icl, ind = models[0]["icl"], models[0]["induction"]
    lines = ["### In-context instruments", "",
             f"ICL score: mean loss at token {icl['late']} minus at token {icl['early']} over "
             f"{icl['windows']} held-out windows (Olsson et al.'s 500 vs 50 of 512, scaled), "
             "bootstrap 95% CI; negative means later tokens are predicted better. Prefix matching "
             f"(Olsson et al.): {ind['length']} distinct random tokens, neither among the most nor "
             f"the least common, repeated {ind.get('repeats', 2)} times; per head, the mean attention "
             "from each token past the first copy to the tokens after its earlier occurrences; "
             f"uniform causal attention scores {ind['chance']:.4f} (chance). Induction heads: "
             f"**yes** if the best head scores >= {INDUCTION_FORMED}, **weak** if >= {WEAK_FACTOR}x "
             "chance. Repeats: loss on the first copy → the later copies of those random tokens, and "
             "of held-out text repeated once (half a context each); the copy gain (first minus "
             "later) is what copying from context is worth, while the later copy's loss alone "
             "also falls as a model learns which tokens are common.", "",
             "| model | N | ICL score | best prefix matching (layer.head) | induction heads | "
             "random repeat 1st → later (gain) | text repeat 1st → 2nd (gain) |",
             "|---|---:|---|---|---|---|---|"]
    for m in models:
        i, c = m["induction"], m["icl"]
        layer, head = i["best_head"]
        lines.append(f"| {m['run']} | {m['n_nonemb']:,} | {c['score']:+.3f} {ci(c['ci'])} | "
                     f"{i['best']:.3f} ({layer}.{head}) | {i['formed']} | "
                     f"{arrow(i['repeat_loss'])} | {arrow(i.get('text_repeat_loss'))} |")
    formed = [m["run"] for m in models if m["induction"]["formed"] == "yes"]
    return lines + ["", f"Induction heads formed in: {', '.join(formed) or 'none'}.", ""]


def arrow(pair: list[float] | None) -> str:
    """first → second (first minus second), or a dash for results written before the text
    repeat was measured."""
    return f"{pair[0]:.2f} → {pair[1]:.2f} ({pair[0] - pair[1]:+.2f})" if pair else "—"


def copy_gain(m: dict) -> float:
    """First-copy minus later-copy loss on the random repeated probe."""
    first, later = m["induction"]["repeat_loss"]
    return first - later


def over_training(models: list[dict]) -> list[str]:
    runs = tracks(models)
    if not runs:
        return []
    lines = ["### Over training", "", "| run | checkpoints | best prefix matching, first → max "
             "(step) | ICL score first → last | random-repeat copy gain first → last | "
             "text repeat, last checkpoint |", "|---|---:|---|---|---|---|"]
    for run, ms in runs.items():
        best = max(ms, key=lambda m: m["induction"]["best"])
        lines.append(f"| {run} | {len(ms)} | {ms[0]['induction']['best']:.3f} → "
                     f"{best['induction']['best']:.3f} ({best['step']}) | "
                     f"{ms[0]['icl']['score']:+.3f} → {ms[-1]['icl']['score']:+.3f} | "
                     f"{copy_gain(ms[0]):+.2f} → {copy_gain(ms[-1]):+.2f} | "
                     f"{arrow(ms[-1]['induction'].get('text_repeat_loss'))} |")
    return lines + ["", "A phase change shows as a jump of the prefix-matching score together "
                    "with a drop of the ICL score and a rise of the copy gain (icl_tracks.png).",
                    ""]


def write_section(results: dict, out: Path) -> Path:
    models = finals(results["models"])
    names = list(results["options"]["tasks"])
    body, trends = task_sections(models, names)
    lines = setup(results) + (verdicts(trends, names) if names else []) + body
    lines += instruments(models) + over_training(results["models"])
    lines += ["Figures: fewshot_vs_k_*.png, fewshot_vs_n_*.png, fewshot_vs_val_loss_*.png, "
              "instruments_vs_n.png, loss_by_position.png, icl_tracks.png (several checkpoints "
              "of a run); each also as SVG.", ""]
    path = out / "fewshot.md"
    path.write_text("\n".join(lines))
    return path
