"""Whether compiling the forward repays itself on a grid: ``evaluate.compile = "auto"``.

``torch.compile`` costs seconds once and may save a share of every point: most of what a forward spends outside
its convolutions, matrix products and pooling (fused elementwise operations, no Python per operation), and a
little of what they take (on CPUs, inductor's convolutions with fused epilogues gained up to a quarter here). A
compiled forward also loses what the plane's input tables save (it computes the first convolution at every point)
and takes one point at a time. So, before anything is compiled:

1. a cold forward of a few samples bounds a point's time from above (:func:`point_upper_bound`): a grid that
   could not repay the cheapest compile ``factor`` times even then is settled for a fraction of one point;
2. a plane whose points stack exactly with vmap (small models) keeps its stacks (:func:`stacks_instead`);
3. the plane is timed on a few points as it evaluates now (values thrown away), and a few forwards over the
   data, without tables, run with their operations timed (a dispatch mode): the seconds of the heavy operations
   (:data:`HEAVY_OPS`) and the operations per batch; the least of the repeated times counts, since what a busy
   machine adds to a short timing is not the forward's and would inflate the saving;
4. the compile cost is estimated from those operations and the batch shapes (one graph per shape), with
   constants measured on CPUs (:func:`compile_cost`), and the saving as every point's time beyond its heavy
   operations plus :data:`HEAVY_SHARE` of theirs (timed without tables: what the tables save counts against);
5. compilation is tried only when that saving on the points left is at least ``factor`` times the cost
   (:meth:`CompileEstimate.worth_trying`): a grid whose estimate cannot repay it is never compiled, and a trial
   that does not pay costs at most 1/``factor`` of the saving estimated.

A trial compiles, then times the compiled forward against the eager one in alternating rounds
(:func:`~landscape.engine.calibration.stable_ratio`) and keeps it only when it is ``min_speedup`` times as fast.
Everything happens before the first point is stored, so every stored value comes from one way; the choice is
recorded in the file's inputs (``compile``) and a resumed run takes it from there.

Example:
    >>> est = CompileEstimate(seconds_per_point=0.07, heavy_per_point=0.04, cost=8.0, points=10_000)
    >>> round(est.saving), est.worth_trying()
    (400, True)
"""
from __future__ import annotations

import logging
import re
import shutil
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from .calibration import VMAP_MAX_NUMEL, stable_ratio

__all__ = ["CompileEstimate", "compile_cost", "cannot_compile", "stacks_instead", "point_upper_bound",
           "estimate_compile", "trial_compile",
           "REPAY_FACTOR", "HEAVY_SHARE", "HEAVY_OPS"]

log = logging.getLogger(__name__)

#: the saving a trial needs in prospect, in times the estimated compile cost
REPAY_FACTOR = 4.0
#: the share of convolutions' and matrix products' time a compiled forward is expected to save at most
HEAVY_SHARE = 0.25
#: operations whose time compilation mostly keeps: convolutions and matrix products (library kernels either way),
#: and pooling (on CPUs the evaluator's strided maxima, engine/fastpool.py, beat inductor's pooling)
HEAVY_OPS = re.compile(r"conv|addmm|\bmm\b|bmm|matmul|linear|gemm|xmma|cutlass|scaled_dot_product|flash|pool|maximum")
# compile seconds once per process, per graph and per operation (as dispatched) of a graph, fitted to inductor
# on a cold cache (2-core CPU: LeNet-5, 2 batch shapes of 25 operations, 9.0 s; ResNet-20, 1 shape of 411,
# 8.3-16.8 s); GPUs' Triton kernels take longer to build
_SECONDS = {"cpu": (4.0, 2.0, 0.02), "cuda": (6.0, 3.0, 0.03)}


@dataclass
class CompileEstimate:
    """What compiling would cost and could save on ``points`` points, from an eager plane's timing."""

    seconds_per_point: float  # as the plane evaluates now (eager, with its tables)
    heavy_per_point: float  # convolutions and matrix products of a forward without tables: compilation keeps them
    cost: float  # estimated compile seconds
    points: int

    @property
    def saving(self) -> float:
        """What compilation could save on the points: every point's time beyond its heavy operations, and
        :data:`HEAVY_SHARE` of theirs."""
        beyond = max(0.0, self.seconds_per_point - self.heavy_per_point)
        return (beyond + HEAVY_SHARE * min(self.heavy_per_point, self.seconds_per_point)) * self.points

    def worth_trying(self, factor: float | None = None) -> bool:
        """Whether the bound is at least ``factor`` (default :data:`REPAY_FACTOR`) times the cost (a trial then
        risks at most 1/factor of it).

        Example:
            >>> CompileEstimate(0.006, 0.005, 9.0, 10_201).worth_trying()  # 22.9 s, against 4 x 9 s
            False
        """
        return self.saving >= (REPAY_FACTOR if factor is None else factor) * self.cost

    def describe(self) -> str:
        return (f"{self.points} points at {1e3 * self.seconds_per_point:.2f} ms, convolutions, products and "
                f"pooling {1e3 * self.heavy_per_point:.2f} ms (without tables): compiling could save "
                f"~{self.saving:.1f} s, against ~{self.cost:.1f} s to compile")


