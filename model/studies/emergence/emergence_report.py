"""The emergence report: phase-change plots, transition step against width and depth,
few-shot exact match against N (GPT-3's Figure 1.2 at laptop scale), and the verdicts.

Everything is read back from the study folder (plan.json, each run's metrics.jsonl and
summary.json), so `tinygpt report out/emergence-<preset>` redraws it at any time.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import matplotlib.ticker
import numpy as np

from ...data import shapes
from ...errors import UserError
from ...files import read_json, write_atomic
from ...train.runlog import fmt_time, read_metrics
from ..common.figures import save  # also selects the file-only Agg backend
from ..common.runner import runs_folder
from ..common.tasks import TASKS
from .seeds import by_model, curve_steps, seed_band, transitioned_by
from .transition import FORMED, copy_transition, readings
from .verdicts import (COPY_TASKS, CONTROLS, EM_K, best_prefix, em_at, final_fewshot, name,
                       rule_gains, rule_tasks, shaped, span, verdicts)

LIGHT = ("copy_loss", "prefix_matching")  # also read between evaluations (probe_every)
PANELS = (("copy_loss", "copy loss, synthetic probes (nats)"),
          ("prefix_matching", "best head's prefix matching"),
          ("text_copy_gain", "held-out text: 1st − 2nd copy (nats/token)"),
          ("icl_score", "ICL score, held-out text (nats)"),
          ("train_loss", "training loss (nats)"),
          ("val_loss", "val loss, held-out plays (nats/token)"))


def load(root: Path) -> tuple[dict, list[dict]]:
    """The plan and, per run in the plan's order, its summary and metric rows."""
    plan_file = root / "plan.json"
    if not plan_file.exists():
        raise UserError(f"{root} holds no emergence study (plan.json missing)")
    plan = read_json(plan_file, "run tinygpt study with its preset and --out again: it "
                                "writes plan.json anew and keeps the finished runs")
    runs = []
    for folder in sorted(p.parent for p in runs_folder(root).glob("*/summary.json")):
        summary = read_json(folder / "summary.json")
        rows = read_metrics(folder)
        # the copy probe and prefix matching at every reading (light ones included), the rest
        # of the instruments at the evaluations
        summary["probes"] = readings(rows)
        summary["evals"] = [r for r in summary["probes"] if "val_loss" in r]
        summary["train"] = [r for r in rows if "train_loss" in r]
        # recomputed, not read from summary.json: the detector's definition may have moved on
        summary["transition"] = copy_transition(
            summary["probes"], start=plan.get("train", {}).get("warmup_iters", 100))
        runs.append(summary)
    if not runs:
        raise UserError(f"{root} holds no finished runs yet; run the study first")
    return plan, sorted(runs, key=lambda r: (r.get("natural", False), r["smear"], r["n_layer"],
                                             r["n_embd"], r["seed"]))


def shape_of(plan: dict) -> str:
    """The plan's data shape in words (plan.json of a study from before a field was added
    lacks it)."""
    return shapes.name(plan["repeat_spans"], plan["synthetic"], plan.get("unique_copies", 0),
                       plan.get("synthetic_until", 0))


def label(run: dict, seeded: bool = False) -> str:
    """The model's name, and its seed where the study trained several."""
    return f"{name(run)} s{run['seed']}" if seeded else name(run)


def chance(task: str, k: int) -> float | None:
    """Exact match by chance where it is not ~0: a recall task's answer is one of the k
    demonstrations' (retrieval among k), so picking one at random scores 1/k."""
    return 1 / k if TASKS[task].recall and k > 0 else None


def style(run: dict, widths: list[int]) -> dict:
    """Colour by width, line style by depth (dotted: smeared keys; grey: natural-text control)."""
    if run.get("natural"):
        return dict(color="grey", ls="-.", lw=1.3)
    colour = plt.cm.viridis(np.linspace(0, 0.85, len(widths)))[widths.index(run["n_embd"])]
    ls = ":" if run["smear"] else {1: "--", 2: "-"}.get(run["n_layer"], "-.")
    return dict(color=colour, ls=ls, lw=1.3)


