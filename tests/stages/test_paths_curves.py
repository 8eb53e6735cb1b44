"""Learned curves (bezier, polychain) in the paths stage: two independently trained LeNet-5s joined on the
demo's model and data, reloading a stored curve, resume, MPI and BatchNorm re-estimation."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import ROOT, mpi_env, non_blank
from landscape.core.data import load_data
from landscape.core.models import build_model
from landscape.engine.evaluator import Evaluator
from landscape.io.path_file import read_path
from landscape.io.status import describe_file
from landscape.io.trajectory import TrajectoryStore
from landscape.run.curves import load_curve
from landscape.run.jobfile import load_job
from landscape.stages.job import run_job
from landscape.stages.paths import run_paths

SHORT = ["train.epochs=8", "paths.curve.epochs=10", "paths.curve.lr_milestones=[8]", "paths.alpha=0:1:11",
         "paths.levels=[\"model\"]", "export.plots=[\"png\"]"]


@pytest.fixture(scope="module")
def connected(tmp_path_factory):
    out = tmp_path_factory.mktemp("mode_connectivity")
    job = load_job(ROOT / "jobs" / "mode_connectivity.toml", [f"output={out}"] + SHORT)
    run_job(job, progress=False)
    return out, job


def model_row(p):
    return p["level"].index("model")


def test_learned_curves_have_a_lower_barrier_than_the_line_between_two_runs(connected):
    out, _ = connected
    peaks = {}
    for kind in ("linear", "bezier", "polychain"):
        p = read_path(out / f"path_{kind}.h5")
        peaks[kind] = float(p["loss"][model_row(p)].max())
    print("maximum test loss along the path between two LeNet-5s (digits):", peaks)
    assert peaks["bezier"] < peaks["linear"] and peaks["polychain"] < peaks["linear"]
    ends = [read_path(out / "path_linear.h5")["loss"][0][[0, -1]], read_path(out / "path_bezier.h5")["loss"][0][[0, -1]]]
    np.testing.assert_array_equal(ends[0], ends[1])  # same endpoints, evaluated the same way
    # the endpoints are the final models of two runs that differ only in their seed
    a, b = TrajectoryStore(out / "trajectory.h5"), TrajectoryStore(out / "trajectory_seed1.h5")
    assert int(b.attrs["seed"]) == 1 and int(a.attrs["seed"]) == 0
    assert not torch.equal(a.vector("final"), b.vector("final"))
    inputs = read_path(out / "path_bezier.h5")["inputs"]
    assert inputs["start"].endswith("trajectory.h5:final") and inputs["end"].endswith("trajectory_seed1.h5:final")
    assert inputs["curve_file"] == "path_bezier_curve.h5" and inputs["curve"]["epochs"] == 10
    summary = json.loads((out / "summary.json").read_text())
    assert summary["outputs"]["curve_bezier"] == "path_bezier_curve.h5"
    assert non_blank(out / "paths_compare.png")
    header = (out / "paths_compare.csv").read_text().splitlines()[0]
    assert "bezier_loss" in header and "polychain_loss" in header and "linear_loss" in header


def test_a_stored_curve_reloads_and_evaluates_at_any_t(connected):
    out, job = connected
    curve = load_curve(out / "path_bezier_curve.h5")
    assert curve.kind == "bezier"
    p = read_path(out / "path_bezier.h5")
    _, te = load_data("digits")
    ev = Evaluator(build_model("lenet5"), te, "cpu")
    for j in (0, 3, 5, 10):  # the path file's values are the curve's at those t, bitwise
        assert ev.evaluate(curve.state(float(p["alpha"][j]))).loss == p["loss"][model_row(p), j]
    inside = ev.evaluate(curve.state(0.37)).loss  # and anywhere between
    assert np.isfinite(inside) and inside < read_path(out / "path_linear.h5")["loss"][0].max()
    text = describe_file(out / "path_bezier_curve.h5")
    assert "learned bezier curve" in text and "trajectory_seed1.h5:final" in text


def test_rerun_resumes_without_training_again(connected, cli):
    out, _ = connected
    before = TrajectoryStore(out / "path_bezier_curve.h5").vector("final")
    r = cli("path", "--job", str(ROOT / "jobs" / "mode_connectivity.toml"), "--output", str(out), "--no-plots",
            *SHORT)
    assert r.returncode == 0, r.stderr
    assert "nothing to train" in r.stderr and "points in" not in r.stderr
    assert torch.equal(TrajectoryStore(out / "path_bezier_curve.h5").vector("final"), before)
    r = cli("path", "--job", str(ROOT / "jobs" / "mode_connectivity.toml"), "--output", str(out), "--no-plots",
            *SHORT[:-1], "paths.curve.lr=0.5")  # other settings: refused, the stored curve kept
    assert r.returncode != 0 and "different training run" in r.stderr
    assert torch.equal(TrajectoryStore(out / "path_bezier_curve.h5").vector("final"), before)


@pytest.mark.mpi
def test_curves_under_mpi(connected, tmp_path):
    out, _ = connected
    mpiexec = shutil.which("mpiexec") or str(Path(sys.executable).with_name("mpiexec"))
    args = [mpiexec, "-n", "2", sys.executable, "-m", "landscape", "path", "--job",
            str(ROOT / "jobs" / "mode_connectivity.toml"), "--output", str(out), "--kind", "bezier", "--no-plots",
            "paths.output=\"mpi\"", "paths.chunk=3", *SHORT[:-1], "paths.curve.epochs=3", "paths.curve.lr_milestones=[]",
            "--no-progress"]
    r = subprocess.run(args, env=mpi_env(), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("bezier curve trained for 3 epochs") == 1  # on rank 0 only
    curve, p = load_curve(out / "mpi_bezier_curve.h5"), read_path(out / "mpi_bezier.h5")
    assert bool(p["attrs"].get("complete", True))
    _, te = load_data("digits")
    ev = Evaluator(build_model("lenet5"), te, "cpu")
    for j, t in enumerate(p["alpha"]):  # both ranks evaluated the one stored curve
        assert ev.evaluate(curve.state(float(t))).loss == p["loss"][0, j], t


def test_update_bn_re_estimates_statistics_on_a_batchnorm_model(tmp_path, caplog):
    over = [f"output={tmp_path}", "model.name=resnet20", "model.kwargs={width = 4}", "data.train_subset=256",
            "data.test_subset=64", "train.epochs=2", "paths.kinds=[\"linear\", \"bezier\"]",
            "paths.levels=[\"model\"]", "paths.start=init", "paths.alpha=0:1:5", "paths.curve.epochs=1",
            "paths.curve.update_bn=true"]
    job = load_job({"paths": {}}, over)
    caplog.set_level("INFO")
    run_job(job, progress=False)
    assert "re-estimating BatchNorm statistics" in caplog.text
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["update_bn"]["points"] == 5 and summary["update_bn"]["seconds"] > 0
    plain = load_job({"paths": {}}, over[:-1] + ["paths.output=plain", "paths.kinds=[\"bezier\"]"])
    shutil.copy(tmp_path / "path_bezier_curve.h5", tmp_path / "plain_bezier_curve.h5")  # the same curve
    run_paths(plain, progress=False)
    a, b = read_path(tmp_path / "path_bezier.h5"), read_path(tmp_path / "plain_bezier.h5")
    # the endpoints' own statistics are kept only without re-estimation; inside, the values differ
    assert not np.array_equal(a["loss"][0, 1:-1], b["loss"][0, 1:-1])
    assert a["inputs"]["curve"]["update_bn"] and not b["inputs"]["curve"]["update_bn"]