def compile_cost(ops_per_batch: int, shapes: int, device_type: str = "cpu") -> float:
    """Estimated seconds to compile a forward of ``ops_per_batch`` operations for ``shapes`` batch shapes.

    Example:
        >>> compile_cost(400, 1)
        14.0
    """
    once, per_graph, per_op = _SECONDS.get(device_type, _SECONDS["cuda"])
    return once + shapes * (per_graph + per_op * ops_per_batch)


def cannot_compile(ev: Any) -> str | None:
    """Why ``ev`` (an :class:`~landscape.engine.evaluator.Evaluator`) cannot have its forward compiled, or None.

    Example:
        >>> from landscape.core.data import load_data
        >>> from landscape.core.models import build_model
        >>> from landscape.engine.evaluator import Evaluator
        >>> te = load_data("digits")[1]
        >>> cannot_compile(Evaluator(build_model("lenet5", te.info()), te, "cpu", loss=lambda out, y: out.sum()))
        'a callable loss or step runs its own forward'
    """
    if ev.objective is not None:
        return "a callable loss or step runs its own forward"
    if ev.stream is not None:
        return "the data are read in batches"
    if ev.device.type == "cpu" and shutil.which("c++") is None and shutil.which("g++") is None:
        return "no C++ compiler on this machine (inductor needs one on CPUs)"
    return None


class _OpClock(TorchDispatchMode):
    """Times every heavy operation of the forwards run under it (synchronising a GPU around each) and counts all."""

    def __init__(self, device: torch.device):
        super().__init__()
        self.sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
        self.heavy, self.ops = 0.0, 0

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        self.ops += 1
        if not HEAVY_OPS.search(str(func)):
            return func(*args, **(kwargs or {}))
        self.sync()
        t = time.perf_counter()
        out = func(*args, **(kwargs or {}))
        self.sync()
        self.heavy += time.perf_counter() - t
        return out


def _repeated(run: Callable[[], Any], least: float, most: int, clock: Callable[[], float] = time.perf_counter
              ) -> list[Any]:
    """``run()``'s results, run at least twice and then until ``least`` seconds have passed or ``most`` runs: the
    least of repeated timings is taken, since what a busy machine adds to a short timing is not the work's."""
    out: list[Any] = []
    started = clock()
    while len(out) < 2 or (len(out) < most and clock() - started < least):
        out.append(run())
    return out


