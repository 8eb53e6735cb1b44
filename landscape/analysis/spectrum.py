"""Spectra of a symmetric operator known only through its products H·v: extreme eigenpairs by Lanczos with full
reorthogonalisation, the trace by Hutchinson's estimator (or Hutch++) with its standard error, and the spectral
density by stochastic Lanczos quadrature (SLQ). Pure functions of a ``matvec`` on flat float64 tensors; the
Hessian of a loss is one such operator (:mod:`landscape.engine.hessian`).

Example:
    >>> lam = torch.tensor([5.0, 2.0, 1.0, -3.0], dtype=torch.float64)
    >>> r = extreme_eigenpairs(lambda v: lam * v, 4, top_k=1, bottom_k=1, tol=1e-10)
    >>> [round(x, 6) for x in r.values.tolist()], r.converged
    ([5.0, -3.0], True)
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from ..core.errors import ConfigError

__all__ = ["MatVec", "MatMat", "Eigenpairs", "lanczos", "extreme_eigenpairs", "TraceEstimate", "hutchinson_trace",
           "slq_density", "TRACE_METHODS"]

MatVec = Callable[[torch.Tensor], torch.Tensor]
MatMat = Callable[[torch.Tensor], torch.Tensor]  # H·V for the rows of V [m, n]
TRACE_METHODS = ("hutchinson", "hutch++")


def _unit(v: torch.Tensor) -> torch.Tensor:
    return v / v.norm()


def lanczos(matvec: MatVec, v0: torch.Tensor, steps: int) -> tuple[np.ndarray, np.ndarray, torch.Tensor]:
    """``steps`` Lanczos iterations from ``v0`` with full reorthogonalisation (twice, classical Gram–Schmidt):
    the tridiagonal T (diagonal ``alpha``, off-diagonal ``beta``) and the orthonormal basis Q [m, n] with
    QᵀHQ = T. Stops early on an invariant subspace.

    Example:
        >>> a, b, q = lanczos(lambda v: 2.0 * v, torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64), 3)
        >>> a.tolist(), b.tolist(), q.shape
        ([2.0], [], torch.Size([1, 3]))
    """
    q = _unit(v0.to(torch.float64))
    basis = [q]
    alpha: list[float] = []
    beta: list[float] = []
    for j in range(steps):
        w = matvec(q).to(torch.float64)
        a = float(torch.dot(w, q))
        alpha.append(a)
        if j == steps - 1:
            break
        w = w - a * q - (beta[-1] * basis[-2] if beta else 0.0)
        stack = torch.stack(basis)
        for _ in range(2):  # full reorthogonalisation against every earlier vector
            w = w - stack.T @ (stack @ w)
        b = float(w.norm())
        scale = max(abs(x) for x in alpha) or 1.0
        if b <= 1e-12 * scale:  # an invariant subspace: T's eigenvalues are exact
            break
        beta.append(b)
        q = w / b
        basis.append(q)
    return np.array(alpha), np.array(beta), torch.stack(basis[:len(alpha)])


@dataclass
class Eigenpairs:
    """Eigenvalues (top ones descending, then bottom ones ascending), unit eigenvectors [k, n] in the same order,
    Lanczos iterations used, the residual ‖Hv − λv‖ bound of each, the tolerance asked and whether it was met."""

    values: np.ndarray
    vectors: torch.Tensor
    iterations: int
    residuals: np.ndarray
    tol: float
    converged: bool


def extreme_eigenpairs(matvec: MatVec, n: int, top_k: int = 1, bottom_k: int = 0, tol: float = 1e-6,
                       max_iter: int = 200, v0: torch.Tensor | None = None, seed: int = 0,
                       device: str | torch.device = "cpu", check_every: int = 1) -> Eigenpairs:
    """The ``top_k`` largest and ``bottom_k`` smallest eigenpairs of a symmetric operator of size ``n``, by
    Lanczos with full reorthogonalisation, grown until every wanted Ritz pair has a residual
    ‖HQs − θQs‖ = |β_m s_m| ≤ ``tol``·max|θ| (or ``max_iter``, or n, iterations). ``v0`` warm-starts it (e.g. the
    eigenvector of a neighbouring point); else a seeded Gaussian start. ``check_every``: iterations between
    convergence checks (each an eigen-decomposition of the small tridiagonal T, cheap next to one H·v).

    Repeated eigenvalues are returned as often as they occur: one Krylov space holds one vector of each
    eigenspace, so where two or more pairs are wanted on a side, further runs in the complement of the pairs found
    (deflation by locking) look for more, until a run finds none better (by more than the tolerance) than the
    pairs kept: one more run per side in the usual case of distinct values. ``iterations`` counts the products of
    all runs.

    Example:
        >>> d = torch.arange(1.0, 11.0, dtype=torch.float64)
        >>> r = extreme_eigenpairs(lambda v: d * v, 10, top_k=2, tol=1e-9)
        >>> [round(x, 6) for x in r.values.tolist()]
        [10.0, 9.0]
        >>> d = torch.tensor([3.0, 3.0, 1.0, 0.0, 0.0, 0.0], dtype=torch.float64)
        >>> [round(x, 6) + 0.0 for x in extreme_eigenpairs(lambda v: d * v, 6, 2, 2, tol=1e-9).values.tolist()]
        [3.0, 3.0, 0.0, 0.0]
    """
    if top_k < 0 or bottom_k < 0 or top_k + bottom_k < 1 or top_k + bottom_k > n:
        raise ConfigError(f"eigenpairs: expected 1 <= top_k + bottom_k <= {n} (the operator's size), got "
                          f"top_k={top_k}, bottom_k={bottom_k}")
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(n, generator=g, dtype=torch.float64).to(device)
    # a warm start keeps a little of every direction, or an exact eigenvector would hide the others
    q = _unit(noise if v0 is None or float(v0.norm()) == 0.0 else
              _unit(v0.to(device, torch.float64)) + 1e-2 * _unit(noise))
    limit = max(min(max_iter, n), top_k + bottom_k)
    vals, vecs, iters, res, done = _krylov(matvec, n, top_k, bottom_k, tol, limit, q, g, check_every, None)
    top = [(float(vals[i]), vecs[i], float(res[i])) for i in range(top_k)]
    bottom = [(float(vals[top_k + i]), vecs[top_k + i], float(res[top_k + i])) for i in range(bottom_k)]
    found = list(vecs)  # every pair found stays locked: a later run never finds it again
    scale = max([abs(v) for v, _, _ in top + bottom] + [1e-300])
    # a run that spanned the whole space saw every eigenvalue as often as it occurs
    while (top_k >= 2 or bottom_k >= 2) and len(found) < n and iters < n:
        more_top, more_bottom = int(top_k >= 2), int(bottom_k >= 2)  # the best remaining pair of each side
        free = n - len(found)
        more_top, more_bottom = min(more_top, free), min(more_bottom, max(free - more_top, 0))
        if more_top + more_bottom == 0:
            break
        locked = torch.stack(found)
        start = torch.randn(n, generator=g, dtype=torch.float64).to(device)
        for _ in range(2):
            start = start - locked.T @ (locked @ start)
        limit = max(min(max_iter, free), more_top + more_bottom)
        v2, q2, it2, r2, d2 = _krylov(matvec, n, more_top, more_bottom, tol, limit, _unit(start), g, check_every,
                                      locked)
        iters += it2
        found += list(q2)
        margin = tol * scale
        new_top = [(float(v2[i]), q2[i], float(r2[i])) for i in range(more_top)]
        new_bottom = [(float(v2[more_top + i]), q2[more_top + i], float(r2[more_top + i])) for i in range(more_bottom)]
        entered = False
        if new_top and new_top[0][0] > top[-1][0] + margin:
            top = sorted(top + [p for p in new_top if p[0] > top[-1][0] + margin], key=lambda p: -p[0])[:top_k]
            entered, done = True, done and d2
        if new_bottom and new_bottom[0][0] < bottom[-1][0] - margin:
            bottom = sorted(bottom + [p for p in new_bottom if p[0] < bottom[-1][0] - margin],
                            key=lambda p: p[0])[:bottom_k]
            entered, done = True, done and d2
        if not entered:
            break
    pairs = top + bottom
    return Eigenpairs(np.array([p[0] for p in pairs]), torch.stack([p[1] for p in pairs]), iters,
                      np.array([p[2] for p in pairs]), tol, bool(done))


def _krylov(matvec: MatVec, n: int, top_k: int, bottom_k: int, tol: float, limit: int, q: torch.Tensor,
            g: torch.Generator, check_every: int, locked: torch.Tensor | None
            ) -> tuple[np.ndarray, torch.Tensor, int, np.ndarray, bool]:
    """One Lanczos run from the unit vector ``q`` in the complement of the ``locked`` vectors (kept orthogonal to
    them): the wanted Ritz values (top descending, then bottom ascending), their unit vectors, the iterations,
    the residuals and whether all met the tolerance."""
    k = top_k + bottom_k
    size = n - (0 if locked is None else len(locked))
    basis, alpha, beta = [q], [], []
    for j in range(limit):
        w = matvec(q).to(torch.float64)
        a = float(torch.dot(w, q))
        alpha.append(a)
        w = w - a * q - (beta[-1] * basis[-2] if beta else 0.0)
        stack = torch.stack(basis) if locked is None else torch.cat([locked, torch.stack(basis)])
        for _ in range(2):  # full reorthogonalisation against every earlier (and every locked) vector
            w = w - stack.T @ (stack @ w)
        b = float(w.norm())
        m = len(alpha)
        invariant = b <= 1e-12 * max(max(abs(x) for x in alpha), 1e-300)
        last = j == limit - 1 or m == size
        if m >= k and (m % check_every == 0 or last):
            theta, s = np.linalg.eigh(np.diag(alpha) + np.diag(beta, 1) + np.diag(beta, -1))
            want = list(range(m - 1, m - 1 - top_k, -1)) + list(range(bottom_k))
            res = np.zeros(k) if invariant else np.abs(b * s[-1, want])
            # an invariant subspace may still miss directions (a repeated eigenvalue): only the whole space ends it
            done = (res <= tol * max(float(np.abs(theta).max()), 1e-300)).all() and (not invariant or m == size)
            if done or last:
                break
        if invariant:  # the Krylov space is exhausted: continue from a fresh orthogonal vector
            w = torch.randn(n, generator=g, dtype=torch.float64).to(q.device)
            for _ in range(2):
                w = w - stack.T @ (stack @ w)
            b, w = 0.0, _unit(w)
        beta.append(b)
        q = w / b if b else w
        basis.append(q)
    vecs = torch.from_numpy(s[:, want].T.copy()).to(q) @ torch.stack(basis[:m])
    vecs = vecs / vecs.norm(dim=1, keepdim=True)
    return theta[want], vecs, m, res, bool(done)


@dataclass
class TraceEstimate:
    """A stochastic trace estimate, its standard error, the method and the number of H·v products used."""

    value: float
    stderr: float
    method: str
    matvecs: int


def hutchinson_trace(matvec: MatVec, n: int, samples: int = 100, seed: int = 0, method: str = "hutchinson",
                     device: str | torch.device = "cpu", matmat: MatMat | None = None,
                     block: int = 16) -> TraceEstimate:
    """tr(H) from ``samples`` products: Hutchinson's zᵀHz over Rademacher z (standard error: the sample standard
    deviation / √samples), or Hutch++ (Meyer et al. 2021): a third of the products find the dominant subspace Q,
    whose trace tr(QᵀHQ) is exact, the rest estimate the deflated remainder by Hutchinson. ``matmat`` (H·V for
    the rows of V, each row as ``matvec`` gives it): the products ``block`` vectors at a time, the same values.

    Example:
        >>> d = torch.arange(1.0, 6.0, dtype=torch.float64)
        >>> t = hutchinson_trace(lambda v: d * v, 5, samples=10)
        >>> t.value, t.stderr  # diagonal: every Rademacher sample gives the exact trace
        (15.0, 0.0)
    """
    if method not in TRACE_METHODS:
        raise ConfigError(f"trace method: expected one of {list(TRACE_METHODS)}, got {method!r}")
    if samples < 2:
        raise ConfigError(f"trace samples: expected at least 2 (for a standard error), got {samples}")
    g = torch.Generator().manual_seed(seed)

    def rademacher(k: int) -> torch.Tensor:
        return (torch.randint(0, 2, (k, n), generator=g, dtype=torch.float64) * 2 - 1).to(device)

    def products(z: torch.Tensor) -> torch.Tensor:  # H·zᵢ for the rows of z
        if matmat is None:
            return torch.stack([matvec(zi).to(torch.float64) for zi in z])
        return torch.cat([matmat(z[i:i + block]).to(torch.float64) for i in range(0, len(z), block)])

    def quadratic(z: torch.Tensor) -> torch.Tensor:  # zᵢᵀHzᵢ
        return torch.stack([torch.dot(zi, hz) for zi, hz in zip(z, products(z))])

    if method == "hutchinson":
        vals = quadratic(rademacher(samples))
        return TraceEstimate(float(vals.mean()), float(vals.std() / math.sqrt(samples)), method, samples)
    k = max(1, samples // 3)
    rest = max(2, samples - 2 * k)
    sketch = products(rademacher(k))  # [k, n]
    q, _ = torch.linalg.qr(sketch.T)  # [n, k]
    exact = sum(float(x) for x in quadratic(q.T.contiguous()))
    z = rademacher(rest)
    z = z - (z @ q) @ q.T  # deflated
    vals = quadratic(z)
    return TraceEstimate(exact + float(vals.mean()), float(vals.std() / math.sqrt(rest)), method, 2 * k + rest)


def slq_density(matvec: MatVec, n: int, runs: int = 4, steps: int = 40, points: int = 200, sigma: float | None = None,
                seed: int = 0, device: str | torch.device = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """Spectral density of H by stochastic Lanczos quadrature (Ghorbani et al. 2019): ``runs`` Lanczos runs of
    ``steps`` from random unit vectors give nodes θᵢ and weights τᵢ = (s₀ᵢ)²; the density is their Gaussian-
    broadened average (width ``sigma``, default 1 % of the spectrum's span) on ``points`` grid points. It
    integrates to 1 over the grid.

    Example:
        >>> d = torch.tensor([1.0, 1.0, 4.0, 4.0], dtype=torch.float64)
        >>> grid, dens = slq_density(lambda v: d * v, 4, runs=2, steps=4, points=301)
        >>> round(float(np.trapezoid(dens, grid)), 3)
        1.0
    """
    g = torch.Generator().manual_seed(seed)
    nodes, weights = [], []
    for _ in range(runs):
        v = torch.randn(n, generator=g, dtype=torch.float64).to(device)
        a, b, _ = lanczos(matvec, v, min(steps, n))
        t = np.diag(a) + np.diag(b, 1) + np.diag(b, -1)
        theta, s = np.linalg.eigh(t)
        nodes.append(theta)
        weights.append(s[0] ** 2)
    th, w = np.concatenate(nodes), np.concatenate(weights) / runs
    lo, hi = float(th.min()), float(th.max())
    span = max(hi - lo, abs(hi), 1e-12)
    width = sigma if sigma is not None else 0.01 * span
    grid = np.linspace(lo - 5 * width, hi + 5 * width, points)
    dens = (w[None, :] * np.exp(-0.5 * ((grid[:, None] - th[None, :]) / width) ** 2)).sum(1) / (
        width * math.sqrt(2 * math.pi))
    return grid, dens / np.trapezoid(dens, grid)
