"""`tinygpt chat`: a conversation in the terminal with a model of the instruct pipeline.

A turn is one of the pipeline's instructions (task.py): the user names a keyword and, if they
like, who speaks ("love", or "love JULIET"); the model answers with one line, streamed as it is
sampled, and the answer ends at its newline, as SFT taught it. Earlier turns stay in the
context, the oldest dropped first, so that they, the new prompt and the longest answer fit the
model's context window.
"""
from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from ...args import positional
from ...errors import UserError
from ...infer.sampler import SampleOptions, sample_text
from ...train import checkpoint
from ...train.device import pick_device, set_threads
from .task import KEYWORDS, PROMPT_CHARS, PROMPT_FORMAT, SPEAKER, WORD, Instruction

HELP = "say a keyword and, if you like, who speaks: love, or love JULIET (Ctrl-D or /quit ends)"


@dataclass
class ChatArgs:
    ckpt: str = positional()    # an SFT, PPO or DPO checkpoint of tinygpt instruct, or its folder
    speaker: str = "ROMEO"      # who answers, until a turn names another
    max_new_tokens: int = 64    # an answer's length at most (the pipeline trains lines within 64)
    temperature: float = 0.8    # 0 is greedy; higher is more random
    top_k: int = 200            # sample from the k most likely tokens; 0 is off
    top_p: float = 1.0          # sample from the smallest set of this much probability; 1 is off
    seed: int = 1337            # seeds the first answer; the next ones take seed+1, ...
    device: str = "auto"        # "auto" | "cpu" | "cuda" (or cuda:N) | "mps"
    threads: int = 0            # CPU threads; 0 keeps torch's default

    def options(self, prompt: str = "") -> SampleOptions:
        """The sampling options of an answer to prompt: it ends at the line's newline."""
        return SampleOptions(prompt=prompt, max_new_tokens=self.max_new_tokens,
                             temperature=self.temperature, top_k=self.top_k, top_p=self.top_p,
                             stop="\n").validate()

    def validate(self) -> "ChatArgs":
        self.options()
        return self


def instruct_model(path: str | Path, device: str):
    """The model and tokenizer of an instruct checkpoint, or a UserError saying it is none."""
    path = checkpoint.file_of(path)
    state = checkpoint.load(path, device)
    if state.get("prompt_format") != PROMPT_FORMAT:
        raise UserError(f"{path} is not an instruct model (its checkpoint names no prompt format "
                        f"{PROMPT_FORMAT!r}; base and reward models have none): give the ckpt.pt "
                        "of an sft-, ppo- or dpo stage of tinygpt instruct")
    return checkpoint.model_of(state, path, device), checkpoint.tokenizer_of(state, path)


def instruction(line: str, speaker: str) -> Instruction:
    """The instruction a typed turn asks for: its first word the keyword, the rest (if any) who
    speaks; a UserError saying how to ask when it is none."""
    keyword, _, name = line.strip().partition(" ")
    keyword, name = keyword.lower(), name.strip().rstrip(".").upper() or speaker
    item = Instruction(name, keyword, "")
    if not (WORD.fullmatch(keyword) and re.fullmatch(SPEAKER, name)) or len(
            item.prompt) > PROMPT_CHARS:
        raise UserError(f"cannot ask that; {HELP}")
    return item


def context(turns: list[str], prompt: str, room: int, length) -> str:
    """The latest whole turns that fit before prompt in room tokens (length counts a text's)."""
    kept: list[str] = []
    used = length(prompt)
    for turn in reversed(turns):
        used += length(turn)
        if used > room:
            break
        kept.insert(0, turn)
    return "".join(kept) + prompt


def chat(model, tok, args: ChatArgs, stdin: TextIO, out: TextIO) -> list[str]:
    """The conversation: read a turn, stream its answer, until end of input; returns the turns
    (prompt and answer, as the model read them)."""
    room = model.cfg.block_size - args.max_new_tokens
    if room < PROMPT_CHARS:
        raise UserError(f"the model's context ({model.cfg.block_size}) has no room for a prompt "
                        f"of {PROMPT_CHARS} and an answer of {args.max_new_tokens}; lower "
                        "--max_new_tokens")
    out.write(f"{HELP}\nthe model was trained on: {', '.join(sorted(KEYWORDS))}\n")
    turns: list[str] = []
    speaker, seed = args.speaker, args.seed
    while True:
        out.write("> ")
        out.flush()
        line = stdin.readline()
        if not line or line.strip() == "/quit":
            return turns
        if not line.strip():
            continue
        try:
            item = instruction(line, speaker)
            prompt = context(turns, item.prompt, room, lambda t: len(tok.encode(t)))
            out.write(f"{item.speaker}. ")
            answer = ""
            for piece in sample_text(model, tok, args.options(prompt), seed):
                out.write(piece)
                out.flush()
                answer += piece
        except UserError as e:  # (a character the vocabulary lacks, say): the chat goes on
            out.write(f"{e}\n")
            continue
        out.write("\n")
        turns.append(f"{item.prompt}{answer}\n")
        speaker, seed = item.speaker, seed + 1


def main(args: ChatArgs) -> None:
    set_threads(args.threads)
    model, tok = instruct_model(args.ckpt, pick_device(args.device))
    chat(model, tok, args, sys.stdin, sys.stdout)
