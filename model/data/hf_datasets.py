"""Opt-in Hugging Face datasets (pip install 'tinygpt[hf]'): the hf:<name> source of corpus.py.

Offline, datasets.load_dataset retries for about 23 s before failing with a
long traceback; we check first and fail at once with the offline alternatives.
"""
from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

from ..errors import UserError

OFFLINE_HINT = "use --dataset shakespeare (embedded) or a local text file or folder"
TEXT_FIELDS = ("text", "story", "content")
MAX_DOCS = 20_000  # enough for a laptop study; the full sets are gigabytes


def hub_reachable(timeout: float = 3.0) -> bool:
    from huggingface_hub import constants

    host = urlparse(constants.ENDPOINT).hostname
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def hf_texts(name: str) -> list[tuple[str, str]]:
    """(name, text) of up to MAX_DOCS rows of the train split of a hub dataset."""
    if os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("HF_DATASETS_OFFLINE") == "1":
        raise UserError(f"Hugging Face dataset {name!r} requested but HF_HUB_OFFLINE is set; "
                        + OFFLINE_HINT)
    try:
        import datasets
    except ImportError:
        raise UserError("Hugging Face datasets need the optional extra: "
                        "pip install 'tinygpt[hf]'; or " + OFFLINE_HINT) from None
    if not hub_reachable():
        raise UserError(f"cannot reach the Hugging Face hub for {name!r} (offline?); " + OFFLINE_HINT)
    rows = datasets.load_dataset(name, split="train", streaming=True)
    texts = []
    for i, row in enumerate(rows):
        if i == MAX_DOCS:
            break
        field = next((f for f in TEXT_FIELDS if f in row), None)
        if field is None:
            raise UserError(f"dataset {name!r} has no text column ({', '.join(TEXT_FIELDS)})")
        texts.append((f"{name}#{i}", row[field] + "\n"))
    return texts
