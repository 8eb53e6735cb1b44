"""Choosing how the plane evaluator computes grid points: how many at once and how, and at which batch size.

``points_per_batch`` is ``"auto"`` (timed on the first chunk's own points, see :func:`calibrate`), ``N`` (N points
stacked with vmap) or ``"threads:N"`` (N points on concurrent CPU threads).
With ``tune_batch`` the evaluator may also run at another batch size than the one configured, among those that
give the configured batch size's values bitwise (on CPUs, convolutions round the same way from 64 samples up).

Every candidate is timed against one point at a time in alternating rounds, repeated until their ratio is
stable, so a drift of the machine (other work on its cores) hits both alike. Only ways that give one point's
values bitwise are timed, and the timed evaluations compute the chunk's points (kept, whichever way computed
them), so calibration costs only its time beyond what the best way found takes, at most ``share`` of the
expected work.

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
                 enough: Callable[[], bool] | None = None,
                 clear: Callable[[list[float]], bool] | None = None) -> float | None:
    """How many times faster ``b`` is than ``a``: rounds alternate a and b (each callable returns the seconds of
    one run), until the last ``min_rounds`` ratios lie within ``tol`` of their median, or ``enough()``, or
    ``clear(last ratios)`` (they decide the question asked) after ``min_rounds`` rounds; the median of all
    rounds. None when ``deadline()`` is reached before ``min_rounds``.

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
            if (max(last) - min(last) <= tol * mid or deadline() or (enough is not None and enough())
                    or (clear is not None and clear(last))):
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


