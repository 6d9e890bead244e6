"""``save_png_svg``: a figure laid out by a one-shot ``tight_layout`` is drawn once per file
(not laid out again before each), with the bytes ``savefig`` writes the plain way."""

import matplotlib.figure as mfig
import matplotlib.pyplot as plt
import numpy as np

from impact.report.figures import save_png_svg, set_theme


def _figure():
    fig, axes = plt.subplots(2, 3, figsize=(6, 4), sharey=True)
    for i, ax in enumerate(axes.flat):
        ax.bar(range(5), np.arange(5) * (i + 1), color="#1f4e79")
        ax.set_xticks(range(5), [f"label {j}" for j in range(5)], rotation=90)
        ax.set_title(f"panel {i}")
    fig.suptitle("a title")
    fig.tight_layout(rect=(0, 0.05, 1, 0.95), h_pad=1.0)
    return fig


def test_one_draw_per_file_and_the_same_bytes(tmp_path, monkeypatch):
    set_theme()
    plain = _figure()
    plain.savefig(tmp_path / "plain.png", metadata={"Software": None})
    plain.savefig(tmp_path / "plain.svg", metadata={"Date": None, "Creator": None})
    plt.close(plain)
    draws = []
    original = mfig.Figure.draw
    monkeypatch.setattr(mfig.Figure, "draw",
                        lambda self, r: (draws.append(1), original(self, r))[1])
    save_png_svg(_figure(), tmp_path / "saved.png")
    assert len(draws) == 2   # PNG and SVG; the plain way draws 4 times
    for ext in ("png", "svg"):
        assert (tmp_path / f"saved.{ext}").read_bytes() == (tmp_path / f"plain.{ext}").read_bytes()
