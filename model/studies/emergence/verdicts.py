"""The emergence study's claims, each decided from the measurements with its numbers.

1. Phase change: a run of 2+ layers whose copy loss leaves a plateau and falls below FORMED
   nats faster than it sat on the plateau, with its best head's prefix matching >= 0.3.
2. Threshold: 1-layer runs without smeared keys stay near chance (floor within NEAR_CHANCE
   nats of ln V); smeared 1-layer runs form the circuit.
3. Transfer: past the transition, the 2nd copy of repeated held-out text costs >= 1 nat/char
   less than the 1st.
4. Few-shot emergence: on a copy-type task, exact match at some k >= 4 is 0 at every few-shot
   evaluation of a model without the circuit (copy loss near its plateau) and >= 0.5 at one
   past its transition, while the controls stay flat (their exact match varies by less than
   FLAT across all evaluations).
5. Over seeds: the depth threshold by Fisher's exact test, the share of 2+ layer runs that
   transitioned against TRANSITION_BAR, and the slope of exact match at k = EM_K against N.
6. Learning from demonstrations: on a task whose answer is not in the prompt (a transformation
   shown only by its examples), k = EM_K demonstrations make the answer at least RULE_GAIN
   nats/char likelier than the same demonstrations with their answers shuffled among them
   (format kept, rule broken), in every seed of some model.

A verdict is worded no stronger than its data: "not measured" when no run bears on it,
"undetermined" when its interval spans the threshold, and counts as k/n with their interval;
run names appear once, grouped by model, never listed twice.
"""
from __future__ import annotations

import numpy as np

from ..common.icl import INDUCTION_FORMED
from ..common.tasks import TASKS
from .seeds import by_model, clears, depth_test, em_slope, plain, share
from .transition import FORMED

NEAR_CHANCE = 0.5   # nats below ln V that still counts as "at chance" for the copy loss
TRANSFER = 1.0      # nats/char: the 2nd copy of held-out text this much cheaper than the 1st
FEWSHOT_HIGH = 0.5  # exact match that counts as the skill being there
FLAT = 0.1          # a control's exact match may vary this much across runs and stay "flat"
TRANSITION_BAR = 0.8  # issue #27: a transition in >= 80% of seeds at depth >= 2
EM_K = 4            # demonstrations at which exact match is compared across N
ALPHA = 0.05        # the exact test's level
RULE_GAIN = 0.1     # nats/char: demonstrations beat their shuffled control by this much


COPY_TASKS = ("copy", "pair_recall", "speaker_recall")
CONTROLS = ("reversal", "addition")


def final_fewshot(run: dict) -> dict:
    """The few-shot table of the run's last evaluation that has one."""
    with_tasks = [r for r in run["evals"] if "fewshot" in r]
    return with_tasks[-1]["fewshot"] if with_tasks else {}


def name(run: dict) -> str:
    tags = " smeared" * run["smear"] + " natural text" * run.get("natural", False)
    return f"{run['n_layer']}x{run['n_embd']}{tags}"


def shaped(runs: list[dict]) -> list[dict]:
    """The runs trained on the plan's data shape (not the natural-text controls)."""
    return [r for r in runs if not r.get("natural")]



def word(verdict: str) -> str:
    return f"**{verdict}**"


def yes(ok: bool) -> str:
    return word("holds" if ok else "does not hold")


def span(values: list[float], fmt: str = "{:,.0f}") -> str:
    """One value as it is; several (one per seed) as their range."""
    lo, hi = fmt.format(min(values)), fmt.format(max(values))
    return lo if lo == hi else f"{lo} to {hi}"


def best_prefix(run: dict) -> float:
    return max(e["prefix_matching"] for e in run["probes"])


def fall(rs: list[dict]) -> str:
    """Where and how fast the copy loss fell, over a model's seeds: the transition step, the
    10→90% fall as a width, the plateau before it and the step the floor was first reached:
    four numbers, each labelled (the fall ends long before the floor)."""
    t = [r["transition"] for r in rs]
    inside = [sum(x["start_of_fall"] < e["step"] < x["end_of_fall"] for e in r["probes"])
              for r, x in zip(rs, t)]
    return (f"transition at step {span([x['step'] for x in t])}; 10→90% fall "
            f"{span([x['fall_steps'] for x in t])} steps wide ({span(inside)} copy-probe readings "
            f"inside it) after a plateau of {span([x['plateau_steps'] for x in t])} steps; floor "
            f"{span([x['floor'] for x in t], '{:.2f}')} nats, first reached at step "
            f"{span([x['floor_step'] for x in t])}; best prefix matching "
            f"{span([best_prefix(r) for r in rs], '{:.2f}')}")


