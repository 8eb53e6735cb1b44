"""The history of the runs that worked on a surface or path file: points computed, seconds, status, ranks,
batch mode, and the Slurm job, array task and restart count (``landscape status`` shows it).

Example:
    >>> import tempfile, os, numpy as np
    >>> from landscape.core.grid import Grid
    >>> from landscape.io.surface_file import SurfaceStore, read_surface
    >>> p = os.path.join(tempfile.mkdtemp(), "s.h5")
    >>> SurfaceStore.open(p, Grid(np.array([0., 1.])), {}).close()
    >>> append_run(p, {"points": 2, "status": "complete"})
    >>> [r["points"] for r in read_surface(p).runs]
    [2]
"""
from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any, Mapping

from .hdf5 import open_hdf5

__all__ = ["append_run", "batch_context"]

_RUNS_KEPT = 200


def batch_context() -> dict[str, Any]:
    """Where this process runs: host, and the Slurm job, array task and restart count when under Slurm.

    Example:
        >>> sorted(batch_context())[:1]
        ['host']
    """
    ctx: dict[str, Any] = {"host": socket.gethostname()}
    for key, var in (("slurm_job_id", "SLURM_JOB_ID"), ("slurm_array_task_id", "SLURM_ARRAY_TASK_ID"),
                     ("slurm_restart_count", "SLURM_RESTART_COUNT")):
        if var in os.environ:
            ctx[key] = int(os.environ[var]) if os.environ[var].isdigit() else os.environ[var]
    if "slurm_job_id" in ctx:
        ctx.setdefault("slurm_restart_count", 0)
    return ctx


def append_run(path: str | Path, record: Mapping[str, Any]) -> None:
    """Append one run's record (points computed, seconds, status, ranks, Slurm job...) to the file's ``runs``
    attribute (a JSON list, the newest last); a finished run with points is also ``last_run``.

    """
    with open_hdf5(path, "r+") as f:
        runs = json.loads(f.attrs.get("runs", "[]"))
        runs = (runs + [dict(record)])[-_RUNS_KEPT:]
        f.attrs["runs"] = json.dumps(runs, default=str)
        if record.get("status") == "complete" and record.get("points"):
            f.attrs["last_run"] = json.dumps(dict(record), default=str)
