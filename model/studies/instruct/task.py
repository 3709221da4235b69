"""The instruction task and its labeller: a program in the place of InstructGPT's human raters.

An instruction asks a character of the plays for one line that uses a given word, one of the
twelve KEYWORDS:

    [love]
    PROTEUS.
    Now let us take our leave. To Milan, love!

The prompt is the first two lines; the completion is the third, ending at its newline. Prompts
are drawn from real speech lines (the line itself is the demonstration SFT learns from), from
the training plays for training and from the held-out plays for evaluation. (Any word of 5+
letters was tried first: SFT did not learn to copy a word it had never been asked for, as these
models, trained on natural text alone, form no induction heads; the keyword score of a 4x104
model stayed at 0.00. With 32 words SFT reached 0.11, but the reward models saw too few lines
with each word to learn it: they ordered pairs that differ in the keyword no better than
0.55-0.62.) The labeller never reaches any model: it grades a completion from 0 to 1 on four
parts, the keyword most (see WEIGHTS), so that a base model rarely scores 1 but every completion
earns something, and a policy that repeats the keyword or writes non-words to please a learned
reward loses score.
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass

from ...errors import UserError

SPEAKER = r"[A-Z][A-Z' ]*[A-Z]"  # a speaker's name as the plays write it: "DUKE SENIOR"
# A speaker line of the plays ("DUKE SENIOR.") followed by the speech's lines up to a blank one.
SPEECH = re.compile(rf"^({SPEAKER})\.\n((?:[^\n]+\n)+)", re.M)
WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")
# The twelve words of 4+ letters used most often in the plays' lines of LINE_CHARS characters.
KEYWORDS = frozenset("lord love king time heart death night hand life fair eyes sweet".split())
PROMPT_CHARS = 40          # every prompt is left-padded with newlines to exactly this length
# The name of this prompt layout and of an answer's end (its newline), kept in the checkpoint of
# every model trained to answer it (SFT, PPO, DPO): what `tinygpt chat` asks of a model.
PROMPT_FORMAT = "instruct-line-1"
LINE_CHARS = (30, 60)      # a demonstration's length, and the length the labeller asks for
WEIGHTS = {"keyword": 0.5, "length": 0.2, "words": 0.15, "variety": 0.15}


@dataclass(frozen=True)
class Instruction:
    speaker: str
    keyword: str
    line: str  # the demonstration: the play's own line, without its newline

    @property
    def prompt(self) -> str:
        """The instruction as the model reads it: PROMPT_CHARS characters, newlines first (a
        blank stretch of a play), so every prompt in a batch ends at the same position."""
        text = f"[{self.keyword}]\n{self.speaker}.\n"
        return "\n" * (PROMPT_CHARS - len(text)) + text


def instructions(text: str, n: int, seed: int) -> list[Instruction]:
    """n instructions from the speech lines of text, in an order fixed by seed. A line serves
    if it is LINE_CHARS long and uses one of KEYWORDS; the keyword is one of those at random."""
    candidates = []
    for speaker, body in SPEECH.findall(text):
        for line in body.splitlines():
            line = line.strip()
            words = sorted(KEYWORDS.intersection(WORD.findall(line.lower())))
            if LINE_CHARS[0] <= len(line) <= LINE_CHARS[1] and words:
                candidates.append((speaker, line, words))
    rng = random.Random(seed)
    rng.shuffle(candidates)
    chosen = []
    for speaker, line, words in candidates:
        item = Instruction(speaker, rng.choice(words), line)
        if len(item.prompt) == PROMPT_CHARS:  # (else a long name and word overflow it)
            chosen.append(item)
        if len(chosen) == n:
            return chosen
    raise UserError(f"the text holds only {len(chosen)} speech lines usable as instructions; "
                    f"{n} were asked for: lower the prompt counts or give a longer corpus")


def the_line(completion: str) -> tuple[str, bool]:
    """The completion up to its first newline, and whether it had one (a finished line)."""
    line, newline, _ = completion.partition("\n")
    return line, bool(newline)


def ramp(x: float, zero_at: float, one_at: float) -> float:
    """0 at zero_at, 1 at one_at, linear between, clipped to [0, 1]."""
    return min(1.0, max(0.0, (x - zero_at) / (one_at - zero_at)))


def grade(completion: str, keyword: str, vocabulary: frozenset[str]) -> dict[str, float]:
    """The labeller's parts, each from 0 to 1, and their weighted sum "score":
    - keyword: 1 if the line uses the word once as a word, 0.5 if only inside another word
      ("loves" for "love") or more than once, else 0;
    - length: 1 for a finished line of LINE_CHARS characters, falling linearly to 0 at 10 and
      at 90 characters; 0 for an unfinished one;
    - words: the share of its words found in the training plays (non-words score low);
    - variety: distinct words over words (repeating one word scores low)."""
    line, finished = the_line(completion)
    words = WORD.findall(line.lower())
    uses = words.count(keyword)
    keyword_part = 1.0 if uses == 1 else 0.5 if uses > 1 or keyword in line.lower() else 0.0
    n = len(line)
    length = min(ramp(n, 10, LINE_CHARS[0]), ramp(n, 90, LINE_CHARS[1])) if finished else 0.0
    known = sum(w in vocabulary for w in words) / len(words) if words else 0.0
    variety = len(set(words)) / len(words) if words else 0.0
    parts = {"keyword": keyword_part, "length": length, "words": known, "variety": variety}
    parts["score"] = sum(WEIGHTS[k] * v for k, v in parts.items())
    return parts


def rating(score: float) -> float:
    """The labeller's rating of a completion for a ranking: its score to the nearest tenth, as
    a rater grades on a scale. Completions a tenth apart or less tie and make no comparison:
    ranked on raw scores, most pairs differed by a few hundredths of the real-word share, and
    the reward models spent themselves on those (a 2x48 reward model ordered pairs that differ
    in the keyword 0.63 right; on ratings, with a higher rate and a third pass, 0.74)."""
    return round(score * 10) / 10


def vocabulary_of(text: str) -> frozenset[str]:
    """Every lowercase word of the text: what the labeller counts as a real word."""
    return frozenset(WORD.findall(text.lower()))
