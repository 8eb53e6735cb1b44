"""Every file kind the package writes: `landscape status` describes it, and xarray (h5netcdf) reads it with the
right coordinates."""
import json

import numpy as np
import pytest
import xarray as xr

from conftest import run_cli
from landscape.io.path_file import read_path
from landscape.io.surface_file import read_surface
from landscape.io.trajectory import TrajectoryStore
from landscape.run.jobfile import load_job
from landscape.stages.job import run_job

JOB = {"job": {"name": "kinds"}, "model": {"name": "lenet5"},
       "data": {"name": "digits", "train_subset": 200, "test_subset": 80},
       "train": {"epochs": 3, "norms_every": 5},
       "surface": {"alpha": "-1:1:4", "beta": "-1:1:3"}, "dynamics": {},
       "paths": {"kinds": ["linear"], "levels": ["model", "layer"], "alpha": "0:1:3"}}


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    out = tmp_path_factory.mktemp("kinds")
    run_job(load_job(JOB, [f"output={json.dumps(str(out))}"]), progress=False)
    return out


def _open(path, group=None):
    with xr.open_dataset(path, engine="h5netcdf", group=group, phony_dims="access", cache=False) as ds:
        return ds.load()


def test_xarray_reads_every_file_kind_with_its_coordinates(out):
    s, p = read_surface(out / "surface.h5"), read_path(out / "path_linear.h5")
    st = TrajectoryStore(out / "trajectory.h5")
    table, metrics_ref = st.table(), st.metrics()
    with __import__("h5py").File(out / "surface.h5", "r", locking=False) as f:
        alpha, epoch = f["trajectory/alpha"][:], f["trajectory/epoch"][:]
    root = _open(out / "surface.h5")
    assert root["loss"].dims == ("alpha", "beta")
    np.testing.assert_array_equal(root["alpha"].values, s.alpha)
    np.testing.assert_array_equal(root["loss"].values, s.loss)
    traj = _open(out / "surface.h5", "trajectory")
    assert traj["alpha"].dims == ("checkpoint",) and len(traj["alpha"]) == 4  # not the grid's 4 alphas padded
    np.testing.assert_array_equal(traj["alpha"].values, alpha)
    np.testing.assert_array_equal(traj["epoch"].values, epoch)

    root = _open(out / "path_linear.h5")
    assert root["loss"].dims == ("item", "alpha")
    np.testing.assert_array_equal(root["alpha"].values, p["alpha"])
    items = _open(out / "path_linear.h5", "items")
    assert items["name"].dims == ("item",) and list(items["name"].values) == p["name"]

    cks = _open(out / "trajectory.h5", "checkpoints")
    assert cks["epoch"].dims == ("checkpoint",)
    np.testing.assert_array_equal(cks["epoch"].values, table["epoch"])
    assert [k.decode() if isinstance(k, bytes) else k for k in cks["kind"].values] == list(table["kind"])
    metrics = _open(out / "trajectory.h5", "metrics")
    np.testing.assert_array_equal(metrics["test_loss"].sel(epoch=3).values, metrics_ref["test_loss"][-1])

    corr = _open(out / "correlation.h5", "conv1")
    assert corr["weights"].dims == ("filter", "filter") and corr.sizes["filter"] == 6


def test_status_describes_every_file_kind(out, tmp_path):
    expect = {"surface.h5": "12/12 points done", "path_linear.h5": "kind      linear",
              "trajectory.h5": "checkpoints 4", "correlation.h5": "conv1"}
    for name, text in expect.items():
        r = run_cli("status", str(out / name))
        assert r.returncode == 0 and text in r.stdout, (name, r.stdout, r.stderr)
    sweep = tmp_path / "sweep.json"
    sweep.write_text(json.dumps([{"task": 0, "output": str(out), "settings": {"train.lr": 0.1}},
                                 {"task": 1, "output": str(tmp_path / "never"), "settings": {"train.lr": 0.2}}]))
    r = run_cli("status", str(sweep))
    assert r.returncode == 0 and "done" in r.stdout and "not started" in r.stdout, r.stderr
