import re
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


def _basin(path, n=21):
    """A surface whose loss spans four decades, most of the plane deep in the basin (as real surfaces are)."""
    import h5py
    from landscape.core.grid import Grid
    from landscape.io.surface_file import SurfaceStore

    g = Grid(np.linspace(-1, 1, n), np.linspace(-1, 1, n))
    st = SurfaceStore.open(path, g, {"model": "mlp"})
    k = np.arange(g.size)
    a, b = g.coords(k)
    loss = 0.01 * np.exp(6 * (a ** 2 + b ** 2))
    st.write(k, loss, 1 / (1 + loss))
    st.close()
    with h5py.File(path, "r+") as f:
        assert f["loss"][()].max() / f["loss"][()].min() > 1e4
    return loss


def _panel_colours(png, box):
    from PIL import Image

    img = np.asarray(Image.open(png).convert("RGB"))
    h, w = img.shape[:2]
    x0, y0, x1, y1 = (int(f * s) for f, s in zip(box, (w, h, w, h)))
    return img, {tuple(c) for c in img[y0:y1, x0:x1].reshape(-1, 3)}


def test_filled_contour_bands_use_the_whole_colour_map(tmp_path):
    """Geometric levels with a linear norm painted the basin one shade; each band now has its own colour."""
    from landscape.views.surface_plots import color_norm, levels

    loss = _basin(tmp_path / "b.h5")
    lv = levels(loss, True, 20)
    norm = color_norm(loss, False, lv)
    mids = np.sqrt(lv[:-1] * lv[1:])  # one value inside each band
    idx = np.array([int(norm(v)) for v in mids])
    assert idx[0] == 0 and idx[-1] == 255 and (np.diff(idx) > 0).all()  # distinct, spread over the map
    # the old pairing: a linear norm over the same values put the lower half of the bands in ~1 % of the map
    from matplotlib.colors import Normalize

    old = Normalize(loss.min(), loss.max())(mids[:10])
    assert old.max() < 0.01
    (png,) = plot_surface(tmp_path / "b.h5", formats=("png",), figures=("filled",))
    img, colours = _panel_colours(png, (0.08, 0.15, 0.38, 0.85))  # inside the loss panel
    assert img.shape == (750, 1800, 3) and non_blank(png)  # 12 x 5 in at 150 dpi
    assert len(colours) >= 15  # the bands are visible as separate colours


def test_heatmap_colours_a_wide_loss_range_on_a_log_scale(tmp_path, monkeypatch):
    """The loss of a basin spans decades: a linear colour scale leaves the plane one shade (by default too)."""
    import matplotlib.colors as mcolors
    import landscape.views.surface_plots as sp

    _basin(tmp_path / "b.h5")
    figs = []
    monkeypatch.setattr(sp, "savefig", lambda fig, p: figs.append(fig) or p)
    sp.plot_surface(tmp_path / "b.h5", formats=("png",), figures=("heatmap",))
    loss_image, acc_image = (ax.images[0] if ax.images else ax.collections[0] for ax in figs[0].axes[:2])
    assert isinstance(loss_image.norm, mcolors.LogNorm) and not isinstance(acc_image.norm, mcolors.LogNorm)
    assert "log colour scale" in figs[0].axes[0].get_title()


def test_log_colour_bar_labels_are_plain_numbers(tmp_path, monkeypatch):
    import landscape.views.surface_plots as sp

    _basin(tmp_path / "b.h5")
    figs = []
    monkeypatch.setattr(sp, "savefig", lambda fig, p: figs.append(fig) or p)
    sp.plot_surface(tmp_path / "b.h5", formats=("png",), figures=("heatmap", "3d"), log=True)
    heat, three = figs
    heat.canvas.draw()
    bar = heat.axes[2]  # loss panel, accuracy panel, then their colour bars
    labels = [t.get_text() for t in bar.get_yticklabels() if t.get_text()]
    assert len(labels) >= 3 and all(re.fullmatch(r"[0-9.]+", t) for t in labels), labels
    # the 3-D figure has a colour bar per panel (and the path when the file holds one)
    assert len(three.axes) == 4


