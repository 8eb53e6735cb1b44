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
from functools import partial
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


def _rows(matvec: MatVec, matmat: MatMat | None, q: torch.Tensor) -> torch.Tensor:
    """H·qᵢ for the rows of ``q`` (float64): by ``matmat`` at once when given (and more than one row), else one by
    one."""
    if matmat is not None and len(q) > 1:
        return matmat(q).to(torch.float64)
    return torch.stack([matvec(qi).to(torch.float64) for qi in q])


def lanczos(matvec: MatVec, v0: torch.Tensor, steps: int) -> tuple[np.ndarray, np.ndarray, torch.Tensor]:
    """``steps`` Lanczos iterations from ``v0`` with full reorthogonalisation (twice, classical Gram–Schmidt):
    the tridiagonal T (diagonal ``alpha``, off-diagonal ``beta``) and the orthonormal basis Q [m, n] with
    QᵀHQ = T. Stops early on an invariant subspace.

    Example:
        >>> a, b, q = lanczos(lambda v: 2.0 * v, torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64), 3)
        >>> a.tolist(), b.tolist(), q.shape
        ([2.0], [], torch.Size([1, 3]))
    """
    ((alpha, beta, basis),) = _lanczos_together(matvec, None, v0.to(torch.float64)[None], steps)
    return alpha, beta, basis


@dataclass
class Eigenpairs:
    """Eigenvalues (top ones descending, then bottom ones ascending), unit eigenvectors [k, n] in the same order,
    the products H·v used (all runs), the residual ‖Hv − λv‖ bound of each, the tolerance asked, whether it was
    met and the vectors per block Lanczos step."""

    values: np.ndarray
    vectors: torch.Tensor
    iterations: int
    residuals: np.ndarray
    tol: float
    converged: bool
    block: int = 1


