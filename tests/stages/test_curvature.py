"""The curvature stage and Hessian planes on a small trained model, against the exact Hessian."""
import json

import h5py
import numpy as np
import pytest
import torch

from conftest import exact_hessian
from landscape.core.errors import StoreError
from landscape.engine.evaluator import Evaluator
from landscape.engine.hessian import HessianOperator
from landscape.io.curvature_file import read_curvature
from landscape.io.status import describe_file
from landscape.io.surface_file import read_surface
from landscape.io.trajectory import TrajectoryStore
from landscape.run.inputs import prepare_data, prepare_model
from landscape.run.jobfile import load_job
from landscape.stages.curvature import run_curvature
from landscape.stages.job import run_job
from landscape.stages.surface import run_surface_job
from landscape.views.surface_plots import axis_labels

BASE = ["data.name=spiral", "model.name=mlp", "model.kwargs={depth = 1, width = 6, activation = \"tanh\"}",
        "train.epochs=15", "train.lr=0.1", "data.kwargs={n_per_class = 60}"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("curvature")
    job = load_job({"curvature": {}}, BASE + [f"output={out}", "curvature.top_k=3", "curvature.bottom_k=2",
                                               "curvature.tol=1e-9", "curvature.max_iter=200",
                                               "curvature.trace_samples=60", "curvature.density=true"])
    run_job(job, progress=False)
    return out, job


def exact(job, out):
    tr, te = prepare_data(job.data)
    model = prepare_model(job.model, tr, job.train.seed)
    model.load_state_dict(TrajectoryStore(out / "trajectory.h5").state("final"))
    op = HessianOperator(Evaluator(model, te, "cpu"))
    return exact_hessian(model, te, op.names), op


def test_spectrum_trace_and_vectors_match_the_exact_hessian(trained):
    out, job = trained
    c = read_curvature(out / "curvature.h5")
    h, op = exact(job, out)
    lam = torch.linalg.eigvalsh(h).numpy()
    assert c["eigen_kind"] == ["top"] * 3 + ["bottom"] * 2
    np.testing.assert_allclose(c["eigenvalues"][:3], lam[::-1][:3], rtol=1e-5)
    np.testing.assert_allclose(c["eigenvalues"][3:], lam[:2], rtol=1e-5, atol=1e-5 * abs(lam).max())
    assert abs(float(c["trace"]) - lam.sum()) < 3 * float(c["trace_stderr"])
    # eigenvectors in the state's order: restricted to the moved parameters they satisfy Hv = λv
    spec_len = op.ev.spec.numel
    assert c["eigenvectors"].shape == (5, spec_len)
    for value, vec in zip(c["eigenvalues"], c["eigenvectors"]):
        v = op.restrict(torch.from_numpy(vec))
        assert float((h @ v - value * v).norm()) < 1e-4 * abs(lam).max()
    a = c["attrs"]
    assert a["lambda_max"] == c["eigenvalues"][0] and a["lambda_min"] == c["eigenvalues"][3] == min(c["eigenvalues"])
    assert a["converged"] and a["lanczos_tol"] == 1e-9 and a["lanczos_iterations"] <= 2 * op.numel  # with repeats looked for
    assert np.trapezoid(c["density/values"], c["density/grid"]) == pytest.approx(1.0, abs=1e-6)
    assert a["eps_sharpness"] > 0 and len(c["basin"]) == 2
    assert all(b["minus"] > 0 and b["plus"] > 0 for b in c["basin"])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["curvature"]["lambda_max"] == a["lambda_max"]


def test_rerun_reads_back_and_other_settings_are_refused(trained, cli):
    out, job = trained
    before = (out / "curvature.h5").stat().st_mtime_ns
    r = run_curvature(job, progress=False)
    assert (out / "curvature.h5").stat().st_mtime_ns == before and "λmax" in r.text
    other = load_job({"curvature": {}}, BASE + [f"output={out}", "curvature.top_k=2"])
    with pytest.raises(StoreError, match="other inputs"):
        run_curvature(other, progress=False)
    text = describe_file(out / "curvature.h5")
    assert "λmax" in text and "trace" in text and "ε-sharpness" in text and "basin d1" in text
    r = cli("curvature", *BASE, "--output", str(out), "--top-k", "2", "--no-trace", "--out",
            str(out / "cli.h5"), "curvature.sharpness=false")
    assert r.returncode == 0, r.stderr
    assert "λmax" in r.stdout and r.stdout.count("Lanczos") == 1  # printed once, not logged again
    c = read_curvature(out / "cli.h5")
    assert len(c["eigenvalues"]) == 3 and "trace" not in c and "eps_sharpness" not in c["attrs"]


@pytest.mark.parametrize("pair", ["top", "extremes"])
def test_hessian_planes(trained, pair):
    out, job = trained
    c = read_curvature(out / "curvature.h5")
    sj = load_job({"surface": {}}, BASE + [
        f"output={out}", "surface.directions=hessian", f"surface.hessian_pair={pair}", "surface.alpha=-0.5:0.5:3",
        "surface.beta=-0.5:0.5:3", "curvature.tol=1e-9", "curvature.max_iter=200",
        f"surface.output=\"hessian_{pair}.h5\""])
    path = run_surface_job(sj, progress=False)
    s = read_surface(path)
    lam = json.loads(s.attrs["eigenvalues"])
    want = [c["eigenvalues"][0], c["eigenvalues"][1] if pair == "top" else c["attrs"]["lambda_min"]]
    np.testing.assert_allclose(lam, want, rtol=1e-5)
    labels = axis_labels(s)
    assert ("λmax" if pair == "extremes" else "λ₁") in labels[0] and f"{lam[0]:.4g}" in labels[0]
    with h5py.File(path, "r") as f:
        d1 = torch.from_numpy(f["directions/d1"][:])
    assert float(d1.norm()) == pytest.approx(1.0, rel=1e-5)
    assert abs(float(torch.dot(d1, torch.from_numpy(c["eigenvectors"][0])))) == pytest.approx(1.0, abs=1e-4)
    assert np.isfinite(s.loss).all()


def test_spectrum_figure_shows_every_eigenvalue_the_mean_and_the_density(trained, tmp_path, monkeypatch):
    """The spectrum on a symmetric-log axis: a line per eigenvalue found (its value in the legend), the mean
    eigenvalue (trace / parameters) and the SLQ density."""
    import matplotlib.pyplot as plt
    import landscape.views.curvature_plots as cp

    out, _ = trained
    c = read_curvature(out / "curvature.h5")
    figs = []
    monkeypatch.setattr(cp, "save_figure", lambda fig, *a, **k: figs.append(fig) or [])
    cp.plot_spectrum(out / "curvature.h5", tmp_path, ("png",))
    (ax,) = figs[0].axes
    assert ax.get_xscale() == "symlog" and ax.get_yscale() == "log"  # the density where it was computed
    vertical = sorted(float(line.get_xdata()[0]) for line in ax.get_lines() if len(set(line.get_xdata())) == 1
                      and len(line.get_xdata()) == 2)
    mean = c["trace"] / c["inputs"]["parameters"]
    np.testing.assert_allclose(vertical, sorted(list(c["eigenvalues"]) + [mean]))
    legend = " ".join(t.get_text() for t in ax.get_legend().get_texts())
    assert all(f"{v:.4g}" in legend for v in c["eigenvalues"]) and "mean eigenvalue" in legend
    lo, hi = ax.get_xlim()
    assert lo < min(c["eigenvalues"]) and max(c["eigenvalues"]) < hi
    plt.close("all")
