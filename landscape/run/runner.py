"""Running the pending points of a surface or path file: serially in chunks (this module) or over MPI ranks
(:mod:`landscape.run.distributed`), with a record of every run appended to the file.

Example:
    >>> import tempfile, os, torch, numpy as np
    >>> from landscape.core.data import load_data
    >>> from landscape.core.grid import Grid
    >>> from landscape.core.models import build_model
    >>> from landscape.engine.evaluator import Evaluator
    >>> from landscape.engine.plane import PlaneEvaluator
    >>> from landscape.io.surface_file import SurfaceStore
    >>> _, te = load_data("spiral", n_per_class=20)
    >>> ev = Evaluator(build_model("mlp", te.info(), depth=1, width=4), te, "cpu")
    >>> c = ev.get_flat()
    >>> plane = PlaneEvaluator(ev, c, torch.randn_like(c), torch.randn_like(c))
    >>> p = os.path.join(tempfile.mkdtemp(), "s.h5")
    >>> store = SurfaceStore.open(p, Grid(np.linspace(-1, 1, 3), np.linspace(-1, 1, 3)), {})
    >>> compute_surface(plane, store, progress=False)
    9
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from ..core.errors import Interrupted
from ..core.progress import Progress
from ..core.signals import check_interrupted, interruptible
from ..io.runs import append_run, batch_context
from ..io.surface_file import SurfaceStore
from .distributed import run_distributed

__all__ = ["compute_surface", "run_points"]

log = logging.getLogger(__name__)


def compute_surface(plane: Any, store: SurfaceStore, progress: bool = True,
                    chunk: int | None = None) -> int:
    """Evaluate every pending point of ``store`` with ``plane`` (a plane or path evaluator); returns the number
    computed. SIGTERM/SIGUSR1 flush and
    raise :class:`Interrupted`; the store is closed (partial or complete) in every case."""
    pending = store.pending()
    computed = 0
    bar = Progress(store.grid.size, store.grid.size - len(pending), store.path.name, "points", progress)
    try:
        with interruptible():
            pos, rate = 0, None
            while pos < len(pending):
                check_interrupted()
                ppb = plane.points_per_batch
                unit = getattr(plane, "chunk_unit", 1)  # whole rows when a point depends on its row's previous
                if chunk:
                    n = chunk
                elif rate is None:  # the first chunk: the points the auto calibration times its candidates on
                    n = plane.calibration_chunk(pending=len(pending)) if plane.auto else ppb
                else:  # about 2 s of work in whole batches, so an interruption loses little
                    n = max(ppb, min(256, int(rate * 2.0) // ppb * ppb))
                n = max(unit, n // unit * unit)
                part = pending[pos:pos + n]
                pos += len(part)
                a, b = store.grid.coords(part)
                t = time.perf_counter()
                values = plane.evaluate_points(a, b)
                rate = len(part) / max(time.perf_counter() - t, 1e-6)
                store.write(part, *values)
                bar.update(len(part))
                computed += len(part)
    finally:
        bar.close()
        store.close()
    return computed


def run_points(plane: Any, store: SurfaceStore | None, path: Path, comm: Any | None,
               progress: bool, chunk: int = 0, device: str = "") -> int:
    """Compute the store's pending points (serially, or over the ranks of ``comm``; ``store`` is None on
    ranks other than 0) and append the run's record to the file, also when it is interrupted or fails.
    Returns the points computed (on rank 0)."""
    root = comm is None or comm.Get_rank() == 0
    before = int(store.done.sum()) if root else 0
    t, status = time.perf_counter(), "failed"
    started = time.strftime("%Y-%m-%dT%H:%M:%S")
    try:
        if comm is None:
            n = compute_surface(plane, store, progress, chunk=chunk or None)
        else:
            n = run_distributed(comm, plane, store, progress and root, chunk=chunk)
        status = "complete"
    except (Interrupted, KeyboardInterrupt):  # a signal or Ctrl-C: stopped, not failed
        status = "interrupted"
        raise
    finally:
        dt = time.perf_counter() - t
        if root:
            try:
                points = int(store.done.sum()) - before  # the store's own done mask (loss or curvature maps)
                if points or status != "complete":
                    append_run(path, {"started": started, "points": points, "seconds": round(dt, 4),
                                      "points_per_second": points / max(dt, 1e-9), "status": status,
                                      "ranks": comm.Get_size() if comm is not None else 1,
                                      "points_per_batch": getattr(plane, "points_per_batch", 1),
                                      "batch_mode": getattr(plane, "batch_mode", "one"), "device": device,
                                      **batch_context()})
            except Exception as exc:  # noqa: BLE001 - the record must never hide the run's own outcome
                log.warning("could not record the run in %s: %s", path, exc)
    if root and n:
        log.info("%s: %d points in %.1f s (%.1f points/s, %d per batch, %s)", path, n, dt, n / dt,
                 getattr(plane, "points_per_batch", 1), getattr(plane, "batch_mode", "one"))
    return n
