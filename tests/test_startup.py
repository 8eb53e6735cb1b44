"""What the command line does before torch is imported: the OpenMP wait policy chosen from the machine's load (a
library import leaves the environment alone)."""
import os
import subprocess
import sys

import pytest

from conftest import ROOT

FAKE = ("import builtins, io, os; real = builtins.open; "
        "builtins.open = lambda f, *a, **k: io.StringIO('0.1 0.1 0.1 {running}/200 9') if f == '/proc/loadavg' "
        "else real(f, *a, **k); os.sched_getaffinity = lambda pid: {{0, 1}}; ")
AS_COMMAND = "import sys; sys.argv[0] = '/usr/bin/landscape'; "  # what the `landscape` script's process has
SHOW = AS_COMMAND + "import os, landscape; print(os.environ.get('OMP_WAIT_POLICY'), landscape._omp_wait)"


def probe(code: str, **env: str) -> str:
    e = dict(os.environ, PYTHONPATH=str(ROOT), **env)
    if "OMP_WAIT_POLICY" not in env:
        e.pop("OMP_WAIT_POLICY", None)
    r = subprocess.run([sys.executable, "-c", code], env=e, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


@pytest.mark.parametrize("running,expected", [(4, "PASSIVE passive (3 other processes running, 2 cores)"),
                                              (2, "PASSIVE passive (1 other processes running, 2 cores)"),
                                              (1, "None default (0 other processes running, 2 cores)")])
def test_wait_policy_follows_the_processes_running_before_torch_is_imported(running, expected):
    """Busy cores: passive waits (spinning OpenMP threads took the other processes' time slices: a surface took
    0.69x the time beside two busy processes in tools/bench_wait_policy.py); idle cores: the runtime's default."""
    assert probe(FAKE.format(running=running) + SHOW) == expected


def test_busy_processes_beside_give_passive_waits_and_a_users_policy_is_kept():
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        assert probe(SHOW).startswith("PASSIVE passive (")
        assert probe(SHOW, OMP_WAIT_POLICY="ACTIVE") == "ACTIVE active"
        library = probe(SHOW.replace(AS_COMMAND, ""))  # a notebook's or a script's import: no choice made
        assert library.startswith("None as the process was started"), library
    finally:
        for b in busy:
            b.kill()
