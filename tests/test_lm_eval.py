"""lm-evaluation-harness, offline, on the few-shot tasks: its log-likelihoods and exact matches
equal those of tinygpt's scorer on the same items."""
import json
from pathlib import Path

import pytest
import torch

from model.cli import main
from model.data.tokenizer import CharTokenizer
from model.infer.generate import generate
from model.studies.common.task_scoring import score_prompts
from model.studies.common.tasks import Prompt

from conftest import make_text, tiny_config
from test_export import TEXT, exported

# The [eval] extra: `make test-all` installs it; `make test` leaves these tests out.
pytestmark = pytest.mark.extras


@pytest.fixture(autouse=True)
def lm_eval_installed():
    """Asked per test, not at import: a run that deselects these tests (make test) then
    reports no skip for them."""
    pytest.importorskip("lm_eval", reason="the [eval] extra (lm-eval) is not installed")
    pytest.importorskip("accelerate",
                        reason="lm-eval's Hugging Face backend (lm-eval[hf]) is absent")


def test_lmeval_agrees_with_the_scorer_on_a_trained_run(tmp_path, capsys):
    from model.train.trainer import train

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i in range(3):  # (the tasks' separator is a colon: the vocabulary must hold one)
        (corpus / f"work{i}.txt").write_text(make_text(400, seed=i) + "KING: yes\n")
    train(tiny_config(corpus, tmp_path / "run", block_size=64))
    out = tmp_path / "check"
    assert main(["lmeval", str(tmp_path / "run"), f"--out={out}", "--tasks=copy,first_letter",
                 "--ks=0,2", "--items=8", "--threads=1"]) == 0
    assert "lm-eval agrees on 6 cases" in capsys.readouterr().out
    cases = json.loads((out / "cross_check.json").read_text())["cases"]
    assert [(c["task"], c["k"], c["shuffled"]) for c in cases] == [
        (t, k, s) for t in ("copy", "first_letter") for k, s in ((0, False), (2, False), (2, True))]
    assert all(c["same_exact"] and c["max_loglik_diff"] <= 1e-4 for c in cases)
    assert (out / "tasks" / "tinygpt_copy_k2_shuffled.yaml").is_file()


def test_exact_match_agrees_when_some_answers_are_right(tmp_path, capsys):
    """Half the targets are the model's own greedy continuation (an exact match by
    construction), half are not: both scorers must tell them apart the same way."""
    from model.studies.fewshot.harness import lm_eval_scores, write_tasks

    tok = CharTokenizer.fit(TEXT)
    model, folder = exported(tmp_path, tok, capsys)
    prompts = []
    for i in range(8):
        context = TEXT[i * 7:i * 7 + 30]
        ids = torch.tensor([tok.encode(context)])
        greedy = tok.decode(generate(model, ids, 3, temperature=0)[0, ids.size(1):].tolist())
        prompts.append(Prompt(context, greedy if i % 2 else TEXT[i:i + 3]))
    names = write_tasks(tmp_path / "tasks", [("probe", 0, False, prompts)])
    loglik, greedy = lm_eval_scores(folder, tmp_path / "tasks", names, 4, tok.stoi["\n"])[names[0]]
    ours = score_prompts(model, tok, prompts, 4)
    assert ours["exact"].any() and not ours["exact"].all()
    assert greedy.tolist() == ours["exact"].tolist()
    assert abs(loglik - ours["logprob"]).max() <= 1e-4


def test_the_modern_block_is_refused_in_one_line(tmp_path, capsys):
    from test_export import tiny_run
    from model.nn.config import ARCHS

    tiny_run(tmp_path / "run", CharTokenizer.fit(TEXT), **ARCHS["modern"])
    assert main(["lmeval", str(tmp_path / "run"), f"--out={tmp_path / 'o'}"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "GPT2LMHeadModel lacks" in err
    assert not Path(tmp_path / "o" / "tasks").exists()