def test_plot_controls(tmp_path, cli):
    _basin(tmp_path / "b.h5")
    r = cli("plot", str(tmp_path / "b.h5"), "--formats", "png", "--figures", "contour,filled", "--vmin", "0.05",
            "--vmax", "5", "--levels", "8", "--equal-aspect", "--out", str(tmp_path / "o"))
    assert r.returncode == 0, r.stderr
    from PIL import Image

    for name in ("b_contour.png", "b_filled.png"):
        assert non_blank(tmp_path / "o" / name) and Image.open(tmp_path / "o" / name).size == (1800, 750)
    r = cli("plot", str(tmp_path / "b.h5"), "--vmin", "2", "--vmax", "1", "--levels", "1")
    assert r.returncode == 2 and "vmin < vmax" in r.stderr and "--levels" in r.stderr


def test_path_figure_y_scales_and_interpolation_range(tmp_path):
    import matplotlib.pyplot as plt
    from landscape.views.path_plots import loss_limits, plot_paths
    from landscape.core.errors import ConfigError

    a = np.linspace(-0.5, 1.5, 9)
    loss = np.array([[40.0, 9.0, 1.0, 0.6, 0.5, 0.6, 0.9, 5.0, 80.0]])
    lo, hi = loss_limits(a, loss)
    assert lo < 0.5 and 1.0 < hi < 1.2  # the extrapolated 40 and 80 are off the axis
    with pytest.raises(ConfigError, match="clip"):
        plot_paths([], tmp_path, ("png",), y_scale="sqrt")
    plt.close("all")


def test_heatmap_is_one_image_on_even_grids_and_a_mesh_otherwise(tmp_path, monkeypatch):
    """A 1001 x 1001 heatmap drawn as 10⁶ mesh cells took 77 s and wrote a 37 MB PDF: on evenly spaced axes it
    is one image, each pixel row a beta, each column an alpha, the cells centred on the grid points."""
    import landscape.views.surface_plots as sp
    from landscape.core.grid import Grid
    from landscape.io.surface_file import SurfaceStore

    for name, beta in (("even", np.linspace(-1, 1, 5)), ("uneven", np.array([-1.0, -0.2, 0.0, 0.3, 1.0]))):
        g = Grid(np.linspace(0, 2, 3), beta)
        k = np.arange(g.size)
        a, b = g.coords(k)
        with SurfaceStore.open(tmp_path / f"{name}.h5", g, {"case": name}) as st:
            st.write(k, 1.0 + a + 10 * b, np.full(g.size, 0.5))
        figs = []
        monkeypatch.setattr(sp, "savefig", lambda fig, p: figs.append(fig) or p)
        sp.plot_surface(tmp_path / f"{name}.h5", formats=("pdf",), figures=("heatmap",))
        ax = figs[0].axes[0]
        loss = read_surface(tmp_path / f"{name}.h5").loss
        if name == "even":
            (im,) = ax.images
            np.testing.assert_array_equal(im.get_array(), loss.T)  # row j: beta[j], column i: alpha[i]
            assert im.origin == "lower" and im.get_extent() == [-0.5, 2.5, -1.25, 1.25]
        else:
            assert not ax.images and len(ax.collections) == 1
            np.testing.assert_array_equal(ax.collections[0].get_array().reshape(loss.shape), loss)
    assert sp.cell_extent(np.array([1.0])) is None


def test_path_and_dynamics_figures_label_log_axes_with_plain_numbers(short_demo, tmp_path, monkeypatch):
    """Log axes read 0.2, 0.5, 1, 2 (not 2×10⁰, 6×10⁻¹), with a label inside even a narrow range."""
    import matplotlib.pyplot as plt
    import landscape.views.mpl as mpl
    from landscape.views.path_plots import plot_paths

    out, _ = short_demo
    figs = []
    real = mpl.savefig
    monkeypatch.setattr("landscape.views.path_plots.savefig", lambda fig, p, *a: figs.append(fig) or real(fig, p, *a))
    plot_paths([out / "path_linear.h5"], tmp_path, ("png",))
    logs = [ax.yaxis for fig in figs for ax in fig.axes if ax.get_yscale() == "log"]
    assert logs
    for axis in logs:
        labels = [t.get_text() for t in axis.get_ticklabels() if t.get_text()]
        lo, hi = sorted(axis.axes.get_ylim())
        inside = [float(t) for t in labels if lo <= float(t) <= hi]
        assert inside and all(re.fullmatch(r"[0-9.]+", t) for t in labels), labels
    plt.close("all")
