import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from landscape.core.errors import EXIT_INTERRUPTED, Interrupted
from landscape.io.trajectory import TrajectoryStore

from conftest import ROOT, TESTS, run_cli


def test_help_lists_commands(cli):
    r = cli("--help")
    assert r.returncode == 0
    for cmd in ("demo", "run", "train", "evaluate", "surface", "path", "status", "export", "plot", "info", "list"):
        assert cmd in r.stdout
    r = cli("list", "-q")  # verbosity flags are accepted after the command too
    assert r.returncode == 0 and "lenet5" in r.stdout
    r = cli("train", "--help")
    assert r.returncode == 0 and "--epochs" in r.stdout and "KEY=VALUE" in r.stdout


def test_console_script_installed():
    assert shutil.which("landscape"), "pip install . must provide the 'landscape' console script"


def test_demo_runs_and_prints_output_folder(cli, short_demo_run):
    # as the Quick start types it, shortened (conftest): the job's own relative output folder, under the current
    # folder; the defaults it shortens are checked below
    cwd, r = short_demo_run
    assert r.returncode == 0, r.stderr
    demo = cwd / "landscape-demo"
    assert "landscape-demo" in r.stdout
    # the one path to open, last: the self-contained HTML report of the folder
    assert r.stdout.strip().splitlines()[-1] == f"open the report: {(demo / 'report.html').resolve()}"
    summary = json.loads((demo / "summary.json").read_text())
    pngs = sorted(demo.glob("*.png"))
    assert len(pngs) >= 15
    assert (demo / "surface_pca_path.gif").is_file() and (demo / "surface_view.py").is_file()
    if shutil.which("pvbatch") or os.environ.get("LANDSCAPE_CI"):  # ParaView state files of the ready views
        for state in ("surface.pvsm", "surface_pca.pvsm", "filters/conv1_filters.pvsm"):
            assert (demo / state).is_file() and "<ServerManagerState" in (demo / state).read_text(), state
            assert state in summary["outputs"]["paraview_states"]  # listed relative to the folder
    assert summary["final"]["accuracy"] > 0.8  # lenet5 learns the digits even in 4 epochs
    assert (demo / "trajectory.h5").is_file()
    from landscape.io.surface_file import read_surface

    surface = read_surface(demo / "surface.h5")  # filter-normalised surface around final
    assert surface.loss.shape == (9, 9) and surface.done.all() and surface.inputs["norm"] == "filter"
    assert surface.loss[4, 4] == pytest.approx(summary["final"]["loss"], rel=1e-5)  # (0, 0) is the final model
    for name in ("surface.vtp", "surface.vts", "surface_contour.png", "path_linear.h5",
                 "path_quadratic.h5", "paths_compare.png", "layers_robust_ambient.csv"):
        assert (demo / name).is_file(), name
    # the robust/ambient table is printed, one row per LeNet-5 layer
    for layer in ("conv1", "conv2", "fc1", "fc2", "fc3"):
        assert any(line.strip().startswith(layer + " ") for line in r.stdout.splitlines()), layer
    assert "robust" in r.stdout
    # the curvature of the final model: λmax and the trace are logged, the top eigenvalues stored
    assert "λmax" in r.stderr and "trace" in r.stderr
    from landscape.io.curvature_file import read_curvature

    c = read_curvature(demo / "curvature.h5")
    assert c["eigen_kind"].count("top") == 2 and c["eigenvalues"][0] > c["eigenvalues"][1] > 0
    assert summary["curvature"]["lambda_max"] == c["attrs"]["lambda_max"] and c["trace_stderr"] > 0
    # the learned Bézier curve between init and final, beside the linear and Lagrange paths
    assert (demo / "path_bezier.h5").is_file() and summary["outputs"]["curve_bezier"]
    # the 3-D sample: 5x5x5 points along three random directions, all computed
    from landscape.io.sample_file import read_sample

    assert summary["outputs"]["sample"] == "sample.h5"
    sample = read_sample(demo / "sample.h5")
    assert sample.shape == (5, 5, 5) and sample.done.all() and sample.inputs["input_tables"] == "conv1"
    info = cli("info", str(demo / "trajectory.h5"))
    assert info.returncode == 0 and "checkpoints 5" in info.stdout
    ev = cli("evaluate", f"{demo}/trajectory.h5:final", "--json")
    assert ev.returncode == 0, ev.stderr
    assert json.loads(ev.stdout)["loss"] == pytest.approx(summary["final"]["loss"], rel=1e-6)


