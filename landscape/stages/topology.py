"""``landscape topology FILE...``: the basins, barriers and roughness of stored landscapes (surfaces, lines,
paths, k-dimensional samples: grids by cubical complexes, scattered designs by their neighbourhood graph), each written to ``FILE_topology.h5`` (schema ``landscape.topology``), and the distances between their
persistence diagrams.

Example:
    >>> topology_path("out/surface.h5").as_posix()
    'out/surface_topology.h5'
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..analysis.topology import DISTANCES, Topology, diagram_distance, graph_persistence, persistence
from ..core.errors import ConfigError, StoreError
from ..io.hdf5 import PATH_SCHEMA, SAMPLE_SCHEMA, SURFACE_SCHEMA, file_schema
from ..io.path_file import read_path
from ..io.sample_file import read_sample
from ..io.surface_file import read_surface
from ..io.topology_file import values_checksum, write_topology

__all__ = ["LandscapeTopology", "landscape_topology", "topology_path", "distance_table", "RELATIVE_THRESHOLD"]

#: basins counted as distinct when their barrier exceeds this fraction of the landscape's loss range
RELATIVE_THRESHOLD = 0.01


@dataclass
class LandscapeTopology:
    """One landscape's topology: where it came from (``source``, ``item`` for a path file's row), its axes, the
    :class:`~landscape.analysis.topology.Topology`, the centre's basin (None without a centre point), the
    barrier between a path's ends (None for surfaces) and the file it was written to."""

    source: Path
    item: str | None
    axes: list[np.ndarray]
    axis_names: list[str]
    topology: Topology
    centre: dict[str, Any] | None
    end_barrier: float | None
    path: Path | None
    coefficients: np.ndarray | None = None  # a scattered sample's points (n, k): where its basins lie

    def describe(self, threshold: float = 0.0, relative: float = RELATIVE_THRESHOLD) -> str:
        """A few lines: basin counts, the deepest basins with their minima and barriers, the centre's basin, the
        roughness."""
        t = self.topology
        name = f"{self.source}" + (f" [{self.item}]" if self.item else "")
        bar = max(threshold, relative * t.value_range)
        lines = [f"{name}: loss {t.low:.6g}..{t.high:.6g}, {len(t.basins)} basin(s), {t.count(threshold, relative)} "
                 f"with a barrier above {bar:.3g} ({relative:g} of the range), roughness {t.roughness():.4g}, "
                 f"SMAD {t.smad():.4g}"]
        for i, b in enumerate(t.basins[:5]):
            if self.coefficients is not None:  # a scattered sample: the point and its coefficients
                where = f"point {b.at[0]} (c = " + ", ".join(f"{v:.4g}" for v in self.coefficients[b.at[0]]) + ")"
            else:
                where = ", ".join(f"{n}={float(a[k]):.4g}" for n, a, k in zip(self.axis_names, self.axes, b.at))
            joins = "" if b.merges_into is None else f", joins basin {b.merges_into}"
            barrier = "no barrier inside the sampled region" if not math.isfinite(b.saddle) else \
                f"barrier {b.persistence:.4g} (saddle {b.saddle:.6g}{joins})"
            lines.append(f"  basin {i}: minimum {b.minimum:.6g} at {where}; {barrier}")
        if self.centre is not None:
            c = self.centre
            barrier = "the deepest basin" if not math.isfinite(c["barrier"]) else \
                f"barrier {c['barrier']:.4g}, rise from the centre {c['rise']:.4g}"
            lines.append(f"  centre: in basin {c['basin']} ({100 * c['fraction']:.1f} % of the {'points' if self.coefficients is not None else 'grid'}; {barrier})")
        if self.end_barrier is not None:
            lines.append(f"  barrier between alpha = 0 and 1: {self.end_barrier:.6g} (highest loss between the ends "
                         "above the higher end)")
        return "\n".join(lines)


def topology_path(source: str | Path, item: str | None = None) -> Path:
    """Where the topology of ``source`` (a path file's ``item``) is written: beside it, ``NAME_topology.h5``."""
    source = Path(source)
    tag = "" if item is None else "_" + "".join(c if c.isalnum() or c in "-_." else "_" for c in item)
    return source.with_name(f"{source.stem}{tag}_topology.h5")


def _centre_index(axes: Sequence[np.ndarray]) -> tuple[int, ...] | None:
    """The grid point at the origin (the surface's centre θ*), if the grid holds it."""
    idx = []
    for a in axes:
        hit = np.flatnonzero(np.isclose(a, 0.0, atol=1e-12))
        if not len(hit):
            return None
        idx.append(int(hit[0]))
    return tuple(idx)