def extreme_eigenpairs(matvec: MatVec, n: int, top_k: int = 1, bottom_k: int = 0, tol: float = 1e-6,
                       max_iter: int = 200, v0: torch.Tensor | None = None, seed: int = 0,
                       device: str | torch.device = "cpu", check_every: int = 1, block: int | None = None,
                       matmat: MatMat | None = None) -> Eigenpairs:
    """The ``top_k`` largest and ``bottom_k`` smallest eigenpairs of a symmetric operator of size ``n``, by
    (block) Lanczos with full reorthogonalisation, grown until every wanted Ritz pair has a residual
    ‖Hy − θy‖ ≤ ``tol``·max|θ| (or ``max_iter`` products, or n). ``v0`` warm-starts it (e.g. the eigenvector of a
    neighbouring point); else a seeded Gaussian start. ``check_every``: blocks between convergence checks (each an
    eigen-decomposition of the small projected matrix, cheap next to one H·v).

    ``block`` vectors grow the Krylov space at a time, their products taken together by ``matmat`` (H·V for the
    rows of V; default: ``matvec`` row by row). By default (None or 0) the block is the larger of ``top_k`` and
    ``bottom_k`` (at most 16) when ``matmat`` is given, else 1: without products taken together, single vectors
    with deflation need fewer products. A block of p vectors holds up to p vectors of each eigenspace, so repeated
    eigenvalues come back as often as they occur, up to p times in one run. Where more pairs are wanted on a side
    than the block holds, further runs in the complement of the pairs found (deflation by locking) look for more,
    until a run finds none better (by more than the tolerance) than the pairs kept. ``iterations`` counts the
    products of all runs.

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
    auto = min(max(top_k, bottom_k), 16) if matmat is not None else 1
    width = auto if block is None or block <= 0 else int(block)
    width = max(1, min(width, n))
    products = partial(_rows, matvec, matmat)

    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(width, n, generator=g, dtype=torch.float64).to(device)
    if v0 is not None and float(v0.norm()) > 0.0:
        # a warm start keeps a little of every direction, or an exact eigenvector would hide the others
        noise[0] = _unit(_unit(v0.to(device, torch.float64)) + 1e-2 * _unit(noise[0]))
    start = _orthonormal_rows(noise, None, g)
    limit = max(min(max_iter, n), top_k + bottom_k)
    vals, vecs, iters, res, done = _krylov(products, n, top_k, bottom_k, tol, limit, start, g, check_every, None)
    top = [(float(vals[i]), vecs[i], float(res[i])) for i in range(top_k)]
    bottom = [(float(vals[top_k + i]), vecs[top_k + i], float(res[top_k + i])) for i in range(bottom_k)]
    found = list(vecs)  # every pair found stays locked: a later run never finds it again
    scale = max([abs(v) for v, _, _ in top + bottom] + [1e-300])
    # a run that spanned the whole space saw every eigenvalue as often as it occurs
    while (top_k > width or bottom_k > width) and len(found) < n and iters < n:
        more_top, more_bottom = int(top_k > width), int(bottom_k > width)  # the best remaining pair of each side
        free = n - len(found)
        more_top, more_bottom = min(more_top, free), min(more_bottom, max(free - more_top, 0))
        if more_top + more_bottom == 0:
            break
        locked = torch.stack(found)
        fresh = torch.randn(min(width, free), n, generator=g, dtype=torch.float64).to(device)
        limit = max(min(max_iter, free), more_top + more_bottom)
        v2, q2, it2, r2, d2 = _krylov(products, n, more_top, more_bottom, tol, limit,
                                      _orthonormal_rows(fresh, locked, g), g, check_every, locked)
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
                      np.array([p[2] for p in pairs]), tol, bool(done), width)


def _orthonormal_rows(w: torch.Tensor, against: torch.Tensor | None, g: torch.Generator, orthogonal: bool = False,
                      rtol: float = 1e-10) -> torch.Tensor:
    """The rows of ``w`` made orthonormal to each other and to the rows of ``against`` (classical Gram–Schmidt
    twice, unless ``orthogonal`` says they already are, then a QR); a row that falls inside the span of the
    others is replaced by a fresh random one."""
    for _ in range(4):
        norms = w.norm(dim=1).clamp_min(1e-300)
        if not orthogonal and against is not None and len(against):
            for _ in range(2):
                w = w - (w @ against.T) @ against
        q, r = torch.linalg.qr(w.T)  # [n, p], [p, p]
        weak = r.diagonal().abs() <= rtol * norms
        if not bool(weak.any()):
            break
        w, orthogonal = torch.where(weak[:, None], torch.randn(w.shape, generator=g, dtype=w.dtype).to(w.device),
                                    q.T), False
    return q.T.contiguous()


def _krylov(products: MatMat, n: int, top_k: int, bottom_k: int, tol: float, limit: int, start: torch.Tensor,
            g: torch.Generator, check_every: int, locked: torch.Tensor | None
            ) -> tuple[np.ndarray, torch.Tensor, int, np.ndarray, bool]:
    """One block Lanczos run from the orthonormal rows ``start`` [p, n] (p = 1: Lanczos) in the complement of
    the ``locked`` vectors (kept orthogonal to them): the wanted Ritz values (top descending, then bottom
    ascending), their unit vectors, the products used, the residuals and whether all met the tolerance.

    The projected matrix T = QHQᵀ is assembled from the products themselves (each new block's column against
    every basis vector), and a Ritz vector y = sQ has the residual ‖Rᵀs_last‖, R the last block's products
    with their components along the basis and the locked vectors removed (exact with full
    reorthogonalisation, whatever T's structure)."""
    k = top_k + bottom_k
    size = n - (0 if locked is None else len(locked))
    q = start
    basis: list[torch.Tensor] = []
    t = np.zeros((0, 0))
    m = 0
    for j in range(limit):
        p = min(len(q), size - m, max(limit - m, 1))
        q = q[:p]
        w = products(q)
        basis.append(q)
        stack = torch.cat(basis)
        m = len(stack)
        col = (stack @ w.T).cpu().numpy()  # [m, p]: the new block's column of T
        grown = np.zeros((m, m))
        grown[:m - p, :m - p] = t
        grown[:, m - p:] = col
        grown[m - p:, :m - p] = col[:m - p].T
        grown[m - p:, m - p:] = (col[m - p:] + col[m - p:].T) / 2
        t = grown
        full = stack if locked is None else torch.cat([locked, stack])
        r = w
        for _ in range(2):  # full reorthogonalisation against every earlier (and every locked) vector
            r = r - (r @ full.T) @ full
        gram = (r @ r.T).cpu().numpy()
        scale = max(float(np.abs(np.diag(t)).max()), 1e-300)
        invariant = bool(np.sqrt(max(float(np.diag(gram).max()), 0.0)) <= 1e-12 * scale)
        last = m >= limit or m >= size
        if m >= k and (j % check_every == 0 or last or invariant):
            theta, s = np.linalg.eigh(t)
            want = list(range(m - 1, m - 1 - top_k, -1)) + list(range(bottom_k))
            tail = s[m - p:, want]  # the last block's coefficients of each wanted Ritz vector
            res = np.zeros(k) if invariant else np.sqrt(np.maximum(np.einsum("ik,ij,jk->k", tail, gram, tail), 0.0))
            # an invariant subspace may still miss directions (a repeated eigenvalue): only the whole space ends it
            done = bool((res <= tol * max(float(np.abs(theta).max()), 1e-300)).all()) and (not invariant or m == size)
            if done or last:
                break
        q = _orthonormal_rows(r, full, g, orthogonal=True)
    vecs = torch.from_numpy(s[:, want].T.copy()).to(stack) @ stack
    vecs = vecs / vecs.norm(dim=1, keepdim=True)
    return theta[want], vecs, m, res, done


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
                seed: int = 0, device: str | torch.device = "cpu", matmat: MatMat | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
    """Spectral density of H by stochastic Lanczos quadrature (Ghorbani et al. 2019): ``runs`` Lanczos runs of
    ``steps`` from random unit vectors give nodes θᵢ and weights τᵢ = (s₀ᵢ)²; the density is their Gaussian-
    broadened average (width ``sigma``, default 1 % of the spectrum's span) on ``points`` grid points. It
    integrates to 1 over the grid. The runs advance together, so that ``matmat`` (H·V for the rows of V) takes
    the products of all runs' vectors at once; without it ``matvec`` takes them one by one (the same values).

    Example:
        >>> d = torch.tensor([1.0, 1.0, 4.0, 4.0], dtype=torch.float64)
        >>> grid, dens = slq_density(lambda v: d * v, 4, runs=2, steps=4, points=301)
        >>> round(float(np.trapezoid(dens, grid)), 3)
        1.0
    """
    g = torch.Generator().manual_seed(seed)
    starts = torch.stack([torch.randn(n, generator=g, dtype=torch.float64) for _ in range(runs)]).to(device)
    nodes, weights = [], []
    for a, b, _ in _lanczos_together(matvec, matmat, starts, min(steps, n)):
        theta, s = np.linalg.eigh(np.diag(a) + np.diag(b, 1) + np.diag(b, -1))
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


def _lanczos_together(matvec: MatVec, matmat: MatMat | None, starts: torch.Tensor, steps: int
                      ) -> list[tuple[np.ndarray, np.ndarray, torch.Tensor]]:
    """Independent Lanczos runs (full reorthogonalisation, each in its own basis) from the rows of ``starts``,
    advanced in lockstep: each step takes the products of every running run's vector in one ``matmat``. Returns
    each run's tridiagonal (alpha, beta) and orthonormal basis [m, n]; a run that reaches an invariant subspace
    stops there."""
    runs = len(starts)
    q = starts / starts.norm(dim=1, keepdim=True)
    bases: list[list[torch.Tensor]] = [[q[i]] for i in range(runs)]
    alpha: list[list[float]] = [[] for _ in range(runs)]
    beta: list[list[float]] = [[] for _ in range(runs)]
    running = list(range(runs))
    for j in range(steps):
        current = torch.stack([bases[i][-1] for i in running])
        hq = _rows(matvec, matmat, current)
        still = []
        for i, w, v in zip(running, hq, current):
            a = float(torch.dot(w, v))
            alpha[i].append(a)
            if j == steps - 1:
                continue
            w = w - a * v - (beta[i][-1] * bases[i][-2] if beta[i] else 0.0)
            stack = torch.stack(bases[i])
            for _ in range(2):
                w = w - stack.T @ (stack @ w)
            b = float(w.norm())
            if b <= 1e-12 * (max(abs(x) for x in alpha[i]) or 1.0):  # an invariant subspace: exact
                continue
            beta[i].append(b)
            bases[i].append(w / b)
            still.append(i)
        running = still
        if not running:
            break
    return [(np.array(alpha[i]), np.array(beta[i][:len(alpha[i]) - 1]), torch.stack(bases[i][:len(alpha[i])]))
            for i in range(runs)]
