"""Whether compiling the forward repays itself on a grid: ``evaluate.compile = "auto"``.

``torch.compile`` costs seconds once and may save a share of every point. It cannot save what convolutions and
matrix products take (compiled or not, they run the same library kernels), and a compiled forward loses what the
plane's input tables save (it computes the first convolution at every point). So, before anything is compiled:

1. the plane is timed on a few points as it evaluates now (values thrown away);
2. one forward over the data, without tables, runs with its operations timed (a dispatch mode): the seconds of its
   convolutions and matrix products, which compilation keeps, and its operations per batch;
3. the compile cost is estimated from those operations and the batch shapes (one graph per shape), with
   constants measured on CPUs (:func:`compile_cost`);
4. compilation is tried only when the most it could save on the points left (every point's time beyond its
   convolutions and products) is at least ``factor`` times that cost (:meth:`CompileEstimate.worth_trying`).
   A grid that cannot repay it is never compiled; a trial that does not pay costs at most 1/``factor`` of what
   the bound said compilation could save.

A trial compiles, then times the compiled forward against the eager one in alternating rounds
(:func:`~landscape.engine.calibration.stable_ratio`) and keeps it only when it is ``min_speedup`` times as fast.
Everything happens before the first point is stored, so every stored value comes from one way; the choice is
recorded in the file's inputs (``compile``) and a resumed run takes it from there.

Example:
    >>> est = CompileEstimate(seconds_per_point=0.07, heavy_per_point=0.05, cost=8.0, points=10_000)
    >>> round(est.saving_bound), est.worth_trying()
    (200, True)
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

from .calibration import stable_ratio

__all__ = ["CompileEstimate", "compile_cost", "cannot_compile", "estimate_compile", "trial_compile",
           "REPAY_FACTOR", "HEAVY_OPS"]

log = logging.getLogger(__name__)

#: the saving a trial needs in prospect, in times the estimated compile cost
REPAY_FACTOR = 4.0
#: operations whose time compilation keeps: convolutions and matrix products (library kernels either way)
HEAVY_OPS = re.compile(r"conv|addmm|\bmm\b|bmm|matmul|linear|gemm|xmma|cutlass|scaled_dot_product|flash")
# compile seconds once per process, per graph and per operation of a graph, fitted to inductor on a cold cache
# (2-core CPU: LeNet-5, 2 batch shapes of ~15 operations, 9.0 s; ResNet-20, 1 shape of ~70, 8.3-12.2 s); GPUs'
# Triton kernels take longer to build
_SECONDS = {"cpu": (3.0, 1.5, 0.1), "cuda": (4.5, 2.5, 0.15)}


@dataclass
class CompileEstimate:
    """What compiling would cost and could save on ``points`` points, from an eager plane's timing."""

    seconds_per_point: float  # as the plane evaluates now (eager, with its tables)
    heavy_per_point: float  # convolutions and matrix products of a forward without tables: compilation keeps them
    cost: float  # estimated compile seconds
    points: int

    @property
    def saving_bound(self) -> float:
        """The most compilation could save on the points: every point's time beyond its heavy operations."""
        return max(0.0, self.seconds_per_point - self.heavy_per_point) * self.points

    def worth_trying(self, factor: float | None = None) -> bool:
        """Whether the bound is at least ``factor`` (default :data:`REPAY_FACTOR`) times the cost (a trial then
        risks at most 1/factor of it).

        Example:
            >>> CompileEstimate(0.006, 0.003, 9.0, 10_201).worth_trying()  # 30.6 s at most, against 4 x 9 s
            False
        """
        return self.saving_bound >= (REPAY_FACTOR if factor is None else factor) * self.cost

    def describe(self) -> str:
        return (f"{self.points} points at {1e3 * self.seconds_per_point:.2f} ms, of which convolutions and matrix "
                f"products {1e3 * self.heavy_per_point:.2f} ms: compiling could save at most "
                f"{self.saving_bound:.1f} s, against ~{self.cost:.1f} s to compile")


def compile_cost(ops_per_batch: int, shapes: int, device_type: str = "cpu") -> float:
    """Estimated seconds to compile a forward of ``ops_per_batch`` operations for ``shapes`` batch shapes.

    Example:
        >>> compile_cost(70, 1)
        11.5
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


def _heavy_seconds(ev: Any) -> tuple[float, int]:
    """Seconds of convolutions and matrix products in one forward over the data without input tables, and the
    operations per batch (as a compiled graph would hold them)."""
    tables, ev.input_tables = ev.input_tables, None
    try:
        ev.forward()  # warm: the forward timed is a steady one
        clock = _OpClock(ev.device)
        with clock:
            ev.forward()
    finally:
        ev.input_tables = tables
    return clock.heavy, max(1, clock.ops // max(1, len(ev._batches)))


def estimate_compile(plane: Any, points: int, clock: Callable[[], float] = time.perf_counter, least: float = 0.2,
                     most: int = 8) -> CompileEstimate | None:
    """Time ``plane`` (a :class:`~landscape.engine.plane.PlaneEvaluator`, eager) on its first point, again and
    again (at least twice, for ``least`` seconds or ``most`` times; the values are not kept), and estimate
    compilation on ``points`` points. None when not even the whole grid at the first point's time (which pays
    one-time costs: an upper bound) could repay the cheapest compile: then nothing more is timed or profiled."""
    ev = plane.ev
    zero = np.zeros(1)
    t = clock()
    plane._evaluate(zero, zero)
    first = clock() - t
    shapes = len({int(x.shape[0]) for x, _ in ev._batches}) or 1
    if first * points < REPAY_FACTOR * compile_cost(0, shapes, ev.device.type):
        log.debug("compile: not tried (%d points at %.2f ms or less cannot repay compiling)", points, 1e3 * first)
        return None
    n, t = 0, clock()
    while n < most and (n < 2 or clock() - t < least):
        plane._evaluate(zero, zero)
        n += 1
    per_point = (clock() - t) / n
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
