"""Choosing how the plane evaluator computes grid points: how many at once and how, and at which batch size.

``points_per_batch`` is ``"auto"`` (timed on probe points whose results are thrown away, see
:func:`calibrate`), ``N`` (N points stacked with vmap) or ``"threads:N"`` (N points on concurrent CPU threads).
With ``tune_batch`` the evaluator may also run at another batch size than the one configured, among those that
give the configured batch size's values bitwise (on CPUs, convolutions round the same way from 64 samples up).

Every candidate is timed against one point at a time in alternating rounds, repeated until their ratio is
stable, so a drift of the machine (other work on its cores) hits both alike; the whole calibration spends at most
``share`` of the expected work, and none at all on grids too small to repay it.

Example:
    >>> parse_points_per_batch("threads:4")
    ('threads', 4)
"""
from __future__ import annotations

import functools
import logging
import math
import statistics
import time
from typing import Any, Callable

import numpy as np
import torch

from ..core.errors import ConfigError

__all__ = ["calibrate", "parse_points_per_batch", "cpu_threads", "stable_ratio", "batch_candidates",
           "VMAP_MAX_NUMEL", "MODE_NAMES"]

log = logging.getLogger(__name__)

# parameter-count limit under which the batched (vmap) mode is considered
VMAP_MAX_NUMEL = 5_000_000
MODE_NAMES = {"one": "one at a time", "vmap": "stacked with vmap", "threads": "concurrent threads"}


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


def stable_ratio(time_a: Callable[[], float], time_b: Callable[[], float], deadline: Callable[[], bool],
                 tol: float = 0.1, min_rounds: int = 4, max_rounds: int = 9,
                 enough: Callable[[], bool] | None = None) -> float | None:
    """How many times faster ``b`` is than ``a``: rounds alternate a and b (each callable returns the seconds of
    one run), until the last ``min_rounds`` ratios lie within ``tol`` of their median, or ``enough()`` after
    ``min_rounds`` rounds; the median of all rounds. None when ``deadline()`` is reached before ``min_rounds``.

    Example:
        >>> times = iter([1.0, 0.5] * 4)
        >>> stable_ratio(lambda: next(times), lambda: next(times), lambda: False)
        2.0
    """
    ratios: list[float] = []
    while len(ratios) < max_rounds:
        if deadline() and len(ratios) < min_rounds:
            return None
        ratios.append(time_a() / max(time_b(), 1e-12))
        if len(ratios) >= min_rounds:
            last = ratios[-min_rounds:]
            mid = statistics.median(last)
            if max(last) - min(last) <= tol * mid or deadline() or (enough is not None and enough()):
                break
    return statistics.median(ratios)


def batch_candidates(n: int, configured: int, floor: int = 64) -> list[int]:
    """Batch sizes to try besides ``configured`` for ``n`` samples: powers of two from ``floor`` below ``n``,
    and ``n`` itself (one batch); none below ``floor`` (small batches take other kernels and round differently).

    Example:
        >>> batch_candidates(2000, 1024)
        [64, 128, 256, 512, 2000]
        >>> batch_candidates(360, 1024)
        [64, 128, 256]
    """
    sizes = [b for b in (2 ** k for k in range(int(math.log2(floor)), 21)) if b < n] + [n]
    last = configured if configured < n else n
    return [b for b in sizes if b != last and b >= floor]


def _timer(plane: Any, alphas: np.ndarray, betas: np.ndarray, clock: Callable[[], float],
           setup: Callable[[], None] | None = None) -> Callable[[], float]:
    """Seconds of one evaluation of the probe points (``setup`` first puts the plane in the way being timed)."""
    dev = plane.ev.device

    def run() -> float:
        if setup is not None:
            setup()
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        t = clock()
        plane._evaluate(alphas, betas)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        return clock() - t

    return run


