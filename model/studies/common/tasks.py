"""Few-shot tasks: seeded generators of (input, target) items from held-out text.

A prompt is k demonstrations and a query, one per line, in the style of GPT-3
§3.9.2 ("s.u!c/c!e.s s i/o/n = succession"). Shakespeare's character set has
neither '=' nor '>', so the separator is a colon:

    g,r.a!c e: grace
    k;i n/g: king
    s!w.o;r,d: sword      <- the prompt ends at ": "; "sword\\n" is scored

The scored target includes the end of line: an exact match means greedy
decoding writes the answer and stops.

A task is one make_item(rng, text) -> (input, target) function registered with
@task; its docstring says what it asks, its kind (KINDS) what a score on it can show.
Adding one takes a few lines.
"""
from __future__ import annotations

import functools
import random
import re
from collections import Counter
from dataclasses import dataclass
from typing import Callable

from ...errors import UserError

KS = (0, 1, 2, 4, 8, 16)
SEP, END = ": ", "\n"
SYMBOLS = " .,!?;/"  # GPT-3's random insertion: punctuation or a space (never the separator)
MAX_TRIES = 100      # draws per demonstration before a source counts as too small

Item = tuple[str, str]

# What a score on a task can show, by how the answer relates to the prompt.
KINDS = {
    "copy": "the answer is the query's own input",
    "recall": "the query repeats a demonstration's input: the answer is in the prompt, and "
              "retrieving it among k demonstrations has chance near 1/k",
    "transform": "the answer is a rule applied to the query's input, the rule named only by "
                 "the demonstrations",
    "control": "negative control: a gain here is format learning, not the skill",
}


@dataclass(frozen=True)
class Task:
    name: str
    make_item: Callable[[random.Random, str], Item]
    kind: str = "transform"  # one of KINDS
    # the query's answer occurs nowhere in its prompt, not even inside another word: it must be
    # computed, it cannot be found (the tests check this over many seeds)
    unseen: bool = False
    about: str = ""

    @property
    def recall(self) -> bool:
        return self.kind == "recall"

    @property
    def control(self) -> bool:
        return self.kind == "control"


@dataclass(frozen=True)
class Prompt:
    context: str  # the demonstrations, then the query's input and the separator
    target: str   # the query's answer and END: the scored characters
    shots: tuple[Item, ...] = ()  # the demonstrations the context shows, in order


TASKS: dict[str, Task] = {}


def task(name: str, kind: str = "transform", unseen: bool = False):
    """Register a make_item function as a task; its docstring describes it."""
    assert kind in KINDS, kind
    def register(make_item: Callable[[random.Random, str], Item]):
        TASKS[name] = Task(name, make_item, kind, unseen, " ".join(make_item.__doc__.split()))
        return make_item
    return register


# Distinct words and speeches, sorted: a seed then picks the same items on any machine.
# Words have at most 6 letters so that 17 copy lines ("abcdef: abcdef\n") fit in 256 chars.
# lru_cache keys on the text; CPython caches a str's hash, so a hit costs nothing.
WORD = re.compile(r"(?<![\w'])[a-z]+(?![\w'])")
SPEECH = re.compile(r"^([A-Z][A-Z' ]*[A-Z])\.\n(\S[^\n]*)", re.M)
TITLE = re.compile(r"(?<![\w'])[A-Z][a-z]+(?![\w'])")
FEWEST = 20  # distinct items a source must hold: k = 16 needs 17 distinct inputs


def enough(found: tuple, what: str, needs: str) -> tuple:
    if len(found) < FEWEST:
        raise UserError(f"the held-out text has only {len(found)} {what}; {needs}")
    return found


@functools.lru_cache(maxsize=16)
def words(text: str, shortest: int = 3, longest: int = 6) -> tuple[str, ...]:
    found = tuple(sorted({w for w in WORD.findall(text) if shortest <= len(w) <= longest}))
    return enough(found, f"distinct lowercase words of {shortest}-{longest} letters",
                  "few-shot tasks need a longer text")


def clip(line: str, width: int) -> str:
    """The longest run of whole words of line within width characters."""
    return line if len(line) <= width else line[:width + 1].rsplit(" ", 1)[0][:width].rstrip()


@functools.lru_cache(maxsize=4)
def speeches(text: str, width: int = 12) -> tuple[Item, ...]:
    """(opening of a speech's first line, its speaker) in the play's "NAME.\\n" layout, both
    short enough that five lines (k = 4) fit in a 128-character context and nine (k = 8) in
    256, and free of the separator. (Openings were 14 characters before the emergence study,
    whose models have a 128-character context; the longest k = 4 prompt was 131.)"""
    found = tuple(sorted({(clip(line, width), name) for name, line in SPEECH.findall(text)
                          if len(name) <= 12 and SEP not in clip(line, width)}))
    return enough(found, "speeches in 'NAME.' layout", "speaker recall needs a play")


