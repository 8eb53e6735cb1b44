import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from conftest import mpi_env, rank_pid, wait_for_points
from landscape.core.models import build_model
from landscape.run.distributed import chunk_size
from landscape.run.mpi import local_rank, pick_device
from landscape.io.surface_file import read_surface

MPIEXEC = shutil.which("mpiexec") or str(Path(sys.executable).with_name("mpiexec"))


def test_chunk_size_policy():
    assert chunk_size(1000, 4, None) == 64  # before a rank's speed is known
    assert chunk_size(1000, 4, 50.0, target_seconds=2.0) == 100  # about 2 s of work
    assert chunk_size(1000, 4, 5000.0) == 125  # never more than a fair share: ceil(1000 / 8)
    assert chunk_size(3, 4, 5000.0) == 1 and chunk_size(0 + 1, 1, None) == 1
    assert chunk_size(1000, 4, 1.0, minimum=8) == 8  # at least the points evaluated at once
    assert chunk_size(1000, 4, 50.0, fixed=7) == 7 and chunk_size(5, 4, None, fixed=7) == 5


def test_local_rank_from_launcher_variables(monkeypatch):
    for v in ("SLURM_LOCALID", "OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID"):
        monkeypatch.delenv(v, raising=False)
    assert local_rank(None) == (0, 1)
    monkeypatch.setenv("SLURM_LOCALID", "3")
    monkeypatch.setenv("SLURM_NTASKS_PER_NODE", "4")
    assert local_rank(None) == (3, 4)
    assert pick_device(None, "cpu") == "cpu"


def surface_args(tmp_path, out, *extra, model="lenet5", data="digits", grid=("-1:1:7", "-1:1:5")):
    return ["-m", "landscape", "surface", "--model", model, "--data", data, "--center", str(tmp_path / "c.pt"),
            "--alpha", grid[0], "--beta", grid[1], "--out", str(tmp_path / out), "--no-progress", "--subset", "60",
            *extra]


@pytest.fixture
def center(tmp_path):
    torch.manual_seed(0)
    torch.save(build_model("lenet5").state_dict(), tmp_path / "c.pt")
    serial = subprocess.run([sys.executable, *surface_args(tmp_path, "serial.h5")], env=mpi_env(), capture_output=True,
                            text=True, timeout=300)
    assert serial.returncode == 0, serial.stderr
    return read_surface(tmp_path / "serial.h5")


