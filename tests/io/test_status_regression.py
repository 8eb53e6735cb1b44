"""Small trust fixes: a regression surface's status names no accuracy, and a curvature result prints a summary,
not its eigenvectors."""
from pathlib import Path

import numpy as np
import torch

import landscape as ls
from landscape.stages.curvature import CurvatureResult


def test_regression_status_has_no_nan_accuracy(tmp_path):
    x = torch.linspace(-1, 1, 40).reshape(40, 1)
    s = ls.surface(torch.nn.Linear(1, 1), (x, 3 * x), alpha=(-1, 1, 3), beta=(-1, 1, 3), out=tmp_path / "r.h5",
                   progress=False)
    text = ls.describe_file(s.path)
    assert "min loss" in text and "accuracy" not in text and "nan" not in text.lower()
    cls = ls.surface(torch.nn.Linear(1, 2), (x, (x[:, 0] > 0).long()), alpha=(-1, 1, 3), beta=None,
                     out=tmp_path / "c.h5", progress=False)
    assert "accuracy" in ls.describe_file(cls.path)


def test_curvature_result_repr_is_a_summary():
    r = CurvatureResult(Path("c.h5"), {"attrs": {"lambda_max": 2.5}, "eigenvectors": np.zeros((5, 100000))}, "")
    assert repr(r) == "CurvatureResult('c.h5', lambda_max=2.5)"


def test_status_into_a_closed_pipe_and_of_wrong_files_ends_cleanly(tmp_path):
    import os
    import subprocess
    import sys

    x = torch.linspace(-1, 1, 20).reshape(20, 1)
    s = ls.surface(torch.nn.Linear(1, 1), (x, x), alpha=(-1, 1, 3), beta=None, out=tmp_path / "r.h5", progress=False)
    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONPATH=str(root))
    p = subprocess.Popen([sys.executable, "-m", "landscape", "status", str(s.path)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=env)
    p.stdout.close()  # `landscape status F | head`: the reader is gone before the output is written
    err = p.stderr.read().decode()
    assert p.wait(timeout=120) == 0 and "Traceback" not in err and "Exception ignored" not in err, err
    (tmp_path / "summary.json").write_text('{"outputs": {}}')
    for bad, words in ((tmp_path / "summary.json", "not a sweep.json"), (tmp_path / "missing.h5", "file does not exist")):
        r = subprocess.run([sys.executable, "-m", "landscape", "status", str(bad)], capture_output=True, text=True,
                           env=env, timeout=120)
        assert r.returncode == 2 and words in r.stderr and "Traceback" not in r.stderr, r.stderr
