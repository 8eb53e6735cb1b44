import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

import landscape as ls
from conftest import mpi_env
from landscape.core.data import load_data, subset
from landscape.core.errors import ConfigError
from landscape.core.models import build_model
from landscape.engine import compile_choice as cc
from landscape.run.compiling import parse_compile
from landscape.run.jobfile import load_job


def _model_data():
    _, te = load_data("digits")
    te = subset(te, 100)
    torch.manual_seed(0)
    return build_model("lenet5", te.info()), (te.x, te.y)


def _surface(out, compile="auto"):
    model, data = _model_data()
    return ls.surface(model, data, alpha=(-1, 1, 5), beta=(-1, 1, 4), batch_size=64, out=out, compile=compile,
                      progress=False)


def _inputs(path):
    import json
    with h5py.File(path, "r") as f:
        return json.loads(f.attrs["inputs"])


def test_auto_compiles_when_a_trial_pays_records_it_and_a_resume_takes_it_without_measuring(tmp_path, monkeypatch):
    monkeypatch.setattr(cc, "REPAY_FACTOR", 0.0)  # every grid worth a trial
    monkeypatch.setattr(cc, "stable_ratio", lambda *a, **kw: 2.0)  # the compiled forward twice as fast
    out = tmp_path / "auto.h5"
    s = _surface(out)
    assert _inputs(out).get("compile") is True and "input_tables" not in _inputs(out)
    compiled = _surface(tmp_path / "always.h5", compile=True)
    np.testing.assert_array_equal(s.loss, compiled.loss)  # every point computed compiled, none eagerly
    with h5py.File(out, "r+") as f:  # a run killed halfway
        f["done"][2:] = False
        f["loss"][2:] = np.nan
    # a fresh decision would not even try now; the file's way is taken, and nothing is timed
    monkeypatch.setattr(cc, "REPAY_FACTOR", 1e12)
    monkeypatch.setattr(cc, "estimate_compile", lambda *a, **kw: pytest.fail("measured on resume"))
    resumed = _surface(out)
    np.testing.assert_array_equal(resumed.loss, s.loss)


def test_auto_keeps_the_eager_forward_and_its_tables_when_compiling_does_not_pay(tmp_path, monkeypatch):
    monkeypatch.setattr(cc, "REPAY_FACTOR", 0.0)
    monkeypatch.setattr(cc, "stable_ratio", lambda *a, **kw: 0.8)
    s = _surface(tmp_path / "auto.h5")
    eager = _surface(tmp_path / "eager.h5", compile=False)
    inputs = _inputs(tmp_path / "auto.h5")
    assert "compile" not in inputs and inputs.get("input_tables") == "conv1"
    np.testing.assert_array_equal(s.loss, eager.loss)
    assert _inputs(tmp_path / "auto.h5") == {**_inputs(tmp_path / "eager.h5")}


def test_a_grid_that_cannot_repay_is_evaluated_eagerly_at_defaults(tmp_path, monkeypatch):
    monkeypatch.setattr(cc, "trial_compile", lambda *a, **kw: pytest.fail("compiled a grid that cannot repay"))
    _surface(tmp_path / "small.h5")
    assert "compile" not in _inputs(tmp_path / "small.h5")


def test_compile_settings_are_checked_with_the_others(tmp_path):
    assert (parse_compile("auto"), parse_compile("TRUE"), parse_compile(False)) == ("auto", True, False)
    job = tmp_path / "job.toml"
    job.write_text('[evaluate]\ncompile = "sometimes"\ndevice = "tpu"\n')
    with pytest.raises(ConfigError) as err:
        load_job(job)
    text = "\n".join(err.value.problems)
    assert "evaluate.compile" in text and "sometimes" in text and "evaluate.device" in text
    job.write_text('[evaluate]\ncompile = "true"\n')
    assert load_job(job).evaluate.compile is True


@pytest.mark.mpi
def test_under_mpi_rank_0_decides_every_rank_compiles_and_a_resume_takes_the_files_way(tmp_path):
    """mpiexec -n 2, auto, a trial that pays (rank 0 measures, rank 1 compiles without timing): the values of a
    serial compiled run; then half the points lost and resumed under MPI where a fresh decision would not compile:
    both ranks compile as the file was started, and the values stay."""
    script = tmp_path / "run.py"
    script.write_text(
        "import logging, sys, numpy as np\n"
        "logging.basicConfig(level=logging.INFO)\n"
        "from mpi4py import MPI\n"
        "import landscape.engine.compile_choice as cc\n"
        "from test_compiling import _surface\n"
        "cc.REPAY_FACTOR = float(sys.argv[2])\n"
        "cc.stable_ratio = lambda *a, **kw: (2.0 if MPI.COMM_WORLD.Get_rank() == 0 else 0.1)\n"
        "import landscape.stages.given_surface as gs\n"
        "model, data = __import__('test_compiling')._model_data()\n"
        "s = gs.surface(model, data, alpha=(-1, 1, 5), beta=(-1, 1, 4), batch_size=64, out=sys.argv[1],\n"
        "               comm=MPI.COMM_WORLD, progress=False)\n"
        "assert s.done.all()\n")
    env = mpi_env()
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parent), env["PYTHONPATH"]])
    out = tmp_path / "mpi.h5"
    run = [str(Path(sys.executable).with_name("mpiexec")), "-n", "2", sys.executable, str(script), str(out)]
    r = subprocess.run(run + ["0"], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stderr.count("compile: compiled in") == 1, r.stderr[-3000:]  # rank 0 alone reports its timing
    serial = _surface(tmp_path / "serial.h5", compile=True)
    np.testing.assert_array_equal(ls.Surface.read(out).loss, serial.loss)
    assert _inputs(out).get("compile") is True
    with h5py.File(out, "r+") as f:
        f["done"][3:] = False
        f["loss"][3:] = np.nan
    r = subprocess.run(run + ["1e12"], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stderr.count("as the file's points are computed") == 2, r.stderr[-3000:]
    np.testing.assert_array_equal(ls.Surface.read(out).loss, serial.loss)