def calibrate(plane: Any, alphas: np.ndarray, betas: np.ndarray, expected: int | None = None,
              share: float = 0.05, reference: int = 4, min_round: float = 0.02,
              clock: Callable[[], float] = time.perf_counter) -> tuple[str, int]:
    """Choose how ``plane`` (a :class:`~landscape.engine.plane.PlaneEvaluator`) evaluates points, by timing
    candidates on probe points at the given coordinates; the probes' results are thrown away (the caller computes
    the points again in the chosen way), so no stored value depends on timing.

    One point at a time is timed first on ``reference`` points; its rate bounds the calibration to ``share`` of
    the expected work (``expected`` points), and sets the probe size of a round (``min_round`` seconds, less on
    small grids). Then, within that budget: vmap stacks (small models), concurrent CPU threads and, in the mode
    chosen, other batch sizes (``plane.ev.tune_batch``). A candidate is eligible only if it gives the reference
    points' values bitwise (stacked convolutions round differently from single ones, so for most conv models only
    threads qualify); each is timed
    against one point at a time in alternating rounds until the ratio is stable (:func:`stable_ratio`). The
    fastest (at least 5 % faster than one at a time) is set on the plane; returns ``(mode, points)``.
    """
    def probe(k: int) -> tuple[np.ndarray, np.ndarray]:  # k probe coordinates, repeated if too few are given
        return np.resize(np.asarray(alphas, np.float64), k), np.resize(np.asarray(betas, np.float64), k)

    ev, dev = plane.ev, plane.ev.device
    plane.batch_mode, plane.points_per_batch = "one", 1
    plane._stacking_checked = True  # stacked modes are checked against the reference here
    if ev.compile:  # other batch sizes and thread replicas would each compile anew; stacks are not compiled
        log.info("points per batch: 1 (compiled forward: one graph per batch shape, no other mode tried)")
        return "one", 1
    started = clock()
    plane._evaluate(*probe(1))  # warm-up
    t = clock()
    ref_loss, ref_acc = plane._evaluate(*probe(reference))
    rate_one = reference / max(clock() - t, 1e-9)
    budget = share * (expected or len(alphas)) / rate_one
    k_round = max(reference, math.ceil(min(min_round, budget / 40) * rate_one))

    def over(seconds: float = 0.0) -> bool:
        return clock() - started + seconds > budget

    def cap(candidates_left: int) -> Callable[[], bool]:  # a candidate's share of the time left, past min_rounds
        until = clock() + (budget - (clock() - started)) / max(2, candidates_left)
        return lambda: clock() > until

    def same(lo: np.ndarray, ac: np.ndarray) -> bool:
        return (np.array_equal(lo[:reference], ref_loss, equal_nan=True)
                and np.array_equal(ac[:reference], ref_acc, equal_nan=True))

    one_timer = _timer(plane, *probe(k_round), clock)
    one_rates: list[float] = []  # the one-point rate of every round: the calibrated rate's base

    def set_mode(mode: tuple[str, int]) -> None:
        plane.batch_mode, plane.points_per_batch = mode

    best, best_ratio, best_timers = ("one", 1), 1.0, None
    vmap_ok = plane.numel_moved <= VMAP_MAX_NUMEL and not ev.transforms().get("fold_bn")
    # stacks pay by spreading a forward's fixed cost over many points: from 16 up, and below 16 only where
    # 16 is the best of the larger ones
    vmap_up, vmap_down = ([c for c in sizes if vmap_ok and plane.numel_moved * c <= VMAP_MAX_NUMEL * 8]
                          for sizes in ((16, 32, 64, 128, 256), (8, 4, 2)))
    cores = cpu_threads() if dev.type == "cpu" else 1
    thread_sizes = [t for t in (2, 4, 8, 16, 32, 64) if t <= cores]
    for family, passes in (("vmap", (vmap_up, vmap_down)), ("threads", (thread_sizes,))):
        family_best, family_best_p, stop = 0.0, None, False
        for n_pass, sizes in enumerate(passes):
            if stop:
                break
            if n_pass and family_best_p is not None and family_best_p != passes[0][0]:
                break  # a larger size than the first beat it: smaller ones will not
            for p in sizes:
                k = max(p, k_round) // p * p
                if over(10 * k / rate_one):  # a warm-up and four rounds of both, at the one-point rate
                    stop = True
                    break
                set_mode((family, p))
                try:
                    lo, ac = plane._evaluate(*probe(k))  # warm-up (thread replicas, vmap tracing) and check
                except (RuntimeError, NotImplementedError) as exc:  # no vmap rule, or out of memory
                    log.info("%s evaluation of %d points failed (%s)", family, p, str(exc)[:120])
                    if dev.type == "cuda":
                        torch.cuda.empty_cache()
                    break  # smaller stacks may still fit
                if not same(lo, ac):
                    log.info("%s evaluation of %d points rounds differently from one point at a time; not used",
                             family, p)
                    stop = True
                    break
                at_cand = _timer(plane, *probe(k), clock, functools.partial(set_mode, (family, p)))

                def at_one(kk: int = k) -> float:
                    set_mode(("one", 1))
                    seconds = one_timer()
                    one_rates.append(k_round / max(seconds, 1e-12))
                    return seconds * kk / k_round

                ratio = stable_ratio(at_one, at_cand, over, enough=cap(4))
                log.debug("%s %d: %s one at a time", family, p, "no time to time it against" if ratio is None
                          else f"{ratio:.3f}x")
                if ratio is None:
                    stop = True
                    break
                # a premium for more points at once only across modes; within a family little, none for fewer
                margin = (1.0 if p < best[1] else 1.02) if best[0] == family else 1.05
                if ratio > best_ratio * margin and ratio > 1.05:
                    best, best_ratio, best_timers = (family, p), ratio, (at_one, at_cand)
                if ratio < family_best * 0.8:
                    break  # further sizes this way only get slower
                if ratio > family_best:
                    family_best, family_best_p = ratio, p
    if best != ("one", 1):  # the best of several noisy ratios is biased upwards: measure the winner again
        again = stable_ratio(*best_timers, lambda: False, min_rounds=3, max_rounds=6, enough=cap(2))
        log.debug("%s %d: %.3fx one at a time, again %.3fx", best[0], best[1], best_ratio, again)
        best, best_ratio = (best, again) if again is not None and again > 1.03 else (("one", 1), 1.0)
    set_mode(best)
    # then batch sizes, in the mode chosen, each against the configured size, with the time left
    configured, p = ev.batch_size, best[1]
    k_batch = max(p, k_round) // p * p
    if ev.tune_batch and ev.stream is None and ev.task != "language":
        best_batch, batch_ratio = configured, 1.0
        at_ref = _timer(plane, *probe(k_batch), clock, functools.partial(ev.set_batch_size, configured))
        sizes = batch_candidates(ev.n, configured)
        for i, b in enumerate(sizes):
            if over(10 * k_batch / (rate_one * best_ratio)):
                break
            ev.set_batch_size(b)
            if not same(*plane._evaluate(*probe(max(reference, p)))):
                log.info("evaluation batch %d rounds differently from batch %d; not used", b, configured)
                continue
            at_size = _timer(plane, *probe(k_batch), clock, functools.partial(ev.set_batch_size, b))
            ratio = stable_ratio(at_ref, at_size, over, enough=cap(len(sizes) - i))
            log.debug("batch %d: %s batch %d", b, "no time" if ratio is None else f"{ratio:.3f}x", configured)
            if ratio is not None and ratio > batch_ratio * 1.03 and ratio > 1.03:
                best_batch, batch_ratio = b, ratio
        ev.set_batch_size(best_batch)
        if best_batch != configured:
            best_ratio *= batch_ratio
            log.info("evaluation batch %d (%.2fx the speed of batch %d, the same values)", best_batch, batch_ratio,
                     configured)
    plane.calibrated_rate = (statistics.median(one_rates) if one_rates else rate_one) * best_ratio
    log.info("points per batch: %d (%s; %.2fx one at a time, %.1f points/s while calibrating, %.2f s spent)",
             best[1], MODE_NAMES[best[0]], best_ratio, plane.calibrated_rate, clock() - started)
    return best


def cpu_threads() -> int:
    """torch's intra-op threads of this process (at least 1)."""
    return max(1, torch.get_num_threads())
