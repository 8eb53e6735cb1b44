"""Bad input, case by case: a clear error (what was expected, what was given, what to do), exit status 2, no
traceback, and no stored result lost."""
import json
import os
import signal
import subprocess
import sys

import pytest
import torch

from conftest import ROOT, TESTS, run_cli
from landscape.io.surface_file import read_surface


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    w = tmp_path_factory.mktemp("bad")
    r = run_cli("train", "--model", "mlp", "--data", "spiral", "--epochs", "2", "--out", str(w / "trajectory.h5"),
                "--no-progress")
    assert r.returncode == 0, r.stderr
    r = run_cli("surface", "--model", "mlp", "--data", "spiral", "--center", f"{w / 'trajectory.h5'}:final",
                "--alpha", "-1:1:5", "--beta", "-1:1:3", "--out", str(w / "s.h5"), "--no-progress")
    assert r.returncode == 0, r.stderr
    (w / "binary.toml").write_bytes(b"\xff\xfe\x00job = 1\x80\x81")
    (w / "deep.toml").write_text("[" + ".".join(["t"] * 5000) + "]\nx = 1\n")  # 5,000 nested tables
    (w / "big.toml").write_text("[model]\n" + "# padding of a file that is no job file\n" * 60_000)  # 2.3 MiB
    (w / "empty.pt").write_bytes(b"")
    torch.save({"model": torch.nn.Linear(2, 3)}, w / "pickled.pt")  # a whole module, not a state dict
    (w / "folder").mkdir()
    import h5py

    with h5py.File(w / "nospec.h5", "w") as f:
        f.attrs["schema"] = "landscape.trajectory"
    with h5py.File(w / "misfit.h5", "w") as f:
        for k, v in read_surface(w / "s.h5").attrs.items():
            f.attrs[k] = v
        f["alpha"], f["beta"] = [0.0, 1.0, 2.0, 3.0, 4.0], [0.0, 1.0, 2.0]
        f["loss"], f["accuracy"], f["done"] = [[0.0] * 3] * 5, [[0.0] * 3] * 5, [0, 0, 0, 0, 0]
    return w


