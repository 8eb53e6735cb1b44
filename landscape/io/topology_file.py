"""Topology files (``landscape.topology``): the sublevel-set persistence of one stored landscape (a surface, a
line, a path) and its basins (see ``docs/schema.md``).

Layout::

    /persistence         float64 [n, 2]      birth and death of every class (death inf: the deepest basin)
    /dimension           int64   [n]         its homology dimension (0: basins, 1: loops, ...)
    /basins/minimum      float64 [b]         each basin's minimum loss, most persistent first
    /basins/saddle       float64 [b]         the loss where it merges into an older basin (inf for the deepest)
    /basins/at           int64   [b, d]      grid index of its minimum (d: the grid's dimensions)
    /basins/saddle_at    int64   [b, d]      grid index of its saddle (-1 for the deepest)
    /basins/merges_into  int64   [b]         the basin it joins (an index into /basins; -1: none or not traced)
    /basins/coords       float64 [b, d]      coordinates of each minimum (alpha, beta, ...)
    /basins/fraction     float64 [b]         the fraction of the grid its component of {loss < saddle} covers
                                             (1 for the deepest; NaN where not traced)

Root attributes: schema, schema_version, package_version, created, ``source`` (the landscape's file),
``source_checksum`` (SHA-256 of its loss array), ``quantity`` (``loss``), ``axes`` (JSON names), ``low``/``high``
(the range of the values), ``roughness``, ``smad`` (Landscaper's saddle–minimum average distance on the merge
tree), ``domain`` (``grid``, or ``points`` for a scattered sample: what
basin fractions are shares of), ``centre`` (JSON: the centre's basin, its area fraction, barrier and
rise, or null where the file has no centre point), ``thresholds`` (JSON: basin counts above absolute and
relative persistence thresholds).

Example:
    >>> import tempfile, os
    >>> from landscape.analysis.topology import persistence
    >>> p = os.path.join(tempfile.mkdtemp(), "t.h5")
    >>> _ = write_topology(p, persistence(np.array([0.0, 2.0, 1.0])), {"source": "x.h5"}, [np.arange(3.0)])
    >>> read_topology(p)["basins/minimum"].tolist()
    [0.0, 1.0]
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import h5py
import numpy as np

from ..analysis.topology import Topology
from ..core.version import __version__
from .hdf5 import TOPOLOGY_SCHEMA, TOPOLOGY_VERSION, read_whole, replaced_atomically

__all__ = ["share_label", "write_topology", "read_topology", "values_checksum"]


def values_checksum(values: np.ndarray) -> str:
    """SHA-256 of a landscape's values (float64, C order): the topology file names what it was computed from.

    Example:
        >>> len(values_checksum(np.zeros(2)))
        64
    """
    return hashlib.sha256(np.ascontiguousarray(values, dtype=np.float64).tobytes()).hexdigest()


def share_label(attrs: Mapping[str, Any]) -> str:
    """What a topology file's basin fractions are shares of, as an axis label.

    Example:
        >>> share_label({"domain": "points"}), share_label({})
        ('share of the points', 'share of the grid')
    """
    return "share of the points" if attrs.get("domain") == "points" else "share of the grid"


def write_topology(path: str | Path, topo: Topology, attrs: Mapping[str, Any], axes: Sequence[np.ndarray],
                   points: np.ndarray | None = None) -> Path:
    """Write a topology file whole (through a temporary file: no half file is ever seen). ``axes``: the grid's
    coordinates, to store each minimum's position; ``points``: a scattered sample's coordinates ``(n, k)``
    instead (its basins' ``at`` are point numbers)."""
    path = Path(path)
    d = len(topo.shape)
    b = topo.basins
    at = np.array([x.at for x in b], dtype=np.int64).reshape(len(b), d)
    saddle_at = np.array([x.saddle_at or (-1,) * d for x in b], dtype=np.int64).reshape(len(b), d)
    if points is not None:
        coords = np.asarray(points, dtype=np.float64)[at[:, 0]].reshape(len(b), -1)
    else:
        coords = np.array([[float(axes[k][i]) for k, i in enumerate(x.at)] for x in b]).reshape(len(b), d)
    with replaced_atomically(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs.update({"schema": TOPOLOGY_SCHEMA, "schema_version": TOPOLOGY_VERSION,
                        "package_version": __version__, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                        "low": topo.low, "high": topo.high, "roughness": topo.roughness(), "smad": topo.smad(),
                        "domain": "points" if points is not None else "grid"})
        for k, v in attrs.items():
            f.attrs[k] = v if isinstance(v, (str, int, float, bool, np.number)) else json.dumps(v)
        f["persistence"] = topo.pairs
        f["dimension"] = topo.dims
        f["basins/minimum"] = np.array([x.minimum for x in b], dtype=np.float64)
        f["basins/saddle"] = np.array([x.saddle for x in b], dtype=np.float64)
        f["basins/at"] = at
        f["basins/saddle_at"] = saddle_at
        f["basins/merges_into"] = np.array([-1 if x.merges_into is None else x.merges_into for x in b],
                                           dtype=np.int64)
        f["basins/coords"] = coords
        f["basins/fraction"] = np.array([1.0 if not np.isfinite(x.saddle) else
                                         (np.nan if x.fraction is None else x.fraction) for x in b], dtype=np.float64)
    return path


def read_topology(path: str | Path) -> dict[str, Any]:
    """Every dataset (by its path) and attribute (``attrs``) of a topology file."""
    out = read_whole(path, TOPOLOGY_SCHEMA, "topology", "'landscape topology FILE' writes one")
    out["attrs"] = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in out["attrs"].items()}
    for key in ("centre", "thresholds", "axes"):
        if isinstance(out["attrs"].get(key), str):
            out["attrs"][key] = json.loads(out["attrs"][key])
    return out
