"""Learned low-loss curves between two minima (Garipov et al. 2018): the maths.

A curve joins θ₀ (t = 0) and θ₁ (t = 1) through a learned bend θ_b:

* ``bezier``: the quadratic Bézier curve φ(t) = (1−t)²θ₀ + 2t(1−t)θ_b + t²θ₁;
* ``polychain``: two straight segments θ₀ → θ_b (t ∈ [0, ½]) and θ_b → θ₁ (t ∈ [½, 1]).

Outside [0, 1] the Bézier polynomial and the two end segments extend naturally, so a curve is evaluated on the
same α grid (which may extrapolate) as the linear and Lagrange paths. θ_b is trained to minimise
E_{t~U(0,1)} L(φ(t)) (see :mod:`landscape.engine.curve` and :mod:`landscape.run.curves`).

For a quadratic loss L(θ) = ½(θ−c)ᵀA(θ−c) with A invertible the optimal bend has a closed form independent of A,
:func:`optimal_bend`: E[b_b(t)(b₀θ₀ + b_bθ_b + b₁θ₁ − c)] = 0 with the basis moments of t ~ U(0, 1).

Example:
    >>> bezier_weights(0.5)
    (0.25, 0.5, 0.25)
    >>> polychain_weights(0.25), polychain_weights(0.75)
    ((0.5, 0.5, 0.0), (0.0, 0.5, 0.5))
    >>> optimal_bend("bezier", 0.0, 0.0, 1.0), optimal_bend("polychain", 0.0, 0.0, 1.0)
    (2.5, 1.5)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import torch

from ..core.errors import ConfigError

__all__ = ["CURVE_KINDS", "bezier_weights", "polychain_weights", "curve_weights", "basis_moments", "optimal_bend",
           "chord_midpoint", "Curve"]

CURVE_KINDS = ("bezier", "polychain")


def bezier_weights(t: float) -> tuple[float, float, float]:
    """Weights of (θ₀, θ_b, θ₁) on the quadratic Bézier curve at ``t``: ((1−t)², 2t(1−t), t²).

    Example:
        >>> bezier_weights(0.0), bezier_weights(1.0)
        ((1.0, 0.0, 0.0), (0.0, 0.0, 1.0))
    """
    return (1.0 - t) ** 2, 2.0 * t * (1.0 - t), t * t


def polychain_weights(t: float) -> tuple[float, float, float]:
    """Weights of (θ₀, θ_b, θ₁) on the two-segment chain at ``t`` (segments extended beyond [0, 1]).

    Example:
        >>> polychain_weights(0.5), polychain_weights(-0.5), polychain_weights(1.5)
        ((0.0, 1.0, 0.0), (2.0, -1.0, 0.0), (0.0, -1.0, 2.0))
    """
    if t < 0.5:
        return 1.0 - 2.0 * t, 2.0 * t, 0.0
    return 0.0, 2.0 - 2.0 * t, 2.0 * t - 1.0


def curve_weights(kind: str, t: float) -> tuple[float, float, float]:
    """Weights of (θ₀, θ_b, θ₁) at ``t`` on a ``bezier`` or ``polychain`` curve.

    Example:
        >>> curve_weights("bezier", 0.25)
        (0.5625, 0.375, 0.0625)
    """
    if kind == "bezier":
        return bezier_weights(t)
    if kind == "polychain":
        return polychain_weights(t)
    raise ConfigError(f"curve kind: expected one of {list(CURVE_KINDS)}, got {kind!r}")


def basis_moments(kind: str) -> tuple[float, float, float, float]:
    """Exact moments over t ~ U(0, 1) of the bend's basis function b_b with the others:
    (E[b_b·b₀], E[b_b²], E[b_b·b₁], E[b_b]).

    Bézier: b_b = 2t(1−t): E[b_b b₀] = 2B(2, 4) = 1/10, E[b_b²] = 4B(3, 3) = 2/15, E[b_b] = 1/3.
    Polychain: b_b = 2t on [0, ½], 2 − 2t on [½, 1]: 1/12, 1/3, 1/12, 1/2.

    Example:
        >>> [round(v, 6) for v in basis_moments("bezier")]
        [0.1, 0.133333, 0.1, 0.333333]
    """
    if kind == "bezier":
        return 1 / 10, 2 / 15, 1 / 10, 1 / 3
    if kind == "polychain":
        return 1 / 12, 1 / 3, 1 / 12, 1 / 2
    raise ConfigError(f"curve kind: expected one of {list(CURVE_KINDS)}, got {kind!r}")


def optimal_bend(kind: str, start: Any, end: Any, center: Any) -> Any:
    """The bend minimising E_t L(φ(t)) for a quadratic loss with minimum ``center`` and an invertible Hessian:
    θ_b = (E[b_b]c − E[b_b b₀]θ₀ − E[b_b b₁]θ₁) / E[b_b²] — for Bézier 2.5c − 0.75(θ₀ + θ₁), for the chain
    1.5c − 0.25(θ₀ + θ₁). Works on floats, arrays and tensors.

    Example:
        >>> optimal_bend("bezier", 1.0, 1.0, 1.0)  # endpoints at the minimum: the curve stays there
        1.0
    """
    basis_moments(kind)  # validates the kind
    # E[b_b]/E[b_b²] and E[b_b b₀]/E[b_b²] (= E[b_b b₁]/E[b_b²] by symmetry), written exactly
    a, b = {"bezier": (2.5, 0.75), "polychain": (1.5, 0.25)}[kind]
    return a * center - b * (start + end)


def chord_midpoint(start: Mapping[str, torch.Tensor], end: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """(θ₀ + θ₁)/2 for floating tensors (others taken from ``end``): where a bend starts, so that the untrained
    Bézier curve is the straight chord.

    Example:
        >>> chord_midpoint({"w": torch.tensor([0., 2.])}, {"w": torch.tensor([2., 4.])})["w"].tolist()
        [1.0, 3.0]
    """
    return {k: ((start[k].double() + v.double()) / 2).to(v.dtype) if v.is_floating_point() else v.clone()
            for k, v in end.items()}


@dataclass
class Curve:
    """A learned curve: its kind, endpoints and bend as state dicts; :meth:`state` gives φ(t) at any t.

    Example:
        >>> c = Curve("bezier", {"w": torch.tensor([0.])}, {"w": torch.tensor([2.])}, {"w": torch.tensor([0.])})
        >>> c.state(0.5)["w"].tolist()
        [1.0]
    """

    kind: str
    start: dict[str, torch.Tensor]
    bend: dict[str, torch.Tensor]
    end: dict[str, torch.Tensor]
    attrs: dict[str, Any] | None = None

    def weights(self, t: float) -> tuple[float, float, float]:
        """Weights of (θ₀, θ_b, θ₁) at ``t``."""
        return curve_weights(self.kind, t)

    def state(self, t: float) -> dict[str, torch.Tensor]:
        """φ(t) as a state dict (non-floating tensors, such as BatchNorm's batch counters, from θ₁)."""
        w0, wb, w1 = self.weights(float(t))
        out = {}
        for k, v1 in self.end.items():
            if v1.is_floating_point():  # the operations of PathEvaluator.set_point, so values agree bitwise
                x = torch.mul(self.start[k].to(v1.dtype), w0)
                if wb:
                    x.add_(self.bend[k].to(v1.dtype), alpha=wb)
                out[k] = x.add_(v1, alpha=w1)
            else:
                out[k] = v1.clone()
        return out