def _end_barrier(alpha: np.ndarray, loss: np.ndarray) -> float | None:
    """Mode connectivity's barrier: the highest loss between alpha = 0 and 1 above the higher of the two ends."""
    ends = [np.flatnonzero(np.isclose(alpha, x, atol=1e-12)) for x in (0.0, 1.0)]
    if not all(len(e) for e in ends):
        return None
    i, j = int(ends[0][0]), int(ends[1][0])
    return float(loss[i:j + 1].max() - max(loss[i], loss[j]))


def landscape_topology(source: str | Path, write: bool = True, threshold: float = 0.0,
                       merge_tree: int = 64) -> list[LandscapeTopology]:
    """The topology of a surface or line file (one landscape) or of a path file (one per row: model, layers),
    each written beside it (``write``). A file with points not yet computed is refused.

    Example:
        >>> landscape_topology.__name__  # tested on sums of Gaussians and double wells in tests/stages
        'landscape_topology'
    """
    source = Path(source)
    schema = file_schema(source)
    if schema not in (SURFACE_SCHEMA, PATH_SCHEMA, SAMPLE_SCHEMA):
        raise StoreError(f"{source}: topology reads surface, line, path and sample files (schema landscape.surface, "
                         f"landscape.path or landscape.sample), got {'no HDF5 file' if schema is None else schema}")
    scattered = None  # a scattered sample's coefficients (its topology is its neighbourhood graph's)
    rows: list[tuple[str | None, np.ndarray, list[np.ndarray], list[str]]] = []
    if schema == PATH_SCHEMA:
        p = read_path(source)
        done = p["done"]
        rows = [(name, np.asarray(p["loss"][k], dtype=np.float64), [p["alpha"]], ["alpha"])
                for k, name in enumerate(p["name"])]
    elif schema == SAMPLE_SCHEMA:
        smp = read_sample(source)
        done = smp.done
        if smp.shape is not None:
            rows = [(None, np.asarray(smp.grid_values(), dtype=np.float64), smp.axes,
                     [f"c{i}" for i in range(smp.k)])]
        else:
            scattered = smp.coefficients
            rows = [(None, np.asarray(smp.loss, dtype=np.float64), [np.arange(len(smp.loss), dtype=np.float64)],
                     ["point"])]
    else:
        s = read_surface(source)
        done = s.done
        axes = [s.alpha] if s.beta is None else [s.alpha, s.beta]
        rows = [(None, np.asarray(s.loss, dtype=np.float64).reshape([len(a) for a in axes]), axes,
                 ["alpha", "beta"][:len(axes)])]
    if not done.all():
        raise StoreError(f"{source}: {int((~done).sum())} of {done.size} points are not computed yet; finish "
                         "the run (rerun its command) before its topology")
    out = []
    for item, values, axes, names in rows:
        centre_at = _centre_index(axes) if schema != PATH_SCHEMA and scattered is None else None
        topo = persistence(values, merge_tree, point=centre_at) if scattered is None else \
            graph_persistence(values, scattered)
        centre = topo.basin_of(values, centre_at, threshold) if centre_at is not None else None
        barrier = _end_barrier(axes[0], values) if schema == PATH_SCHEMA else None
        path = topology_path(source, item if schema == PATH_SCHEMA else None) if write else None
        if path is not None:
            counts = {f"relative {r:g}": topo.count(0.0, r) for r in (0.001, RELATIVE_THRESHOLD, 0.1)}
            if threshold:
                counts[f"absolute {threshold:g}"] = topo.count(threshold)
            write_topology(path, topo, {"source": str(source.resolve()), "item": item or "",
                                        "source_checksum": values_checksum(values), "quantity": "loss",
                                        "axes": names, "centre": centre, "thresholds": counts,
                                        "end_barrier": barrier if barrier is not None else math.nan}, axes,
                           scattered)
        out.append(LandscapeTopology(source, item, axes, names, topo, centre, barrier, path, scattered))
    return out


def distance_table(items: Sequence[LandscapeTopology], kind: str = "bottleneck") -> np.ndarray:
    """The matrix of ``kind`` distances (bottleneck or 1-Wasserstein) between the H0 diagrams of ``items``.

    Example:
        >>> distance_table([], "wasserstein").shape
        (0, 0)
    """
    if kind not in DISTANCES:
        raise ConfigError(f"distance: expected one of {list(DISTANCES)}, got {kind!r}")
    n = len(items)
    table = np.zeros((n, n))
    for i in range(n):
        for j in range(i + 1, n):
            table[i, j] = table[j, i] = diagram_distance(items[i].topology, items[j].topology, kind)
    return table
