"""Topology of a sampled loss: sublevel-set persistence of the values on a grid (a line, a plane or k dimensions)
computed by gudhi's cubical complexes, and what it tells: the basins (each minimum and the saddle where it merges
into an older basin), their count above a threshold, the merge tree, the basin of the centre, a roughness summary,
and distances between the diagrams of two landscapes.

The grid's points are the complex's vertices (``CubicalComplex(vertices=...)``): a point is joined to its
neighbours along each axis, and a set {loss ≤ t} grows as t rises. A basin is born at a local minimum and dies at
the saddle where its component joins one with a lower minimum (the elder rule); its persistence is the barrier
between them. The deepest basin never dies (persistence ∞).

Example:
    >>> x = np.linspace(-2, 2, 41)
    >>> f = (x[:, None] ** 2 - 1) ** 2 + 0.5 * x[None, :] ** 2  # a double well: minima at (±1, 0), saddle 1 at 0
    >>> t = persistence(f)
    >>> [(b.minimum, b.saddle) for b in t.basins]
    [(0.0, inf), (0.0, 1.0)]
    >>> t.count(0.5), t.basins[1].saddle_at
    (2, (20, 20))
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..core.errors import LandscapeError
from ..core.optional import require

__all__ = ["Basin", "Topology", "persistence", "basin_region", "diagram_distance", "DISTANCES", "MERGE_TREE_BASINS",
           "graph_persistence", "neighbour_edges"]

DISTANCES = ("bottleneck", "wasserstein")
#: basins whose merges are traced (the most persistent ones): each takes a labelling of the whole grid
MERGE_TREE_BASINS = 64


@dataclass
class Basin:
    """A basin of the sublevel sets: its minimum (value and grid index), the saddle where it merges into an older
    basin (``inf`` and None for the deepest), and the basin it merges into (an index into ``Topology.basins``,
    None when not traced)."""

    minimum: float
    saddle: float
    at: tuple[int, ...]
    saddle_at: tuple[int, ...] | None
    merges_into: int | None = None
    fraction: float | None = None  # of the grid its component of {loss < saddle} covers (traced basins)
    holds_point: bool | None = None  # whether that component holds ``Topology.point`` (traced, a point given)

    @property
    def persistence(self) -> float:
        """The barrier: how far the loss rises from the minimum before the basin joins a deeper one."""
        return self.saddle - self.minimum


@dataclass
class Topology:
    """The sublevel-set persistence of one sampled landscape: ``basins`` (H0, most persistent first),
    ``pairs`` (n, 2) birth and death of every class with ``dims`` (n,) their dimensions (H0, H1, ...), and the
    range of the values."""

    basins: list[Basin]
    pairs: np.ndarray
    dims: np.ndarray
    low: float
    high: float
    shape: tuple[int, ...] = field(default=())
    point: tuple[int, ...] | None = None  # the point whose basin the merge tracing recorded (the centre)

    @property
    def value_range(self) -> float:
        return self.high - self.low

    def count(self, threshold: float = 0.0, relative: float = 0.0) -> int:
        """Basins with persistence above ``threshold`` and above ``relative`` × the range of the values (the deepest
        always counts).

        Example:
            >>> persistence(np.array([0.0, 2.0, 1.0, 3.0, 0.5])).count(1.5)  # (0, ∞), (0.5, 3); not (1, 2)
            2
        """
        bar = max(threshold, relative * self.value_range)
        return sum(1 for b in self.basins if b.persistence > bar)

    def roughness(self) -> float:
        """The total persistence of the finite basins over the range of the values: 0 for a landscape with one
        basin (a convex bowl), growing with the number and depth of the others.

        Example:
            >>> persistence(np.array([0.0, 1.0, 2.0])).roughness()
            0.0
        """
        total = sum(b.persistence for b in self.basins if math.isfinite(b.saddle))
        return total / self.value_range if self.value_range > 0 else 0.0

    def smad(self, normalize: bool = False) -> float:
        """Landscaper's smoothness metric read on the merge tree, the saddle–minimum average distance: the mean,
        over the basins' minima, of the rise to the first saddle where the basin's component meets another (a
        basin that younger ones join rises only to the lowest of their saddles); 0 for a single basin.
        ``normalize``: each rise over the range of the values. Basins beyond the ``MERGE_TREE_BASINS`` traced
        ones count their own saddle. Landscaper reads its edges off a contour tree, whose minima can end at a
        split of the superlevel sets instead: then the two differ.

        Example:
            >>> persistence(np.array([0.0, 2.0, 0.5, 3.0])).smad()  # both minima rise to the saddle 2
            1.75
        """
        if len(self.basins) < 2:
            return 0.0
        first = [b.saddle for b in self.basins]
        for b in self.basins:
            if b.merges_into is not None and math.isfinite(b.saddle):
                first[b.merges_into] = min(first[b.merges_into], b.saddle)
        rises = [f - b.minimum for f, b in zip(first, self.basins) if math.isfinite(f)]
        scale = self.value_range if normalize and self.value_range > 0 else 1.0
        return float(np.mean(rises)) / scale if rises else 0.0

    def basin_of(self, values: np.ndarray, point: tuple[int, ...], threshold: float = 0.0) -> dict:
        """The basin ``point`` lies in: the most local of the most persistent basins (``MERGE_TREE_BASINS``) with
        persistence above ``threshold`` whose component of {loss < saddle} holds it (the deepest basin, covering
        everything, when none does). Returns its index, the fraction of the grid it covers, its barrier
        (saddle − minimum) and the rise from the point to the saddle (``inf`` for the deepest basin: no barrier
        inside the sampled region). For the point given to :func:`persistence` it reads what the merge tracing
        recorded; other points label the grid again.

        Example:
            >>> v = np.array([0.0, 2.0, 1.0, 3.0, 0.5])
            >>> persistence(v).basin_of(v, (4,))
            {'basin': 1, 'fraction': 0.2, 'barrier': 2.5, 'rise': 2.5, 'minimum': 0.5}
        """
        best = None
        traced = self.basins[:MERGE_TREE_BASINS + 1]  # the most persistent (noise has 1000s)
        known = tuple(point) == self.point and all(b.holds_point is not None for b in traced if b.saddle_at)
        for i, b in enumerate(traced):
            if not math.isfinite(b.saddle) or b.persistence <= threshold or b.saddle <= float(values[point]):
                continue
            if known:  # recorded while the merges were traced: no labelling again
                if b.holds_point and (best is None or b.saddle < best[1].saddle):
                    best = (i, b, float(b.fraction))
                continue
            region = basin_region(values, b.at, b.saddle)
            if region[point] and (best is None or b.saddle < best[1].saddle):
                best = (i, b, float(region.mean()))
        if best is None:
            deep = self.basins[0]
            return {"basin": 0, "fraction": 1.0, "barrier": math.inf, "rise": math.inf, "minimum": deep.minimum}
        i, b, frac = best
        return {"basin": i, "fraction": frac, "barrier": b.persistence, "rise": b.saddle - float(values[point]),
                "minimum": b.minimum}


def basin_region(values: np.ndarray, at: tuple[int, ...], saddle: float) -> np.ndarray:
    """The basin of the minimum at ``at`` as a mask of the grid: its component of {loss < ``saddle``}, points
    joined to their neighbours along the axes (as the vertices of a cubical complex are).

    Example:
        >>> basin_region(np.array([0.0, 2.0, 1.0, 1.5, 3.0, 0.5]), (2,), 2.0).tolist()
        [False, False, True, True, False, False]
    """
    ndimage = require("scipy.ndimage")
    comps, _ = ndimage.label(values < saddle, structure=ndimage.generate_binary_structure(values.ndim, 1))
    return comps == comps[at] if comps[at] else np.zeros(values.shape, dtype=bool)


def persistence(values: np.ndarray, merge_tree: int = MERGE_TREE_BASINS,
                point: tuple[int, ...] | None = None) -> Topology:
    """Sublevel-set persistence of ``values`` sampled on a grid of any dimension (gudhi's cubical complex on the
    points as vertices): every basin with its minimum and saddle, and the merges of the ``merge_tree`` most
    persistent ones (which older basin each joins, the fraction of the grid each covers and, with ``point``,
    whether it holds that point: what :meth:`Topology.basin_of` needs for it, from one labelling per basin).

    Example:
        >>> t = persistence(np.array([3.0, 1.0, 2.0, 0.0, 4.0]))
        >>> [(b.minimum, b.saddle, b.at, b.merges_into) for b in t.basins]
        [(0.0, inf, (3,), None), (1.0, 2.0, (1,), 0)]
    """
    gudhi = require("gudhi", "topology")
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0 or not np.isfinite(values).all():
        bad = int((~np.isfinite(values)).sum())
        raise LandscapeError(f"topology needs a finite value at every grid point; {bad} of {values.size} are not "
                             "(an unfinished surface: resume it first, or a diverged loss: clip it with zmax)")
    shape = values.shape
    cc = gudhi.CubicalComplex(vertices=values)
    cc.compute_persistence(homology_coeff_field=2)  # pairs of zero persistence left out
    regular, essential = cc.vertices_of_persistence_pairs()
    flat = values.ravel(order="F")  # gudhi numbers the vertices with the first axis fastest

    def index(v: int) -> tuple[int, ...]:
        return tuple(int(i) for i in np.unravel_index(int(v), shape, order="F"))

    basins = [Basin(float(flat[v]), math.inf, index(v), None) for v in (essential[0] if essential else [])]
    if regular and len(regular[0]):
        basins += [Basin(float(flat[b]), float(flat[d]), index(b), index(d)) for b, d in regular[0]]
    basins.sort(key=lambda b: (-b.persistence, b.minimum, b.at))
    pairs, dims = [], []
    for dim, (birth, death) in cc.persistence():
        pairs.append((birth, death))
        dims.append(dim)
    topo = Topology(basins, np.array(pairs, dtype=np.float64).reshape(-1, 2), np.array(dims, dtype=np.int64),
                    float(values.min()), float(values.max()), shape,
                    None if point is None else tuple(int(i) for i in point))
    _trace_merges(topo, values, merge_tree)
    return topo


def _trace_merges(topo: Topology, values: np.ndarray, limit: int) -> None:
    """Which basin each of the ``limit`` most persistent finite basins joins at its saddle: the component of
    {loss < saddle} beside the saddle that does not hold the basin's own minimum, named by that component's
    minimum (ties in value broken as gudhi breaks them is not needed: the older basin is the lower one)."""
    ndimage = require("scipy.ndimage")
    owner = {b.at: i for i, b in enumerate(topo.basins)}
    structure = ndimage.generate_binary_structure(values.ndim, 1)
    for i, b in enumerate(topo.basins[:limit + 1]):
        if b.saddle_at is None:
            continue
        comps, _ = ndimage.label(values < b.saddle, structure=structure)
        own = comps[b.at]
        b.fraction = float(np.mean(comps == own))
        if topo.point is not None:
            b.holds_point = bool(own) and bool(comps[topo.point] == own)
        others = set()
        for axis in range(values.ndim):
            for step in (-1, 1):
                n = list(b.saddle_at)
                n[axis] += step
                if 0 <= n[axis] < values.shape[axis] and comps[tuple(n)] and comps[tuple(n)] != own:
                    others.add(int(comps[tuple(n)]))
        best = None
        for c in others:  # the deepest neighbouring component is the older basin (the elder rule)
            where = np.flatnonzero((comps == c).ravel())
            j = where[np.argmin(values.ravel()[where])]
            at = tuple(int(k) for k in np.unravel_index(j, values.shape))
            if best is None or values[at] < values[best]:
                best = at
        if best is not None:
            b.merges_into = owner.get(best)


def diagram_distance(a: Topology, b: Topology, kind: str = "bottleneck", order: float = 1.0,
                     dim: int = 0) -> float:
    """The bottleneck or ``order``-Wasserstein distance between two landscapes' persistence diagrams in
    dimension ``dim`` (gudhi; the deepest basins' infinite classes are matched with each other).

    Example:
        >>> t1 = persistence(np.array([0.0, 2.0, 1.0, 3.0]))
        >>> t2 = persistence(np.array([0.0, 2.5, 1.0, 3.0]))
        >>> round(diagram_distance(t1, t2), 9), round(diagram_distance(t1, t2, "wasserstein"), 9)
        (0.5, 0.5)
    """
    if kind not in DISTANCES:
        raise LandscapeError(f"diagram distance: expected one of {list(DISTANCES)}, got {kind!r}")
    gudhi = require("gudhi", "topology")
    da, db = (t.pairs[t.dims == dim] for t in (a, b))
    if kind == "bottleneck":
        return float(gudhi.bottleneck_distance(da, db))
    hera = require("gudhi.hera", "topology")
    return float(hera.wasserstein_distance(da, db, order=order))


def neighbour_edges(coords: np.ndarray, neighbours: int) -> np.ndarray:
    """The edges ``(m, 2)`` (i < j, sorted, unique) joining each point of ``coords`` ``(n, k)`` to its
    ``neighbours`` nearest others (Euclidean): the neighbourhood graph of a scattered sample.

    Example:
        >>> neighbour_edges(np.array([[0.0], [1.0], [3.0]]), 1).tolist()
        [[0, 1], [1, 2]]
    """
    spatial = require("scipy.spatial")
    coords = np.asarray(coords, dtype=np.float64)
    n = len(coords)
    if n < 2:
        return np.zeros((0, 2), dtype=np.int64)
    _, idx = spatial.cKDTree(coords).query(coords, k=min(n, neighbours + 1))
    i = np.repeat(np.arange(n), idx.shape[1] - 1)
    j = idx[:, 1:].reshape(-1)
    edges = np.sort(np.stack([i, j], axis=1), axis=1)
    return np.unique(edges[edges[:, 0] != edges[:, 1]], axis=0)


def graph_persistence(values: np.ndarray, coords: np.ndarray, neighbours: int | None = None) -> Topology:
    """Sublevel-set persistence (H0) of ``values`` at scattered points ``coords`` ``(n, k)``: gudhi's simplex tree
    of the neighbourhood graph (:func:`neighbour_edges`, ``neighbours`` defaults to 2k), each vertex entering at its
    value and each edge at the higher of its ends. A basin's ``at`` and ``saddle_at`` are point numbers.

    Example:
        >>> x = np.linspace(-2, 2, 41)[:, None]
        >>> t = graph_persistence(((x[:, 0] ** 2 - 1) ** 2), x, 2)  # a double well: two basins, barrier 1
        >>> [(b.minimum, b.saddle) for b in t.basins]
        [(0.0, inf), (0.0, 1.0)]
    """
    gudhi = require("gudhi", "topology")
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    coords = np.asarray(coords, dtype=np.float64).reshape(len(values), -1)
    if values.size == 0 or not np.isfinite(values).all():
        bad = int((~np.isfinite(values)).sum())
        raise LandscapeError(f"topology needs a finite value at every point; {bad} of {values.size} are not")
    edges = neighbour_edges(coords, neighbours or 2 * coords.shape[1])
    st = gudhi.SimplexTree()
    st.insert_batch(np.arange(len(values))[None, :], values)
    if len(edges):
        st.insert_batch(edges.T, np.maximum(values[edges[:, 0]], values[edges[:, 1]]))
    st.compute_persistence(homology_coeff_field=2, persistence_dim_max=False)
    basins = []
    for birth, death in st.persistence_pairs():
        if len(birth) != 1:
            continue  # H0 classes are born at a vertex
        b = int(birth[0])
        if not death:
            basins.append(Basin(float(values[b]), math.inf, (b,), None))
            continue
        s = max((int(v) for v in death), key=lambda v: (values[v], v))  # the saddle: the edge's higher end
        if values[s] > values[b]:
            basins.append(Basin(float(values[b]), float(values[s]), (b,), (s,)))
    basins.sort(key=lambda b: (-b.persistence, b.minimum, b.at))
    pairs = [(b.minimum, b.saddle) for b in basins]
    topo = Topology(basins, np.array(pairs, dtype=np.float64).reshape(-1, 2), np.zeros(len(pairs), np.int64),
                    float(values.min()), float(values.max()), (len(values),))
    _trace_graph_merges(topo, values, edges, MERGE_TREE_BASINS)
    return topo


def _trace_graph_merges(topo: Topology, values: np.ndarray, edges: np.ndarray, limit: int) -> None:
    """:func:`_trace_merges` on a graph: the components of {loss < saddle} (scipy's connected components of the
    graph's edges within it) name the older basin each of the ``limit`` most persistent basins joins, and the
    fraction of the points each covers."""
    csgraph = require("scipy.sparse.csgraph")
    sparse = require("scipy.sparse")
    n = len(values)
    owner = {b.at: i for i, b in enumerate(topo.basins)}
    for b in topo.basins[:limit + 1]:
        if b.saddle_at is None:
            continue
        inside = values < b.saddle
        keep = inside[edges[:, 0]] & inside[edges[:, 1]]
        e = edges[keep]
        graph = sparse.coo_matrix((np.ones(len(e)), (e[:, 0], e[:, 1])), shape=(n, n))
        _, labels = csgraph.connected_components(graph, directed=False)
        own = labels[b.at[0]]
        b.fraction = float(np.mean(inside & (labels == own)))
        s = b.saddle_at[0]
        nbrs = np.concatenate([edges[edges[:, 0] == s, 1], edges[edges[:, 1] == s, 0]])
        others = {int(labels[v]) for v in nbrs if inside[v] and labels[v] != own}
        best = None
        for c in others:  # the deepest neighbouring component is the older basin (the elder rule)
            where = np.flatnonzero(inside & (labels == c))
            j = int(where[np.argmin(values[where])])
            if best is None or values[j] < values[best]:
                best = j
        if best is not None:
            b.merges_into = owner.get((best,))