def _heavy_seconds(ev: Any, least: float = 0.2, most: int = 4) -> tuple[float, int]:
    """Seconds of convolutions and matrix products in one forward over the data without input tables (the least
    of a few forwards, for ``least`` seconds or ``most`` of them: what a busy machine adds is not the forward's),
    and the operations per batch (as a compiled graph would hold them)."""
    tables, ev.input_tables = ev.input_tables, None
    try:
        ev.forward()  # warm: without tables, the first convolution runs anew
        with _OpClock(ev.device):  # the first forward under the clock pays its own warm-up
            ev.forward()

        def clocked() -> _OpClock:
            with _OpClock(ev.device) as clock:
                ev.forward()
            return clock

        clocks = _repeated(clocked, least, most)
    finally:
        ev.input_tables = tables
    return min(c.heavy for c in clocks), max(1, clocks[0].ops // max(1, len(ev._batches)))


def stacks_instead(plane: Any) -> bool:
    """Whether ``plane`` would rather stack points with vmap than compile (a compiled forward takes one point at a
    time): stacks are set or calibration may choose them (a small model, nothing folded or tabled, no objective)
    and two points stacked give one point's values bitwise. Stacks spread a forward's fixed costs over many
    points, which is what compiling would save."""
    ev = plane.ev
    if plane.batch_mode == "vmap":
        return True
    if not plane.auto or plane.numel_moved > VMAP_MAX_NUMEL or ev.objective is not None \
            or ev.input_tables is not None or ev.transforms().get("fold_bn"):
        return False
    zero = np.zeros(1)
    one = plane._evaluate(zero, zero)[0]
    plane.batch_mode, plane.points_per_batch = "vmap", 2
    try:
        two = plane._evaluate(np.zeros(2), np.zeros(2))[0]
    except (RuntimeError, NotImplementedError):  # no vmap rule for some operation
        return False
    finally:
        plane.batch_mode, plane.points_per_batch = "one", 1
    return bool(np.array_equal(two, np.repeat(one, 2), equal_nan=True))


def point_upper_bound(ev: Any, samples: int = 32, clock: Callable[[], float] = time.perf_counter) -> float:
    """Seconds a point takes at most, from one cold forward of the first ``samples`` samples scaled to all of
    them (small batches cost more per sample, and a first call pays one-time costs): a fraction of a point.

    Example:
        >>> from landscape.core.data import load_data
        >>> from landscape.core.models import build_model
        >>> from landscape.engine.evaluator import Evaluator
        >>> te = load_data("digits")[1]
        >>> point_upper_bound(Evaluator(build_model("lenet5", te.info()), te, "cpu")) > 0
        True
    """
    tables, ev.input_tables = ev.input_tables, None
    try:
        x = ev._batches[0][0][:samples]
        with torch.no_grad(), ev._autocast():
            t = clock()
            ev._net(x)
            if ev.device.type == "cuda":
                torch.cuda.synchronize(ev.device)
            seconds = clock() - t
    finally:
        ev.input_tables = tables
    return seconds * ev.n / max(1, len(x))


def estimate_compile(plane: Any, points: int, clock: Callable[[], float] = time.perf_counter, least: float = 0.2,
                     most: int = 8) -> CompileEstimate | None:
    """Time ``plane`` (a :class:`~landscape.engine.plane.PlaneEvaluator`, eager) on its first point, again and
    again (a warm-up, then at least twice, for ``least`` seconds or ``most`` times; the least time counts, the
    values are not kept), and estimate compilation on ``points`` points. None, at the cost of a fraction of a
    point, when not even the whole grid at :func:`point_upper_bound` could repay the cheapest compile; None too
    where points stack instead."""
    ev = plane.ev
    zero = np.zeros(1)
    shapes = len({int(x.shape[0]) for x, _ in ev._batches}) or 1
    upper = point_upper_bound(ev, clock=clock)
    if upper * points < REPAY_FACTOR * compile_cost(0, shapes, ev.device.type):
        log.debug("compile: not tried (%d points at %.2f ms or less cannot repay compiling)", points, 1e3 * upper)
        return None
    plane._evaluate(zero, zero)
    if stacks_instead(plane):
        log.info("compile: not tried (points are stacked with vmap instead, which compiling would forgo)")
        return None

    def timed() -> float:
        t = clock()
        plane._evaluate(zero, zero)
        return clock() - t

    per_point = min(_repeated(timed, least, most, clock))
    heavy, ops = _heavy_seconds(ev)
    return CompileEstimate(per_point, heavy, compile_cost(ops, shapes, ev.device.type), points)


def trial_compile(plane: Any, make_plane: Callable[[], Any], seconds_per_point: float = 0.0,
                  min_speedup: float = 1.05, budget: float = 10.0, clock: Callable[[], float] = time.perf_counter,
                  measure: bool = True) -> tuple[Any, dict]:
    """Compile ``plane``'s evaluator, time the compiled forward (a plane from ``make_plane()``, made after
    switching on: it keeps no tables) against the eager ``plane`` in alternating rounds of at least 0.05 s
    (``seconds_per_point`` eager) for at most ``budget`` seconds, and keep the faster way. Returns the plane to use
    and a report (compile seconds, graphs, speed-up, kept). With ``measure=False`` (a rank that follows another's
    decision) it only compiles, and keeps it.
    """
    ev, tables = plane.ev, plane.ev.input_tables
    layer = ev.input_tables_layer
    ev.set_compile(True)
    compiled = make_plane()
    t = clock()
    compiled._evaluate(np.zeros(1), np.zeros(1))  # compiles a graph per batch shape
    report: dict[str, Any] = {"compile_seconds": clock() - t, "graphs": ev.compiles}
    if not measure:
        return compiled, report

    def use(on: bool) -> None:
        ev.set_compile(on)
        if not on:
            ev.input_tables, ev.input_tables_layer = tables, layer

    k = max(1, int(np.ceil(0.05 / max(seconds_per_point, 1e-6))))
    coords = np.zeros(k), np.zeros(k)

    def timer(on: bool, which: Any) -> Callable[[], float]:
        def run() -> float:
            use(on)
            started = clock()
            which._evaluate(*coords)
            return clock() - started
        return run

    deadline = clock() + budget
    ratio = stable_ratio(timer(False, plane), timer(True, compiled), lambda: clock() > deadline)
    report["speedup"] = ratio
    keep = ratio is not None and ratio >= min_speedup
    report["kept"] = keep
    use(keep)
    return (compiled if keep else plane), report