def unseen_items(pairs) -> tuple[Item, ...]:
    """The (input, answer) pairs whose answer occurs neither in their own input nor anywhere
    in another pair's line (not even inside a longer word: "Love" is dropped if "Lovely" is
    an answer too), so no prompt built from them shows its query's answer."""
    pairs = sorted(set(pairs))
    lines = [x + SEP + y for x, y in pairs]
    return tuple((x, y) for x, y in pairs
                 if y not in x and sum(y in line for line in lines) == 1)


@functools.lru_cache(maxsize=4)
def capitalised(text: str) -> tuple[Item, ...]:
    """(word, Word) for the words of 3-5 letters (k = 8 fits in 128 characters) that the
    held-out text writes both in lowercase and capitalised, as at the start of a line."""
    titles = set(TITLE.findall(text))
    found = unseen_items((w, w.capitalize()) for w in words(text, 3, 5)
                         if w.capitalize() in titles)
    return enough(found, "words written both lowercase and capitalised",
                  "capitalise needs a longer text")


@functools.lru_cache(maxsize=4)
def headings(text: str) -> tuple[Item, ...]:
    """(Name, NAME) for the one-word speaker headings of 3-10 letters whose name the held-out
    text also writes in title case (in speeches and stage directions). Ten letters keep k = 4
    within 128 characters."""
    titles = set(TITLE.findall(text))
    found = unseen_items((n.capitalize(), n) for n, _ in SPEECH.findall(text)
                         if n.isalpha() and 3 <= len(n) <= 10 and n.capitalize() in titles)
    return enough(found, "one-word speakers also named in title case",
                  "speaker_heading needs a play")


@functools.lru_cache(maxsize=4)
def with_s(text: str) -> tuple[Item, ...]:
    """(word, words) for the words of 3-5 letters that the held-out text also writes with an
    s added: plurals ("kings") and verbs ("knows")."""
    written = set(WORD.findall(text))
    found = unseen_items((w, w + "s") for w in words(text, 3, 5) if w + "s" in written)
    return enough(found, "words also written with an s added", "suffix_s needs a longer text")


@task("copy", kind="copy")
def copy(rng: random.Random, text: str) -> Item:
    """Repeat the word."""
    w = rng.choice(words(text))
    return w, w


@task("symbol_removal")
def symbol_removal(rng: random.Random, text: str) -> Item:
    """GPT-3's random insertion: a symbol between every two letters; answer the clean word."""
    w = rng.choice(words(text))
    return w[0] + "".join(rng.choice(SYMBOLS) + c for c in w[1:]), w


@task("first_letter")
def first_letter(rng: random.Random, text: str) -> Item:
    """The word's first letter."""
    w = rng.choice(words(text))
    return w, w[0]


@task("last_letter")
def last_letter(rng: random.Random, text: str) -> Item:
    """The word's last letter."""
    w = rng.choice(words(text))
    return w, w[-1]


@task("uppercase")
def uppercase(rng: random.Random, text: str) -> Item:
    """The word in capitals, as speakers' names are printed."""
    w = rng.choice(words(text))
    return w, w.upper()


@task("capitalise", unseen=True)
def capitalise(rng: random.Random, text: str) -> Item:
    """The word capitalised, as the plays print it at the start of a line ("grace: Grace");
    only words the held-out plays write both ways. The answer is never in the prompt."""
    return rng.choice(capitalised(text))


@task("speaker_heading", unseen=True)
def speaker_heading(rng: random.Random, text: str) -> Item:
    """A name as the dialogue writes it, in the capitals of its speaker heading
    ("Helena: HELENA"); only one-word speakers of the held-out plays. The answer is never in
    the prompt."""
    return rng.choice(headings(text))


@task("suffix_s", unseen=True)
def suffix_s(rng: random.Random, text: str) -> Item:
    """The word with an s added ("king: kings", "know: knows"); only words the held-out
    plays write both ways. The answer is never in the prompt."""
    return rng.choice(with_s(text))


@task("pair_recall", kind="recall")
def pair_recall(rng: random.Random, text: str) -> Item:
    """key: value pairs of random short words defined only in the prompt; the query repeats one
    key. Chance with k pairs is 1/k; at k=0 the key is new and nothing can be recalled."""
    pool = words(text, 3, 5)
    return rng.choice(pool), rng.choice(pool)