def mpirun(n, args, env=None, timeout=300):
    return subprocess.run([MPIEXEC, "-n", str(n), sys.executable, *args], env=env or mpi_env(), capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.mpi
@pytest.mark.parametrize("n,extra", [(1, []), (2, ["surface.chunk=3"]), (3, [])])
def test_mpi_equals_serial(tmp_path, center, n, extra):
    r = mpirun(n, surface_args(tmp_path, "mpi.h5", *extra, "-v"))
    assert r.returncode == 0, r.stderr
    s = read_surface(tmp_path / "mpi.h5")
    assert s.done.all() and s.attrs["status"] == "complete" and s.inputs == center.inputs
    np.testing.assert_array_equal(s.loss, center.loss)  # bitwise: rank count and batch mode change nothing
    np.testing.assert_array_equal(s.accuracy, center.accuracy)
    for rank in range(n):  # every rank reported where it runs
        assert f"rank {rank} (local {rank} of {n})" in r.stderr and "-> cpu" in r.stderr
    if not extra:  # rank 0 calibrates once and shares its choice (with a fixed chunk size each rank calibrates)
        assert r.stderr.count("points per batch:") == 1, r.stderr


@pytest.mark.mpi
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_killed_mpi_run_resumes(tmp_path, center, sig):
    big = ("-1:1:21", "-1:1:15")  # 315 points: the run cannot finish before the signal lands
    serial = subprocess.run([sys.executable, *surface_args(tmp_path, "big.h5", grid=big)], env=mpi_env(),
                            capture_output=True, text=True, timeout=300)
    assert serial.returncode == 0, serial.stderr
    center = read_surface(tmp_path / "big.h5")
    args = surface_args(tmp_path, "k.h5", "surface.flush_every=1", "surface.chunk=2", "--points-per-batch", "1",
                        grid=big)
    started = time.time()
    proc = subprocess.Popen([MPIEXEC, "-n", "2", sys.executable, *args], env=mpi_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    wait_for_points(tmp_path / "k.h5", 4, proc)
    t = time.time()
    startup = t - started  # how fast this machine is right now: imports, MPI start, the first points
    os.killpg(proc.pid, sig)  # the whole job, as the batch system does
    _, err = proc.communicate(timeout=120)
    elapsed = time.time() - t
    part = read_surface(tmp_path / "k.h5")  # readable after any kill
    mask = part.done.astype(bool)
    assert 4 <= mask.sum() < 315
    np.testing.assert_array_equal(part.loss[mask], center.loss[mask])
    if sig == signal.SIGTERM:
        assert part.attrs["status"] == "partial" and "resume" in err, err
        assert elapsed < max(15.0, 2 * startup), f"{elapsed:.1f} s to stop (start-up took {startup:.1f} s)\n{err}"
    r = mpirun(2, args)
    assert r.returncode == 0, r.stderr
    done = read_surface(tmp_path / "k.h5")
    assert done.done.all() and done.attrs["status"] == "complete"
    np.testing.assert_array_equal(done.loss, center.loss)


@pytest.mark.mpi
def test_failing_rank_aborts_the_job(tmp_path):
    args = ["-m", "landscape", "surface", "--model", "userdefs:fails_on_rank", "--data", "spiral", "--center",
            "init", "--alpha", "-1:1:41", "--beta", "-1:1:41", "--out", str(tmp_path / "f.h5"), "--no-progress",
            "surface.chunk=8", "surface.flush_every=1", f"output={tmp_path}"]
    torch.manual_seed(0)
    from userdefs import fails_on_rank

    torch.save(fails_on_rank().state_dict(), tmp_path / "init.pt")
    args[args.index("init")] = str(tmp_path / "init.pt")
    t = time.time()
    r = mpirun(3, args, env=mpi_env(LANDSCAPE_TEST_FAIL_RANK="2", LANDSCAPE_TEST_FAIL_AFTER="8",
                                    LANDSCAPE_TEST_READY_FILE=str(tmp_path / "ready")), timeout=120)
    assert r.returncode != 0 and time.time() - t < 60
    assert "injected failure on this rank" in r.stderr and "rank 2" in r.stderr
    s = read_surface(tmp_path / "f.h5")  # what the other ranks computed is kept
    assert s.attrs["status"] == "partial" and s.done.sum() < s.done.size
    assert np.isfinite(s.loss[s.done.astype(bool)]).all()
    r = mpirun(2, args)  # without the failing rank the same command finishes the grid
    assert r.returncode == 0, r.stderr
    assert read_surface(tmp_path / "f.h5").done.all()


@pytest.mark.mpi
def test_demo_job_under_mpi(tmp_path):
    r = mpirun(2, ["-m", "landscape", "demo", "--output", str(tmp_path / "d"), "train.epochs=3",
                   "surface.alpha=-1:1:5", "surface.beta=-1:1:3", "pca.alpha=\"auto:4\"", "pca.beta=\"auto:3\"",
                   "paths.alpha=0:1:3", "paths.kinds=[\"linear\", \"quadratic\"]", "curvature.top_k=1",
                   "curvature.trace_samples=2", "export.plots=[\"png\"]", "export.animate=false",
                   "export.paraview_state=false", "--no-progress"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("outputs written to") == 1  # rank 0 reports
    s = read_surface(tmp_path / "d" / "surface.h5")
    assert s.done.all() and s.loss.shape == (5, 3)
    assert read_surface(tmp_path / "d" / "surface_pca.h5").done.all()
    assert read_surface(tmp_path / "d" / "path_quadratic.h5").done.all()


_EXIT_SCRIPT = """
import os, signal, sys, threading, time
from mpi4py import MPI
from landscape.run.mpi import exit_together
rank = MPI.COMM_WORLD.Get_rank()
MPI.COMM_WORLD.Barrier()  # every rank has imported what it needs: the waits below start together
if rank == 0:
    time.sleep(2)  # rank 0 still works alone; a signal to a waiting rank changes nothing
    print(f"rank 0 done at {time.time():.3f}", flush=True)
else:
    threading.Timer(0.5, os.kill, (os.getpid(), (signal.SIGUSR1, signal.SIGTERM)[rank % 2])).start()
rc = exit_together(int(sys.argv[1 + rank]), timeout=None if rank else 30)
print(f"rank {rank} rc {rc} at {time.time():.3f}", flush=True)
sys.exit(rc)
"""


@pytest.mark.mpi
def test_ranks_exit_together_with_the_highest_status(tmp_path, busy_cores):
    """No rank exits before rank 0 is done, and all exit with the highest status of any rank, so a launcher
    that ends the step at the first nonzero exit never kills a rank that is still saving."""
    r = mpirun(3, ["-c", _EXIT_SCRIPT, "0", "75", "0"], timeout=120)
    # the launcher forwards each rank's output as it comes: two ranks' lines can run together on one line
    lines = sorted(m.split() for m in re.findall(r"rank \d+ rc \d+ at [\d.]+\d", r.stdout))
    assert r.returncode == 75 and [x[3] for x in lines] == ["75", "75", "75"], r.stdout + r.stderr
    done = float(re.search(r"rank 0 done at ([\d.]+\d)", r.stdout).group(1))
    assert all(float(x[5]) >= done for x in lines), r.stdout  # no rank exited before rank 0 was done
    r = mpirun(2, ["-c", _EXIT_SCRIPT, "0", "0"], timeout=120)
    assert r.returncode == 0 and r.stdout.count(" rc 0 ") == 2, r.stdout + r.stderr


_LATE_SIGNAL_SCRIPT = """
import os, signal, sys, time
sys.argv = ["landscape", "list"]  # as the console script starts
from landscape.cli import console
from mpi4py import MPI
rc = console()
if MPI.COMM_WORLD.Get_rank() == 1:  # its work is done and every rank agreed on the status
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(0.2)
print(f"rank {MPI.COMM_WORLD.Get_rank()} exits {rc}", flush=True)
sys.exit(rc)
"""


@pytest.mark.mpi
def test_a_signal_to_a_rank_after_the_command_ended_changes_no_status(tmp_path):
    """SIGTERM to a worker after the ranks agreed on the exit status (a job ending as Slurm cancels it) no longer
    kills it with status 15: the launcher reports the command's status."""
    r = mpirun(2, ["-c", _LATE_SIGNAL_SCRIPT], timeout=120)
    assert r.returncode == 0 and r.stdout.count(" exits 0") == 2, (r.returncode, r.stdout + r.stderr)


@pytest.mark.mpi
def test_unexpected_exception_on_one_rank_ends_the_job(tmp_path, busy_cores):
    """An error that is not a landscape error (a bug, a CUDA failure) on one rank, while the others wait in a
    collective step, ends the whole job with the traceback instead of leaving it hanging."""
    from userdefs import tiny

    torch.save(tiny(2, 3).state_dict(), tmp_path / "init.pt")
    args = ["-m", "landscape", "surface", "--model", "userdefs:breaks_on_rank", "--data", "spiral", "--center",
            str(tmp_path / "init.pt"), "--alpha", "-1:1:5", "--out", str(tmp_path / "b.h5"), "--no-progress",
            f"output={tmp_path}"]
    t = time.time()
    r = mpirun(2, args, env=mpi_env(LANDSCAPE_TEST_FAIL_RANK="1"), timeout=120)
    assert r.returncode != 0 and time.time() - t < 60, r.stderr
    assert "RuntimeError: injected bug on this rank" in r.stderr and "Traceback" in r.stderr, r.stderr
    saved = (tmp_path / "error-rank1.log").read_text()  # the failure is kept even if the launcher drops output
    assert "Traceback" in saved and "RuntimeError: injected bug on this rank" in saved


_SIGNAL_JOB = """
[job]
name = "sig"
[model]
name = "lenet5"
[data]
name = "digits"
train_subset = 300
test_subset = 120
[train]
epochs = 3
norms_every = 5
[surface]
alpha = "-1:1:5"
beta = "-1:1:5"
[pca]
alpha = "auto:5"
beta = "auto:5"
[dynamics]
[paths]
levels = ["model", "layer"]
alpha = "-0.5:1.5:5"
[export]
vtk = ["vtp"]
plots = ["png"]
"""


@pytest.mark.mpi
@pytest.mark.parametrize("marker", ["final model on", "wrote {out}/surface.vtp", "surface {out}/surface_pca.h5",
                                    "conv1: ", "landscape.run.runner: {out}/path_quadratic.h5"])
def test_signal_to_rank_0_at_a_stage_boundary_stops_every_rank(tmp_path, marker):
    """SIGUSR1 to rank 0 alone while it works alone (training's end, exports, dynamics, the report) and the other
    rank waits in the next stage: both exit 75 soon after, wherever the signal lands."""
    (tmp_path / "job.toml").write_text(_SIGNAL_JOB)
    out = tmp_path / "out"
    marker = marker.format(out=out)
    proc = subprocess.Popen([MPIEXEC, "-n", "2", sys.executable, "-m", "landscape", "run", str(tmp_path / "job.toml"),
                             f"output={json.dumps(str(out))}", "--no-progress"], env=mpi_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        seen = []
        for line in proc.stderr:  # rank 0's log, line by line, until the stage's marker
            seen.append(line)
            if marker in line:
                os.kill(rank_pid(proc.pid, 0), signal.SIGUSR1)
                break
        else:
            pytest.fail(f"the run ended before {marker!r}:\n" + "".join(seen))
        t = time.monotonic()
        rest = proc.communicate(timeout=120)[1]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 75, "".join(seen) + rest
    assert time.monotonic() - t < 60, rest
    assert "received signal SIGUSR1" in rest or "stopped" in rest


@pytest.mark.mpi
def test_language_model_surface_under_mpi_equals_serial(tmp_path):
    """The language task goes through the same master/worker machinery: a GPT surface on 2 ranks equals the
    serial file bitwise, and a rerun on the finished file computes nothing and changes nothing."""
    from landscape.core.data import load_data

    kw = ["data.kwargs.context=16", "data.kwargs.n_train=32", "data.kwargs.n_test=24", "data.kwargs.max_bytes=200000",
          "model.kwargs.n_layer=1", "model.kwargs.n_head=2", "model.kwargs.d_model=16"]
    _, test = load_data("pytext", context=16, n_train=32, n_test=24, max_bytes=200000)
    torch.manual_seed(0)
    torch.save(build_model("gpt", test.info(), n_layer=1, n_head=2, d_model=16).state_dict(), tmp_path / "c.pt")
    files = {}
    for n, name in ((None, "serial"), (2, "mpi")):
        args = surface_args(tmp_path, f"{name}.h5", *kw, model="gpt", data="pytext", grid=("-1:1:5", "-1:1:3"))
        args.remove("--subset"), args.remove("60")
        r = (subprocess.run([sys.executable, *args], env=mpi_env(), capture_output=True, text=True, timeout=300)
             if n is None else mpirun(n, args))
        assert r.returncode == 0, r.stderr
        files[name] = read_surface(tmp_path / f"{name}.h5")
    assert files["mpi"].done.all() and files["mpi"].inputs == files["serial"].inputs
    np.testing.assert_array_equal(files["mpi"].loss, files["serial"].loss)
    np.testing.assert_array_equal(files["mpi"].accuracy, files["serial"].accuracy)
    assert np.isfinite(files["serial"].loss).all() and files["serial"].loss.min() < math.log(256) + 1
    r = mpirun(2, args)  # resuming a finished file: nothing left to compute, nothing changed
    assert r.returncode == 0, r.stderr
    np.testing.assert_array_equal(read_surface(tmp_path / "mpi.h5").loss, files["serial"].loss)


_THREADS_JOB = """
[model]
name = "lenet5"
[data]
name = "digits"
train_subset = 256
test_subset = 48
[train]
epochs = 1
batch_size = 128
[surface]
alpha = "-1:1:3"
beta = "-1:1:2"
curvature = ["lambda_max"]
[curvature]
top_k = 1
bottom_k = 0
trace_samples = 2
max_iter = 8
sharpness = false
[export]
vtk = []
plots = []
report = false
"""


@pytest.mark.mpi
def test_a_job_writes_the_same_files_serially_and_under_mpi_at_default_threads(tmp_path):
    """Serial (all cores' threads) and mpiexec -n 2 (cores / 2 threads per rank), as users launch them: the
    trajectory, the curvature file and the surface's curvature map are the same bitwise."""
    (tmp_path / "job.toml").write_text(_THREADS_JOB)
    env = mpi_env()
    env.pop("OMP_NUM_THREADS")  # each launch keeps its own thread count
    files = {}
    for name, pre in (("serial", []), ("mpi", [MPIEXEC, "-n", "2"])):
        out = tmp_path / name
        r = subprocess.run(pre + [sys.executable, "-m", "landscape", "run", str(tmp_path / "job.toml"), "--output",
                                  str(out), "--no-progress"], env=env, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr
        files[name] = out
    with h5py.File(files["serial"] / "trajectory.h5") as a, h5py.File(files["mpi"] / "trajectory.h5") as b:
        np.testing.assert_array_equal(a["states"][...], b["states"][...])
    s, m = (read_surface(files[k] / "surface.h5") for k in ("serial", "mpi"))
    np.testing.assert_array_equal(s.loss, m.loss)
    np.testing.assert_array_equal(s.maps["lambda_max"], m.maps["lambda_max"])
    with h5py.File(files["serial"] / "curvature.h5") as a, h5py.File(files["mpi"] / "curvature.h5") as b:
        np.testing.assert_array_equal(a["eigenvalues"][...], b["eigenvalues"][...])


@pytest.mark.mpi
def test_another_mpis_mpiexec_is_refused_with_the_one_to_use(tmp_path):
    """Debian's Open MPI mpiexec (ParaView depends on it) comes first on PATH; with the MPICH wheel the ranks
    used to abort inside MPI_Init ("unsupported PMI version PMIx") with no word from landscape."""
    system = shutil.which("mpiexec.openmpi") or "/usr/bin/mpiexec.openmpi"
    assert Path(system).exists(), "Open MPI's mpiexec (apt-get install paraview pulls it in) is needed here"
    r = subprocess.run([system, "--allow-run-as-root", "--oversubscribe", "-n", "1", sys.executable, "-m",
                        "landscape", "surface", "--model", "mlp", "--data", "spiral", "--alpha", "-1:1:3",
                        "--out", str(tmp_path / "s.h5"), "--no-progress"], env=mpi_env(), capture_output=True,
                       text=True, timeout=300)
    text = r.stdout + r.stderr
    own = str(Path(sys.executable).with_name("mpiexec"))
    assert r.returncode != 0 and "Open MPI's mpiexec" in text and own in text, text
    assert "Traceback" not in text and "unsupported PMI" not in text and not (tmp_path / "s.h5").exists()
