"""The InstructGPT pipeline: each loss against a value worked out by hand, the labeller on fixed
strings, and the whole pipeline on the quick preset (smoke run, resume after a kill)."""
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from model.cli import main
from model.studies.instruct import losses
from model.studies.instruct.rollout import line_mask
from model.studies.instruct.task import Instruction, PROMPT_CHARS, grade, instructions

VOCAB = frozenset("the king is dead long live and love my lord".split())


def close(a, b):
    assert torch.allclose(torch.as_tensor(a, dtype=torch.float32),
                          torch.as_tensor(b, dtype=torch.float32), atol=1e-5), (a, b)


def test_pairwise_loss_is_mean_over_ranked_pairs():
    # scores 2 > 1 > 1: pairs (0,1) and (0,2) count, the tie (1,2) does not
    reward = torch.tensor([[1.0, 0.0, 3.0]])
    loss, acc = losses.pairwise_loss(reward, torch.tensor([[2.0, 1.0, 1.0]]))
    close(loss, (-math.log(1 / (1 + math.exp(-1))) - math.log(1 / (1 + math.exp(2)))) / 2)
    close(acc, 0.5)
    _, acc = losses.pairwise_loss(torch.zeros(1, 3), torch.tensor([[2.0, 1.0, 0.0]]))
    close(acc, 0.5)  # a reward model that says the same of everything is at chance