@task("speaker_recall", kind="recall")
def speaker_recall(rng: random.Random, text: str) -> Item:
    """Opening words of a speech in the held-out plays: who said it. Demonstrations are drawn
    across the plays (about k distinct speakers, chance near 1/k); the query repeats one of them,
    so the answer is the speaker shown next to that line earlier in the prompt."""
    return rng.choice(speeches(text))


@task("reversal", kind="control")
def reversal(rng: random.Random, text: str) -> Item:
    """The word spelled backwards (GPT-3 175B: 0.4% few-shot; expected to stay at zero)."""
    w = rng.choice(words(text))
    return w, w[::-1]


@task("addition", kind="control")
def addition(rng: random.Random, text: str) -> Item:
    """Two-digit addition; Shakespeare teaches no arithmetic, so only the answer's format
    (two or three digits) can be learned from the demonstrations."""
    a, b = rng.randint(10, 99), rng.randint(10, 99)
    return f"{a} plus {b}", str(a + b)


def demonstrations(task: Task, k: int, rng: random.Random, text: str, query: str) -> list[Item]:
    """k items whose inputs differ from each other and from the query's: no answer leaks
    into its own prompt, and a recall key is never ambiguous."""
    shots, seen = [], {query}
    for _ in range(MAX_TRIES * (k + 1)):
        if len(shots) == k:
            return shots
        x, y = task.make_item(rng, text)
        if x not in seen:
            seen.add(x)
            shots.append((x, y))
    raise UserError(f"task {task.name}: the held-out text has too few distinct items for {k} "
                    "demonstrations; use a longer text or smaller k")


def derange(shots: list[Item], rng: random.Random) -> list[Item]:
    """Give every demonstration another demonstration's target (one random cycle, so no
    demonstration keeps its own): the shuffled-demonstration control. Where two demonstrations
    share a target (first_letter's "sword: s" and "sweet: s"), a cycle can still pair an input
    with its right answer; the cycle is redrawn until none does, or MAX_TRIES times where one
    answer is too common for that."""
    for _ in range(MAX_TRIES):
        order = list(range(len(shots)))
        rng.shuffle(order)
        moved = list(shots)
        for i, j in zip(order, order[1:] + order[:1]):
            moved[i] = (shots[i][0], shots[j][1])
        if not set(moved) & set(shots):
            break
    return moved


def build_prompts(task: Task, k: int, n: int, seed: int, text: str,
                  shuffled: bool = False) -> list[Prompt]:
    """n prompts of k demonstrations, identical for every model under one seed.

    Queries come from one stream per task, so every k asks the same questions (k=0 against
    k=8 is a paired comparison); a recall task's query is one of its demonstrations instead.
    The shuffled control permutes the targets of exactly the demonstrations of the unshuffled
    prompts, so the two differ only in whether the demonstrations are right.
    """
    if shuffled and task.recall:
        raise ValueError(f"{task.name} defines its answers in the prompt: shuffling is no control")
    queries = random.Random(f"{seed}:{task.name}:queries")
    demos = random.Random(f"{seed}:{task.name}:{k}")
    perm = random.Random(f"{seed}:{task.name}:{k}:shuffle")
    prompts = []
    for _ in range(n):
        query = task.make_item(queries, text)
        shots = demonstrations(task, k, demos, text, query[0])
        if task.recall and shots:
            query = demos.choice(shots)
        if shuffled:
            shots = derange(shots, perm)
        lines = "".join(x + SEP + y + END for x, y in shots)
        prompts.append(Prompt(lines + query[0] + SEP, query[1] + END, tuple(shots)))
    return prompts


def chance(task: Task, k: int, prompts: list[Prompt] | None = None) -> float | None:
    """The exact match of a guesser without the skill, to print beside a score.

    A recall task at k >= 1: writing the answer of a demonstration picked at random, 1/k when
    the demonstrations' answers differ; measured from the prompts when they are given
    (speaker_recall's speakers repeat, which raises it: 0.27 at k = 4 on the held-out plays).
    At k = 0 there is nothing to recall and no guess to count: None.
    Any other task: writing the commonest query answer every time, measured from the prompts
    (on the held-out plays at 100-200 items: 0.14-0.19 for first_letter and last_letter,
    0.01-0.04 for tasks whose answers are words); None without them, since it depends on
    the items.
    """
    if task.recall:
        if k == 0:
            return None
        if not prompts:
            return 1 / k
        return sum(sum(y + END == p.target for _, y in p.shots) / k for p in prompts) / len(prompts)
    if not prompts:
        return None
    answers = Counter(p.target for p in prompts)
    return answers.most_common(1)[0][1] / len(prompts)
