"""Curvature at every point of a plane: λmax, λmin (Lanczos) and the trace (Hutchinson) of the Hessian at
θ* + α·d₁ + β·d₂, as Li et al. map |λmin/λmax| to show where a surface is convex.

Points are evaluated a whole row (fixed α, β ascending) at a time: the first point of a row starts the
eigen-solver from a seeded vector, each next one from the previous point's eigenvectors (warm start). Chunks of
whole rows (``chunk_unit``) make every value a function of its row alone — the same whatever the rank count,
chunking or restarts. The trace uses the same seeded probes at every point.

Example:
    >>> from landscape.core.data import load_data
    >>> from landscape.core.models import build_model
    >>> from landscape.engine.evaluator import Evaluator
    >>> from landscape.engine.hessian import HessianOperator
    >>> from landscape.engine.plane import PlaneEvaluator
    >>> _, te = load_data("spiral", n_per_class=10)
    >>> ev = Evaluator(build_model("mlp", te.info(), depth=1, width=4), te, "cpu")
    >>> c = ev.get_flat()
    >>> cm = CurvatureMap(PlaneEvaluator(ev, c, torch.ones_like(c), None), HessianOperator(ev), ["lambda_max"], 3)
    >>> [v.shape for v in cm.evaluate_points(np.zeros(3), np.zeros(3))]
    [(3,)]
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ..analysis.spectrum import extreme_eigenpairs, hutchinson_trace
from ..core.errors import ConfigError
from .hessian import HessianOperator
from .plane import PlaneEvaluator

__all__ = ["CurvatureMap", "MAPS"]

MAPS = ("lambda_max", "lambda_min", "trace")


class CurvatureMap:
    """Evaluates the requested ``quantities`` at plane points, warm-starting along each row."""

    auto = False
    points_per_batch = 1
    batch_mode = "curvature"

    def __init__(self, plane: PlaneEvaluator, op: HessianOperator, quantities: Sequence[str], row_length: int,
                 tol: float = 1e-3, max_iter: int = 100, trace_samples: int = 30, trace_method: str = "hutchinson",
                 seed: int = 0, warm: bool = True):
        bad = [q for q in quantities if q not in MAPS]
        if bad or not quantities:
            raise ConfigError(f"curvature maps: expected some of {list(MAPS)}, got {list(quantities)}")
        self.plane, self.op, self.quantities = plane, op, list(quantities)
        self.chunk_unit = max(1, int(row_length))
        self.tol, self.max_iter, self.seed, self.warm = tol, max_iter, seed, warm
        self.trace_samples, self.trace_method = trace_samples, trace_method
        self.iterations: list[int] = []  # Lanczos iterations per point (for the benchmark and the log)

    def _point(self, start: torch.Tensor | None) -> tuple[dict[str, float], torch.Tensor | None]:
        out: dict[str, float] = {}
        top = 1 if "lambda_max" in self.quantities else 0
        bottom = 1 if "lambda_min" in self.quantities else 0
        vec = None
        if top or bottom:
            eig = extreme_eigenpairs(self.op.matvec, self.op.numel, top, bottom, self.tol, self.max_iter, v0=start,
                                     seed=self.seed, device=self.op.device)
            self.iterations.append(eig.iterations)
            if top:
                out["lambda_max"] = float(eig.values[0])
            if bottom:
                out["lambda_min"] = float(eig.values[top])
            vec = eig.vectors.sum(0)  # one start vector near both ends' eigenvectors
        if "trace" in self.quantities:
            est = hutchinson_trace(self.op.matvec, self.op.numel, self.trace_samples, self.seed, self.trace_method,
                                   self.op.device, matmat=self.op.matmat)
            out["trace"] = est.value
        return out, vec

    def evaluate_points(self, alphas: np.ndarray, betas: np.ndarray) -> tuple[np.ndarray, ...]:
        """The quantities at each (α, β), in :attr:`quantities` order."""
        values = {q: np.empty(len(alphas)) for q in self.quantities}
        start, row = None, None
        for k, (a, b) in enumerate(zip(alphas, betas)):
            if a != row:  # a new row starts cold: its values do not depend on other rows
                start, row = None, a
            self.plane.set_point(float(a), float(b))
            out, vec = self._point(start if self.warm else None)
            start = vec
            for q in self.quantities:
                values[q][k] = out[q]
        self.plane.set_point(0.0, 0.0)
        return tuple(values[q] for q in self.quantities)
