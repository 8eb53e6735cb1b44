"""The plane evaluator: points θ(α, β) = θ* + α·d₁ + β·d₂ of a loss surface, evaluated in place.

:class:`PlaneEvaluator` keeps θ*, d₁ and d₂ on the device and forms each point in place with
fused multi-tensor ops. Several points can be evaluated at once: stacked with ``torch.func.vmap`` over
stacked parameters (small models), or concurrently on CPU threads, one model replica each
(``points_per_batch``; ``"auto"`` times the ways that give one point's values bitwise on the first points
and keeps the fastest, see :mod:`landscape.engine.calibration`). It knows nothing of files, jobs or MPI.

Example:
    >>> import torch
    >>> from landscape.core.data import load_data
    >>> from landscape.core.models import build_model
    >>> from landscape.engine.evaluator import Evaluator
    >>> _, te = load_data("spiral", n_per_class=30)
    >>> ev = Evaluator(build_model("mlp", te.info()), te, "cpu")
    >>> c = ev.get_flat(); d1 = torch.randn_like(c); d2 = torch.randn_like(c)
    >>> pe = PlaneEvaluator(ev, c, d1, d2)
    >>> loss, acc = pe.evaluate_points(np.array([0.0, 0.5]), np.array([0.0, -0.5]))
    >>> bool(abs(loss[0] - ev.evaluate(pe.state_at(0.0, 0.0)).loss) < 1e-5)
    True
"""
from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch
from torch.func import functional_call, vmap

from ..core.errors import LandscapeError
from ..core.params import unflatten_state
from ..core.signals import interrupt_pending
from .calibration import calibrate, cpu_threads, parse_points_per_batch
from .losses import correct_count, logits
from .evaluator import Evaluator
from .input_tables import attach_tables

__all__ = ["PlaneEvaluator", "CALIBRATE_MIN_POINTS"]

#: grids with fewer points (per rank) are evaluated one point at a time without calibrating: a warm-up and four
#: reference points, before any candidate, would be most of them
CALIBRATE_MIN_POINTS = 16

log = logging.getLogger(__name__)