def phase_change(runs: list[dict], widths: list[int], shape: str, folder: Path) -> list[Path]:
    fig, axes = plt.subplots(2, 3, figsize=(14, 7.5), layout="constrained")
    named = set()  # one legend entry per model, however many seeds
    for run in runs:
        ev = run["evals"]
        for ax, (key, _) in zip(axes.flat, PANELS):
            rows = run["train"] if key == "train_loss" else run["probes"] if key in LIGHT else ev
            ax.plot([r["step"] for r in rows], [r[key] for r in rows],
                    label=None if name(run) in named else name(run), **style(run, widths))
        named.add(name(run))
        t = run["transition"]
        if t["step"] is not None:
            axes[0, 0].plot(t["step"], t["plateau"] / 2, "o", ms=5, color=style(run, widths)["color"])
    axes[0, 0].axhline(FORMED, color="grey", ls=":", lw=1)
    # from the data: a natural-text control climbs far above chance, and must not be clipped
    axes[0, 0].set_ylim(0, 1.05 * max(e["copy_loss"] for r in runs for e in r["probes"]))
    axes[0, 1].axhline(runs[0]["evals"][0]["prefix_chance"], color="grey", ls=":", lw=1)
    axes[0, 1].axhline(0.3, color="grey", ls="--", lw=1)
    for ax, (_, title) in zip(axes.flat, PANELS):
        ax.set(xlabel="step", ylabel=title)
    axes[0, 0].legend(fontsize=7, ncol=2)
    fig.suptitle(f"In-context copying over training, trained on {shape}; dots: transition step "
                 f"(copy loss below half its plateau)", fontsize=10)
    return save(fig, folder, "phase_change")


def family(run: dict) -> str:
    return (f"{run['n_layer']} layer{'s' if run['n_layer'] > 1 else ''}"
            f"{', smeared keys' if run['smear'] else ''}"
            f"{', natural text only' if run.get('natural') else ''}")


def families(runs: list[dict]) -> dict[str, list[dict]]:
    """The runs of each family (depth, smeared keys, natural-text control), in run order."""
    out: dict[str, list[dict]] = {}
    for run in runs:
        out.setdefault(family(run), []).append(run)
    return out


def transition_vs_width(runs: list[dict], steps: int, shape: str, folder: Path) -> list[Path]:
    """Each seed's transition step against width, by family, with k/n of its seeds beside it;
    a run without one is not drawn (it has no step to draw): the caption lists them."""
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for i, (fam, rs) in enumerate(families(runs).items()):
        drawn = [(r["n_embd"] * 1.03 ** i, r["transition"]["step"]) for r in rs
                 if r["transition"]["step"] is not None]  # nudged apart: families share widths
        ax.plot([x for x, _ in drawn], [y for _, y in drawn], "o", color=f"C{i}",
                label=fam if drawn else f"{fam}: none by step {steps:,}")
        for rw in by_model(rs).values():
            done = [r["transition"]["step"] for r in rw if r["transition"]["step"] is not None]
            if done:  # the share of seeds, beside the latest of them
                ax.annotate(f"{len(done)}/{len(rw)}", (rw[0]["n_embd"] * 1.03 ** i, max(done)),
                            xytext=(4, 2), textcoords="offset points", fontsize=6,
                            color=f"C{i}")
    ax.axhline(steps, color="grey", ls=":", lw=1, label=f"budget, {steps:,} steps")
    ax.set(xscale="log", xlabel="width (n_embd)", ylabel="transition step",
           ylim=(0, steps * 1.08), title=f"Transition step by width and depth\ntrained on {shape}")
    widths = sorted({r["n_embd"] for r in runs})
    ax.set_xticks(widths, [str(x) for x in widths])
    ax.set_xlim(widths[0] / 1.2, widths[-1] * 1.3)  # set, not autoscaled: no run may have a dot
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.legend(fontsize=7)
    return save(fig, folder, "transition_vs_width")


def not_transitioned(runs: list[dict]) -> str:
    """The models with seeds that never transitioned, as k/n: what transition_vs_width omits."""
    never = {k: sum(r["transition"]["step"] is None for r in rs)
             for k, rs in by_model(runs).items()}
    return ", ".join(f"{name(rs[0])} {never[k]}/{len(rs)}" for k, rs in by_model(runs).items()
                     if never[k]) or "none"


