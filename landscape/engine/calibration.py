"""Choosing how many grid points the plane evaluator computes at once, and how.

``points_per_batch`` is ``"auto"`` (timed on real points, see :func:`calibrate`), ``N`` (N points stacked
with vmap) or ``"threads:N"`` (N points on concurrent CPU threads).

Example:
    >>> parse_points_per_batch("threads:4")
    ('threads', 4)
"""
from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import torch

from ..core.errors import ConfigError

__all__ = ["calibrate", "parse_points_per_batch", "cpu_threads", "VMAP_MAX_NUMEL"]

log = logging.getLogger(__name__)

# parameter-count limit under which the batched (vmap) mode is considered
VMAP_MAX_NUMEL = 5_000_000


def parse_points_per_batch(value: int | str) -> tuple[str, int]:
    """``"auto"`` → ("one", 1) until calibrated; N → ("vmap", N) (N = 1: one at a time); ``"threads:N"`` →
    ("threads", N).

    Example:
        >>> parse_points_per_batch(1), parse_points_per_batch(8), parse_points_per_batch("threads:2")
        (('one', 1), ('vmap', 8), ('threads', 2))
    """
    if value == "auto":
        return "one", 1
    if isinstance(value, str) and value.startswith("threads:") and value[8:].isdigit() and int(value[8:]) >= 1:
        return ("threads", int(value[8:])) if int(value[8:]) > 1 else ("one", 1)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return ("vmap", value) if value > 1 else ("one", 1)
    raise ConfigError(f"points_per_batch: expected 'auto', an integer >= 1 (stacked with vmap) or 'threads:N' "
                      f"(N points on concurrent CPU threads), got {value!r}")



def calibrate(plane: Any, alphas: np.ndarray, betas: np.ndarray, candidates: tuple[int, ...] = (1, 2, 4, 8, 16, 32)
              ) -> tuple[int, np.ndarray, np.ndarray]:
    """Time real points of ``plane`` (a :class:`~landscape.engine.plane.PlaneEvaluator`) one at a time, stacked
    with vmap (``candidates``) and, on a CPU with several threads, concurrently on threads; keep the fastest
    (set on the plane). Returns (points used, loss, accuracy)."""
    used, losses, accs = 0, [], []
    best, best_rate = ("one", 1), 0.0
    dev = plane.ev.device
    vmap_sizes = tuple(c for c in candidates if c > 1) if plane.numel_moved <= VMAP_MAX_NUMEL else ()
    cores = cpu_threads() if dev.type == "cpu" else 1
    thread_sizes = tuple(t for t in (2, 4, 8, 16, 32, 64) if t <= cores)
    sequences = [(("one", 1), ("one", 1))] + [tuple(("vmap", c) for c in vmap_sizes)] + [
        tuple(("threads", t) for t in thread_sizes)]
    first = True
    for seq in sequences:
        seq_best = 0.0
        for mode, p in seq:
            n = p * (2 if mode == "threads" else 1)  # threads: two rounds, the first warms the replicas
            if used + n > len(alphas):
                break
            plane.batch_mode, plane.points_per_batch = mode, p
            sl = slice(used, used + n)
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            t = time.perf_counter()
            try:
                lo, ac = plane.evaluate_points(alphas[sl], betas[sl])
            except (RuntimeError, NotImplementedError) as exc:  # no vmap rule, or out of memory
                log.info("%s evaluation of %d points failed (%s)", mode, p, str(exc)[:120])
                if dev.type == "cuda":
                    torch.cuda.empty_cache()
                break
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            rate = n / (time.perf_counter() - t)
            losses.append(lo), accs.append(ac)
            used += n
            if first:  # the very first run warms up
                first = False
                continue
            if rate > best_rate * 1.05:
                best, best_rate = (mode, p), rate
            if rate < seq_best * 0.8:
                break
            seq_best = max(seq_best, rate)
    plane.batch_mode, plane.points_per_batch = best
    log.info("points per batch: %d (%s; %.1f points/s while calibrating)", best[1],
             {"one": "one at a time", "vmap": "stacked with vmap", "threads": "concurrent threads"}[best[0]],
             best_rate)
    return used, (np.concatenate(losses) if losses else np.empty(0)), (
        np.concatenate(accs) if accs else np.empty(0))


def cpu_threads() -> int:
    """torch's intra-op threads of this process (at least 1)."""
    return max(1, torch.get_num_threads())