class PlaneEvaluator:
    """Evaluates points of the plane θ* + α·d₁ + β·d₂ (d₂ may be None for a line)."""

    def __init__(self, evaluator: Evaluator, center: torch.Tensor, d1: torch.Tensor, d2: torch.Tensor | None,
                 points_per_batch: int | str = 1, points_per_pass: int = 8, input_tables: bool = True,
                 directions: list[torch.Tensor] | None = None):
        """``directions``: k directions in place of d₁, d₂ (:class:`~landscape.engine.sample.SampleEvaluator`)."""
        self.ev = evaluator
        dev = evaluator.device
        spec = evaluator.spec
        self.center = center.to(dev, torch.float32)
        given = directions if directions is not None else [d1] + ([d2] if d2 is not None else [])
        self.dirs = [v.to(dev, torch.float32) for v in given]
        self.d1 = self.dirs[0]
        self.d2 = self.dirs[1] if len(self.dirs) > 1 else torch.zeros_like(self.d1)
        named = [("center", self.center)] + [(f"d{i}", v) for i, v in enumerate(self.dirs, 1)]
        for name, v in named:
            if v.numel() != spec.numel:
                raise LandscapeError(f"{name} has {v.numel()} values, the model's state has {spec.numel}")
        evaluator.set_flat(self.center)
        # only tensors some direction moves are rewritten per point
        moving = self.dirs if directions is not None else [self.d1, self.d2]
        self.names, self.targets, self.c = [], [], []
        self.parts: list[list[torch.Tensor]] = [[] for _ in moving]
        for (name, t), lo, hi in zip(evaluator.state.items(), spec.offsets[:-1], spec.offsets[1:]):
            if not t.is_floating_point():
                continue
            views = [v[lo:hi].view(t.shape) for v in moving]
            if any(bool(v.any()) for v in views):
                self.names.append(name)
                self.targets.append(t)
                self.c.append(self.center[lo:hi].view(t.shape).to(t.dtype))
                for part, v in zip(self.parts, views):
                    part.append(v.to(t.dtype))
        self.a = self.parts[0]
        self.b = self.parts[1] if len(self.parts) > 1 else []
        self.numel_moved = sum(t.numel() for t in self.targets)
        # the first convolution's outputs for θ*, d₁ (and d₂) kept as tables (engine/input_tables.py); a replica
        # (input_tables=False) uses its evaluator's, which share the original's
        self.tables = attach_tables(evaluator, self.center, self.dirs) if input_tables else evaluator.input_tables
        self.auto = points_per_batch == "auto"
        self.expected_points: int | None = None  # points this evaluator will compute (the calibration's budget)
        self._stacking_checked = False
        self._zero_exact: bool | None = None  # see _zero_adds_exact
        self.batch_mode, self.points_per_batch = parse_points_per_batch(points_per_batch)
        # streamed data: each batch is read once for a chunk of points_per_pass points (runners hand out whole
        # chunks); the points are evaluated one after another on each batch
        self.passes = evaluator.stream is not None or (self.tables is not None and self.tables.data is None)
        self.points_per_pass = max(1, int(points_per_pass)) if self.passes else 1
        self.chunk_unit = self.points_per_pass
        if self.passes:
            self.auto, self.batch_mode, self.points_per_batch = False, "one", 1
        if (evaluator.objective is not None or self.tables is not None) and self.batch_mode == "vmap":
            # the objective's forward is not stacked; a stack would not use the tables (and so round otherwise)
            self.batch_mode, self.points_per_batch = "one", 1
        self._replicas: list[PlaneEvaluator] = []
        self._pool, self._pool_size = None, 0
        # the rate calibration measured for its choice; a sustained drop below it calibrates again (revisions)
        self.calibrated_rate: float | None = None
        self.points_done, self.revisions, self._slow = 0, 0, 0

    def calibration_chunk(self, target: float = 2.0, least: int = 96, most: int = 1024,
                          pending: int | None = None) -> int:
        """Points for the first chunk of an ``auto`` run, on which calibration times its candidates (computing
        them): about ``target`` seconds of work at the rate that a forward over the first batch suggests (the
        second of two: the first in a process pays one-time costs), from ``least`` to ``most``. When the
        ``pending`` points are no more than ``least``, the chunk holds them all whatever the rate: ``least``,
        without the forwards.

        Example:
            >>> from landscape.core.data import load_data
            >>> from landscape.core.models import build_model
            >>> _, te = load_data("spiral", n_per_class=30)
            >>> ev = Evaluator(build_model("mlp", te.info()), te, "cpu")
            >>> c = ev.get_flat()
            >>> pe = PlaneEvaluator(ev, c, torch.randn_like(c), torch.randn_like(c), "auto")
            >>> 96 <= pe.calibration_chunk() <= 1024, pe.calibration_chunk(pending=9)
            (True, 96)
        """
        ev = self.ev
        if ev.stream is not None or (pending is not None and pending <= least):
            return least
        ev.forward(batches=1)
        started = time.perf_counter()
        ev.forward(batches=1)
        per_point = (time.perf_counter() - started) * len(ev._batches)
        return int(min(most, max(least, target / max(per_point, 1e-9))))

    # -- one point at a time ----------------------------------------------------------------------
    def _coefficients(self, alpha: float, beta: float) -> tuple[float, ...]:
        """The coefficients of point (α, β) on the directions (a sample names its points by number instead)."""
        return alpha, beta

    @torch.no_grad()
    def set_point(self, alpha: float, beta: float) -> None:
        """Write θ* + α·d₁ + β·d₂ (a sample: its point number ``alpha``) into the model in place."""
        coeffs = self._coefficients(alpha, beta)
        self._form(self.targets, *coeffs)
        if self.tables is not None:
            self.tables.point(tuple(coeffs)[:self.tables.count - 1])

    def _form(self, targets: list[torch.Tensor], *coeffs: float) -> None:
        """θ* + α·d₁ + β·d₂ (+ … for k directions) into ``targets`` (the moved tensors, in order), by the same
        fused ops in every mode: the centre copied, then each non-zero coefficient's direction added, in order."""
        torch._foreach_copy_(targets, self.c)
        for part, x in zip(self.parts, coeffs):
            if x:
                torch._foreach_add_(targets, part, alpha=float(x))

    def state_at(self, alpha: float, beta: float = 0.0) -> dict[str, torch.Tensor]:
        """θ(α, β) (a sample: its point number ``alpha``) as a state dict (for checks and exports; the engine
        itself never builds one)."""
        v = self.center.clone()
        for c, d in zip(self._coefficients(alpha, beta), self.dirs):
            v += float(c) * d
        return unflatten_state(v.cpu(), self.ev.spec)

    # -- several points at once -------------------------------------------------------------------
    def _coefficient_rows(self, alphas: np.ndarray, betas: np.ndarray) -> np.ndarray:
        """The coefficients of the points (α, β) as rows (a sample: its design's rows for point numbers α)."""
        return np.stack([alphas, betas], axis=1)

    def _stack(self, alphas: np.ndarray, betas: np.ndarray) -> dict[str, torch.Tensor]:
        """The moved tensors of ``len(alphas)`` points, stacked, each point formed as :meth:`set_point` forms it:
        ``addcmul`` is the same fused multiply-add as ``add_(…, alpha=c)``, here one op per tensor and direction
        for all the points; a point with a zero coefficient (where set_point skips that add) is formed its way,
        unless adding 0·d changes no bit (:attr:`_zero_adds_exact`, the usual case)."""
        rows = self._coefficient_rows(alphas, betas)
        p, dev = len(rows), self.ev.device
        coords: dict[torch.dtype, torch.Tensor] = {}
        stacked = {}
        for i, (name, c) in enumerate(zip(self.names, self.c)):
            if c.dtype not in coords:
                coords[c.dtype] = torch.as_tensor(rows, dtype=c.dtype).to(dev)
            cols = coords[c.dtype].view((p, rows.shape[1]) + (1,) * c.dim())
            t = torch.addcmul(c.unsqueeze(0), cols[:, 0], self.parts[0][i].unsqueeze(0))
            for j in range(1, len(self.parts)):
                t.addcmul_(cols[:, j], self.parts[j][i].unsqueeze(0))
            stacked[name] = t
        if not self._zero_adds_exact:
            for k in np.flatnonzero((rows == 0).any(axis=1)):
                self._form([stacked[name][k] for name in self.names], *rows[k])
        return stacked

    @property
    def _zero_adds_exact(self) -> bool:
        """Whether adding 0·d (what set_point skips) leaves every moved tensor bitwise as it is: t + (±0) = t
        unless t is -0.0 (only where the centre has -0.0: a sum is -0.0 only if both terms are), and 0·d is ±0
        only where d is finite. Then a stack needs no point formed apart."""
        if self._zero_exact is None:
            self._zero_exact = not any(bool(((c == 0) & torch.signbit(c)).any()) for c in self.c) and all(
                bool(torch.isfinite(t).all()) for part in self.parts for t in part)
        return self._zero_exact

    @torch.no_grad()
    def _evaluate_batched(self, alphas: np.ndarray, betas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ev, dev = self.ev, self.ev.device
        p = len(alphas)
        stacked = self._stack(alphas, betas)
        model = ev.model

        def run(params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
            return logits(functional_call(model, params, (x,), strict=False))

        batched = vmap(run, in_dims=(0, None))
        loss_sum = torch.zeros(p, device=dev, dtype=torch.float64)
        correct = torch.zeros(p, device=dev, dtype=torch.int64)
        classify = ev.task != "regression"
        with ev._autocast():
            for x, y in ev.batches():
                out = batched(stacked, x).float()
                # the per-sample loss of the p·B rows at once (row by row, as one point computes its own), then
                # each point's sum over its B rows
                rows = ev._loss(out.flatten(0, 1), y.expand(p, *y.shape).flatten(0, 1))
                loss_sum += rows.view(p, -1).double().sum(dim=1)
                if classify:
                    correct += correct_count(out, y)
        loss = (loss_sum / ev.count).cpu().numpy()
        acc = (correct.double() / ev.count).cpu().numpy() if classify else np.full(p, np.nan)
        return loss, acc

    def _replica(self) -> "PlaneEvaluator":
        """A plane like this one on a replica of the evaluator (for a point thread)."""
        return PlaneEvaluator(self.ev.replica(), self.center, self.d1, self.d2, 1, input_tables=False)

    def _evaluate_threads(self, alphas: np.ndarray, betas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``points_per_batch`` points at once on CPU threads, each on its own replica of the model with
        ``cores / points`` intra-op threads: for compute-bound models whose single forward does not use the
        cores fully (small convolutions), where stacking parameters (vmap) does not pay."""
        p = min(self.points_per_batch, len(alphas))
        while len(self._replicas) < self.points_per_batch - 1:
            rep = self._replica()
            rep.c, rep.parts, rep.a, rep.b = self.c, self.parts, self.a, self.b  # the same values: share them
            self._replicas.append(rep)
        if self._pool_size < self.points_per_batch:
            if self._pool is not None:
                self._pool.shutdown(wait=False)
            self._pool = ThreadPoolExecutor(self.points_per_batch, thread_name_prefix="landscape-point")
            self._pool_size = self.points_per_batch
        for rep in self._replicas:  # the batch size calibration chose
            rep.ev._batches, rep.ev.batch_size = self.ev._batches, self.ev.batch_size
        planes = [self] + self._replicas
        threads = max(1, cpu_threads() // p)
        loss, acc = np.empty(len(alphas)), np.empty(len(alphas))

        def run(k: int) -> None:
            torch.set_num_threads(threads)  # per thread under OpenMP
            plane = planes[k]
            for i in range(k, len(alphas), p):
                if interrupt_pending():  # the main thread has raised already: stop soon
                    return
                plane.set_point(alphas[i], betas[i])
                r = plane.ev.evaluate()
                loss[i], acc[i] = r.loss, r.accuracy

        for f in [self._pool.submit(run, k) for k in range(p)]:
            f.result()
        return loss, acc

    def release_threads(self) -> None:
        """Let the point threads and their model replicas go (calibration tried them and chose another way)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        self._pool, self._pool_size, self._replicas = None, 0, []

    def _check_stacking(self, alpha: float, beta: float) -> None:
        """A stacked (vmap) evaluation must give one point's values bitwise; where it does not (most convolution
        models: stacked convolutions round differently), evaluate one point at a time instead."""
        self._stacking_checked = True
        p = self.points_per_batch
        stacked = self._evaluate_batched(np.full(p, alpha), np.full(p, beta))
        self.set_point(alpha, beta)
        r = self.ev.evaluate()
        if stacked[0][0] == r.loss or (np.isnan(stacked[0][0]) and np.isnan(r.loss)):
            return
        log.warning("stacking %d points with vmap rounds differently from one point at a time for this model "
                    "(loss %.17g vs %.17g); evaluating one point at a time so that values do not depend on the "
                    "batch mode", p, stacked[0][0], r.loss)
        self.batch_mode, self.points_per_batch = "one", 1

    def evaluate_points(self, alphas: np.ndarray, betas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Loss and accuracy at each (alpha[k], beta[k]), ``points_per_batch`` at a time (stacked with vmap,
        or concurrently on CPU threads); with ``"auto"`` the first call times its first points in each way that
        gives the same values and keeps the fastest (see :func:`~landscape.engine.calibration.calibrate`)."""
        alphas, betas = np.asarray(alphas, np.float64), np.asarray(betas, np.float64)
        loss, acc, done = np.empty(len(alphas)), np.empty(len(alphas)), np.zeros(len(alphas), bool)
        if self.auto and len(alphas):
            self.auto = False
            left = None if self.expected_points is None else max(len(alphas), self.expected_points - self.points_done)
            if left is not None and left < CALIBRATE_MIN_POINTS:  # its reference points alone would be the grid
                log.info("points per batch: 1 (a grid of %d points on this rank: too few to calibrate)", left)
                self.batch_mode, self.points_per_batch = "one", 1
            else:
                calibrate(self, alphas, betas, left, out=(loss, acc, done))  # it computes some of the points
            self.points_done += int(done.sum())
        elif self.batch_mode == "vmap" and not self._stacking_checked and len(alphas):
            self._check_stacking(alphas[0], betas[0])
        rest = np.flatnonzero(~done)
        started = time.perf_counter()
        if len(rest):
            loss[rest], acc[rest] = self._evaluate(alphas[rest], betas[rest])
        self._observe(len(rest), time.perf_counter() - started)
        return loss, acc

    def choice(self) -> dict[str, Any]:
        """What calibration chose (how many points at once and how, the batch size), to share with other ranks
        (:meth:`use_choice`)."""
        return {"batch_mode": self.batch_mode, "points_per_batch": self.points_per_batch,
                "batch_size": self.ev.batch_size}

    def use_choice(self, choice: dict[str, Any]) -> None:
        """Evaluate as another rank's calibration chose (:meth:`choice`) instead of calibrating: the values are
        the same in every mode, so ranks may switch at any chunk. It does not calibrate again later (the rank
        that chose does)."""
        self.auto = False
        self.batch_mode, self.points_per_batch = choice["batch_mode"], int(choice["points_per_batch"])
        self.ev.set_batch_size(int(choice["batch_size"]))
        log.info("evaluating as rank 0's calibration chose: %d point(s) per batch (%s), batch size %d",
                 self.points_per_batch, self.batch_mode, self.ev.batch_size)

    def _observe(self, points: int, seconds: float, drop: float = 0.7, patience: int = 2,
                 max_revisions: int = 2) -> None:
        """After calibration: ``patience`` calls in a row (of at least 0.5 s each) below ``drop`` times the
        calibrated rate make the next call calibrate again, at most ``max_revisions`` times."""
        self.points_done += points
        if self.calibrated_rate is None or seconds < 0.5 or self.revisions >= max_revisions:
            return
        self._slow = self._slow + 1 if points / seconds < drop * self.calibrated_rate else 0
        if self._slow >= patience:
            log.info("%.1f points/s, below %.0f%% of the %.1f points/s calibrated: calibrating again",
                     points / seconds, 100 * drop, self.calibrated_rate)
            self.auto, self._slow, self.calibrated_rate = True, 0, None
            self.revisions += 1

    def _evaluate(self, alphas: np.ndarray, betas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.batch_mode == "threads":
            return self._evaluate_threads(alphas, betas)
        loss, acc = np.empty(len(alphas)), np.empty(len(alphas))
        if self.passes:  # data read in batches: each batch once per pass of points_per_pass points
            p = self.points_per_pass
            for s in range(0, len(alphas), p):
                a, b = alphas[s:s + p], betas[s:s + p]
                rs = self.ev.evaluate_many(lambda j: self.set_point(a[j], b[j]), len(a))
                loss[s:s + len(a)], acc[s:s + len(a)] = [r.loss for r in rs], [r.accuracy for r in rs]
            return loss, acc
        step = self.points_per_batch
        for s in range(0, len(alphas), step):
            sl = slice(s, s + step)
            if step == 1:
                self.set_point(alphas[s], betas[s])
                r = self.ev.evaluate()
                loss[s], acc[s] = r.loss, r.accuracy
            else:
                loss[sl], acc[sl] = self._evaluate_batched(alphas[sl], betas[sl])
        return loss, acc