def fewshot_vs_n(runs: list[dict], plan: dict, shape: str, folder: Path) -> list[Path]:
    tasks = [t for t in (*COPY_TASKS, *CONTROLS) if t in plan["fewshot_tasks"]]
    fig, axes = plt.subplots(1, len(tasks), figsize=(3.3 * len(tasks), 3.6), layout="constrained",
                             squeeze=False)
    for ax, task in zip(axes[0], tasks):
        for j, k in enumerate(plan["fewshot_k"]):
            any_scored = False
            for depth_runs, fmt in family_lines(runs):
                scored = [(r["n_nonemb"], s) for r in depth_runs if (s := em_at(r, task, k))]
                if not scored:
                    continue
                any_scored = True
                em = np.array([s["exact_match"] for _, s in scored])
                lo, hi = np.array([s["exact_ci"] for _, s in scored]).T
                yerr = np.clip([em - lo, hi - em], 0, None)  # rounding can put a bound past em
                ax.errorbar([n for n, _ in scored], em, yerr=yerr, fmt=fmt[-1], color=f"C{j}",
                            ms=3, capsize=2)  # every run (seed) its own point
                band = seed_band(depth_runs, em_score(task, k))  # the line: the seeds' mean
                ax.plot([b["n"] for b in band], [b["mean"] for b in band], fmt[:-1],
                        color=f"C{j}", label=f"k={k}" if fmt == "-o" else None)
            if chance(task, k) and any_scored:
                ax.axhline(chance(task, k), color=f"C{j}", ls=(0, (1, 3)), lw=0.8,
                           label=f"chance 1/k, k={k}")
        shuffled_line(ax, runs, task, max(plan["fewshot_k"]))
        ax.set(xscale="log", ylim=(-0.03, 1.03), xlabel="N (non-embedding parameters)",
               title=task + (" (control)" if task in CONTROLS else ""))
    axes[0, 0].set_ylabel("exact match (95% Wilson; line: mean over seeds)")
    for ax in axes[0]:
        ax.legend(fontsize=7, title="- 2 layers, -- 1, -. 3", title_fontsize=7)
    fig.suptitle(f"Few-shot exact match against model size, trained on {shape}", fontsize=10)
    return save(fig, folder, "fewshot_vs_n")


def em_score(task: str, k: int = EM_K):
    """score(run) for seed_band: exact match at task and k, None where not run."""
    return lambda run: (s := em_at(run, task, k)) and s["exact_match"]


def shuffled_line(ax, runs: list[dict], task: str, k_max: int) -> None:
    """The shuffled-demonstration control at the largest k it was run at, 2-layer family."""
    deepest = next((rs for rs, fmt in family_lines(runs) if fmt == "-o"), family_lines(runs)[0][0])
    for k in range(k_max, -1, -1):
        pts = [(r["n_nonemb"], final_fewshot(r).get(task, {}).get("shuffled", {}).get(str(k)))
               for r in deepest]
        pts = [(n, s["exact_match"]) for n, s in pts if s]
        if pts:
            ax.plot(*zip(*pts), ":", color="grey", label=f"shuffled demos, k={k}")
            return


def family_lines(runs: list[dict]) -> list[tuple[list[dict], str]]:
    """The plain runs (neither smeared nor natural-text controls) of each depth, by N, deepest
    first, with their line style."""
    plain = [r for r in runs if not r["smear"] and not r.get("natural")]
    depths = sorted({r["n_layer"] for r in plain}, reverse=True)
    fmt = {1: "--s", 2: "-o", 3: "-.^"}
    return [(sorted((r for r in plain if r["n_layer"] == d), key=lambda r: r["n_nonemb"]),
             fmt.get(d, "-.v")) for d in depths]


