"""The sample evaluator: points θ* + Σᵢ cᵢ·dᵢ for k ≥ 1 directions, the coefficients taken from a design.

:class:`SampleEvaluator` is the plane evaluator with k directions: the same in-place fused ops (θ* copied, then
``cᵢ·dᵢ`` added for every non-zero coefficient, in order), the same batch modes (one point at a time, threads,
``auto``, passes over streamed data) and the first convolution's tables (one per direction). A point is named by
its index in the design (``evaluate_points(indices, _)``), so runners and the MPI master hand out indices as they
do a grid's, and every rank looks the coefficients up in its own copy of the design. The points of a design with
``c₃ = … = c_k = 0`` are formed by exactly the ops of the plane of d₁, d₂: their values equal the surface's bitwise.

Example:
    >>> import torch
    >>> from landscape.core.data import TensorData
    >>> data = TensorData(torch.randn(32, 4), torch.arange(32) % 3, "classification", 3, name="toy")
    >>> ev = Evaluator(torch.nn.Linear(4, 3), data, "cpu")
    >>> c = ev.get_flat(); dirs = [torch.randn_like(c) for _ in range(3)]
    >>> coeffs = np.array([[0.0, 0.0, 0.0], [0.5, -0.5, 0.25]])
    >>> s = SampleEvaluator(ev, c, dirs, coeffs)
    >>> loss, acc = s.evaluate_points(np.arange(2.0), np.zeros(2))
    >>> bool(abs(loss[1] - ev.evaluate(s.state_at(1, 0)).loss) < 1e-5)
    True
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ..core.errors import LandscapeError
from .evaluator import Evaluator
from .plane import PlaneEvaluator

__all__ = ["SampleEvaluator"]


class SampleEvaluator(PlaneEvaluator):
    """Evaluates the points ``θ* + Σᵢ coefficients[n, i]·directions[i]`` of a design, named by their index n."""

    def __init__(self, evaluator: Evaluator, center: torch.Tensor, directions: Sequence[torch.Tensor],
                 coefficients: np.ndarray, points_per_batch: int | str = 1, points_per_pass: int = 8,
                 input_tables: bool = True):
        coefficients = np.asarray(coefficients, np.float64)
        if coefficients.ndim != 2 or coefficients.shape[1] != len(directions) or not len(directions):
            raise LandscapeError(f"sample: expected coefficients of shape (points, {len(directions)}) for "
                                 f"{len(directions)} direction(s), got {coefficients.shape}")
        self.coefficients = coefficients
        super().__init__(evaluator, center, directions[0], None, points_per_batch, points_per_pass, input_tables,
                         directions=list(directions))

    def _replica(self) -> "SampleEvaluator":
        return SampleEvaluator(self.ev.replica(), self.center, self.dirs, self.coefficients, 1, input_tables=False)

    def _coefficient_rows(self, alphas: np.ndarray, betas: np.ndarray) -> np.ndarray:
        """The design's rows of point numbers ``alphas``."""
        return self.coefficients[np.asarray(alphas, np.int64)]

    def _coefficients(self, alpha: float, beta: float) -> tuple[float, ...]:
        """Point number ``alpha``'s row of the design (``beta`` is not used)."""
        return tuple(self.coefficients[int(alpha)])
