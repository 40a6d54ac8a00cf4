"""Training plots: the SSIM curve saves the whole figure, whichever axes it is drawn into."""

from matplotlib.figure import Figure
from PIL import Image

from splatcourse.train.report import plot_ssim_vs_time

HISTORY = [{"seconds": 1.0, "ssim_heldout": 0.5}, {"seconds": 2.0, "ssim_heldout": 0.6}]


def test_ssim_plot_in_a_subfigure_saves_the_whole_figure(tmp_path):
    fig = Figure(figsize=(8, 3), dpi=50)
    left, _ = fig.subfigures(1, 2)
    plot_ssim_vs_time(HISTORY, ax=left.subplots(), path=tmp_path / "curve.png")
    with Image.open(tmp_path / "curve.png") as im:
        assert im.width > im.height  # the 8x3 figure (cropped tight), not a half of it
