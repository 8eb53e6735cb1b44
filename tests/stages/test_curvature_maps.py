"""Curvature maps beside a surface: stored with their own done mask, resumable, the same on 1 or 2 MPI ranks,
in the figures and the VTK files."""
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from conftest import mpi_env, non_blank
from landscape.core.errors import StoreError
from landscape.io.surface_file import read_surface
from landscape.run.jobfile import load_job
from landscape.stages.job import run_job
from landscape.stages.surface import run_surface_job

JOB = """
[model]
name = "mlp"
kwargs = {depth = 1, width = 8, activation = "tanh"}
[data]
name = "spiral"
[train]
epochs = 6
lr = 0.1
[surface]
alpha = "-1:1:5"
beta = "-1:1:6"
curvature = ["lambda_max", "lambda_min", "trace"]
[curvature]
trace_samples = 6
tol = 1e-4
[export]
vtk = ["vtp"]
plots = ["png"]
"""


@pytest.fixture(scope="module")
def mapped(tmp_path_factory):
    out = tmp_path_factory.mktemp("maps")
    (out / "job.toml").write_text(JOB)
    job = load_job(out / "job.toml", [f"output={out}"])
    run_job(job, progress=False)
    return out, job


def test_maps_are_stored_beside_the_loss_with_figures_and_vtk(mapped):
    out, _ = mapped
    s = read_surface(out / "surface.h5")
    assert s.maps["curvature_done"].all() and s.done.all()
    lmax, lmin, trace = (s.maps[k] for k in ("lambda_max", "lambda_min", "trace"))
    assert lmax.shape == s.loss.shape == (5, 6) and np.isfinite(lmax).all()
    assert (lmax >= lmin).all() and (lmax > 0).all()
    assert s.attrs["status"] == "complete" and s.attrs["curvature_status"] == "complete"
    assert non_blank(out / "surface_curvature.png")
    vtk = pytest.importorskip("vtk")
    r = vtk.vtkXMLPolyDataReader()
    r.SetFileName(str(out / "surface.vtp"))
    r.Update()
    pd = r.GetOutput().GetPointData()
    from vtk.util.numpy_support import vtk_to_numpy
    np.testing.assert_array_equal(vtk_to_numpy(pd.GetArray("lambda_max")), lmax.ravel())
    conv = vtk_to_numpy(pd.GetArray("convexity"))
    np.testing.assert_allclose(conv, np.abs(lmin / lmax).ravel())


def test_resumed_maps_equal_a_whole_run_and_other_settings_are_refused(mapped):
    out, _ = mapped
    whole = read_surface(out / "surface.h5").maps
    copy = out / "resumed.h5"
    shutil.copy(out / "surface.h5", copy)
    with h5py.File(copy, "r+") as f:  # as a run killed after flushing two rows leaves it
        f["curvature_done"][2:] = 0
        for k in ("lambda_max", "lambda_min", "trace"):
            f[k][2:] = np.nan
        f.attrs["curvature_status"] = "partial"
    over = [f"output={out}", "surface.output=resumed.h5"]
    run_surface_job(load_job(out / "job.toml", over), progress=False)  # the loss is complete; the maps resume
    again = read_surface(copy)
    assert again.attrs["curvature_status"] == "complete"
    for k in ("lambda_max", "lambda_min", "trace"):
        np.testing.assert_array_equal(again.maps[k], whole[k])
    with pytest.raises(StoreError, match="other settings"):
        run_surface_job(load_job(out / "job.toml", over + ["curvature.tol=1e-2"]), progress=False)
    np.testing.assert_array_equal(read_surface(copy).maps["lambda_max"], whole["lambda_max"])


@pytest.mark.mpi
def test_maps_on_two_ranks_equal_one_rank(mapped, tmp_path):
    out, _ = mapped
    for name in ("trajectory.h5", "job.toml"):
        shutil.copy(out / name, tmp_path / name)
    mpiexec = shutil.which("mpiexec") or str(Path(sys.executable).with_name("mpiexec"))
    args = [sys.executable, "-m", "landscape", "surface", "--job", str(tmp_path / "job.toml"), "--output",
            str(tmp_path), "--no-progress", "surface.chunk=4"]
    results = {}
    for ranks in (1, 2):  # both as processes with one thread each: only the rank count differs
        out_name = f"ranks{ranks}.h5"
        cmd = ([mpiexec, "-n", "2"] if ranks == 2 else []) + args + ["--out", str(tmp_path / out_name)]
        r = subprocess.run(cmd, env=mpi_env(), capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr
        results[ranks] = read_surface(tmp_path / out_name)
    for k in ("lambda_max", "lambda_min", "trace"):
        np.testing.assert_array_equal(results[1].maps[k], results[2].maps[k])
    np.testing.assert_array_equal(results[1].loss, results[2].loss)
    assert results[2].maps["curvature_done"].all()