def phase_changes(runs: list[dict]) -> str:
    claim = (f"- Phase change in a 2+ layer model (copy loss ends below {FORMED} nats, its "
             f"10→90% fall shorter than the plateau before it, best prefix matching >= "
             f"{INDUCTION_FORMED})")
    deep = [r for r in plain(runs) if r["n_layer"] >= 2]
    if not deep:
        return f"{claim}: {word('not measured')} (no 2+ layer runs)."
    found = [r for r in deep if r["transition"]["phase_change"]
             and best_prefix(r) >= INDUCTION_FORMED]
    seeds = by_model(deep)
    detail = " ".join(f"{name(rs[0])} ({len(rs)}/{len(seeds[k])} seeds): {fall(rs)}."
                      for k, rs in by_model(found).items())
    return f"{claim}: {yes(bool(found))} in {share(len(found), len(deep))}. {detail}".rstrip()


def stay_at_chance(runs: list[dict], chance: float) -> str:
    claim = f"- 1-layer models stay at chance ({chance:.2f} nats) on the copy probes"
    ones = [r for r in plain(runs) if r["n_layer"] == 1]
    if not ones:
        return f"{claim}: {word('not measured')} (no 1-layer runs without smeared keys)."
    stay = [r for r in ones if r["transition"]["floor"] >= chance - NEAR_CHANCE]
    floors = ", ".join(f"{name(rs[0])} {span([r['transition']['floor'] for r in rs], '{:.2f}')}"
                       for rs in by_model(ones).values())
    return (f"{claim}: {yes(len(stay) == len(ones))} in {share(len(stay), len(ones))}; "
            f"lowest copy loss: {floors}.")


def depth_threshold(runs: list[dict]) -> str:
    claim = ("- Depth threshold (2+ layer runs transition more often than 1-layer ones; Fisher's "
             f"exact test, one-sided, at p < {ALPHA:g})")
    test = depth_test(runs)
    if test is None:
        return f"{claim}: {word('not measured')} (it needs 1-layer and 2+ layer runs)."
    verdict = "holds" if test["p"] < ALPHA else "undetermined"
    (d, dn), (s, sn) = test["deep"], test["shallow"]
    return (f"{claim}: {word(verdict)}: 2+ layers {d}/{dn} transitioned, 1 layer {s}/{sn}; "
            f"p = {test['p']:.2g}.")


def transition_rate(runs: list[dict], steps: int) -> str:
    claim = (f"- A transition within {steps:,} steps in >= {TRANSITION_BAR:.0%} of 2+ layer runs "
             "(all sizes and seeds; it holds when the whole interval clears the bar)")
    deep = [r for r in plain(runs) if r["n_layer"] >= 2]
    done = [r for r in deep if r["transition"]["step"] is not None]
    by_size = ", ".join(f"{name(rs[0])} {sum(r['transition']['step'] is not None for r in rs)}"
                        f"/{len(rs)}" for rs in by_model(deep).values())
    detail = f"{share(len(done), len(deep))}; by model: {by_size}" if deep else "no 2+ layer runs"
    return f"{claim}: {word(clears(len(done), len(deep), TRANSITION_BAR))}: {detail}."


def smeared_keys(runs: list[dict]) -> list[str]:
    smeared = [r for r in runs if r["smear"] and not r.get("natural")]
    if not smeared:
        return []
    formed = [r for r in smeared if r["transition"]["step"] is not None
              and best_prefix(r) >= INDUCTION_FORMED]
    floors = ", ".join(f"{name(rs[0])} {span([r['transition']['floor'] for r in rs], '{:.2f}')}"
                       for rs in by_model(smeared).values())
    return [f"- Smeared keys let 1-layer models form it (copy loss below half its plateau, "
            f"prefix matching >= {INDUCTION_FORMED}): {yes(bool(formed))} in "
            f"{share(len(formed), len(smeared))}; lowest copy loss: {floors}."]