def test_demo_defaults_are_the_quick_starts():
    """What the shortened run above leaves out: the demo job at its defaults trains 15 epochs, measures a 25x25
    filter-normalised surface, the top-5 eigenvalues, and writes every figure as PNG and PDF with ParaView states."""
    from landscape.core.grid import parse_range
    from landscape.run.jobfile import load_job
    from landscape.stages.job import demo_job_path

    job = load_job(demo_job_path(), [])
    assert job.train.epochs == 15 and job.output == "landscape-demo"
    assert len(parse_range(job.surface.alpha)) == len(parse_range(job.surface.beta)) == 25
    assert job.surface.norm == "filter"
    assert job.curvature.top_k == 5 and set(job.export.plots) >= {"png", "pdf"} and job.export.paraview_state


def test_train_resume_and_errors(cli, tmp_path):
    out = tmp_path / "sp.h5"
    args = ["train", "--model", "mlp", "--data", "spiral", "--out", str(out), "--no-progress", "model.kwargs.depth=2"]
    r = cli(*args, "--epochs", "2")
    assert r.returncode == 0, r.stderr
    r = cli(*args, "--epochs", "3")
    assert r.returncode == 0 and "resuming" in r.stderr and "checkpoints 4" in r.stdout
    r = cli(*args, "--epochs", "4", "--lr", "0.3")
    assert r.returncode == 2 and "refusing to resume" in r.stderr and "train.lr" in r.stderr
    r = cli("run", str(tmp_path / "nope.toml"))
    assert r.returncode == 2 and "does not exist" in r.stderr
    r = cli("demo", "train.epochs=0", "train.optimizer=lbfgs", "--output", str(tmp_path / "x"))
    assert r.returncode == 2 and "2 problems" in r.stderr
    r = cli("info", str(tmp_path / "missing.h5"))
    assert r.returncode == 2 and "does not exist" in r.stderr


SIGNAL_TRAINING = ["train", "--model", "lenet5", "--data", "digits", "--epochs", "12", "--no-progress", "--device",
                   "cpu"]


@pytest.fixture(scope="module")
def uninterrupted_training(tmp_path_factory):
    """The trajectory of the signal tests' training run without interruption (run once for both signals)."""
    out = tmp_path_factory.mktemp("uninterrupted") / "full.h5"
    full = run_cli(*SIGNAL_TRAINING, "--out", str(out))
    assert full.returncode == 0, full.stderr
    return out


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGUSR1, signal.SIGTERM])
def test_signal_during_training_saves_and_resumes(tmp_path, sig, uninterrupted_training):
    """Slurm's time-limit warning can land while a job trains: exit 75, and the rerun ends where an
    uninterrupted run ends."""
    args = SIGNAL_TRAINING
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TESTS), str(ROOT)]))
    proc = subprocess.Popen([sys.executable, "-m", "landscape", *args, "--out", str(tmp_path / "t.h5")], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    t = time.time()
    while True:  # wait for two epochs on record
        assert proc.poll() is None and time.time() - t < 120, proc.communicate()[1]
        try:
            if len(TrajectoryStore(tmp_path / "t.h5")) >= 3:
                break
        except Exception:  # noqa: BLE001 - the file is being created
            pass
        time.sleep(0.05)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == EXIT_INTERRUPTED and sig.name in err, err
    stopped = len(TrajectoryStore(tmp_path / "t.h5"))
    assert stopped < 13  # it really stopped early
    again = run_cli(*args, "--out", str(tmp_path / "t.h5"))
    assert again.returncode == 0 and "resuming" in again.stderr, again.stderr
    a, b = TrajectoryStore(tmp_path / "t.h5"), TrajectoryStore(uninterrupted_training)
    assert len(a) == len(b) == 13 and torch.equal(a.vector("final"), b.vector("final"))


def test_torchrun_is_refused_with_what_to_use_instead(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TESTS), str(ROOT)]), TORCHELASTIC_RUN_ID="x",
               LOCAL_RANK="0", RANK="0", WORLD_SIZE="2")
    r = run_cli("list", env=env)
    assert r.returncode == 2 and "torchrun" in r.stderr and "mpiexec -n N" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