def test_kl_penalty_per_token_and_score_at_the_last_kept_token():
    logp = torch.tensor([[-1.0, -2.0, -0.5]])
    logp_sft = torch.tensor([[-1.5, -1.0, -0.1]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    r = losses.kl_penalised_rewards(torch.tensor([2.0]), logp, logp_sft, mask, beta=0.1)
    close(r, [[-0.05, 0.1 + 2.0, 0.0]])


def test_kl_estimate_is_never_negative_and_unbiased_for_two_known_categoricals():
    # tokens drawn from π at every position; the exact KL(π ‖ π_ref) of a kept position is known
    pi, ref = torch.tensor([0.5, 0.2, 0.2, 0.1]), torch.tensor([0.25, 0.25, 0.25, 0.25])
    exact = (pi * (pi / ref).log()).sum()
    B, T = 4000, 3
    tokens = torch.multinomial(pi, B * T, replacement=True,
                               generator=torch.Generator().manual_seed(0)).view(B, T)
    mask = torch.ones(B, T)
    mask[: B // 2, 2] = 0  # half the completions end after two tokens: their third is not counted
    kl = losses.kl_estimate(pi.log()[tokens], ref.log()[tokens], mask)
    assert (kl >= 0).all()
    naive = ((pi.log()[tokens] - ref.log()[tokens]) * mask).sum(1)
    assert (naive < 0).any()  # what the plain log-ratio printed: a KL below 0
    expected = exact * mask.sum(1).mean()
    se = kl.std() / math.sqrt(B)
    assert abs(kl.mean() - expected) < 4 * se, (kl.mean(), expected, se)
    close(losses.kl_estimate(pi.log()[tokens], pi.log()[tokens], mask), torch.zeros(B))


def test_gae_by_hand():
    rewards, values = torch.tensor([[0.0, 1.0, 5.0]]), torch.tensor([[0.5, 0.2, 9.0]])
    adv, ret = losses.gae(rewards, values, torch.tensor([[1.0, 1.0, 0.0]]), gamma=1.0, lam=0.5)
    # t=1: δ = 1 + 0 (episode over) - 0.2 = 0.8; t=0: δ = 0 + 0.2 - 0.5 = -0.3, A = -0.3 + 0.5·0.8
    close(adv, [[0.1, 0.8, 0.0]])
    close(ret, [[0.6, 1.0, 0.0]])


def test_clipped_objective_by_hand():
    logp_old = torch.zeros(1, 2)
    logp = torch.log(torch.tensor([[1.5, 1.5]]))  # ratio 1.5
    adv, mask = torch.tensor([[1.0, -1.0]]), torch.ones(1, 2)
    # A > 0: min(1.5, 1.2)·1 = 1.2; A < 0: min(-1.5, -1.2) = -1.5; loss = -(1.2 - 1.5) / 2
    close(losses.clipped_policy_loss(logp, logp_old, adv, mask, clip=0.2), 0.15)


def test_clipped_value_loss_by_hand():
    v, v_old, ret = torch.tensor([[1.0]]), torch.tensor([[0.0]]), torch.tensor([[2.0]])
    # unclipped (1-2)² = 1; clipped value 0.2: (0.2-2)² = 3.24; ½·max = 1.62
    close(losses.clipped_value_loss(v, v_old, ret, torch.ones(1, 1), clip=0.2), 1.62)


def test_dpo_loss_by_hand():
    loss, acc = losses.dpo_loss(torch.tensor([-1.0]), torch.tensor([-3.0]),
                                torch.tensor([-2.0]), torch.tensor([-2.0]), beta=0.5)
    close(loss, -math.log(1 / (1 + math.exp(-1.0))))  # margin 0.5·((−1+2) − (−3+2)) = 1
    close(acc, 1.0)


def test_whiten_and_masked_mean():
    x, mask = torch.tensor([[1.0, 3.0, 100.0]]), torch.tensor([[1.0, 1.0, 0.0]])
    close(losses.masked_mean(x, mask), 2.0)
    close(losses.whiten(x, mask), [[-1.0, 1.0, 0.0]])


def test_line_mask_keeps_up_to_the_first_newline():
    nl = 0
    close(line_mask(torch.tensor([[5, 0, 6, 0], [5, 6, 7, 8]]), nl),
          [[1, 1, 0, 0], [1, 1, 1, 1]])


@pytest.mark.parametrize("text, keyword, want", [
    ("the king is dead, long live the king\n", "dead", dict(keyword=1.0, length=1.0)),
    ("my lord, my love, the lovely king is dead\n", "love", dict(keyword=1.0)),
    ("my lord the lovely king is dead long\n", "love", dict(keyword=0.5)),
    ("love love love love love love love\n", "love", dict(keyword=0.5, variety=1 / 7)),
    ("the king is dead, long live the king", "dead", dict(length=0.0)),  # no newline
    ("the king\n", "king", dict(length=0.0, words=1.0)),  # 8 characters
    ("zzq xxv the king is dead and gone away\n", "dead", dict(words=5 / 9)),
    ("\n", "king", dict(keyword=0.0, length=0.0, words=0.0, variety=0.0, score=0.0)),
])
def test_labeller_on_fixed_strings(text, keyword, want):
    got = grade(text, keyword, VOCAB)
    for part, value in want.items():
        assert got[part] == pytest.approx(value), (part, got)
    assert got["score"] == pytest.approx(0.5 * got["keyword"] + 0.2 * got["length"]
                                         + 0.15 * got["words"] + 0.15 * got["variety"])


def test_labeller_length_ramps():
    line = "the king " * 8  # 72 characters: past 60, a third of the way down to 0 at 90
    assert grade(line[:72] + "\n", "king", VOCAB)["length"] == pytest.approx(18 / 30)
    assert grade("the king is dead lo\n", "king", VOCAB)["length"] == pytest.approx(9 / 20)


def test_instructions_are_padded_prompts_from_speech_lines():
    play = "".join(f"KING RICHARD.\nNow is the winter of our discontent, my lord {i},\nMade "
                   f"glorious summer by this sun of York.\nAnd all the clouds, love, that "
                   f"lour'd.\n\nGLOUCESTER.\nAy, my lord.\n\n" for i in range(30))
    items = instructions(play, 20, seed=0)
    assert len(items) == 20 and all(len(it.prompt) == PROMPT_CHARS for it in items)
    assert {it.keyword for it in items} == {"lord", "love"}  # (the short line is no example)
    assert all(it.keyword in it.line.lower() for it in items)
    assert items == instructions(play, 20, seed=0)
    assert Instruction("A", "winter", "x").prompt.endswith("[winter]\nA.\n")


def run(argv):
    assert main(argv) == 0


@pytest.mark.long
def test_quick_pipeline_end_to_end(tmp_path, capsys):
    """tinygpt instruct on the quick preset: every stage, the results and the report; a second
    call finds everything finished."""
    out, base = tmp_path / "instruct", tmp_path / "base"
    run(["instruct", "--preset=quick", f"--out={out}", f"--base={base}", "--threads=1"])
    results = json.loads((out / "results.json").read_text())
    assert list(results["models"]) == ["base", "SFT", "PPO (RM 2x32)", "PPO-ptx (RM 2x32)", "DPO",
                                       "PPO sweep (RM 2x24)", "PPO sweep (RM 2x32)"]
    bon = json.loads((out / "bon.json").read_text())  # 24 prompts, max(n) = 8 answers each
    assert bon["n"] == [1, 2, 4, 8] and np.shape(bon["gold"]) == (24, 8)
    assert {size: np.shape(p) for size, p in bon["proxy"].items()} == {"2x24": (24, 8),
                                                                       "2x32": (24, 8)}
    for m in results["models"].values():  # 24 prompts, 2 answers each
        assert len(m["score"]) == 24 and {len(row) for row in m["score"]} == {2}
        assert all(0 <= s <= 1 for row in m["score"] for s in row)
        assert {len(row) for row in m["texts"]} == {2} and m["texts"][0][0] != m["texts"][0][1]
    assert results["kl_estimator"] == "k3"
    assert all(kl >= 0 for m in results["models"].values() for row in m["kl"] for kl in row)
    sweep = [json.loads(l) for l in (out / "ppo-rm2x24-sweep" / "metrics.jsonl").open()]
    assert all(r["kl"] >= 0 for r in sweep if "kl" in r)
    report = (out / "report.md").read_text()
    assert "## Reward over-optimisation against reward-model size" in report
    assert "## The alignment tax, stage by stage" in report and "Gao et al.'s forms" in report
    assert "| best-of-n | 2x24 | 4 |" in report and "| 8 | 1.10 |" in report
    assert (out / "overoptimisation.png").exists() and (out / "scores.png").exists()
    (out / "report.md").unlink()
    run(["report", str(out)])  # redrawn from the folder, with the settings it recorded
    assert (out / "report.md").read_text() == report
    capsys.readouterr()
    run(["instruct", "--preset=quick", f"--out={out}", f"--base={base}"])
    assert "training it now" not in capsys.readouterr().out


def test_a_killed_stage_resumes_exactly(tmp_path, monkeypatch):
    """SFT cut short by a crash after its step-10 checkpoint, then rerun, ends with the very
    weights of an uninterrupted SFT."""
    from model.studies.instruct import loop
    base = tmp_path / "base"
    args = ["--preset=quick", f"--base={base}", "--sft_steps=20", "--eval_every=10"]
    run(["sft", f"--out={tmp_path / 'a'}", *args])
    real_run = loop.run

    def crash_at_15(stage, step_fn, eval_fn, name):
        def step(s):
            if s == 15:
                raise KeyboardInterrupt
            return step_fn(s)
        return real_run(stage, step, eval_fn, name)

    monkeypatch.setattr(loop, "run", crash_at_15)
    assert main(["sft", f"--out={tmp_path / 'b'}", *args]) == 130
    monkeypatch.setattr(loop, "run", real_run)
    run(["sft", f"--out={tmp_path / 'b'}", *args])
    a = torch.load(tmp_path / "a" / "sft-2x32" / "ckpt.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "b" / "sft-2x32" / "ckpt.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    metrics = [json.loads(l) for l in (tmp_path / "b" / "sft-2x32" / "metrics.jsonl").open()]
    assert [r["step"] for r in metrics if "demo_loss" in r] == [0, 10, 20]


def tiny_stage(out: Path, crash_at: int = -1, steps: int = 20) -> tuple[dict, list[dict]]:
    """A 1-layer GPT with dropout trained through loop.run on tokens from torch's generator:
    every step draws from it, as dropout does, and so does every evaluation."""
    from model.nn.gpt import GPT, GPTConfig
    from model.studies.instruct import loop
    from model.train.runlog import read_metrics
    torch.manual_seed(0)
    net = GPT(GPTConfig(n_layer=1, n_head=2, n_embd=16, block_size=8, vocab_size=11,
                        dropout=0.1)).train()
    torch.manual_seed(crash_at)  # what ran before the stage differs; the stage seeds itself
    opt = loop.optimizer(net, 3e-3)
    stage = loop.Stage(out, {"model": net}, opt, steps, eval_every=10, seed=5)

    def step(s):
        if s == crash_at:
            raise KeyboardInterrupt
        x = torch.randint(0, 11, (4, 9))
        loss = net(x[:, :-1], x[:, 1:])[1]
        loop.descend(loss, opt, net)
        return {"train_loss": loss.item()}

    def evaluate(s):
        return {"draw": torch.rand(()).item()}

    loop.run(stage, step, evaluate, "tiny")
    return net.state_dict(), read_metrics(out)


def test_a_killed_stage_drawing_from_torchs_generator_resumes_bitwise(tmp_path):
    """Killed after its step-10 checkpoint and run again, a stage whose steps draw from torch's
    generator ends with the very weights and records of an uninterrupted one: the checkpoint
    holds the random streams, a fresh stage seeds them, and evaluations do not shift them."""
    whole, whole_log = tiny_stage(tmp_path / "a")
    with pytest.raises(KeyboardInterrupt):
        tiny_stage(tmp_path / "b", crash_at=15)
    resumed, resumed_log = tiny_stage(tmp_path / "b")
    assert all(torch.equal(whole[k], resumed[k]) for k in whole)
    assert resumed_log == whole_log


def test_the_stages_train_with_the_trainers_schedule_and_optimizer_under_their_settings():
    """Warmup over 10 steps, cosine to 10% of the peak; AdamW with β2 0.95 and no decay."""
    from model.nn.gpt import GPT, GPTConfig
    from model.studies.instruct import loop
    from model.train.optim import lr_at
    rates = [lr_at(s, loop.schedule(110), 2.0) for s in (0, 9, 10, 60, 110)]
    assert rates == [0.2, 2.0, 2.0, pytest.approx(1.1), pytest.approx(0.2)]
    opt = loop.optimizer(GPT(GPTConfig(n_layer=1, n_head=2, n_embd=16, block_size=8,
                                       vocab_size=11)), 3e-3)
    assert all(g["betas"] == (0.9, 0.95) and g["weight_decay"] == 0.0 and g["initial_lr"] == 3e-3
               for g in opt.param_groups)


def test_bad_settings_are_one_line(capsys):
    assert main(["instruct", "--preset=quick", "--k=1"]) == 2
    assert "k must be at least 2" in capsys.readouterr().err
    assert main(["ppo", "--preset=nosuch"]) == 2
    assert "no instruct preset 'nosuch'" in capsys.readouterr().err
    assert main(["dpo", "--preset=quick", "--policy_size=9x9"]) == 2
    assert "size '9x9' is unknown" in capsys.readouterr().err
    assert main(["instruct", "--preset=quick", "--bon_n=0,4"]) == 2
    assert "bon_n must be whole numbers of 1 or more" in capsys.readouterr().err