def transfer(runs: list[dict]) -> str:
    claim = (f"- Transfer to natural text (held-out plays, 2nd copy >= {TRANSFER:g} nat/char "
             f"cheaper than the 1st, by the lower end of the gain's 95% interval where the run "
             f"recorded one, in every model past the transition)")
    formed = [r for r in runs if r["transition"]["step"] is not None]
    if not formed:
        return f"{claim}: {word('not measured')} (no run transitioned)."
    last = [r["evals"][-1] for r in formed]
    lows = [e["text_copy_gain_ci"][0] if e.get("text_copy_gain_ci") else e["text_copy_gain"]
            for e in last]
    gains = ", ".join(f"{e['text_copy_gain']:+.2f}" + (" [{:+.2f}, {:+.2f}]".format(
        *e["text_copy_gain_ci"]) if e.get("text_copy_gain_ci") else " (no interval)")
        for e in last)
    ok = [low for low in lows if low >= TRANSFER]
    return (f"{claim}: {yes(len(ok) == len(lows))} in {share(len(ok), len(lows))} past the "
            f"transition; last evaluation's gains {gains} nats/char.")


def fewshot_points(run: dict, task: str, k: str) -> tuple[list[float], list[float]]:
    """Exact match at one task and k from a run's few-shot evaluations: those where its copy
    loss was still near the plateau (within NEAR_CHANCE nats: no circuit yet), and those where
    it was below half the plateau (past the transition). Evaluations caught mid-fall are in
    neither."""
    plateau = run["transition"]["plateau"]
    before, after = [], []
    for row in run["evals"]:
        s = row.get("fewshot", {}).get(task, {}).get("k", {}).get(k)
        if s is None:
            continue
        if row["copy_loss"] >= plateau - NEAR_CHANCE:
            before.append(s["exact_match"])
        elif row["copy_loss"] <= plateau / 2:
            after.append(s["exact_match"])
    return before, after


def fewshot(runs: list[dict], plan: dict) -> str:
    ks = [str(k) for k in plan["fewshot_k"] if k >= 4]
    emerged, measured = [], False
    for task in COPY_TASKS:
        for k in ks:
            split = [fewshot_points(r, task, k) for r in runs]
            off = [v for before, _ in split for v in before]
            on = [v for _, after in split for v in after]
            measured |= bool(off and on)
            if off and on and max(off) == 0 and max(on) >= FEWSHOT_HIGH:
                emerged.append(f"{task} at k={k} (0 in {len(off)} evaluations without the "
                               f"circuit → up to {max(on):.2f} in {len(on)} with it)")
    spread = {}
    for task in CONTROLS:
        vals = [v for r in runs for k in ks for part in fewshot_points(r, task, k) for v in part]
        spread[task] = (max(vals) - min(vals)) if vals else None
    flat = all(s is not None and s < FLAT for s in spread.values())
    tasks = {e.split(" at ")[0] for e in emerged}
    verdict = yes(len(tasks) >= 2 and flat) if measured else word("not measured")
    return (f"- Few-shot emergence on at least two copy-type tasks with the controls flat "
            f"(exact match 0 at every evaluation whose copy loss was within {NEAR_CHANCE} nats "
            f"of its plateau, >= {FEWSHOT_HIGH} at one below half the plateau): {verdict}. "
            f"Emerged: {'; '.join(emerged) or 'none'}. Controls' exact-match spread across all "
            "evaluations: " + ", ".join(f"{t} {'—' if s is None else f'{s:.2f}'}"
                                        for t, s in spread.items()) + ".")


def rule_gains(run: dict, task: str, k: int = EM_K) -> tuple[float, float] | None:
    """On the run's last few-shot evaluation, the answer's log-likelihood per character with k
    demonstrations minus (the shuffled-demonstration control, no demonstrations); None where
    either was not run."""
    t = final_fewshot(run).get(task, {})
    cells = [t.get(part, {}).get(str(kk)) for part, kk in (("k", k), ("shuffled", k), ("k", 0))]
    if any(c is None for c in cells):
        return None
    k_ll, shuffled_ll, zero_ll = (c["loglik_per_char"] for c in cells)
    return k_ll - shuffled_ll, k_ll - zero_ll


def rule_tasks(plan: dict) -> list[str]:
    """The planned tasks whose answer is not in the prompt: transformations, seen or not."""
    return [t for t in plan["fewshot_tasks"] if t in TASKS and TASKS[t].kind == "transform"]


