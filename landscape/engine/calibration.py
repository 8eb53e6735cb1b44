"""Choosing how many grid points the plane evaluator computes at once, and how.

``points_per_batch`` is ``"auto"`` (timed on probe points whose results are thrown away, see
:func:`calibrate`), ``N`` (N points stacked with vmap) or ``"threads:N"`` (N points on concurrent CPU threads).

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


def _timed(plane: Any, alphas: np.ndarray, betas: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    dev = plane.ev.device
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    t = time.perf_counter()
    lo, ac = plane.evaluate_points(alphas, betas)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    return time.perf_counter() - t, lo, ac


def calibrate(plane: Any, alphas: np.ndarray, betas: np.ndarray, expected: int | None = None,
              share: float = 0.05, reference: int = 4) -> tuple[str, int]:
    """Choose how ``plane`` (a :class:`~landscape.engine.plane.PlaneEvaluator`) evaluates several points at
    once, by timing candidate modes on probe points at the given coordinates; the probes' results are thrown
    away (the caller computes the points again in the chosen mode), so no stored value depends on timing.

    One point at a time is timed first on ``reference`` points; its rate bounds the time calibration may take
    to ``share`` of the expected work (``expected`` points). Then vmap stacks (small models) and concurrent CPU
    threads are timed, each only if it fits that budget, and a mode is eligible only if it gives the reference
    points' values bitwise: stacked convolutions round differently from single ones, so for most conv models
    only threads qualify. The fastest eligible mode (at least 5 % faster than one at a time) is set on the
    plane and returned as ``(mode, points)``.
    """
    def probe(k: int) -> tuple[np.ndarray, np.ndarray]:  # k probe coordinates, repeated if too few are given
        return np.resize(np.asarray(alphas, np.float64), k), np.resize(np.asarray(betas, np.float64), k)

    plane.batch_mode, plane.points_per_batch = "one", 1
    plane._stacking_checked = True  # stacked modes are checked against the reference here
    started = time.perf_counter()
    _timed(plane, *probe(1))  # warm-up
    seconds, ref_loss, ref_acc = _timed(plane, *probe(reference))
    rate_one = reference / max(seconds, 1e-9)
    budget = share * (expected or len(alphas)) / rate_one
    best, best_rate = ("one", 1), rate_one
    dev = plane.ev.device
    vmap_sizes = tuple(c for c in (2, 4, 8, 16, 32) if plane.numel_moved <= VMAP_MAX_NUMEL)
    cores = cpu_threads() if dev.type == "cpu" else 1
    thread_sizes = tuple(t for t in (2, 4, 8, 16, 32, 64) if t <= cores)
    for family, sizes in (("vmap", vmap_sizes), ("threads", thread_sizes)):
        family_best = 0.0
        for p in sizes:
            k = max(p, reference)
            if time.perf_counter() - started + 2 * k / rate_one > budget:
                break  # a warm-up and a timed round would exceed the calibration's share of the work
            plane.batch_mode, plane.points_per_batch = family, p
            try:
                _timed(plane, *probe(k))  # warm-up (thread replicas, vmap tracing)
                seconds, lo, ac = _timed(plane, *probe(k))
            except (RuntimeError, NotImplementedError) as exc:  # no vmap rule, or out of memory
                log.info("%s evaluation of %d points failed (%s)", family, p, str(exc)[:120])
                if dev.type == "cuda":
                    torch.cuda.empty_cache()
                break
            if not (np.array_equal(lo[:reference], ref_loss, equal_nan=True)
                    and np.array_equal(ac[:reference], ref_acc, equal_nan=True)):
                log.info("%s evaluation of %d points rounds differently from one point at a time; not used",
                         family, p)
                break
            rate = k / max(seconds, 1e-9)
            if rate > best_rate * 1.05:
                best, best_rate = (family, p), rate
            if rate < family_best * 0.8:
                break
            family_best = max(family_best, rate)
    plane.batch_mode, plane.points_per_batch = best
    log.info("points per batch: %d (%s; %.1f points/s while calibrating, %.2f s spent)", best[1],
             {"one": "one at a time", "vmap": "stacked with vmap", "threads": "concurrent threads"}[best[0]],
             best_rate, time.perf_counter() - started)
    return best


def cpu_threads() -> int:
    """torch's intra-op threads of this process (at least 1)."""
    return max(1, torch.get_num_threads())
