"""Designs of k-dimensional samples: the coefficients ``c`` of the points θ* + Σᵢ cᵢ·dᵢ a sample evaluates.

- ``grid``: the product of ``k`` axes (each ``MIN:MAX:NUM``), points in C order (the last axis fastest), so the
  values reshape to a k-dimensional array (its topology by cubical complexes);
- ``sobol`` / ``halton``: scipy's scrambled low-discrepancy sequences (``scipy.stats.qmc``, seeded) in a ``box``
  (each coefficient in ``[lo, hi]``) or a ``ball`` (radius ``hi``, centred on θ*: the radius from one coordinate,
  the direction from Gaussian quantiles of the others).

A design is fixed by its text (:meth:`Design.describe`) and seed: every rank and every rerun computes the same
coefficients bitwise, and the file keeps them (``/coefficients``) with their checksum.

Example:
    >>> d = Design.grid(["-1:1:3", "0:1:2"])
    >>> d.size, d.shape, d.coefficients()[:3].tolist()
    (6, (3, 2), [[-1.0, 0.0], [-1.0, 1.0], [0.0, 0.0]])
    >>> s = Design.low_discrepancy("sobol", k=4, points=64, lo=-1, hi=1, seed=0)
    >>> c = s.coefficients(); c.shape, bool((abs(c) <= 1).all())
    ((64, 4), True)
"""
from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass

import numpy as np

from .errors import ConfigError
from .grid import parse_range
from .optional import require

__all__ = ["Design", "DESIGNS", "REGIONS", "coefficients_checksum", "parse_design"]

DESIGNS = ("grid", "sobol", "halton")
REGIONS = ("box", "ball")


def coefficients_checksum(c: np.ndarray) -> str:
    """A short checksum of a design's coefficients (float64, C order).

    Example:
        >>> coefficients_checksum(np.zeros((2, 2))) == coefficients_checksum(np.zeros((2, 2)))
        True
    """
    return hashlib.sha256(np.ascontiguousarray(c, dtype=np.float64).tobytes()).hexdigest()[:16]