def rule_learning(runs: list[dict], plan: dict) -> str:
    claim = (f"- Learning a rule from its demonstrations (tasks whose answer is not in the "
             f"prompt; the answer's log-likelihood per character at k={EM_K} >= {RULE_GAIN} "
             "nats/char above the same prompts with the demonstrations' answers shuffled among "
             "them, in every seed of a model)")
    found = {}  # (model, task) -> each seed's gain over the shuffled control
    for rs in by_model(shaped(runs)).values():
        for task in rule_tasks(plan):
            gains = [g[0] for r in rs if (g := rule_gains(r, task)) is not None]
            if gains:
                found[(name(rs[0]), task)] = gains
    if not found:
        return f"{claim}: {word('not measured')}."
    clear = [f"{m} {t}" for (m, t), g in found.items() if min(g) >= RULE_GAIN and len(g) > 1]
    some = [f"{m} {t} ({sum(x >= RULE_GAIN for x in g)}/{len(g)} seeds)"
            for (m, t), g in found.items() if max(g) >= RULE_GAIN]
    verdict = ("holds" if clear else "undetermined" if some else "does not hold")
    (bm, bt), best = max(found.items(), key=lambda kv: np.mean(kv[1]))
    ems = [s["exact_match"] for r in shaped(runs) for t in rule_tasks(plan)
           if (s := em_at(r, t)) is not None]
    return (f"{claim}: {word(verdict)}; {len(found)} model x task cells over "
            f"{len(rule_tasks(plan))} tasks; largest mean gain {np.mean(best):+.3f} nats/char "
            f"({bm} {bt}, seeds {span(best, '{:+.3f}')}); "
            + (f"above the bar, not in 2+ seeds of a model: {', '.join(some)}; " if some and not clear
               else f"in every seed: {', '.join(clear)}; " if clear else "")
            + f"exact match at k={EM_K} at most {max(ems, default=0):.2f} on these tasks.")


def em_at(run: dict, task: str, k: int = EM_K) -> dict | None:
    """Exact match (and its Wilson interval) at one task and k on the run's last few-shot
    evaluation; None where it was not run there."""
    return final_fewshot(run).get(task, {}).get("k", {}).get(str(k))


def em_vs_n(runs: list[dict], plan: dict) -> str:
    claim = (f"- Exact match at k={EM_K} grows with N in 2+ layer models (slope per decade of N "
             "over every run's last few-shot evaluation, least squares with a t 95% interval from "
             "the points' scatter, seeds included, floored at their binomial noise)")
    deep = [r for r in plain(runs) if r["n_layer"] >= 2]
    fits = []
    for task in (t for t in COPY_TASKS if t in plan["fewshot_tasks"]):
        points = [(r["n_nonemb"], s["exact_match"], tuple(s["exact_ci"]))
                  for r in deep if (s := em_at(r, task)) is not None]
        fit = em_slope(points)
        if fit is not None:
            lo, hi = fit["ci"]
            fits.append(f"{task} {fit['slope']:+.2f} per decade ({lo:+.2f} to {hi:+.2f}, "
                        f"{fit['points']} runs): {word(fit['verdict'])}")
    none = f"{word('not measured')} (fewer than three sizes scored at k={EM_K})"
    return f"{claim}: {'; '.join(fits) or none}."


def natural_control(runs: list[dict]) -> list[str]:
    """Each natural-text control's copy loss as it went over its seeds, first to last with its
    range: it may climb above chance, which plateau → floor would hide."""
    lines = []
    for rs in by_model([r for r in runs if r.get("natural")]).values():
        ev = [r["evals"] for r in rs]
        copy = [e["copy_loss"] for r in rs for e in r["probes"]]
        seeds = f" ({len(rs)} seeds)" if len(rs) > 1 else ""
        lines.append(
            f"- Natural-text control {name(rs[0])}{seeds} (same steps, natural text only): copy "
            f"loss {span([e[0]['copy_loss'] for e in ev], '{:.2f}')} at step {ev[0][0]['step']} "
            f"→ {span([e[-1]['copy_loss'] for e in ev], '{:.2f}')} at step {ev[0][-1]['step']} "
            f"(min {min(copy):.2f}, max {max(copy):.2f}), best prefix matching "
            f"{span([best_prefix(r) for r in rs], '{:.2f}')}, held-out text 1st − 2nd copy "
            f"{span([e[-1]['text_copy_gain'] for e in ev], '{:+.2f}')} nats/char, val loss "
            f"{span([r['val_loss'] for r in rs], '{:.3f}')}.")
    return lines


def verdicts(runs: list[dict], plan: dict) -> list[str]:
    chance = runs[0]["evals"][0]["copy_chance"]
    return [phase_changes(runs), stay_at_chance(runs, chance), depth_threshold(runs),
            transition_rate(runs, plan["steps"]), *smeared_keys(runs), transfer(runs),
            fewshot(runs, plan), em_vs_n(runs, plan), rule_learning(runs, plan),
            *natural_control(runs)]