def survival(runs: list[dict], shape: str, folder: Path) -> list[Path]:
    """The fraction of seeds transitioned by each step, per model and per family (depth); a
    curve ends where a seed that had not transitioned has no more evaluations."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained", sharey=True)
    widths = sorted({r["n_embd"] for r in runs})
    for rs in by_model(runs).values():
        steps = curve_steps(rs)
        axes[0].step(steps, transitioned_by(rs, steps), where="post",
                     label=f"{name(rs[0])} ({len(rs)})", **style(rs[0], widths))
    for i, (fam, rs) in enumerate(families(runs).items()):
        steps = curve_steps(rs)
        axes[1].step(steps, transitioned_by(rs, steps), where="post", color=f"C{i}",
                     label=f"{fam} ({len(rs)} runs)")
    for ax, by in zip(axes, ("model (seeds)", "depth, all widths")):
        ax.set(xlabel="step", ylim=(-0.03, 1.03), title=f"by {by}")
        ax.legend(fontsize=7, ncol=2 if ax is axes[0] else 1)
    axes[0].set_ylabel("fraction of seeds transitioned")
    fig.suptitle(f"Seeds whose copy loss fell below half its plateau by each step, trained on "
                 f"{shape}", fontsize=10)
    return save(fig, folder, "survival")


def em_seeds(runs: list[dict], plan: dict, shape: str, folder: Path) -> list[Path]:
    """Exact match at k = EM_K: against N with the seeds' band (top), and against the copy loss
    at every evaluation that ran the few-shot tasks (bottom)."""
    tasks = [t for t in COPY_TASKS if t in plan["fewshot_tasks"]]
    if EM_K not in plan["fewshot_k"] or not tasks:
        return []
    fig, axes = plt.subplots(2, len(tasks), figsize=(3.6 * len(tasks), 7), layout="constrained",
                             squeeze=False)
    for ax, task in zip(axes[0], tasks):
        for depth_runs, fmt in family_lines(runs):
            band = seed_band(depth_runs, em_score(task))
            if not band:
                continue
            n = [b["n"] for b in band]
            line, = ax.plot(n, [b["mean"] for b in band], fmt,
                            label=f"{depth_runs[0]['n_layer']} layer(s)", ms=3)
            ax.fill_between(n, [b["min"] for b in band], [b["max"] for b in band],
                            color=line.get_color(), alpha=0.2, lw=0)
            for b in band:
                ax.plot([b["n"]] * len(b["values"]), b["values"], ".", color=line.get_color())
        ax.set(xscale="log", xlabel="N (non-embedding parameters)", title=task)
    for ax, task in zip(axes[1], tasks):
        for i, (fam, rs) in enumerate(families(runs).items()):
            pts = [(e["copy_loss"], s["exact_match"]) for r in rs for e in r["evals"]
                   if (s := e.get("fewshot", {}).get(task, {}).get("k", {}).get(str(EM_K)))]
            if pts:
                ax.plot(*zip(*pts), "o", ms=3, alpha=0.7, color=f"C{i}", label=fam)
        ax.set(xlabel="copy loss at that evaluation (nats)")
    for ax, task in zip(axes.T.flat, np.repeat(tasks, 2)):
        if chance(task, EM_K):
            ax.axhline(chance(task, EM_K), color="grey", ls=":", lw=1, label=f"chance 1/{EM_K}")
        ax.set_ylim(-0.03, 1.03)
        if ax.get_legend_handles_labels()[0]:  # a panel may have nothing scored to label
            ax.legend(fontsize=6)
    axes[0, 0].set_ylabel(f"exact match, k={EM_K}\n(line: mean; band: min-max over seeds)")
    axes[1, 0].set_ylabel(f"exact match, k={EM_K}\n(every evaluation with few-shot tasks)")
    fig.suptitle(f"Few-shot exact match at k={EM_K} against N and against copy loss, trained on "
                 f"{shape}", fontsize=10)
    return save(fig, folder, "em_seeds")


def runs_table(runs: list[dict]) -> list[str]:
    seeded = len({r["seed"] for r in runs}) > 1
    lines = ["| run | N | copy loss: first → last (min, max) | plateau | floor reached at step | "
             "transition step | 10→90% fall width (steps) | plateau before the fall (steps) | "
             "phase change | best prefix matching (max) | held-out text gain, last [95% CI] | "
             "ICL score, last | val loss |",
             "|---|---:|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|"]
    num = lambda v: "—" if v is None else f"{v:,.0f}"
    for r in runs:
        t, ev = r["transition"], r["evals"]
        copy = [e["copy_loss"] for e in r["probes"]]
        lines.append(f"| {label(r, seeded)} | {r['n_nonemb']:,} | {copy[0]:.2f} → {copy[-1]:.2f} "
                     f"({min(copy):.2f}, {max(copy):.2f}) | {t['plateau']:.2f} | "
                     f"{num(t['floor_step'])} | {num(t['step'])} | {num(t['fall_steps'])} | "
                     f"{num(t['plateau_steps'])} | {'yes' if t['phase_change'] else 'no'} | "
                     f"{best_prefix(r):.2f} | "
                     f"{gain(ev[-1])} | {icl(ev[-1])} | {r['val_loss']:.3f} |")
    return lines


def icl(record: dict) -> str:
    """Olsson et al.'s ICL score on held-out plays; runs from before it was recorded have none."""
    return f"{record['icl_score']:+.3f}" if "icl_score" in record else "—"


