"""The merge tree of a landscape's basins and its 1-D topological profile, as plain coordinates for any plotter.

Both read the basins of :func:`landscape.analysis.topology.persistence` as arrays (each basin's minimum, the saddle
where it merges, the basin it merges into, and the fraction of the grid its component covers), so they work on a
stored topology file as well.

- :func:`merge_tree_segments`: the tree drawn as line segments. Each basin is a vertical line from its minimum up to
  its saddle, joined there by a horizontal line to the basin it merges into; the deepest basin rises to ``top``.
- :func:`topological_profile`: a 1-D curve with one valley per basin (Landscaper's topological profile): a valley
  is as deep as its basin (from its rim, the saddle, down to its minimum) and as wide as the fraction of the grid
  the basin covers, and the basins that merge into it are valleys on its slope, at their saddle's height.

Example:
    >>> minima, saddles, into = [0.0, 1.0], [float("inf"), 2.0], [-1, 0]
    >>> merge_tree_segments(minima, saddles, into, top=3.0)
    [((0.0, 0.0), (0.0, 3.0)), ((1.0, 1.0), (1.0, 2.0)), ((1.0, 2.0), (0.0, 2.0))]
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

__all__ = ["tree_order", "merge_tree_segments", "topological_profile"]


def _children(into: Sequence[int], keep: Sequence[int]) -> dict[int, list[int]]:
    kept = set(keep)
    out: dict[int, list[int]] = {i: [] for i in keep}
    for i in keep:
        parent = int(into[i])
        if parent >= 0 and parent in kept and parent != i:
            out[parent].append(i)
    return out


def tree_order(minima: Sequence[float], saddles: Sequence[float], into: Sequence[int],
               keep: Sequence[int] | None = None) -> list[int]:
    """The kept basins in drawing order: the deepest first, each followed by the basins that merge into it (the
    highest saddle first, each with its own subtree). Basins whose parent is not kept start trees of their own.

    Example:
        >>> tree_order([0.0, 1.0, 0.5], [math.inf, 2.0, 3.0], [-1, 0, 0])
        [0, 2, 1]
    """
    keep = list(range(len(minima))) if keep is None else [int(i) for i in keep]
    kids = _children(into, keep)
    roots = [i for i in keep if int(into[i]) < 0 or int(into[i]) not in kids or int(into[i]) == i]
    order: list[int] = []

    def visit(i: int) -> None:
        order.append(i)
        for c in sorted(kids[i], key=lambda c: (-saddles[c], minima[c], c)):
            visit(c)

    for r in sorted(roots, key=lambda r: (minima[r], r)):
        visit(r)
    return order


def merge_tree_segments(minima: Sequence[float], saddles: Sequence[float], into: Sequence[int],
                        top: float, keep: Sequence[int] | None = None) -> list[tuple[tuple[float, float],
                                                                                       tuple[float, float]]]:
    """Line segments ``((x0, y0), (x1, y1))`` of the merge tree: basin k of :func:`tree_order` at x = k, a vertical
    line from its minimum to its saddle (``top`` for a basin that never merges) and a horizontal one at the saddle
    to the x of the basin it merges into.

    Example:
        >>> segs = merge_tree_segments([0.0, 1.0, 0.5], [math.inf, 2.0, 3.0], [-1, 0, 0], top=4.0)
        >>> [s for s in segs if s[0][1] == s[1][1]]  # the horizontal joins: basin 2 at x 1, basin 1 at x 2
        [((1.0, 3.0), (0.0, 3.0)), ((2.0, 2.0), (0.0, 2.0))]
    """
    order = tree_order(minima, saddles, into, keep)
    x = {i: float(k) for k, i in enumerate(order)}
    segments = []
    for i in order:
        end = saddles[i] if math.isfinite(saddles[i]) else top
        segments.append(((x[i], float(minima[i])), (x[i], float(end))))
        parent = int(into[i])
        if math.isfinite(saddles[i]) and parent in x and parent != i:
            segments.append(((x[i], float(saddles[i])), (x[parent], float(saddles[i]))))
    return segments


def topological_profile(minima: Sequence[float], saddles: Sequence[float], into: Sequence[int],
                        fractions: Sequence[float], top: float, keep: Sequence[int] | None = None,
                        floor: float = 0.02) -> tuple[np.ndarray, np.ndarray]:
    """The profile as (x, y) points over x in [0, 1]: the deepest basin's valley spans the whole width with its rim
    at ``top``; every basin's valley is ``fractions[i]`` of the width (its own floor at least ``floor`` of it),
    descending from its rim to its minimum, with the valleys of the basins that merge into it on its left slope
    at the height of their saddles. A basin not traced (NaN fraction) gets the floor width.

    Example:
        >>> x, y = topological_profile([0.0, 1.0], [math.inf, 2.0], [-1, 0], [1.0, 0.25], top=3.0)
        >>> list(zip(x.round(3).tolist(), y.tolist()))
        [(0.0, 3.0), (0.0, 2.0), (0.125, 1.0), (0.25, 2.0), (0.625, 0.0), (1.0, 3.0)]
    """
    order = tree_order(minima, saddles, into, keep)
    kids = _children(into, order)
    width = {i: (float(fractions[i]) if np.isfinite(fractions[i]) and fractions[i] > 0 else floor) for i in order}
    for i in order:
        if int(into[i]) < 0 or not math.isfinite(saddles[i]):
            width[i] = 1.0
    points: list[tuple[float, float]] = []

    def valley(i: int, x0: float, w: float, rim: float) -> None:
        points.append((x0, rim))
        inner = sorted(kids[i], key=lambda c: (-saddles[c], minima[c], c))
        want = sum(width[c] for c in inner)
        scale = min(1.0, (1.0 - floor) * w / want) if want > 0 else 1.0  # room for the basin's own floor
        x = x0
        for c in inner:
            valley(c, x, width[c] * (w / width[i]) * scale, float(saddles[c]))  # widths are of the whole grid
            x = points[-1][0]
        own = x0 + w - x
        points.append((x + own / 2, float(minima[i])))
        points.append((x0 + w, rim))

    roots = [i for i in order if int(into[i]) < 0 or int(into[i]) not in kids]
    x0 = 0.0
    for r in roots:
        w = 1.0 / len(roots)
        valley(r, x0, w, float(top))
        x0 += w
    xs, ys = np.array([p[0] for p in points]), np.array([p[1] for p in points])
    return xs, ys
