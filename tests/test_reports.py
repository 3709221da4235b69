"""Committed reports are a function of their folders: `tinygpt report docs/X` redraws each
byte for byte, figures included, so a redraw that changes a committed file is a change of code
or data that the diff shows (issue #29)."""
from pathlib import Path


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

