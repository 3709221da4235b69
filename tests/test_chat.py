"""`tinygpt chat`: a conversation with an instruct model in a terminal, each answer streamed
and ended at its newline, earlier turns kept in the context while they fit."""
import io
import os
import pty
import select
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch

from model.cli import main
from model.data.tokenizer import CharTokenizer
from model.infer.generate import generate
from model.nn.gpt import GPT, GPTConfig
from model.studies.instruct.chat import ChatArgs, chat, context, instruct_model
from model.studies.instruct.task import PROMPT_FORMAT, Instruction
from model.train import checkpoint

from conftest import make_text

ROOT = Path(__file__).resolve().parents[1]
SEED = 5  # (an answer of this seed's first two turns ends at a newline: asserted below)


def tiny_instruct(path: Path, **extra) -> tuple[GPT, CharTokenizer]:
    """A random 2-layer, width-32 model saved as an instruct stage's checkpoint."""
    tok = CharTokenizer.fit(make_text(50) + "[]" + "ABCDEFGHIJKLMNOPQRSTUVWXYZ")
    cfg = GPTConfig(vocab_size=tok.vocab_size, block_size=256, n_layer=2, n_head=2, n_embd=32)
    torch.manual_seed(0)
    model = GPT(cfg).eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    checkpoint.save(path, {"model": model.state_dict(), "model_config": asdict(cfg),
                           "tokenizer": tok.meta(), **extra})
    return model, tok


def expected_answer(model, tok, text: str, seed: int) -> str:
    """The line the model samples after text with the chat's default options, found through
    generate(), cut at its newline (which must come within the 64 tokens)."""
    ids = torch.tensor([tok.encode(text)])
    new = generate(model, ids, 64, temperature=0.8, top_k=200, seed=seed)[0, ids.size(1):]
    line, newline, _ = tok.decode(new.tolist()).partition("\n")
    assert newline, "this seed's answer runs past max_new_tokens: choose another SEED"
    return line


def read_until(fd: int, pattern: str, seen: list[str], timeout: float = 120) -> str:
    """Read the terminal until the text since the last call ends with pattern."""
    text, deadline = "", time.monotonic() + timeout
    while not text.replace("\r\n", "\n").endswith(pattern):
        assert time.monotonic() < deadline, f"no {pattern!r} in {text!r}"
        if select.select([fd], [], [], 1)[0]:
            text += os.read(fd, 4096).decode()
    seen.append(text.replace("\r\n", "\n"))
    return seen[-1]


def test_a_conversation_through_a_terminal(tmp_path):
    """Two turns typed at a pseudo-terminal, then Ctrl-D: each answer is the model's own line
    for the prompt (the second after the first turn, in the same speaker's voice), stopped at
    its newline."""
    ckpt = tmp_path / "sft-tiny" / "ckpt.pt"
    model, tok = tiny_instruct(ckpt, prompt_format=PROMPT_FORMAT)
    first = Instruction("JULIET", "love", "").prompt
    answer1 = expected_answer(model, tok, first, SEED)
    second = first + answer1 + "\n" + Instruction("JULIET", "night", "").prompt
    answer2 = expected_answer(model, tok, second, SEED + 1)

    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "model.cli", "chat", str(ckpt.parent),
                             f"--seed={SEED}", "--device=cpu", "--threads=1"],
                            stdin=follower, stdout=follower, stderr=follower, cwd=tmp_path,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    os.close(follower)
    seen: list[str] = []
    try:
        read_until(leader, "> ", seen)
        os.write(leader, b"love JULIET\n")
        assert read_until(leader, "> ", seen) == f"love JULIET\nJULIET. {answer1}\n> "
        os.write(leader, b"night\n")
        assert read_until(leader, "> ", seen) == f"night\nJULIET. {answer2}\n> "
        os.write(leader, b"\x04")  # Ctrl-D: end of input
        assert proc.wait(timeout=60) == 0, seen
    finally:
        proc.kill()
        os.close(leader)


class Pieces(io.StringIO):
    """An output that also keeps each write apart."""

    def __init__(self):
        super().__init__()
        self.writes: list[str] = []

    def write(self, s: str) -> int:
        self.writes.append(s)
        return super().write(s)


def test_answers_stream_and_a_bad_turn_is_one_line(tmp_path):
    model, tok = tiny_instruct(tmp_path / "ckpt.pt")
    out = Pieces()
    turns = chat(model, tok, ChatArgs(ckpt="", seed=SEED), io.StringIO("Love of my LIFE!\nlove\n"),
                 out)
    text = out.getvalue()
    assert "cannot ask that; say a keyword" in text
    assert text.endswith(f"ROMEO. {expected_answer(model, tok, turns[0][:40], SEED)}\n> ")
    start = out.writes.index("ROMEO. ")
    assert len(out.writes[start + 1:out.writes.index("\n", start)]) > 1  # token by token
    assert len(turns) == 1 and turns[0].startswith(Instruction("ROMEO", "love", "").prompt)


def test_the_oldest_turns_leave_the_context_first():
    turns = ["a" * 10, "b" * 10, "c" * 10]
    assert context(turns, "p" * 5, 25, len) == "b" * 10 + "c" * 10 + "p" * 5
    assert context(turns, "p" * 5, 24, len) == "c" * 10 + "p" * 5  # whole turns only
    assert context(turns, "p" * 5, 35, len) == "".join(turns) + "p" * 5


def test_a_model_that_is_not_instruct_is_one_line(tmp_path, capsys):
    tiny_instruct(tmp_path / "base" / "ckpt.pt")  # no prompt format: a base model's checkpoint
    assert main(["chat", str(tmp_path / "base")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1
    assert "is not an instruct model" in err and "sft-" in err


def test_sft_writes_a_model_chat_talks_to(tmp_path):
    """The prompt format is written by SFT itself (and by PPO and DPO, through the same
    policy_meta), so chat accepts a real fine-tuned model."""
    assert main(["sft", "--preset=quick", f"--out={tmp_path / 'i'}", f"--base={tmp_path / 'b'}",
                 "--sft_steps=2", "--eval_every=2", "--threads=1"]) == 0
    ckpt = tmp_path / "i" / "sft-2x32" / "ckpt.pt"
    assert checkpoint.load(ckpt)["prompt_format"] == PROMPT_FORMAT
    model, tok = instruct_model(ckpt.parent, "cpu")
    turns = chat(model, tok, ChatArgs(ckpt=str(ckpt)), io.StringIO("love\n"), io.StringIO())
    assert len(turns) == 1 and turns[0].startswith(Instruction("ROMEO", "love", "").prompt)