SURFACE = ["surface", "--model", "mlp", "--data", "spiral", "--center", "{w}/trajectory.h5:final", "--no-progress"]
CASES = [
    ("lr nan", ["train", "--model", "mlp", "--data", "spiral", "--out", "{w}/t2.h5", "train.lr=nan"],
     "train.lr: expected a finite number, got nan"),
    ("lr inf", ["train", "--model", "mlp", "--data", "spiral", "--out", "{w}/t2.h5", "--lr", "inf"],
     "train.lr: expected a finite number"),
    ("resample 0", ["export", "{w}/s.h5", "--resample", "0"], "--resample: expected a whole number >= 1, got 0"),
    ("resample -3", ["export", "{w}/s.h5", "--resample", "-3"], "--resample: expected a whole number >= 1"),
    ("zscale 0", ["export", "{w}/s.h5", "--zscale", "0"], "--zscale: expected a finite non-zero factor"),
    ("zmax nan", ["export", "{w}/s.h5", "--zmax", "nan"], "--zmax: expected a finite number, got nan"),
    ("plot zmax nan", ["plot", "{w}/s.h5", "--zmax", "nan"], "--zmax: expected a finite number"),
    ("path alpha without 0 and 1", ["path", "--model", "mlp", "--data", "spiral", "--output", "{w}", "--alpha",
                                    "0.2:0.8:4", "--no-progress"], "needs alpha = 0 and 1"),
    ("huge grid", SURFACE + ["--alpha", "-1:1:1000000", "--beta", "-1:1:1000000", "--out", "{w}/huge.h5"],
     "a grid of 1,000,000,000,000 points"),
    ("binary job file", ["run", "{w}/binary.toml"], "not a text file in UTF-8"),
    ("5000 nested tables", ["run", "{w}/deep.toml"], "nested too deeply"),
    ("2 MiB job file", ["run", "{w}/big.toml"], "not a job file (job files are TOML text of a few KiB"),
    ("epochs beyond 64 bits", ["train", "--model", "mlp", "--data", "spiral", "--out", "{w}/t2.h5",
                               "train.epochs=9223372036854775808"], "train.epochs: expected a value <= 100,000"),
    ("top_k of a million", ["curvature", "--model", "mlp", "--data", "spiral", "--center", "{w}/trajectory.h5:final",
                            "--top-k", "1000000", "--out", "{w}/c.h5"], "curvature.top_k: expected a value <= 1,000"),
    ("seed beyond 64 bits", ["train", "--model", "mlp", "--data", "spiral", "--out", "{w}/t2.h5",
                             "train.seed=99999999999999999999"], "fits in 64 bits"),
    ("folder as job file", ["run", "{w}/folder"], "is a folder; give the path of a TOML job file"),
    ("folder as checkpoint", ["evaluate", "{w}/folder", "--model", "mlp", "--data", "spiral"], "is a folder"),
    ("folder as output file", SURFACE + ["--out", "{w}/folder"], "is a folder, not a surface file"),
    ("folder as trajectory", ["status", "{w}/folder"], "is a folder"),
    ("empty .pt", ["evaluate", "{w}/empty.pt", "--model", "mlp", "--data", "spiral"], "the file is empty (0 bytes)"),
    ("pickled objects", ["evaluate", "{w}/pickled.pt", "--model", "mlp", "--data", "spiral"],
     "holds Python objects other than tensors"),
    ("trajectory without state_spec", ["status", "{w}/nospec.h5"], "without its state_spec attribute"),
    ("arrays that do not fit the grid", ["status", "{w}/misfit.h5"], "/done has (5,)"),
    ("sweep task out of range", ["run", "{w}/sweep.toml", "--task", "99"], "--task 99: the sweep has 2 combinations"),
]


@pytest.mark.parametrize("name,args,message", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gets_a_clear_error_and_loses_nothing(work, name, args, message):
    (work / "sweep.toml").write_text(f'[job]\noutput = "{work / "sweep"}"\n[sweep]\n"train.lr" = [0.1, 0.2]\n')
    before = read_surface(work / "s.h5")
    r = run_cli(*[a.format(w=work) for a in args])
    assert r.returncode == 2, (name, r.returncode, r.stderr)
    assert message in r.stderr and "Traceback" not in r.stderr, (name, r.stderr)
    if "pickled" in name:
        assert "weights_only=False" not in r.stderr  # never advise loading arbitrary pickles
    after = read_surface(work / "s.h5")
    assert after.done.all() and (after.loss == before.loss).all()
    assert not (work / "sweep" / "sweep.json").exists()  # refused before anything was written
    assert not (work / "huge.h5").exists()


def test_ctrl_c_is_recorded_as_interrupted(work):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TESTS), str(ROOT)]))
    # a grid the run cannot finish before the signal lands (the mlp does ~7,000 points/s), flushed every 2,000
    # points (a few a second at most): flushes every 64 points left no instant at which a reader under load could
    # open the file, and flushes by time only (every 10 s) made the test wait for the first
    args = [sys.executable, "-m", "landscape", *[a.format(w=work) for a in SURFACE], "--alpha", "-1:1:1001",
            "--beta", "-1:1:1001", "--out", str(work / "c.h5"), "--points-per-batch", "1", "surface.chunk=4",
            "surface.flush_every=2000"]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    from conftest import wait_for_points

    wait_for_points(work / "c.h5", 8, proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    runs = read_surface(work / "c.h5").runs
    assert runs[-1]["status"] == "interrupted" and runs[-1]["points"] >= 8, runs


def test_axes_are_stored_as_ranges(work):
    s = read_surface(work / "s.h5")
    assert s.inputs["alpha"] == "-1.0:1.0:5" and s.inputs["beta"] == "-1.0:1.0:3"
    assert len(json.dumps(s.inputs)) < 4000