class _Points:
    """The chunk's own points, handed out in order to the timed evaluations; their values are kept (every mode
    timed was first checked to give one point's values bitwise, so it does not matter which computed a point).
    Once the chunk is used up, evaluations repeat its coordinates and those values are thrown away.

    Example:
        >>> pts = _Points(np.array([0.0, 0.5, 1.0]), np.zeros(3))
        >>> a, b, idx = pts.take(4); idx.tolist(), a.tolist()
        ([0, 1, 2, -1], [0.0, 0.5, 1.0, 0.0])
        >>> pts.keep(idx, a * 2, a); pts.kept, pts.loss.tolist()
        (3, [0.0, 1.0, 2.0])
    """

    def __init__(self, alphas: np.ndarray, betas: np.ndarray):
        self.a, self.b = np.asarray(alphas, np.float64), np.asarray(betas, np.float64)
        n = len(self.a)
        self.loss, self.acc, self.done = np.full(n, np.nan), np.full(n, np.nan), np.zeros(n, bool)
        self.next = 0

    @property
    def kept(self) -> int:
        return int(self.done.sum())

    def left(self) -> int:
        return len(self.a) - self.next

    def take(self, k: int, first: tuple[np.ndarray, np.ndarray] | None = None
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``k`` coordinates (``first`` given ones, then the next of the chunk, then repeats) and their chunk
        positions (-1: not to keep)."""
        fa, fb = first if first is not None else (np.empty(0), np.empty(0))
        new = min(k - len(fa), self.left())
        idx = np.arange(self.next, self.next + new)
        self.next += new
        pad = k - len(fa) - new
        reps = np.resize(np.arange(len(self.a)), pad) if len(self.a) else np.zeros(pad, np.int64)
        a = np.concatenate([fa, self.a[idx], self.a[reps]])
        b = np.concatenate([fb, self.b[idx], self.b[reps]])
        return a, b, np.concatenate([np.full(len(fa), -1), idx, np.full(pad, -1)]).astype(np.int64)

    def keep(self, idx: np.ndarray, loss: np.ndarray, acc: np.ndarray) -> None:
        m = idx >= 0
        self.loss[idx[m]], self.acc[idx[m]], self.done[idx[m]] = np.asarray(loss)[m], np.asarray(acc)[m], True


def _timer(plane: Any, points: _Points, k: int, clock: Callable[[], float],
           setup: Callable[[], None] | None = None) -> Callable[[], float]:
    """Seconds of one evaluation of the next ``k`` points (``setup`` first puts the plane in the way being
    timed); their values are kept."""
    dev = plane.ev.device

    def run() -> float:
        if setup is not None:
            setup()
        a, b, idx = points.take(k)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        t = clock()
        loss, acc = plane._evaluate(a, b)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        seconds = clock() - t
        points.keep(idx, loss, acc)
        return seconds

    return run


def calibrate(plane: Any, alphas: np.ndarray, betas: np.ndarray, expected: int | None = None,
              share: float = 0.05, reference: int = 4, min_round: float = 0.02,
              clock: Callable[[], float] = time.perf_counter,
              out: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> tuple[str, int]:
    """Choose how ``plane`` (a :class:`~landscape.engine.plane.PlaneEvaluator`) evaluates points, by timing
    candidates on the points of a chunk (``alphas``, ``betas``); returns ``(mode, points)``, set on the plane.

    One point at a time is timed first on ``reference`` points; its rate bounds the calibration to ``share`` of
    the expected work (``expected`` points), and sets the probe size of a round (``min_round`` seconds, less on
    small grids). Then, within that budget: vmap stacks (small models), concurrent CPU threads and, in the mode
    chosen, other batch sizes (``plane.ev.tune_batch``). A candidate is eligible only if it gives the reference
    points' values bitwise (stacked convolutions round differently from single ones, so for most conv models only
    threads qualify); each is timed against one point at a time in alternating rounds until the ratio is stable
    (:func:`stable_ratio`). The fastest (at least 5 % faster than one at a time) is set on the plane.

    The timed evaluations compute the chunk's own points in order, in one point's way or in a way checked to give
    its values bitwise, so no stored value depends on timing; ``out`` = (loss, acc, done), arrays of the chunk's
    length, receives them (the caller computes the points not done). What calibration costs is its time beyond
    what the best way found would have taken for the points kept; once the chunk is used up, evaluations repeat
    its coordinates, and their values are thrown away.
    """
    points = _Points(alphas, betas)
    try:
        return _calibrate(plane, points, expected or len(points.a), share, reference, min_round, clock)
    finally:
        if out is not None:
            for target, values in zip(out, (points.loss, points.acc, points.done)):
                target[...] = values


def _calibrate(plane: Any, points: _Points, expected: int, share: float, reference: int, min_round: float,
               clock: Callable[[], float], overhead_bound: float = 1e-3) -> tuple[str, int]:
    ev, dev = plane.ev, plane.ev.device
    plane.batch_mode, plane.points_per_batch = "one", 1
    plane._stacking_checked = True  # stacked modes are checked against the reference here
    if ev.compile:  # other batch sizes and thread replicas would each compile anew; stacks are not compiled
        log.info("points per batch: 1 (compiled forward: one graph per batch shape, no other mode tried)")
        return "one", 1

    def run(a: np.ndarray, b: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        loss, acc = plane._evaluate(a, b)
        points.keep(idx, loss, acc)
        return loss, acc

    run(*points.take(1))  # warm-up (a cold first point, which any way of evaluating pays)
    started = clock()
    ref_a, ref_b, ref_idx = points.take(reference)
    t = clock()
    ref_loss, ref_acc = run(ref_a, ref_b, ref_idx)
    rate_one = reference / max(clock() - t, 1e-9)
    budget = share * expected / rate_one
    k_round = max(reference, math.ceil(min(min_round, budget / 40) * rate_one))

    best, best_ratio, best_timers = ("one", 1), 1.0, None
    configured, batch_ratio = ev.batch_size, 1.0

    # what calibration costs: its time beyond what the points it kept would take in the best way found so far
    # (one point at a time until another way beats it), so that the time a fast way saves never pays for trying
    # slower ones, nor for the rounds of one point at a time that every comparison needs
    def spent() -> float:
        return clock() - started - (points.kept - 1) / (rate_one * best_ratio * batch_ratio)

    def over(seconds: float = 0.0) -> bool:
        return spent() + seconds > budget

    def beyond(n: int, rate: float = rate_one) -> float:  # seconds of n more points past the chunk's own
        return max(0, n - points.left()) / rate

    def slower(n: int, speed: float = 1.0) -> float:  # the cost of n points at ``speed`` (x one at a time)
        return max(0.0, n / (rate_one * speed) - n / (rate_one * best_ratio * batch_ratio))

    def cap(candidates_left: int) -> Callable[[], bool]:  # a candidate's share of the time left, past min_rounds
        until = spent() + (budget - spent()) / max(2, candidates_left)
        return lambda: spent() > until

    def same(lo: np.ndarray, ac: np.ndarray, n: int = reference) -> bool:  # the first n reference points' values
        return (np.array_equal(lo[:n], ref_loss[:n], equal_nan=True)
                and np.array_equal(ac[:n], ref_acc[:n], equal_nan=True))

    def checked(k: int) -> tuple[np.ndarray, np.ndarray] | None:  # k points led by the reference ones, if equal
        a, b, idx = points.take(k, first=(ref_a, ref_b))
        lo, ac = plane._evaluate(a, b)
        if not same(lo, ac):
            return None
        points.keep(idx, lo, ac)
        return lo, ac

    one_timer = _timer(plane, points, k_round, clock)
    one_rates: list[float] = []  # the one-point rate of every round: the calibrated rate's base

    def set_mode(mode: tuple[str, int]) -> None:
        plane.batch_mode, plane.points_per_batch = mode

    def affordable(k: int, family_best: float) -> bool:
        """Whether a candidate's check and four rounds of both fit in the time left: past the chunk's points
        (slower candidates: twice the time), the check as if its time were all overhead (it warms the candidate
        up: thread replicas, vmap tracing), the rounds of one point at a time, and the candidate's at its
        family's best speed so far."""
        return not over(2 * beyond(5 * k + 4 * k_round) + k / rate_one + slower(4 * k_round)
                        + slower(4 * k, max(1.0, family_best)))

    def stacks_round_alike() -> bool:
        """Two reference points stacked give their values bitwise (where two do not, as for most convolutions,
        no stack is tried: a stack of 16 would cost 16 points to find out)."""
        set_mode(("vmap", 2))
        try:
            lo, ac = plane._evaluate(ref_a[:2], ref_b[:2])
        except (RuntimeError, NotImplementedError) as exc:  # no vmap rule for some operation
            log.info("stacked evaluation failed (%s)", str(exc)[:120])
            return False
        finally:
            set_mode(("one", 1))
        if same(lo, ac, 2):
            return True
        log.info("stacked evaluation rounds differently from one point at a time; no stack is used")
        return False

    vmap_ok = plane.numel_moved <= VMAP_MAX_NUMEL and not ev.transforms().get("fold_bn") \
        and getattr(ev, "objective", None) is None and getattr(ev, "input_tables", None) is None
    # stacks pay by spreading a forward's fixed cost over many points: from 16 up, and below 16 only where
    # 16 is the best of the larger ones
    vmap_up, vmap_down = ([c for c in sizes if vmap_ok and plane.numel_moved * c <= VMAP_MAX_NUMEL * 8]
                          for sizes in ((16, 32, 64, 128, 256), (8, 4, 2)))
    cores = cpu_threads() if dev.type == "cpu" else 1
    # a point shorter than ``overhead_bound`` is mostly python's overhead per operation: concurrent points, which
    # pay only where the time is spent in kernels (they release the GIL), and smaller batches (more operations)
    # cannot gain there
    overhead_bound_point = 1 / rate_one < overhead_bound
    thread_sizes = [] if overhead_bound_point else [t for t in (2, 4, 8, 16, 32, 64) if t <= cores]
    for family, passes in (("vmap", (vmap_up, vmap_down)), ("threads", (thread_sizes,))):
        if family == "threads" and best_ratio >= min(cores, max(thread_sizes, default=1)):
            break  # T threads on C cores are at most min(T, C) times as fast as one point at a time
        if family == "vmap" and vmap_up and affordable(max(vmap_up[0], k_round), 0.0) and not stacks_round_alike():
            continue  # (not affordable: the loop below stops at once)
        family_best, family_best_p, stop = 0.0, None, False
        for n_pass, sizes in enumerate(passes):
            if stop:
                break
            if n_pass and family_best_p is not None and family_best_p != passes[0][0]:
                break  # a larger size than the first beat it: smaller ones will not
            for p in sizes:
                k = max(p, k_round) // p * p
                if not affordable(k, family_best):
                    stop = True
                    break
                set_mode((family, p))
                try:
                    ok = checked(k)  # also the warm-up (thread replicas, vmap tracing)
                except (RuntimeError, NotImplementedError) as exc:  # no vmap rule, or out of memory
                    log.info("%s evaluation of %d points failed (%s)", family, p, str(exc)[:120])
                    if dev.type == "cuda":
                        torch.cuda.empty_cache()
                    break  # smaller stacks may still fit
                if ok is None:
                    log.info("%s evaluation of %d points rounds differently from one point at a time; not used",
                             family, p)
                    stop = True
                    break
                at_cand = _timer(plane, points, k, clock, functools.partial(set_mode, (family, p)))

                def at_one(kk: int = k) -> float:
                    set_mode(("one", 1))
                    seconds = one_timer()
                    one_rates.append(k_round / max(seconds, 1e-12))
                    return seconds * kk / k_round

                # a premium for more points at once only across modes; within a family little, none for fewer
                margin = (1.0 if p < best[1] else 1.02) if best[0] == family else 1.05
                bar = max(best_ratio * margin, 1.05)  # what the candidate must beat

                def clear(last: list[float], bar: float = bar) -> bool:  # every round far below the bar: a loser
                    return max(last) < bar / 1.15  # (a winner's ratio is the next one's bar: it is measured out)

                ratio = stable_ratio(at_one, at_cand, over, enough=cap(4), clear=clear)
                log.debug("%s %d: %s one at a time", family, p, "no time to time it against" if ratio is None
                          else f"{ratio:.3f}x")
                if ratio is None:
                    stop = True
                    break
                if best_timers is not None and abs(ratio / best_ratio - 1) < 0.1:
                    # too close to the best to call from two noisy ratios: time the two against each other
                    at_best, k_best = best_timers[1], best_timers[2]
                    direct = stable_ratio(lambda: at_best() / k_best, lambda: at_cand() / k, over, enough=cap(4))
                    log.debug("%s %d: %s %s %d", family, p, "no time" if direct is None else f"{direct:.3f}x",
                              *best)
                    if direct is not None:
                        ratio = best_ratio * direct
                if ratio > bar:
                    best, best_ratio, best_timers = (family, p), ratio, (at_one, at_cand, k)
                if ratio < family_best * 0.8:
                    break  # further sizes this way only get slower
                if ratio > family_best:
                    family_best, family_best_p = ratio, p
    # the best of several noisy ratios is biased upwards: measure the winner again, unless it is far ahead of one
    # at a time (stable ratios agree within 10 %)
    if best != ("one", 1) and best_ratio < 1.5:
        again = stable_ratio(*best_timers[:2], lambda: False, min_rounds=3, max_rounds=6, enough=cap(2))
        log.debug("%s %d: %.3fx one at a time, again %.3fx", best[0], best[1], best_ratio, again)
        best, best_ratio = (best, again) if again is not None and again > 1.03 else (("one", 1), 1.0)
    set_mode(best)
    if best[0] != "threads" and hasattr(plane, "release_threads"):
        plane.release_threads()  # the threads tried (and their OpenMP teams, their model replicas) are let go
    # then batch sizes, in the mode chosen, each against the configured size, with the time left
    p = best[1]
    k_batch = max(p, k_round) // p * p
    if ev.tune_batch and ev.stream is None and ev.task != "language":
        best_batch = configured
        at_ref = _timer(plane, points, k_batch, clock, functools.partial(ev.set_batch_size, configured))
        sizes = [b for b in batch_candidates(ev.n, configured)
                 if not overhead_bound_point or b > min(configured, ev.n)]
        for i, b in enumerate(sizes):
            n_trial = max(reference, p) + 4 * k_batch  # as for the modes: a check, four rounds of both
            if over(2 * beyond(n_trial + 4 * k_batch, rate_one * best_ratio) + max(reference, p) / rate_one
                    + slower(n_trial, best_ratio)):
                break
            ev.set_batch_size(b)
            if checked(max(reference, p)) is None:
                log.info("evaluation batch %d rounds differently from batch %d; not used", b, configured)
                continue
            at_size = _timer(plane, points, k_batch, clock, functools.partial(ev.set_batch_size, b))
            bar = max(batch_ratio * 1.03, 1.03)
            ratio = stable_ratio(at_ref, at_size, over, enough=cap(len(sizes) - i),
                                 clear=lambda last, bar=bar: max(last) < bar / 1.15)
            log.debug("batch %d: %s batch %d", b, "no time" if ratio is None else f"{ratio:.3f}x", configured)
            if ratio is not None and ratio > bar:
                best_batch, batch_ratio = b, ratio
        ev.set_batch_size(best_batch)
        if best_batch != configured:
            best_ratio *= batch_ratio
            log.info("evaluation batch %d (%.2fx the speed of batch %d, the same values)", best_batch, batch_ratio,
                     configured)
    plane.calibrated_rate = (statistics.median(one_rates) if one_rates else rate_one) * best_ratio
    log.info("points per batch: %d (%s; %.2fx one at a time, %.1f points/s while calibrating; %.3f s spent, "
             "%.3f s more than that way takes for the %d of the chunk's %d points computed)", best[1],
             MODE_NAMES[best[0]], best_ratio, plane.calibrated_rate, clock() - started,
             clock() - started - points.kept / plane.calibrated_rate, points.kept, len(points.a))
    return best


def cpu_threads() -> int:
    """torch's intra-op threads of this process (at least 1)."""
    return max(1, torch.get_num_threads())
