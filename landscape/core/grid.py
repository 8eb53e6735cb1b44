"""Grids of (alpha, beta) coordinates: ``MIN:MAX:NUM`` ranges, 1-D lines and flat point indices.

``loss[i, j]`` is the value at ``(alpha[i], beta[j])`` (``indexing="ij"``); point ``k`` of a grid
is ``np.unravel_index(k, grid.shape)`` (C order). A 1-D grid has no beta and shape ``(n_alpha,)``.

Example:
    >>> g = Grid(parse_range("-1:1:3"), parse_range("0:1:2"))
    >>> g.shape, g.coords([0, 5])
    ((3, 2), (array([-1.,  1.]), array([0., 1.])))
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np

from .errors import ConfigError

__all__ = ["parse_range", "Grid", "chunked", "MAX_POINTS"]

#: the most points a grid may have (its values, accuracies and done mask take 17 bytes per point in memory)
MAX_POINTS = 100_000_000


def parse_range(text: str | Sequence[float]) -> np.ndarray:
    """``"MIN:MAX:NUM"`` → ``NUM`` evenly spaced values including both ends (a list is taken as is).

    Example:
        >>> parse_range("0:1:5").tolist()
        [0.0, 0.25, 0.5, 0.75, 1.0]
    """
    if not isinstance(text, str):
        arr = np.asarray(text, dtype=np.float64)
        if arr.ndim != 1 or arr.size == 0 or not np.all(np.isfinite(arr)):
            raise ConfigError(f"grid coordinates: expected a non-empty list of finite numbers, got {text!r}")
        return arr
    parts = text.split(":")
    try:
        if len(parts) != 3:
            raise ValueError
        lo, hi, num = float(parts[0]), float(parts[1]), int(parts[2])
    except ValueError:
        raise ConfigError(f"grid range {text!r}: expected MIN:MAX:NUM, e.g. -1:1:25") from None
    if num > MAX_POINTS:
        raise ConfigError(f"grid range {text!r}: {num:,} points on one axis; at most {MAX_POINTS:,} points fit a "
                          "surface file (and in memory): use fewer points, or several files over parts of the range")
    if num < 1 or not (np.isfinite(lo) and np.isfinite(hi)):
        raise ConfigError(f"grid range {text!r}: expected finite MIN, MAX and NUM >= 1")
    if num == 1 and lo != hi:
        raise ConfigError(f"grid range {text!r}: a single point needs MIN == MAX (e.g. 0:0:1)")
    if num > 1 and hi <= lo:
        raise ConfigError(f"grid range {text!r}: expected MIN < MAX")
    return np.linspace(lo, hi, num)


@dataclass(frozen=True)
class Grid:
    """Coordinates of a 2-D grid (or a 1-D line when ``beta`` is None)."""

    alpha: np.ndarray
    beta: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.alpha),) if self.beta is None else (len(self.alpha), len(self.beta))

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    def coords(self, flat: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(alpha, beta) values of flat point indices (beta is 0 on a 1-D line)."""
        idx = np.unravel_index(np.asarray(flat, dtype=np.int64), self.shape)
        a = self.alpha[idx[0]]
        b = self.beta[idx[1]] if self.beta is not None else np.zeros_like(a)
        return a, b


def chunked(items: np.ndarray, size: int) -> Iterator[np.ndarray]:
    """Consecutive pieces of at most ``size`` items.

    Example:
        >>> [c.tolist() for c in chunked(np.arange(5), 2)]
        [[0, 1], [2, 3], [4]]
    """
    for i in range(0, len(items), max(1, size)):
        yield items[i:i + size]