def gain(record: dict) -> str:
    """The held-out text's 1st - 2nd copy gain, with its bootstrap interval over passages
    where the record has one (runs from before it was measured do not)."""
    ci = record.get("text_copy_gain_ci")
    return f"{record['text_copy_gain']:+.2f}" + (f" [{ci[0]:+.2f}, {ci[1]:+.2f}]" if ci else "")


def fewshot_table(runs: list[dict], plan: dict) -> list[str]:
    seeded = len({r["seed"] for r in runs}) > 1
    ks = [k for k in plan["fewshot_k"] if k >= 4]
    tasks = [t for t in (*COPY_TASKS, *CONTROLS) if t in plan["fewshot_tasks"]]
    head = [f"{t} k={k}" + (f" (chance {chance(t, k):.2f})" if chance(t, k) else "")
            for t in tasks for k in ks]
    lines = ["| run | N | " + " | ".join(head) + " |", "|---|---:|" + "---:|" * len(head)]
    for r in runs:
        cells = []
        for t in tasks:
            for k in ks:
                s = em_at(r, t, k)
                cells.append("skipped" if s is None else f"{s['exact_match']:.2f}")
        lines.append(f"| {label(r, seeded)} | {r['n_nonemb']:,} | " + " | ".join(cells) + " |")
    return lines


def rule_table(runs: list[dict], plan: dict) -> list[str]:
    """Per model over its seeds, on each task whose answer is not in the prompt: what k = EM_K
    demonstrations add to the answer's log-likelihood per character over their shuffled
    control and over none; then character accuracy, the exact match it predicts and the exact
    match measured, each the mean over these tasks and seeds."""
    tasks = rule_tasks(plan)
    if not tasks or EM_K not in plan["fewshot_k"] or 0 not in plan["fewshot_k"]:
        return []
    lines = ["| model | " + " | ".join(tasks) + " | char accuracy | exact match predicted | "
             "exact match |", "|---|" + "---:|" * (len(tasks) + 3)]
    mean = lambda values: f"{np.mean(values):+.2f}" if values else "—"
    for rs in by_model(shaped(runs)).values():
        cells = []
        for t in tasks:
            g = [x for r in rs if (x := rule_gains(r, t)) is not None]
            cells.append(f"{mean([a for a, _ in g])} ({mean([b for _, b in g])})")
        at = [s for r in rs for t in tasks if (s := em_at(r, t)) is not None]
        for key in ("char_accuracy", "exact_from_chars", "exact_match"):
            values = [s[key] for s in at if key in s]  # older runs lack the prediction
            cells.append(f"{np.mean(values):.3f}" if values else "—")
        lines.append(f"| {name(rs[0])} | " + " | ".join(cells) + " |")
    return lines


def seeds_table(runs: list[dict], plan: dict) -> list[str]:
    """Per model over its seeds: how many transitioned, when, and exact match at k = EM_K."""
    tasks = [t for t in COPY_TASKS if t in plan["fewshot_tasks"] and EM_K in plan["fewshot_k"]]
    head = [f"{t} k={EM_K}: mean (min to max)" + (f", chance {chance(t, EM_K):.2f}"
                                               if chance(t, EM_K) else "") for t in tasks]
    lines = ["| model | N | seeds transitioned | transition steps | floor (nats) | "
             + " | ".join(head) + " |", "|---|---:|---:|---|---|" + "---:|" * len(tasks)]
    for rs in by_model(runs).values():
        at = [r["transition"]["step"] for r in rs if r["transition"]["step"] is not None]
        floors = [r["transition"]["floor"] for r in rs]
        cells = []
        for t in tasks:
            band = seed_band(rs, em_score(t))
            spread = span(band[0]["values"], "{:.2f}") if band else ""
            cells.append("—" if not band else f"{band[0]['mean']:.2f}"
                         + (f" ({spread})" if " to " in spread else ""))
        lines.append(f"| {name(rs[0])} | {rs[0]['n_nonemb']:,} | {len(at)}/{len(rs)} | "
                     f"{', '.join(f'{a:,.0f}' for a in sorted(at)) or '—'} | "
                     f"{span(floors, '{:.2f}')} | " + " | ".join(cells) + " |")
    return lines