@dataclass(frozen=True)
class Design:
    """Where a k-dimensional sample's points lie: ``kind`` (``grid``, ``sobol``, ``halton``), ``k`` dimensions;
    a grid's ``axes`` (one ``MIN:MAX:NUM`` text per dimension), or a sequence's ``points`` in ``region``
    (``box``: each coefficient in ``[lo, hi]``; ``ball``: radius ``hi``) with its ``seed``."""

    kind: str
    k: int
    axes: tuple[str, ...] = ()
    points: int = 0
    region: str = "box"
    lo: float = -1.0
    hi: float = 1.0
    seed: int = 0

    @classmethod
    def grid(cls, axes: list[str] | tuple[str, ...]) -> "Design":
        """The product of ``axes`` (one ``MIN:MAX:NUM`` each)."""
        for a in axes:
            parse_range(a)  # validated now
        return cls("grid", len(axes), tuple(axes))

    @classmethod
    def low_discrepancy(cls, kind: str, k: int, points: int, lo: float = -1.0, hi: float = 1.0,
                        region: str = "box", seed: int = 0) -> "Design":
        """``points`` of scipy's scrambled ``kind`` sequence (``sobol`` or ``halton``) in ``region``."""
        problems = []
        if kind not in ("sobol", "halton"):
            problems.append(f"design: expected 'sobol' or 'halton', got {kind!r}")
        if region not in REGIONS:
            problems.append(f"region: expected one of {list(REGIONS)}, got {region!r}")
        if points < 1:
            problems.append(f"points: expected >= 1, got {points}")
        if region == "box" and not lo < hi:
            problems.append(f"range: expected MIN < MAX, got {lo} and {hi}")
        if region == "ball" and not hi > 0:
            problems.append(f"radius (the range's MAX): expected > 0, got {hi}")
        if problems:
            raise ConfigError(problems)
        return cls(kind, int(k), (), int(points), region, float(lo), float(hi), int(seed))

    @property
    def size(self) -> int:
        """The number of points."""
        return int(np.prod(self.shape)) if self.kind == "grid" else self.points

    @property
    def shape(self) -> tuple[int, ...] | None:
        """A grid's shape (points per axis), None for a sequence."""
        if self.kind != "grid":
            return None
        return tuple(len(parse_range(a)) for a in self.axes)

    def axis_values(self) -> list[np.ndarray]:
        """A grid's axes as arrays."""
        return [np.asarray(parse_range(a), np.float64) for a in self.axes]

    def describe(self) -> str:
        """The design as text, for a file's inputs.

        Example:
            >>> Design.low_discrepancy("halton", 3, 100, region="ball", hi=2.0, seed=5).describe()
            'halton k=3 points=100 ball radius=2.0 seed=5'
        """
        if self.kind == "grid":
            return "grid " + " x ".join(self.axes)
        where = f"ball radius={self.hi}" if self.region == "ball" else f"box [{self.lo}, {self.hi}]"
        return f"{self.kind} k={self.k} points={self.points} {where} seed={self.seed}"

    def coefficients(self) -> np.ndarray:
        """The points' coefficients, ``(size, k)`` float64 (the same bits on every machine and run)."""
        if self.kind == "grid":
            mesh = np.meshgrid(*self.axis_values(), indexing="ij")
            return np.stack([m.reshape(-1) for m in mesh], axis=1)
        qmc, norm = require("scipy.stats.qmc"), require("scipy.stats").norm  # slow to import: only when used
        dim = self.k + 1 if self.region == "ball" else self.k
        engine = (qmc.Sobol(dim, scramble=True, seed=self.seed) if self.kind == "sobol"
                  else qmc.Halton(dim, scramble=True, seed=self.seed))
        with warnings.catch_warnings():  # any number of points is allowed (a power of 2 balances Sobol' best)
            warnings.simplefilter("ignore", UserWarning)
            u = engine.random(self.points)
        if self.region == "box":
            return self.lo + (self.hi - self.lo) * u
        eps = np.finfo(np.float64).eps
        g = norm.ppf(np.clip(u[:, 1:], eps, 1 - eps))  # Gaussian coordinates: a uniform direction
        g /= np.maximum(np.linalg.norm(g, axis=1, keepdims=True), eps)
        radius = self.hi * u[:, :1] ** (1.0 / self.k)  # uniform in volume
        return radius * g


def parse_design(kind: str, k: int, ranges: list[str], points: int, region: str, seed: int) -> Design:
    """The design of a ``[sample]`` section or ``ls.sample`` call: a grid of ``ranges`` (one, repeated for every
    dimension, or one per dimension), or a sequence in the box/ball of the first range's MIN and MAX.

    Example:
        >>> parse_design("grid", 3, ["-1:1:5"], 0, "box", 0).shape
        (5, 5, 5)
        >>> parse_design("sobol", 2, ["-0.5:0.5"], 8, "box", 0).describe()
        'sobol k=2 points=8 box [-0.5, 0.5] seed=0'
    """
    if k < 1:
        raise ConfigError(f"sample: expected k >= 1 directions, got {k}")
    if kind not in DESIGNS:
        raise ConfigError(f"sample design: expected one of {list(DESIGNS)}, got {kind!r}")
    if len(ranges) not in (1, k):
        raise ConfigError(f"sample ranges: expected 1 or k={k} ranges (MIN:MAX:NUM), got {len(ranges)}")
    if kind == "grid":
        return Design.grid(list(ranges) * k if len(ranges) == 1 else list(ranges))
    lo, hi = _bounds(ranges[0])
    return Design.low_discrepancy(kind, k, points, lo, hi, region, seed)


def _bounds(text: str) -> tuple[float, float]:
    """``MIN:MAX`` (a ``:NUM`` after them is ignored: a sequence has its own number of points)."""
    parts = str(text).split(":")
    try:
        if len(parts) not in (2, 3):
            raise ValueError
        lo, hi = float(parts[0]), float(parts[1])
    except ValueError:
        raise ConfigError(f"sample range {text!r}: expected MIN:MAX, e.g. -1:1") from None
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise ConfigError(f"sample range {text!r}: expected finite MIN and MAX")
    return lo, hi
