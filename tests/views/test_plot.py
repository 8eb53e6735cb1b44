import numpy as np
import pytest

from landscape.views.surface_plots import axis_labels, plot_surface
from landscape.io.surface_file import read_surface
from conftest import make_surface, non_blank


def test_surface_figures_png_and_pdf(tmp_path):
    make_surface(tmp_path / "s.h5", trajectory=True)
    files = plot_surface(tmp_path / "s.h5", formats=("png", "pdf"), log=True)
    names = sorted(p.name for p in files)
    assert names == sorted(f"s_{k}.{e}" for k in ("contour", "filled", "heatmap", "3d") for e in ("png", "pdf"))
    for p in files:
        if p.suffix == ".png":
            assert non_blank(p), p
        else:
            assert p.read_bytes()[:4] == b"%PDF"


def test_line_figure_and_cli(tmp_path, cli):
    make_surface(tmp_path / "l.h5", line=True)
    (png,) = plot_surface(tmp_path / "l.h5", formats=("png",))
    assert png.name == "l_line.png" and non_blank(png)
    make_surface(tmp_path / "s.h5")
    r = cli("plot", str(tmp_path / "s.h5"), "--formats", "png", "--figures", "heatmap", "--out",
            str(tmp_path / "figs"))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "figs" / "s_heatmap.png").is_file() and non_blank(tmp_path / "figs" / "s_heatmap.png")
    r = cli("plot", str(tmp_path / "s.h5"), "--formats", "gif")
    assert r.returncode == 2 and "png, pdf or svg" in r.stderr


def test_axis_labels_follow_directions(tmp_path):
    s = make_surface(tmp_path / "s.h5")
    s.inputs.update(directions="checkpoints", target1="run.h5:init", target2="run.h5:epoch 3")
    assert axis_labels(s) == ("α  (towards run.h5:init)", "β  (towards run.h5:epoch 3)")
    s.attrs["explained_variance"] = np.array([0.62, 0.21])
    assert axis_labels(s)[0] == "PC1  (62.0% of variance)"
    assert read_surface(tmp_path / "s.h5").inputs.get("directions") is None
    with pytest.raises(Exception, match="figure"):
        plot_surface(tmp_path / "s.h5", figures=("pie",))


def test_parameter_opacity_stays_inside_0_1():
    """Opacity ∝ distance: the largest distance gives exactly 1, never 1.0000000000000002 (matplotlib refuses it)."""
    from landscape.views.path_plots import distance_opacity

    d = np.array([0.0, 2.697867137638703, 1.3])
    assert 0.1 + 0.9 * d[1] / d[1] > 1.0  # the rounding that crashed the figure
    op = distance_opacity(d)
    assert op.max() == 1.0 and op.min() == pytest.approx(0.1) and (op <= 1.0).all()