def reading(runs: list[dict], plan: dict) -> list[str]:
    """What the measurements say about which data, in words, with the numbers they rest on."""
    shape = shape_of(plan)
    natural = [r for r in runs if r.get("natural")]
    val = [r["val_loss"] for r in shaped(runs)]
    chance = runs[0]["evals"][0]["copy_chance"]
    unit = "nats/char" if plan.get("tokenizer", "char") == "char" else "nats/token"
    if plan["synthetic"] >= 1:
        first = ("In such data nothing but the copy can be predicted, so copying from context "
                 "is the one thing worth learning: this is the induction mechanism in isolation, "
                 "not a language model. These models know no English: their val loss on the "
                 f"held-out plays is {min(val):.2f}-{max(val):.2f} {unit} (uniform over the "
                 f"characters is {chance:.2f}).")
    else:
        first = (f"Part of the windows are natural text, so these models also learn the plays: "
                 f"val loss {min(val):.2f}-{max(val):.2f} {unit} on the held-out ones.")
    copy_em = [s["exact_match"] for r in runs
               for k, s in final_fewshot(r).get("copy", {}).get("k", {}).items() if int(k) >= 4]
    lines = ["## Reading", "",
             f"- Every claim above is about models trained on **{shape}**. {first}",
             "- The held-out-text column is the transfer test: a passage of a held-out play, "
             "repeated once. Models that copy predict its second copy from the first, however "
             "well they predict the first; models that do not copy pay the same twice.",
             "- The few-shot tasks whose answer is in the prompt (key=value recall, speaker "
             "recall) are what an induction head can do: find the query's earlier occurrence "
             "and copy what followed it. The copy task ('sword: sword') is not: its answer "
             "stands before the separator on the same line, never after an earlier occurrence"
             + (f"; its exact match at k >= 4 is at most {max(copy_em):.2f}." if copy_em else ".")]
    for rs in by_model(natural).values():
        last = [r["evals"][-1] for r in rs]
        two = lambda values: span(values, "{:.2f}")  # one value, or the seeds' range
        lines.append(f"- Natural text: the control {name(rs[0])}"
                     + (f" ({len(rs)} seeds)" if len(rs) > 1 else "")
                     + f", trained on the plays alone for the same steps, reaches val loss "
                     f"{two([r['val_loss'] for r in rs])} but forms no circuit (copy loss "
                     f"{two([r['evals'][0]['copy_loss'] for r in rs])} → "
                     f"{two([e['copy_loss'] for e in last])}, best prefix matching "
                     f"{two([best_prefix(r) for r in rs])}, "
                     f"held-out repeat {two([e['text_first'] for e in last])} → "
                     f"{two([e['text_second'] for e in last])} {unit}).")
    lines.append("- The larger natural-text control is the laptop ladder "
                 "([docs/scaling/laptop](../scaling/laptop/report.md)): 8 sizes up to 1.8M "
                 "parameters, 4M characters each, exact match 0 on all 81,600 few-shot prompts "
                 "and no induction heads. On natural text the circuit needs far more tokens "
                 "(Olsson et al. 2022: about 1-3 billion).")
    return lines + [""]


def rule_section(runs: list[dict], plan: dict) -> list[str]:
    table = rule_table(runs, plan)
    if not table:
        return []
    return ["## Tasks whose answer is not in the prompt", "",
            "A transformation shown only by its examples, in the plays' own words (listed "
            "below the table). Each cell: "
            f"what k={EM_K} demonstrations add to the answer's log-likelihood, nats/char, over "
            "the same prompts with the demonstrations' answers shuffled among them (the rule "
            f"broken, the format kept) and, in brackets, over k=0; the mean over seeds at the "
            "last evaluation. A model that learns the rule from its examples gains over the "
            "shuffled control; a model that learns only the format gains over k=0 alone. The "
            "last three columns: mean character accuracy at k=4 over these tasks, the exact "
            "match it predicts (accuracy to the power of the answer's length, Schaeffer et "
            "al. 2023) and the exact match measured.", "", *table, "",
            *(f"- {t}: {TASKS[t].about}" for t in rule_tasks(plan)), ""]


