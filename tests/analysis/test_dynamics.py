import xml.etree.ElementTree as ET

import numpy as np
import pytest
import torch
import vtk
from vtk.util.numpy_support import vtk_to_numpy

from landscape.run.config import TrainConfig
from landscape.core.data import load_data
from landscape.analysis.dynamics import activation_correlation, correlated_pairs, filter_correlation, merge_filters
from landscape.views.dynamics_plots import plot_norms, plot_weight_walk
from landscape.views.filters_vtk import export_filter_evolution
from landscape.core.models import build_model
from landscape.run.training import train
from conftest import copy_of, non_blank, pvbatch


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("dyn")
    tr, te = load_data("digits")
    torch.manual_seed(0)
    store = train(build_model("lenet5"), tr, te, TrainConfig(epochs=2, lr=0.02, norms_every=5,
                                                             checkpoint_every_steps=5), out / "t.h5", "cpu",
                  progress=False)
    return out, store


def layer_norm(store, k, layer):
    v = store.vector(k)
    return float(torch.sqrt(sum((v[store.spec.slice(n)].double() ** 2).sum()
                                for n in (f"{layer}.weight", f"{layer}.bias"))))


def test_recorded_norms_equal_norms_of_saved_checkpoints(digits_run):
    _, store = digits_run
    nm = store.norms()
    assert nm["layers"] == ["conv1", "conv2", "fc1", "fc2", "fc3"]
    assert nm["kinds"] == ["conv", "conv", "linear", "linear", "linear"]
    steps = store.table()["step"].tolist()
    checked = 0
    for r, step in enumerate(nm["step"]):
        if step in steps:
            k = steps.index(int(step))
            for j, layer in enumerate(nm["layers"]):
                assert nm["weight"][r, j] == pytest.approx(layer_norm(store, k, layer), rel=1e-5), (step, layer)
            checked += 1
    assert checked >= 8 and (nm["grad"] > 0).all()
    assert nm["step"].tolist() == list(range(5, 5 * (len(nm["step"]) + 1), 5))


def test_norms_survive_resume(tmp_path):
    tr, te = load_data("spiral", n_per_class=40)
    cfg = dict(batch_size=16, norms_every=3, lr=0.1)
    torch.manual_seed(0)
    full = train(build_model("mlp", tr.info()), tr, te, TrainConfig(epochs=3, **cfg), tmp_path / "f.h5", "cpu",
                 progress=False)
    torch.manual_seed(0)
    train(build_model("mlp", tr.info()), tr, te, TrainConfig(epochs=1, **cfg), tmp_path / "p.h5", "cpu",
          progress=False)
    part = train(build_model("mlp", tr.info()), tr, te, TrainConfig(epochs=3, **cfg), tmp_path / "p.h5", "cpu",
                 progress=False)
    a, b = full.norms(), part.norms()
    assert a["step"].tolist() == b["step"].tolist()
    np.testing.assert_allclose(a["weight"], b["weight"], rtol=1e-6)


def test_identical_filters_have_correlation_one_and_merge_without_change():
    torch.manual_seed(0)
    m = build_model("lenet5").eval()
    with torch.no_grad():
        m.conv1.weight[4] = m.conv1.weight[1]
        m.conv1.bias[4] = m.conv1.bias[1]
        m.conv2.weight[7] = m.conv2.weight[2]
        m.conv2.bias[7] = m.conv2.bias[2]
    x = load_data("digits")[1].x[:64]
    cw = filter_correlation(m.conv1.weight)
    ca = activation_correlation(m, "conv1", x)
    assert cw[1, 4] == pytest.approx(1.0) and ca[1, 4] == pytest.approx(1.0)
    assert (1, 4, 1.0) in correlated_pairs(ca, 0.999)
    with torch.no_grad():
        before = m(x)
    merge_filters(m, "conv1", [(1, 4)])  # conv -> conv
    merge_filters(m, "conv2", [(2, 7)])  # conv -> flatten -> linear
    assert m.conv1.out_channels == 5 and m.conv2.in_channels == 5
    assert m.conv2.out_channels == 15 and m.fc1.in_features == 15 * 36
    with torch.no_grad():
        torch.testing.assert_close(m(x), before, rtol=1e-5, atol=1e-5)


