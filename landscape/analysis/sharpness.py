"""Sharpness of a minimum from loss evaluations: Keskar et al.'s ε-sharpness (the largest relative loss increase
inside a box around θ, found by projected gradient ascent) and the basin width along a direction (the distance
at which the loss doubles, on each side). Pure functions of loss (and gradient) callables.

Example:
    >>> f = lambda s: 1.0 + s * s          # loss along a direction: doubles at |s| = 1
    >>> [round(x, 6) for x in basin_width(f, tol=1e-9)]
    [1.0, 1.0]
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from ..core.errors import ConfigError

__all__ = ["epsilon_box", "epsilon_sharpness", "basin_width"]

LossGrad = Callable[[torch.Tensor], tuple[float, torch.Tensor]]


def epsilon_box(theta: torch.Tensor, epsilon: float) -> torch.Tensor:
    """Half-widths of Keskar et al.'s box C_ε: ε(|θᵢ| + 1).

    Example:
        >>> epsilon_box(torch.tensor([0.0, -2.0]), 0.5).tolist()
        [0.5, 1.5]
    """
    return epsilon * (theta.abs() + 1.0)


def epsilon_sharpness(loss_grad: LossGrad, theta: torch.Tensor, epsilon: float = 1e-3, steps: int = 10
                      ) -> tuple[float, torch.Tensor]:
    """ε-sharpness (Keskar et al. 2017) in percent: 100 · (max_{δ∈C_ε} L(θ+δ) − L(θ)) / (1 + L(θ)), the maximum
    found by ``steps`` of projected sign-gradient ascent from δ = 0 (step: 2/steps of the box each time, so the
    box's corners are reachable). ``loss_grad(θ)`` returns (loss, gradient). Returns (sharpness, best δ).

    Example:
        >>> lg = lambda t: (float((t * t).sum()), 2 * t)          # L = ‖θ‖², θ = 0: the box corner is best
        >>> s, d = epsilon_sharpness(lg, torch.zeros(2), epsilon=0.5, steps=4)
        >>> round(s, 6), d.tolist()
        (50.0, [0.5, 0.5])
    """
    if epsilon <= 0 or steps < 1:
        raise ConfigError(f"epsilon-sharpness: expected epsilon > 0 and steps >= 1, got {epsilon}, {steps}")
    box = epsilon_box(theta, epsilon)
    base, grad = loss_grad(theta)
    delta = torch.zeros_like(theta)
    best, best_delta = base, delta.clone()
    for _ in range(steps):
        step = torch.sign(grad)
        step[step == 0] = 1.0  # a flat coordinate: move anyway, towards the box's corner
        delta = torch.clamp(delta + (2.0 / steps) * box * step, -box, box)
        value, grad = loss_grad(theta + delta)
        if value > best:
            best, best_delta = value, delta.clone()
    return 100.0 * (best - base) / (1.0 + base), best_delta


def basin_width(loss_at: Callable[[float], float], factor: float = 2.0, start: float = 0.01, limit: float = 100.0,
                tol: float = 1e-3) -> tuple[float, float]:
    """Distances from the centre (s = 0) along a direction to where the loss first reaches ``factor`` times its
    centre value, on the negative and positive side: found by doubling s from ``start`` until the loss is above
    the level, then bisection to ``tol`` (relative). ``inf`` when the level is not reached before ``limit``.

    Example:
        >>> basin_width(lambda s: 1.0 + max(s, 0.0) ** 2, limit=10.0)[0]
        inf
    """
    base = loss_at(0.0)
    if not math.isfinite(base):
        raise ConfigError(f"basin width: the loss at the centre is {base}; nothing to compare with")
    level = factor * base if base > 0 else base + 1.0
    out = []
    for sign in (-1.0, 1.0):
        lo, hi = 0.0, start
        while hi <= limit:
            value = loss_at(sign * hi)
            if value >= level or math.isnan(value):  # NaN counts as reached: the model broke
                break
            lo, hi = hi, hi * 2.0
        if hi > limit:
            out.append(math.inf)
            continue
        while hi - lo > tol * hi:
            mid = 0.5 * (lo + hi)
            value = loss_at(sign * mid)
            if value >= level or math.isnan(value):
                hi = mid
            else:
                lo = mid
        out.append(hi)
    return out[0], out[1]