def write_report(root: Path, command: str = "") -> Path:
    plan, runs = load(root)
    shape = shape_of(plan)
    data = f"*Data: {shape}; validation and probes held out.*"
    folder = root
    widths = sorted({r["n_embd"] for r in runs})
    phase_change(runs, widths, shape, folder)
    transition_vs_width(runs, plan["steps"], shape, folder)
    fewshot_vs_n(runs, plan, shape, folder)
    survival(runs, shape, folder)
    em_figure = ["![exact match against N and copy loss](em_seeds.png)", "",
                 f"{data} Top: exact match at k={EM_K} of the runs without smeared keys against "
                 "N, one line per depth: line, the mean over seeds; band, their min-max; dots, "
                 "each seed. Bottom: exact match at every evaluation that ran the few-shot "
                 "tasks against that evaluation's copy loss, every run. Dotted: chance (1/k, "
                 "recall tasks).", ""] if em_seeds(runs, plan, shape, folder) else []
    seeds = sorted({r["seed"] for r in runs})
    per_model = [len(rs) for rs in by_model(runs).values()]
    wall = sum(r["wall_s"] for r in runs)
    lines = [f"# Emergence of in-context copying: {plan['name']}", "",
             f"**Data shape: {shape}.** {plan['description']}", "",
             f"Command: `{command or 'tinygpt emergence --preset=' + plan['name']}`. "
             f"{len(runs)} runs of {plan['steps']} steps, batch {plan['batch_size']} x "
             f"{plan['block_size']} tokens, lr {plan['lr']:g}, {plan['arch']} block; "
             f"{fmt_time(wall)} of training in all. Machine: {runs[0]['machine']}. Seeds: "
             f"{', '.join(map(str, seeds))} ({span(per_model)} per model).", "",
             "Validation is natural held-out text (whole plays never trained on); the copy "
             "probes are synthetic sequences from a random stream training never draws.", "",
             "## Verdicts", "", *verdicts(runs, plan), "",
             "## Phase changes", "", "![phase change](phase_change.png)", "",
             f"{data} Copy loss axis from 0 to the highest loss of any run.", "",
             *runs_table(runs), "",
             "Transition step: the first step (interpolated between readings) where the copy "
             "loss on held-out synthetic probes is below half its plateau (the loss at the first "
             "reading after warmup). Fall width: steps from 10% to 90% of the way from "
             "plateau to floor, a width, not a time to the floor; the floor (the lowest copy "
             "loss) is reached later, at the step given. "
             f"Phase change: the floor is below {FORMED} nats and the fall is shorter than "
             f"the plateau before it. Evaluations every {plan['eval_every']} steps"
             + (f"; the copy probe and prefix matching every {plan['probe_every']} steps"
                if plan.get("probe_every") else "") + ".", "",
             "![transition step by width](transition_vs_width.png)", "",
             f"{data} Each dot is one seed's transition step; k/n beside a model's latest dot is "
             f"how many of its seeds transitioned within {plan['steps']:,} steps. Not drawn, "
             f"having no transition by step {plan['steps']:,} (seeds without one / all seeds): "
             f"{not_transitioned(runs)}.", "",
             "## Over seeds", "", "![fraction of seeds transitioned](survival.png)", "",
             f"{data} The fraction of each model's seeds (left) and each depth's runs (right) "
             "whose copy loss had fallen below half its plateau by each step; a run that never "
             "did counts as not transitioned through its last evaluation. Plateau and floor "
             "are read from the first reading after warmup on.", "",
             *seeds_table(runs, plan), "", *em_figure,
             "## Few-shot exact match against N", "", "![few-shot vs N](fewshot_vs_n.png)", "",
             f"{data} Points: each run (seed) with its 95% Wilson interval; lines: the mean "
             "over seeds; dotted: chance (1/k) of the recall tasks.", "",
             "Exact match on the last few-shot evaluation of each run (greedy answer and end of "
             f"line, {plan['fewshot_items']} items per cell), k >= 4; chance in the header where "
             "it is not about 0 (the recall tasks' answer is one of the k demonstrations'):", "",
             *fewshot_table(runs, plan), "", *rule_section(runs, plan), *reading(runs, plan)]
    path = root / "report.md"
    text = ("\n".join(lines) + "\n").encode()
    write_atomic(path, lambda f: f.write(text), "report")
    return path
