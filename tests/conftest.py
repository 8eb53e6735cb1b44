import copy
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

# OpenMP threads that wait passively: with the default (spinning) policy, torch's threads in every process of a
# loaded machine (CI shares its 2 cores) spin against each other, and a job that takes 57 s alone took over 380 s
# beside two busy loops (109 s with passive waits). Read by libgomp when torch loads, so set before importing it;
# inherited by every command the tests start.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import h5py
import numpy as np
import pytest
import torch

from landscape.core.errors import StoreError
from landscape.engine.losses import per_sample_loss
from landscape.core.grid import Grid
from landscape.io.surface_file import SurfaceStore, read_surface

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="no CUDA device visible")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 300, env: dict | None = None
            ) -> subprocess.CompletedProcess:
    """Run the real command line (python -m landscape) in a subprocess."""
    env = dict(env or os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), str(ROOT), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-m", "landscape", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture
def cli():
    return run_cli


def wait_for_points(path: Path, minimum: int, proc: subprocess.Popen | None = None, timeout: float = 120,
                    ended: Callable[[], str | None] | None = None) -> int:
    """Poll a surface file that a running process (or a batch job) writes until ``minimum`` points are flushed;
    fails at once when ``proc`` exits or ``ended()`` says why the job is over."""
    t = time.time()
    while time.time() - t < timeout:
        assert proc is None or proc.poll() is None, proc.communicate()[1]
        why = ended() if ended is not None else None
        assert why is None, why
        try:
            n = int(read_surface(path).done.sum())
            if n >= minimum:
                return n
        except StoreError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"fewer than {minimum} points flushed to {path} within {timeout} s")


def mpi_env(**extra) -> dict:
    """The environment of an mpiexec launched by a test: the tests' modules importable, one thread per rank, and
    no variables of an MPI launch this process may itself run under."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TESTS), str(ROOT)]), OMP_NUM_THREADS="1", **extra)
    for v in ("PMI_RANK", "PMI_SIZE", "PMI_FD", "PMIX_RANK"):
        env.pop(v, None)
    return env


def non_blank(png) -> bool:
    """A figure with varied pixels, not an empty white canvas."""
    import matplotlib.image as mpimg

    img = mpimg.imread(png)[..., :3]
    return img.std() > 0.05 and (img < 0.9).mean() > 0.02


def _xvfb(timeout: float) -> tuple[subprocess.Popen, str]:
    """A new Xvfb on a display it picks itself, once it reports that display (-displayfd)."""
    import select

    r, w = os.pipe()
    xvfb = subprocess.Popen(["Xvfb", "-displayfd", str(w), "-screen", "0", "1920x1200x24", "-nolisten", "tcp"],
                            pass_fds=(w,), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    os.close(w)
    number = b""
    while not number.endswith(b"\n"):  # Xvfb writes the display number once it is ready
        ready, _, _ = select.select([r], [], [], timeout)
        chunk = os.read(r, 16) if ready else b""
        if not chunk:
            xvfb.kill()
            raise AssertionError(f"Xvfb did not start: {xvfb.communicate()[1][-2000:]!r}")
        number += chunk
    os.close(r)
    return xvfb, f":{int(number)}"


def pvbatch(script, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run a pvpython script with ParaView's real pvbatch, headless. Debian's ParaView is built for X only, so
    without a display it gets its own Xvfb (installed by .ci/run). Under load pvbatch now and then fails to open
    a display that Xvfb has just reported ready ("bad X server connection", with xvfb-run too): that attempt is
    repeated on a new Xvfb, at most three times; any other failure fails at once."""
    import shutil

    ci = os.environ.get("CI") or os.environ.get("LANDSCAPE_CI")
    exe = shutil.which("pvbatch")
    if exe is None:
        if ci:
            pytest.fail("pvbatch (Debian package paraview) must be installed in CI; .ci/run installs it")
        pytest.skip("pvbatch not installed (apt-get install paraview)")
    own_display = not os.environ.get("DISPLAY")
    if own_display and shutil.which("Xvfb") is None:
        if ci:
            pytest.fail("Xvfb (Debian package xvfb) must be installed in CI; .ci/run installs it")
        pytest.skip("no display and no Xvfb for pvbatch (apt-get install xvfb)")
    for attempt in range(3):
        env = dict(os.environ)
        xvfb = None
        if own_display:
            xvfb, env["DISPLAY"] = _xvfb(timeout)
        try:
            r = subprocess.run([exe, str(script), *args], capture_output=True, text=True, timeout=timeout,
                               cwd=Path(script).parent, env=env)
        finally:
            if xvfb is not None:
                xvfb.terminate()
                xvfb.wait(timeout=60)
        if r.returncode == 0 or "bad X server connection" not in r.stderr:
            break
    assert r.returncode == 0, (r.stdout + r.stderr)[:3000]
    return r


