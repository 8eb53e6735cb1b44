"""The sample file: the loss at the points θ* + Σᵢ cᵢ·dᵢ of a k-dimensional design, resumable like a surface.

Schema ``landscape.sample`` version 1 (see ``docs/schema.md``)::

    /point [n]                   float64 point numbers 0..n-1, the HDF5 dimension scale of the arrays below
    /loss, /accuracy [n]         float64, NaN until computed
    /done [n]                    uint8, 1 once the point's values are stored
    /coefficients [n, k]         float64, the coefficients of point i on each direction (row i)
    /axes/c0 … /axes/c{k-1}      float64, a grid design's axes (loss.reshape(shape)[i0, …] at (c0[i0], …))
    /directions/center, /d1 … /dk   float32 [n_state], flat, state order

Attributes: ``design`` (its text), ``shape`` (JSON: a grid's shape, or null), ``k``, and the surface file's
(``inputs`` with the design and the coefficients' checksum, ``status``, ``runs``, versions, checksums). It is
written by the surface file's single writer (:class:`~landscape.io.surface_file.SurfaceStore`), so a run resumes
only the points not done, and other inputs are refused.

Example:
    >>> import tempfile, os
    >>> from landscape.core.design import Design
    >>> d = Design.grid(["-1:1:3", "0:1:2"])
    >>> p = os.path.join(tempfile.mkdtemp(), "s.h5")
    >>> st = open_sample(p, d, d.coefficients(), {"seed": 0})
    >>> st.write(np.array([5]), np.array([0.25]), np.array([0.5])); st.close()
    >>> s = read_sample(p)
    >>> s.k, s.shape, float(s.grid_values()[2, 1]), s.coefficients[5].tolist()
    (2, (3, 2), 0.25, [1.0, 1.0])
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..core.design import Design, coefficients_checksum
from ..core.errors import StoreError
from ..core.grid import Grid
from .hdf5 import SAMPLE_SCHEMA
from .surface_file import SurfaceStore, open_checked

__all__ = ["open_sample", "read_sample", "SampleData", "SAMPLE_AXES"]

SAMPLE_AXES = ("point", "beta")  # the store's axes: one, the point number (a sample file has no /beta)


def open_sample(path: str | Path, design: Design, coefficients: np.ndarray, inputs: Mapping[str, Any],
                attrs: Mapping[str, Any] | None = None, datasets: Mapping[str, np.ndarray] | None = None,
                flush_every: int = 64) -> SurfaceStore:
    """Create the sample file of ``design`` (its ``coefficients``, ``(n, k)``), or reopen it when its inputs are
    equal; the store writes ``loss``/``accuracy`` of point numbers."""
    coefficients = np.asarray(coefficients, np.float64)
    inputs = dict(inputs, design=design.describe(), coefficients_checksum=coefficients_checksum(coefficients))
    attrs = dict(attrs or {}, design=design.describe(), k=int(design.k), design_kind=design.kind,
                 shape=json.dumps(list(design.shape) if design.shape else None))
    data = dict(datasets or {}, coefficients=coefficients)
    if design.kind == "grid":
        data.update({f"axes/c{i}": a for i, a in enumerate(design.axis_values())})
    grid = Grid(np.arange(len(coefficients), dtype=np.float64))
    return SurfaceStore.open(path, grid, inputs, attrs, data, flush_every=flush_every, schema=SAMPLE_SCHEMA,
                             axes=SAMPLE_AXES)


@dataclass
class SampleData:
    """A sample file read into memory."""

    path: Path
    coefficients: np.ndarray
    loss: np.ndarray
    accuracy: np.ndarray
    done: np.ndarray
    shape: tuple[int, ...] | None
    axes: list[np.ndarray]
    attrs: dict[str, Any]
    inputs: dict[str, Any]

    @property
    def k(self) -> int:
        """The number of directions."""
        return int(self.coefficients.shape[1])

    def grid_values(self, name: str = "loss") -> np.ndarray:
        """A grid design's values as a k-dimensional array (``[i0, …, i(k-1)]`` at ``(c0[i0], …)``)."""
        if self.shape is None:
            raise StoreError(f"{self.path}: a {self.attrs.get('design_kind')} design has no grid; its points are "
                             "scattered (use coefficients and the flat values)")
        return getattr(self, name).reshape(self.shape)

    def describe(self) -> str:
        """What ``landscape status`` prints."""
        done = int(self.done.sum())
        lines = [f"{self.path}: k-dimensional sample ({self.attrs.get('status', '?')})",
                 f"  design: {self.attrs.get('design')} ({len(self.loss)} points, k={self.k})",
                 f"  done: {done}/{len(self.loss)}"]
        if done:
            i = int(np.nanargmin(np.where(self.done.astype(bool), self.loss, np.nan)))
            c = ", ".join(f"{v:.4g}" for v in self.coefficients[i])
            lines.append(f"  minimum loss {self.loss[i]:.6g} at point {i} (c = {c})")
        return "\n".join(lines)


def read_sample(path: str | Path) -> SampleData:
    """Read a whole sample file."""
    path = Path(path)
    with open_checked(path, "r") as f:
        if f.attrs.get("schema") != SAMPLE_SCHEMA:
            raise StoreError(f"{path}: not a sample file (schema {f.attrs.get('schema')!r}, expected "
                             f"{SAMPLE_SCHEMA!r})")
        try:
            shape = json.loads(f.attrs.get("shape", "null"))
            k = int(f["coefficients"].shape[1])
            axes = [f["axes"][f"c{i}"][:] for i in range(k)] if "axes" in f else []
            return SampleData(path, f["coefficients"][()], f["loss"][()], f["accuracy"][()], f["done"][()],
                              tuple(shape) if shape else None, axes, {k: f.attrs[k] for k in f.attrs},
                              json.loads(f.attrs.get("inputs", "{}")))
        except (OSError, KeyError) as exc:
            raise StoreError(f"{path}: sample file cannot be read ({exc}); it is truncated or damaged") from exc