def test_paths_report_is_printed_once(tmp_path):
    out = tmp_path / "o"
    r = run_cli("train", "--model", "mlp", "--data", "spiral", "--epochs", "2", "--out", str(out / "trajectory.h5"),
                "--no-progress")
    assert r.returncode == 0, r.stderr
    r = run_cli("path", "--model", "mlp", "--data", "spiral", "--output", str(out), "--kind", "linear", "--level",
                "layer", "--alpha", "0:1:3", "--no-plots", "--no-progress")
    assert r.returncode == 0, r.stderr
    assert (r.stdout + r.stderr).count("layers reset to their initial values") == 1


def test_progress_lines_without_a_terminal(tmp_path):
    """Batch logs show progress: a line per epoch, and lines with points/s and the time left during a grid."""
    r = run_cli("train", "--model", "mlp", "--data", "spiral", "--epochs", "3", "--out", str(tmp_path / "t.h5"),
                "--no-progress")
    assert r.returncode == 0, r.stderr
    epochs = [x for x in r.stderr.splitlines() if "landscape.progress: train t.h5:" in x]
    assert [x.split(": ")[2].split()[0] for x in epochs] == ["1/3", "2/3", "3/3"] and "test_loss" in epochs[0]
    r = run_cli("surface", "--model", "mlp", "--data", "spiral", "--center", f"{tmp_path / 't.h5'}:final",
                "--alpha", "-1:1:41", "--beta", "-1:1:5", "--out", str(tmp_path / "s.h5"), "--no-progress",
                "surface.chunk=10")
    assert r.returncode == 0, r.stderr
    lines = [x for x in r.stderr.splitlines() if "landscape.progress: s.h5:" in x]
    assert len(lines) >= 10 and lines[-1].split(": ")[2].startswith("205/205 points (100%)"), r.stderr
    assert all("points/s" in x and "left" in x for x in lines)


def test_a_signal_inside_a_library_callback_still_exits_as_interrupted(monkeypatch, tmp_path):
    """SIGUSR1 raised inside h5py's attribute iteration came back as SystemError ("returned a result with an
    exception set") and ended an MPI job with status 2 instead of 75 (seen at a stage boundary)."""
    import landscape.cli.files as files
    from landscape.cli import main
    from landscape.core.errors import EXIT_INTERRUPTED, Interrupted

    def wrapped(path):
        try:
            raise Interrupted("received signal SIGUSR1; results so far are saved")
        except Interrupted as inner:
            raise SystemError("<cyfunction FastRLock.__exit__> returned a result with an exception set") from inner

    monkeypatch.setattr(files, "describe_file", wrapped)
    assert main(["status", str(tmp_path / "s.h5")]) == EXIT_INTERRUPTED
    monkeypatch.setattr(files, "describe_file", lambda path: (_ for _ in ()).throw(SystemError("a real bug")))
    with pytest.raises(SystemError, match="a real bug"):
        main(["status", str(tmp_path / "s.h5")])


