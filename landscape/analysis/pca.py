"""PCA directions from a recorded trajectory and projections of checkpoints onto a plane.

The rows of the trajectory matrix are m_e = θ_e − θ_final for the chosen checkpoints (restricted to the
tensors a direction may move). Its principal axes are found through the small n×n Gram matrix of the
column-centred rows, G_c = H M Mᵀ H (H = I − 11ᵀ/n), streamed from the HDF5 store in blocks of rows:
with G_c = U Λ Uᵀ, the k-th axis is v_k = Σ_e u_ek m_e / √λ_k (Σ_e u_ek = 0, so centring needs no extra pass)
and its explained variance ratio λ_k / Σλ, as scikit-learn's PCA gives. Memory: the n×n Gram matrix, two
blocks of rows and two direction vectors in float64 — never the dense n × n_state matrix.

Example:
    >>> import torch
    >>> rows = [torch.tensor([2., 0., 0.]), torch.tensor([0., 1., 0.]), torch.tensor([0., 0., 0.])]
    >>> (d1, d2), ratio = pca_directions(lambda i: rows[i], 3)
    >>> [round(abs(float(v)), 3) for v in d1], round(float(ratio[0]), 3)
    ([0.957, 0.29, 0.0], 0.861)
"""
from __future__ import annotations

import logging
from typing import Callable, Sequence

import numpy as np
import torch

from ..core.errors import LandscapeError

__all__ = ["pca_directions", "project", "PROJECTIONS"]

log = logging.getLogger(__name__)

PROJECTIONS = ("lstsq", "cos")


def pca_directions(row: Callable[[int], torch.Tensor], n: int, count: int = 2, block: int = 16
                   ) -> tuple[list[torch.Tensor], np.ndarray]:
    """Top ``count`` principal axes (unit vectors, float32) of the rows ``row(0..n-1)``, and the
    explained variance ratios of all components (sorted, descending)."""
    if n < count + 1:
        raise LandscapeError(f"PCA needs at least {count + 1} checkpoints, the trajectory gives {n}; "
                             "train longer or checkpoint every N steps (train.checkpoint_every_steps)")
    gram = np.zeros((n, n))
    blocks = [list(range(s, min(n, s + block))) for s in range(0, n, block)]
    for bi, rows_i in enumerate(blocks):
        mi = torch.stack([row(i).double() for i in rows_i])
        gram[np.ix_(rows_i, rows_i)] = (mi @ mi.T).numpy()
        for rows_j in blocks[bi + 1:]:
            mj = torch.stack([row(j).double() for j in rows_j])
            g = (mi @ mj.T).numpy()
            gram[np.ix_(rows_i, rows_j)] = g
            gram[np.ix_(rows_j, rows_i)] = g.T
    h = np.eye(n) - 1.0 / n
    lam, u = np.linalg.eigh(h @ gram @ h)
    order = np.argsort(lam)[::-1]
    lam, u = np.clip(lam[order], 0.0, None), u[:, order]
    total = lam.sum()
    if total <= 0:
        raise LandscapeError("the checkpoints do not move: every row of the trajectory matrix is equal")
    if lam[count - 1] <= 1e-12 * total:
        raise LandscapeError(f"the trajectory spans fewer than {count} dimensions; PCA cannot give {count} axes")
    axes = [torch.zeros_like(row(0), dtype=torch.float64) for _ in range(count)]
    for i in range(n):
        r = row(i).double()
        for k in range(count):
            axes[k] += u[i, k] * r
    out = []
    for k in range(count):
        v = axes[k] / np.sqrt(lam[k])
        v = v / v.norm()
        # a deterministic sign: the largest-magnitude entry is positive (as scikit-learn's svd_flip)
        if v[v.abs().argmax()] < 0:
            v = -v
        out.append(v.float())
    return out, lam / total


def project(x: torch.Tensor, d1: torch.Tensor, d2: torch.Tensor | None, method: str = "lstsq") -> tuple[float, float]:
    """Coordinates of the displacement ``x`` (θ − θ*) in the plane of d₁, d₂.

    ``lstsq``: the (α, β) minimising |x − α d₁ − β d₂| (orthogonal projection onto the plane);
    ``cos``: each direction alone, α = x·d₁ / |d₁|² (the coordinate along d₁, so θ* + α d₁ is the foot of the
    projection; loss-landscape's ``cos`` projection divides by |d₁| instead, a length that equals α only for a
    unit direction).

    Example:
        >>> d1, d2 = torch.tensor([1., 0., 0.]), torch.tensor([1., 1., 0.])
        >>> project(torch.tensor([3., 2., 5.]), d1, d2)
        (1.0, 2.0)
    """
    if method not in PROJECTIONS:
        raise LandscapeError(f"projection: expected one of {list(PROJECTIONS)}, got {method!r}")
    x, a = x.double(), d1.double()
    if d2 is None:
        return float(x @ a / (a @ a)), 0.0
    b = d2.double()
    if method == "cos":
        return float(x @ a / (a @ a)), float(x @ b / (b @ b))
    g = torch.tensor([[a @ a, a @ b], [a @ b, b @ b]], dtype=torch.float64)
    rhs = torch.tensor([x @ a, x @ b], dtype=torch.float64)
    c = torch.linalg.solve(g, rhs)
    return float(c[0]), float(c[1])


def projected_path(vectors: Callable[[int], torch.Tensor], n: int, center: torch.Tensor, d1: torch.Tensor,
                   d2: torch.Tensor | None, method: str = "lstsq", mask: torch.Tensor | None = None
                   ) -> np.ndarray:
    """(n, 2) coordinates of every checkpoint ``vectors(i)`` relative to ``center``."""
    m = mask if mask is not None else torch.ones_like(center, dtype=torch.bool)
    return np.array([project((vectors(i) - center) * m, d1, d2, method) for i in range(n)])


def auto_range(values: Sequence[float], num: int, margin: float = 0.25) -> str:
    """A ``MIN:MAX:NUM`` range that covers ``values`` with ``margin`` of their span on each side.

    Example:
        >>> auto_range([0.0, 2.0], 5)
        '-0.5:2.5:5'
    """
    lo, hi = float(np.min(values)), float(np.max(values))
    span = max(hi - lo, 1e-3 * max(abs(lo), abs(hi), 1.0))
    return f"{lo - margin * span:.6g}:{hi + margin * span:.6g}:{num}"
