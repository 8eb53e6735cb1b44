import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

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


def wait_for_points(path: Path, minimum: int, proc: subprocess.Popen | None = None, timeout: float = 120) -> int:
    """Poll a surface file that a running process (or a batch job) writes until ``minimum`` points are flushed."""
    import time

    from landscape.errors import StoreError
    from landscape.store import read_surface

    t = time.time()
    while time.time() - t < timeout:
        assert proc is None or proc.poll() is None, proc.communicate()[1]
        try:
            n = int(read_surface(path).done.sum())
            if n >= minimum:
                return n
        except StoreError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"fewer than {minimum} points flushed to {path} within {timeout} s")