ALPHA, BETA = np.array([-1.0, 0.0, 1.0]), np.array([-0.5, 0.0, 0.5, 1.0, 1.5])


def make_surface(path, trajectory=False, line=False):
    """A complete small surface file with distinct, non-symmetric values (and a projected path if asked)."""
    g = Grid(ALPHA, None if line else BETA)
    st = SurfaceStore.open(path, g, {"case": str(path)})
    k = np.arange(g.size)
    a, b = g.coords(k)
    loss = 1.0 + a ** 2 + 0.3 * b ** 2 + 0.01 * k  # distinct, non-symmetric values
    st.write(k, loss, 1.0 / (1.0 + loss))
    st.close()
    if trajectory:
        with h5py.File(path, "r+") as f:
            t = f.create_group("trajectory")
            t["alpha"], t["beta"] = np.array([-1.0, -0.4, 0.0]), np.array([1.2, 0.5, 0.0])
            t["epoch"], t["loss"] = np.array([0.0, 1.0, 2.0]), np.array([2.3, 0.9, 0.2])
    return read_surface(path)


def rank_pid(launcher_pid: int, rank: int, timeout: float = 60) -> int:
    """The pid of MPI rank ``rank`` among the descendants of an ``mpiexec`` process (by its PMI_RANK)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        parents = {}
        for d in Path("/proc").iterdir():
            if d.name.isdigit():
                try:
                    parents[int(d.name)] = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    continue
        for pid in parents:
            p, chain = pid, 0
            while p in parents and p != launcher_pid and chain < 10:
                p, chain = parents[p], chain + 1
            if p != launcher_pid or pid == launcher_pid:
                continue
            try:
                env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if f"PMI_RANK={rank}".encode() in env and b"landscape" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return pid
        time.sleep(0.05)
    raise AssertionError(f"no rank {rank} under launcher {launcher_pid}")


@pytest.fixture
def busy_cores():
    """Every core busy with a spinning process for the test's duration: the machine CI shares with other work."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 1)]
    yield len(procs)
    for p in procs:
        p.kill()
        p.wait()


def exact_hessian(model, data, names, loss="cross_entropy"):
    """The Hessian of the mean loss over ``names`` in float64 by torch.autograd.functional.hessian."""
    m = copy.deepcopy(model).double().eval()
    params = dict(m.named_parameters())
    base = {k: v.detach() for k, v in params.items()}
    shapes = [params[n].shape for n in names]
    sizes = [params[n].numel() for n in names]
    x, y = data.x.double(), data.y
    fn = per_sample_loss(loss)

    def f(flat):
        chunks = torch.split(flat, sizes)
        p = {**base, **{n: c.view(s) for n, c, s in zip(names, chunks, shapes)}}
        return fn(torch.func.functional_call(m, p, (x,)), y).mean()

    flat = torch.cat([params[n].detach().reshape(-1) for n in names])
    return torch.autograd.functional.hessian(f, flat)


#: the shortened demo job that several modules read (the report, the paths): run once per session
SHORT_DEMO = ["train.epochs=4", "surface.alpha=-1:1:9", "surface.beta=-1:1:9", "pca.alpha=auto:9", "pca.beta=auto:9",
              "paths.alpha=-0.5:1.5:9", "paths.curve.epochs=2", "paths.curve.lr_milestones=[]", "curvature.top_k=2",
              "curvature.trace_samples=4", "export.plots=[\"png\"]"]


@pytest.fixture(scope="session")
def short_demo_run(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """(folder it ran in, finished process) of ``landscape demo`` shortened (4 epochs, 9x9 grids, 9-point paths, PNG
    figures), run once as the Quick start types it: the job's own relative output folder under the current folder."""
    cwd = tmp_path_factory.mktemp("short-demo")
    return cwd, run_cli("demo", "--no-progress", *SHORT_DEMO, cwd=cwd, timeout=600)


@pytest.fixture(scope="session")
def short_demo(short_demo_run):
    """(output folder, job) of the shortened demo (:func:`short_demo_run`); tests that write into the folder take a
    copy (:func:`copy_of`)."""
    from landscape.run.jobfile import load_job
    from landscape.stages.job import demo_job_path

    cwd, r = short_demo_run
    assert r.returncode == 0, r.stderr
    out = cwd / "landscape-demo"
    return out, load_job(demo_job_path(), [f"output={out}", *SHORT_DEMO])


def copy_of(folder: Path, target: Path) -> Path:
    """A copy of a shared output folder that a test may write into."""
    import shutil

    shutil.copytree(folder, target)
    return target