def test_filter_evolution_series_reads_back(digits_run):
    out, store = digits_run
    files = export_filter_evolution(store, "conv1", out / "filters")
    vtps, pvd, script = files[:-2], files[-2], files[-1]
    assert len(vtps) == len(store) and pvd.suffix == ".pvd"
    steps = [float(d.get("timestep")) for d in ET.parse(pvd).getroot().iter("DataSet")]
    assert steps == [float(s) for s in store.table()["step"]]
    r = vtk.vtkXMLPolyDataReader()
    r.SetFileName(str(vtps[-1]))
    r.Update()
    poly = r.GetOutput()
    assert poly.GetNumberOfCells() == 6 * 54  # a box (6 faces) per weight of 6 3x3 filters
    w = vtk_to_numpy(poly.GetCellData().GetArray("weight"))[::6]
    final = store.vector("final")[store.spec.slice("conv1.weight")].double().numpy()
    np.testing.assert_allclose(w, final)
    rgb = vtk_to_numpy(poly.GetCellData().GetArray("color"))[::6]
    assert (rgb[final > 0, 0] == 255).all() and (rgb[final < 0, 2] == 255).all()  # red positive, blue negative
    z = vtk_to_numpy(poly.GetPoints().GetData())[:, 2].reshape(-1, 8)
    np.testing.assert_allclose(z[:, 4:].mean(1), final, rtol=1e-6)  # box height is the weight
    # one colour scale for every frame: the largest |weight| of the whole series is full red or blue, the same
    # weight value has the same colour at every step
    sl = store.spec.slice("conv1.weight")
    series = np.stack([store.vector(k)[sl].double().numpy() for k in range(len(store))])
    limit = np.abs(series).max()
    for k in (0, len(vtps) - 1):
        r.SetFileName(str(vtps[k]))
        r.Update()
        got = vtk_to_numpy(r.GetOutput().GetCellData().GetArray("color"))[::6].astype(float)
        expect = 255 * (1 - np.abs(series[k]) / limit)
        np.testing.assert_allclose(np.where(series[k] >= 0, got[:, 1], got[:, 0]), expect, atol=1.0)
    assert script.name == "conv1_filters_view.py" and f"LIMIT, ZSCALE = {float(limit)!r}" in script.read_text()
    # filter f's block is centred on x = f and input channel c's on y = c: the view's axes count filters and
    # channels (labelled 0..5 and 0), not kernel cells (which read 0..22)
    xy = vtk_to_numpy(poly.GetPoints().GetData())[:, :2].reshape(6, 9, 8, 2)  # filter, kernel cell, corner
    np.testing.assert_allclose(xy.mean(axis=(1, 2)), np.stack([np.arange(6), np.zeros(6)], 1), atol=0.06)
    assert xy[..., 0].max() < 5.5 and xy[..., 0].min() > -0.5
    assert "FILTERS, CHANNELS = 6, 1" in script.read_text() and "XAxisUseCustomLabels" in script.read_text()


def test_filter_view_renders_with_pvbatch(digits_run, tmp_path):
    out, store = digits_run
    files = export_filter_evolution(store, "conv1", tmp_path / "filters")
    pvbatch(files[-1], "--png", str(tmp_path / "filters.png"), "--size", "800x500", "--frames", str(tmp_path / "fr"))
    assert non_blank(tmp_path / "filters.png")
    frames = sorted((tmp_path / "fr").glob("frame_*.png"))
    assert len(frames) == len(store) and non_blank(frames[0])
    from PIL import Image

    first, last = (np.asarray(Image.open(f).convert("RGB")).astype(float) for f in (frames[0], frames[-1]))
    assert first.shape == (500, 800, 3) and np.abs(first - last).mean() > 0.5  # the filters change over training


def test_norm_and_walk_figures(digits_run):
    out, store = digits_run
    (png, pdf) = plot_norms(store, out)
    assert non_blank(png) and pdf.read_bytes()[:4] == b"%PDF"
    from PIL import Image

    assert Image.open(png).size == (1650, 600)
    for method in ("first2", "random"):
        walk, walk_pdf = plot_weight_walk(store, out, method)
        assert non_blank(walk) and walk_pdf.read_bytes()[:4] == b"%PDF"
        assert Image.open(walk).size[0] >= 1800  # 3 panels of 4.4 in at 150 dpi


def test_walk_has_axis_labels_and_few_ticks(digits_run, monkeypatch):
    import landscape.views.dynamics_plots as dp

    out, store = digits_run
    figs = []
    monkeypatch.setattr(dp, "save_figure", lambda fig, *a, **k: figs.append(fig) or [])
    dp.plot_weight_walk(store, out, "random")
    dp.plot_norms(store, out)
    walk, norms = figs
    walk.canvas.draw()
    panels = [ax for ax in walk.axes if ax.get_title()]
    assert len(panels) == 5  # lenet5's weights
    for ax in panels:
        assert ax.get_xlabel() == "random projection 1" and ax.get_ylabel() == "random projection 2"
        lo, hi = ax.get_xlim()
        assert len([t for t in ax.get_xticklabels() if t.get_text() and lo <= t.get_position()[0] <= hi]) <= 5
    # each layer's weight norm has its own √t fit: same colour, dotted, fitted to that curve
    ax = norms.axes[0]
    solid = [ln for ln in ax.get_lines() if ln.get_linestyle() in ("-", "--", "-.")]
    dotted = [ln for ln in ax.get_lines() if ln.get_linestyle() == ":" and len(ln.get_xdata())]
    assert len(solid) == len(dotted) == 5
    for data, fit in zip(solid, dotted):
        assert data.get_color() == fit.get_color()
        t, y = np.asarray(data.get_xdata(), float), np.asarray(data.get_ydata(), float)
        X = np.stack([np.ones_like(t), np.sqrt(t)], 1)
        best = X @ np.linalg.lstsq(X, y, rcond=None)[0]  # this curve's own least-squares a + c√t
        np.testing.assert_allclose(fit.get_ydata(), best, rtol=1e-9, atol=1e-9)
        assert dp.sqrt_fit(t, y)[1] == pytest.approx(float(np.linalg.lstsq(X, y, rcond=None)[0][1]), rel=1e-9)


def test_reduce_command(cli, tmp_path, short_demo):
    tmp_path = copy_of(short_demo[0], tmp_path / "demo")  # the demo's dynamics outputs, the job run once
    for name in ("norms.png", "filters/conv1_filters.pvd", "correlation.h5", "correlation_conv1.png",
                 "weight_walk.png"):
        assert (tmp_path / name).is_file(), name
    r = cli("reduce", "--output", str(tmp_path), "--layer", "conv1", "--threshold", "0.0", "train.epochs=4",
            "--save", str(tmp_path / "reduced.pt"))
    assert r.returncode == 0, r.stderr
    assert "filters 6 -> " in r.stdout and "accuracy" in r.stdout
    reduced = torch.load(tmp_path / "reduced.pt", weights_only=True)
    assert reduced["conv1.weight"].shape[0] < 6