def test_importing_the_package_leaves_the_garbage_collector_as_it_found_it():
    """The collector is paused while torch and the package are imported, and left as the caller had it; the
    console entry freezes what was imported (objects the collector would otherwise scan again and again)."""
    code = ("import gc, sys; was = gc.isenabled(); {pre}; import landscape, landscape.cli; "
            "print(was, gc.isenabled(), gc.get_freeze_count())")
    for pre, expected in (("pass", "True True 0"), ("gc.disable()", "True False 0")):
        r = subprocess.run([sys.executable, "-c", code.format(pre=pre)], capture_output=True, text=True,
                           cwd=ROOT, timeout=300)
        assert r.returncode == 0 and r.stdout.split() == expected.split(), (pre, r.stdout, r.stderr[-2000:])
    probe = ("import gc, sys, landscape.cli as c; c.main = lambda: print(gc.get_freeze_count() > 10000) or 0; "
             "sys.exit(c.console())")
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0 and r.stdout.strip() == "True", r.stderr[-2000:]


@pytest.mark.parametrize("sig", [signal.SIGUSR1, signal.SIGTERM])
def test_a_signal_while_torch_is_imported_exits_as_interrupted(tmp_path, sig):
    """Slurm's warning can land at any instant after the process starts, also while torch is imported (seconds
    under load): the command ends as interrupted (75) and writes nothing, instead of dying of the signal."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TESTS), str(ROOT)]))
    out = tmp_path / "t.h5"
    proc = subprocess.Popen([sys.executable, "-m", "landscape", "train", "--model", "mlp", "--data", "spiral",
                             "--epochs", "1", "--no-progress", "--out", str(out)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    maps = Path(f"/proc/{proc.pid}/maps")
    t = time.time()
    while proc.poll() is None and "libtorch" not in maps.read_text():  # torch's libraries load: its import runs
        assert time.time() - t < 120
        time.sleep(0.002)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == EXIT_INTERRUPTED and sig.name in err, (proc.returncode, err)
    assert not out.exists() and "Traceback" not in err
    assert "ERROR" not in err and "WARNING" in err  # a requeue is no error


def test_a_signal_during_a_log_write_stops_the_command_without_a_logging_error(capsys):
    """The handler raises Interrupted wherever the main thread is, also inside a log line's write: the command
    stops (75) instead of logging printing "--- Logging error ---" and carrying on."""
    import logging

    from landscape.cli import _StderrHandler

    class Cut:
        def write(self, text):
            raise Interrupted("received signal SIGTERM; results so far are saved")

        def flush(self):
            pass

    logger = logging.getLogger("landscape.test_log_write")
    logger.propagate = False
    for handler, stops in ((logging.StreamHandler(Cut()), False), (_StderrHandler(Cut()), True)):
        logger.handlers = [handler]
        if stops:
            with pytest.raises(Interrupted):
                logger.warning("a line")
            assert "Logging error" not in capsys.readouterr().err
        else:  # logging's own handler swallows it: what the command's handler prevents
            logger.warning("a line")
            assert "--- Logging error ---" in capsys.readouterr().err
    logger.handlers = []


def test_out_elsewhere_finds_the_jobs_trajectory_for_surface_and_curvature_alike(tmp_path, capsys):
    """--out FILE writes FILE where given; the job's folder is still where its trajectory is (surface used to look
    beside FILE, curvature in the job's folder)."""
    from landscape.cli import main

    job = tmp_path / "job.toml"
    job.write_text(f'[job]\noutput = "{tmp_path / "run"}"\n[model]\nname = "mlp"\nkwargs = {{depth = 1, width = 4}}\n'
                   '[data]\nname = "spiral"\n[train]\nepochs = 1\n')
    assert main(["train", "--job", str(job), "--out", str(tmp_path / "run" / "trajectory.h5"), "--no-progress"]) == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert main(["surface", "--job", str(job), "--alpha", "-1:1:3", "--beta", "-1:1:2", "--out",
                 str(elsewhere / "s.h5"), "--no-progress"]) == 0
    assert main(["curvature", "--job", str(job), "--top-k", "1", "--no-trace", "--out", str(elsewhere / "c.h5"),
                 "--no-progress"]) == 0
    assert (elsewhere / "s.h5").exists() and (elsewhere / "c.h5").exists()
    assert not (elsewhere / "trajectory.h5").exists() and (tmp_path / "run" / "trajectory.h5").exists()
    capsys.readouterr()
