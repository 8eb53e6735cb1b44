import json

import h5py
import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA

from conftest import ROOT
from landscape.run.jobfile import expand_sweep, load_job
from landscape.core.errors import LandscapeError
from landscape.stages.job import run_job
from landscape.analysis.pca import auto_range, pca_directions, project
from landscape.io.surface_file import read_surface
from landscape.run.projection import project_onto


def test_matches_scikit_learn_pca():
    g = np.random.default_rng(0)
    m = g.normal(size=(7, 50)) @ np.diag(np.linspace(3, 0.1, 50))
    rows = [torch.tensor(r, dtype=torch.float32) for r in m]
    (d1, d2), ratio = pca_directions(lambda i: rows[i], len(rows), block=3)  # blocks smaller than n
    ref = PCA(n_components=6).fit(m)
    for mine, theirs in zip((d1, d2), ref.components_[:2]):
        assert abs(float(np.dot(mine.numpy(), theirs))) == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_allclose(ratio[:6], ref.explained_variance_ratio_, rtol=1e-5)
    assert np.all((ratio >= 0) & (ratio <= 1)) and np.all(np.diff(ratio) <= 1e-12) and ratio.sum() == pytest.approx(1)
    assert float(d1 @ d2) == pytest.approx(0.0, abs=1e-5) and float(d1.norm()) == pytest.approx(1.0)
    with pytest.raises(LandscapeError, match="at least 3 checkpoints"):
        pca_directions(lambda i: rows[i], 2)


def test_projection_recovers_in_plane_coordinates():
    g = torch.Generator().manual_seed(0)
    d1, d2 = torch.randn(30, generator=g), torch.randn(30, generator=g)  # not orthogonal
    x = 0.7 * d1 - 1.3 * d2
    assert project(x, d1, d2) == pytest.approx((0.7, -1.3), abs=1e-5)
    off = x + 0.0 * d1
    q1, q2 = torch.linalg.qr(torch.stack([d1, d2], 1))[0].T
    a, b = project(off, q1, q2, "lstsq")
    assert project(off, q1, q2, "cos") == pytest.approx((a, b), abs=1e-5)  # orthonormal: both agree
    assert auto_range([-1.0, 3.0], 9) == "-2:4:9"


@pytest.fixture(scope="module")
def spiral_pca(tmp_path_factory):
    out = tmp_path_factory.mktemp("pca")
    job = load_job(None, ["data.name=spiral", "model.name=mlp", "model.kwargs.depth=2", "train.epochs=6",
                          "train.optimizer=sgd", "train.lr=0.5", f"output={out / 'sgd'}", "pca.alpha=\"auto:9\"",
                          "pca.beta=\"auto:7\"", "export.vtk=[\"vtp\"]", "export.plots=[\"png\"]",
                          "export.animate=true"])
    run_job(job, progress=False)
    return out, job


def test_pca_surface_holds_projected_path_and_covers_it(spiral_pca):
    out, _ = spiral_pca
    s = read_surface(out / "sgd" / "surface_pca.h5")
    assert s.inputs["directions"] == "pca" and s.loss.shape == (9, 7) and s.done.all()
    ev = json.loads(s.attrs["explained_variance"])
    assert 0 < ev[1] <= ev[0] <= 1 and sum(ev) <= 1 + 1e-9
    with h5py.File(s.path) as f:
        t = {k: f["trajectory"][k][:] for k in f["trajectory"]}
    assert t["epoch"].tolist() == [0, 1, 2, 3, 4, 5, 6]
    assert t["alpha"][-1] == pytest.approx(0, abs=1e-6) and t["beta"][-1] == pytest.approx(0, abs=1e-6)  # θ* itself
    assert s.alpha.min() < t["alpha"].min() and s.alpha.max() > t["alpha"].max()  # the grid covers the path
    assert s.beta.min() < t["beta"].min() and s.beta.max() > t["beta"].max()
    assert np.isfinite(t["loss"]).all()
    for name in ("surface_pca_trajectory.vtp", "surface_pca_contour.png", "surface_pca_path.gif"):
        assert (out / "sgd" / name).is_file(), name
    from PIL import Image

    gif = Image.open(out / "sgd" / "surface_pca_path.gif")
    assert gif.n_frames == 7  # one frame per checkpoint


def test_reused_plane_gives_identical_coordinates(spiral_pca):
    out, _ = spiral_pca
    surface = out / "sgd" / "surface_pca.h5"
    coords = project_onto(surface, out / "sgd" / "trajectory.h5", "again")
    with h5py.File(surface) as f:
        np.testing.assert_array_equal(coords[:, 0], f["trajectory/alpha"][:])
        np.testing.assert_array_equal(coords[:, 1], f["trajectory/beta"][:])
        np.testing.assert_array_equal(f["projections/again/alpha"][:], coords[:, 0])


def test_fixed_plane_compares_optimisers_from_the_same_init(spiral_pca, cli):
    out, job = spiral_pca
    adam = load_job(None, ["data.name=spiral", "model.name=mlp", "model.kwargs.depth=2", "train.epochs=6",
                           "train.optimizer=adam", "train.lr=0.05", f"output={out / 'adam'}"])
    run_job(adam, progress=False)
    surface = out / "sgd" / "surface_pca.h5"
    r = cli("project", str(surface), str(out / "adam" / "trajectory.h5"), "--label", "adam")
    assert r.returncode == 0, r.stderr
    with h5py.File(surface) as f:
        sgd = np.stack([f["trajectory/alpha"][:], f["trajectory/beta"][:]], 1)
        ad = np.stack([f["projections/adam/alpha"][:], f["projections/adam/beta"][:]], 1)
    np.testing.assert_allclose(ad[0], sgd[0], atol=1e-5)  # same initialisation, same point of the plane
    assert np.abs(ad[-1] - sgd[-1]).max() > 1e-3  # different optimisers end elsewhere
    r = cli("plot", str(surface), "--formats", "png", "--figures", "contour", "--out", str(out / "figs"))
    assert r.returncode == 0 and (out / "figs" / "surface_pca_contour.png").is_file()
    (out / "sgd.toml").write_text(f'[job]\noutput = "{out / "sgd"}"\n[model]\nname = "mlp"\nkwargs = {{depth = 2}}\n'
                                  '[data]\nname = "spiral"\n')
    r = cli("animate", str(surface), "--out", str(out / "a.gif"), "--job", str(out / "sgd.toml"))
    assert r.returncode == 0, r.stderr
    from PIL import Image

    assert cli("animate", str(surface), "--out", str(out / "plain.gif")).returncode == 0
    with_regions, plain = Image.open(out / "a.gif"), Image.open(out / "plain.gif")
    assert with_regions.n_frames == 7 and with_regions.size[0] > plain.size[0]  # the decision-region panel beside
    with_regions.seek(6)
    frame = np.asarray(with_regions.convert("RGB"), dtype=float)
    right = frame[:, frame.shape[1] // 2 + 40:]
    assert right.std() > 20  # coloured regions and points, not an empty panel


def test_sweep_expands_the_spiral_study():
    jobs = expand_sweep(ROOT / "jobs" / "spiral_study.toml", ["output=study"])
    assert len(jobs) == 9
    shapes = [(j.model.kwargs["depth"], j.model.kwargs["width"]) for _, j in jobs]
    assert shapes == [(d, w) for d in (1, 5, 10) for w in (5, 20, 100)]
    assert [j.output for _, j in jobs][:2] == ["study/000", "study/001"] and all(not j.sweep for _, j in jobs)
    assert all(j.pca is not None and j.pca.directions == "pca" for _, j in jobs)
