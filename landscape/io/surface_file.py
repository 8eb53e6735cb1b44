"""The surface file: one HDF5 file per surface, created up front, flushed in batches, resumable.

Schema ``landscape.surface`` version 1 (see ``docs/schema.md``)::

    /alpha [na], /beta [nb]     float64 coordinates, HDF5 dimension scales of the arrays below
    /loss, /accuracy [na, nb]   float64, NaN until computed (inf/NaN of divergent points are kept)
    /done [na, nb]              uint8, 1 once the point's values are stored
    /directions/d1, /d2         float32 [n_state], the directions used (flat, state order)

A 1-D surface has no ``/beta`` and arrays of shape ``[na]``. The ``inputs`` attribute (JSON) holds
everything that determines the values; reopening with other inputs is refused, naming the differences.

Example:
    >>> import tempfile, os
    >>> from landscape.core.grid import Grid
    >>> p = os.path.join(tempfile.mkdtemp(), "s.h5")
    >>> st = SurfaceStore.open(p, Grid(np.array([0., 1.]), np.array([0., .5, 1.])), {"seed": 0})
    >>> st.write(np.array([4]), np.array([0.25]), np.array([0.9])); st.close()
    >>> s = read_surface(p)
    >>> float(s.loss[1, 1]), int(s.done.sum())
    (0.25, 1)
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import h5py
import numpy as np

from ..core.errors import StoreError
from ..core.grid import Grid
from ..core.signals import deferred
from ..core.version import __version__
from ..engine.curvature_map import MAPS
from .hdf5 import (PATH_SCHEMA, SAMPLE_SCHEMA, SURFACE_SCHEMA, SURFACE_VERSION, ensure_space, label_dimension,
                   open_hdf5, replaced_atomically, unreadable, write_failure, writes_to)
from .locks import WriterLock

__all__ = ["SurfaceStore", "SurfaceData", "read_surface", "open_checked", "diff_inputs", "axis_text", "MAP_NAMES",
           "CURVATURE_DONE",
           "read_projected_path", "read_projections"]

log = logging.getLogger(__name__)

_SCHEMAS = (SURFACE_SCHEMA, PATH_SCHEMA, SAMPLE_SCHEMA)
#: the done mask of the curvature maps a surface file may hold beside /loss, and every map dataset's name
CURVATURE_DONE = "curvature_done"
MAP_NAMES = MAPS + (CURVATURE_DONE,)


def _axes(f: h5py.File) -> tuple[str, str]:
    """Names of the two coordinate datasets (alpha/beta for surfaces, item/alpha for paths)."""
    return tuple(json.loads(f.attrs.get("axes", '["alpha", "beta"]')))  # type: ignore[return-value]


def _canon(obj: Any) -> Any:
    return json.loads(json.dumps(obj, sort_keys=True, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))


_AXES = ("alpha", "beta", "item")


def axis_text(values: np.ndarray | None) -> str | list[float] | None:
    """A grid axis as stored in a file's ``inputs``: ``"MIN:MAX:NUM"`` when evenly spaced (a million points take
    a few bytes, not megabytes), else the list of values.

    Example:
        >>> axis_text(np.linspace(-1, 1, 5)), axis_text(np.array([0.0, 0.1, 1.0]))
        ('-1.0:1.0:5', [0.0, 0.1, 1.0])
    """
    if values is None:
        return None
    v = np.asarray(values, dtype=np.float64)
    if len(v) >= 2 and np.array_equal(v, np.linspace(v[0], v[-1], len(v))):
        return f"{float(v[0])!r}:{float(v[-1])!r}:{len(v)}"
    return v.tolist()


def _compact(inputs: dict[str, Any]) -> dict[str, Any]:
    """Axes written as lists (files of earlier versions) in the ``MIN:MAX:NUM`` form, so both compare equal."""
    out = dict(inputs)
    for k in _AXES:
        if isinstance(out.get(k), list) and all(isinstance(x, (int, float)) for x in out[k]):
            out[k] = axis_text(np.asarray(out[k]))
    return out


def diff_inputs(stored: Mapping[str, Any], given: Mapping[str, Any]) -> list[str]:
    """Human-readable differences between two input descriptions.

    Example:
        >>> diff_inputs({"seed": 0, "norm": "filter"}, {"seed": 1, "norm": "filter"})
        ['seed: file has 0, this run has 1']
    """
    a, b = (_compact(_canon(x)) for x in (stored, given))
    out = []
    for k in sorted(set(a) | set(b)):
        if a.get(k) != b.get(k):
            sa, sb = json.dumps(a.get(k)), json.dumps(b.get(k))
            out.append(f"{k}: file has {sa[:80]}, this run has {sb[:80]}")
    return out


@dataclass
class SurfaceData:
    """A surface file read into memory."""

    path: Path
    alpha: np.ndarray
    beta: np.ndarray | None
    loss: np.ndarray
    accuracy: np.ndarray
    done: np.ndarray
    attrs: dict[str, Any]
    inputs: dict[str, Any]
    maps: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def grid(self) -> Grid:
        return Grid(self.alpha, self.beta)

    @property
    def runs(self) -> list[dict[str, Any]]:
        """Every run that worked on the file, oldest first (see :func:`append_run`)."""
        return json.loads(self.attrs.get("runs", "[]"))

    def describe(self) -> str:
        """Grid, progress, inputs and the minimum loss with its coordinates."""
        n, total = int(self.done.sum()), self.done.size
        g = f"alpha {self.alpha[0]:g}..{self.alpha[-1]:g} ({len(self.alpha)})"
        if self.beta is not None:
            g += f" x beta {self.beta[0]:g}..{self.beta[-1]:g} ({len(self.beta)})"
        lines = [f"surface {self.path}", f"  grid      {g}",
                 f"  progress  {n}/{total} points done ({100.0 * n / max(total, 1):.1f}%), "
                 f"status {self.attrs.get('status', '?')}"]
        inp = dict(self.inputs)
        if isinstance(inp.get("data"), dict):
            d = inp["data"]
            inp["data"] = d.get("name", "?") + "".join(f" {k}={d[k]}" for k in ("root", "train_subset", "test_subset")
                                                       if d.get(k) is not None)
        for k in ("model", "center", "center_checksum", "directions", "target1", "target2", "directions_file",
                  "norm", "ignore", "dir_type", "seed", "data", "split", "subset", "directions_checksum"):
            if inp.get(k) is not None:
                lines.append(f"  {k:<17} {inp[k]}")
        if "cosine_d1_d2" in self.attrs:
            lines.append(f"  cos(d1,d2) {float(self.attrs['cosine_d1_d2']):.4g}")
        finite = self.done.astype(bool) & np.isfinite(self.loss)
        if finite.any():
            k = int(np.argmin(np.where(finite, self.loss, np.inf)))
            idx = np.unravel_index(k, self.loss.shape)
            where = f"alpha={self.alpha[idx[0]]:g}" + (f", beta={self.beta[idx[1]]:g}" if self.beta is not None else "")
            ppl = (f", perplexity {np.exp(min(float(self.loss[idx]), 700.0)):.4g}"
                   if self.attrs.get("task") == "language" else "")
            acc = f", accuracy {self.accuracy[idx]:.4g}" if np.isfinite(self.accuracy[idx]) else ""  # regression: none
            lines.append(f"  min loss  {self.loss[idx]:.6g} at {where} (index {tuple(int(i) for i in idx)}){acc}{ppl}")
        if "last_run" in self.attrs:
            lr = json.loads(self.attrs["last_run"])
            lines.append(f"  last run  {lr['points']} points in {lr['seconds']:.1f} s ({lr['points_per_second']:.1f}/s) "
                         f"on {lr['ranks']} rank(s), {lr['device']}, {lr['points_per_batch']} per batch"
                         + (f" ({lr['batch_mode']})" if lr.get("batch_mode", "one") != "one" else ""))
        runs = self.runs
        if len(runs) > 1 or (runs and runs[-1].get("status") != "complete"):
            lines.append(f"  runs      {len(runs)}: " + ", ".join(
                f"{r.get('points', 0)} pts {r.get('status', '?')}"
                + (f" (slurm {r['slurm_job_id']}, restart {r.get('slurm_restart_count', 0)})"
                   if "slurm_job_id" in r else "") for r in runs[-6:]))
        if CURVATURE_DONE in self.maps:
            cd = self.maps[CURVATURE_DONE].astype(bool)
            parts = [f"{k} {np.nanmin(self.maps[k][cd]):.4g}..{np.nanmax(self.maps[k][cd]):.4g}" if cd.any()
                     else k for k in MAPS if k in self.maps]
            lines.append(f"  curvature {int(cd.sum())}/{cd.size} points: " + ", ".join(parts))
        diverged = int((self.done.astype(bool) & ~np.isfinite(self.loss)).sum())
        if diverged:
            lines.append(f"  divergent {diverged} point(s) with inf/NaN loss")
        return "\n".join(lines)


def open_checked(path: Path, mode: str) -> h5py.File:
    """A surface or path file opened (``"r"`` or ``"r+"``) and checked: schema, version, grid shapes."""
    if path.is_dir():
        raise StoreError(f"{path}: is a folder, not a surface file; give the path of the .h5 file (e.g. "
                         f"{path / 'surface.h5'})")
    try:
        f = open_hdf5(path, mode)
    except FileNotFoundError:
        raise StoreError(f"{path}: surface file does not exist") from None
    except IsADirectoryError:
        raise StoreError(f"{path}: is a folder, not a surface file; give the file's path") from None
    except OSError as exc:
        if mode != "r":  # refused for writing, or damaged? A file that reads is intact: say what failed
            try:
                open_hdf5(path).close()
            except OSError:
                pass
            else:
                failure = write_failure(path, exc)
                raise (failure or StoreError(f"{path}: cannot be opened for writing ({exc}); the file itself reads "
                                             "fine and is kept")) from exc
        raise unreadable(path, exc, "compute the surface again") from exc
    try:
        if f.attrs.get("schema") not in _SCHEMAS:
            raise StoreError(f"{path}: not a landscape surface, path or sample file (schema {f.attrs.get('schema')!r}, "
                             f"expected one of {list(_SCHEMAS)})")
        if int(f.attrs.get("schema_version", -1)) > SURFACE_VERSION:
            raise StoreError(f"{path}: schema version {f.attrs['schema_version']} is newer than this landscape "
                             f"({SURFACE_VERSION}); upgrade landscape")
        a0, a1 = _axes(f)
        missing = [k for k in (a0, "loss", "accuracy", "done") if k not in f]
        if missing:
            raise StoreError(f"{path}: surface file lacks dataset(s) {missing}; it is damaged")
        expect = (f[a0].shape[0],) + ((f[a1].shape[0],) if a1 in f else ())
        wrong = {k: tuple(f[k].shape) for k in ("loss", "accuracy", "done") if tuple(f[k].shape) != expect}
        if wrong:
            raise StoreError(f"{path}: the grid ({a0} x {a1} here) has shape {expect}, but "
                             + ", ".join(f"/{k} has {v}" for k, v in wrong.items()) + "; the file is damaged")
    except StoreError:
        f.close()
        raise
    except (OSError, KeyError, ValueError) as exc:
        f.close()
        raise StoreError(f"{path}: surface file is damaged ({exc})") from exc
    return f


def read_surface(path: str | Path) -> SurfaceData:
    """Read a whole surface file."""
    path = Path(path)
    with open_checked(path, "r") as f:
        a0, a1 = _axes(f)
        try:
            maps = {k: f[k][()] for k in MAP_NAMES if k in f}
            return SurfaceData(path, f[a0][:], f[a1][:] if a1 in f else None, f["loss"][()],
                               f["accuracy"][()], f["done"][()], {k: f.attrs[k] for k in f.attrs},
                               json.loads(f.attrs.get("inputs", "{}")), maps)
        except OSError as exc:
            raise StoreError(f"{path}: data cannot be read ({exc}); the file is truncated or corrupted (or a run "
                             "was writing it at this instant: try again)") from exc


class SurfaceStore:
    """The single writer of one surface file; results are kept in memory and flushed in batches."""

    def __init__(self, path: Path, f: h5py.File, flush_every: int, flush_seconds: float,
                 fields: tuple[str, ...] = ("loss", "accuracy"), done: str = "done", status_attr: str = "status"):
        """``fields``/``done``/``status_attr``: the value datasets a point writes, its done mask and the attribute
        that says complete or partial (curvature maps keep their own beside the loss, see
        :mod:`landscape.io.curvature_maps`)."""
        self.path, self._f = path, f
        self._lock: WriterLock | None = None
        a0, a1 = _axes(f)
        self.grid = Grid(f[a0][:], f[a1][:] if a1 in f else None)
        self.fields, self.done_name, self.status_attr = tuple(fields), done, status_attr
        self.values = {name: f[name][()] for name in self.fields}
        self.loss = self.values.get("loss")
        self.accuracy = self.values.get("accuracy")
        self.done = f[done][()].astype(bool)
        self.flush_every, self.flush_seconds = max(1, flush_every), flush_seconds
        self._dirty: list[int] = []
        self._last_flush = time.monotonic()

    @classmethod
    def open(cls, path: str | Path, grid: Grid, inputs: Mapping[str, Any], attrs: Mapping[str, Any] | None = None,
             datasets: Mapping[str, np.ndarray] | None = None, flush_every: int = 64,
             flush_seconds: float = 10.0, schema: str = SURFACE_SCHEMA,
             axes: tuple[str, str] = ("alpha", "beta")) -> "SurfaceStore":
        """Create the file with its full layout, or reopen it if its inputs equal ``inputs``. The store is the
        file's only writer until it is closed (:class:`~landscape.io.locks.WriterLock`): a second run on the
        same file is refused at once.

        ``schema``/``axes``: ``landscape.path`` files use the same layout with axes ``("item", "alpha")``.
        """
        lock = WriterLock(path).acquire()
        try:
            store = cls._open(Path(path), grid, inputs, attrs, datasets, flush_every, flush_seconds, schema, axes)
        except BaseException:
            lock.release()
            raise
        store._lock = lock
        return store

    @classmethod
    def _open(cls, path: Path, grid: Grid, inputs: Mapping[str, Any], attrs: Mapping[str, Any] | None,
              datasets: Mapping[str, np.ndarray] | None, flush_every: int, flush_seconds: float, schema: str,
              axes: tuple[str, str]) -> "SurfaceStore":
        inputs = _canon(dict(inputs, **{axes[0]: axis_text(grid.alpha), axes[1]: axis_text(grid.beta)}))
        if path.exists():
            f = open_checked(path, "r+")
            stored = json.loads(f.attrs.get("inputs", "{}"))
            diffs = diff_inputs(stored, inputs)
            if diffs:
                f.close()
                raise StoreError(f"{path} holds a surface computed with other inputs; refusing to resume or "
                                 "overwrite it:\n  " + "\n  ".join(diffs) +
                                 "\nUse another output file, or rerun with the original settings")
            f.attrs["status"] = "running"
            f.flush()
            log.info("resuming %s: %d of %d points done", path, int(f["done"][()].sum()), grid.size)
            return cls(path, f, flush_every, flush_seconds)
        path.parent.mkdir(parents=True, exist_ok=True)
        with replaced_atomically(path) as tmp:
            ensure_space(tmp, 17 * grid.size + sum(np.asarray(a).nbytes for a in (datasets or {}).values())
                         + (256 << 10))
            cls._layout(tmp, grid, inputs, attrs, datasets, schema, axes)
        return cls(path, open_checked(path, "r+"), flush_every, flush_seconds)

    @staticmethod
    def _layout(tmp: Path, grid: Grid, inputs: Mapping[str, Any], attrs: Mapping[str, Any] | None,
                datasets: Mapping[str, np.ndarray] | None, schema: str, axes: tuple[str, str]) -> None:
        with h5py.File(tmp, "w") as f:
            f.attrs.update({"schema": schema, "schema_version": SURFACE_VERSION, "axes": json.dumps(list(axes)),
                            "package_version": __version__, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                            "inputs": json.dumps(inputs, sort_keys=True), "status": "running"})
            for k, v in (attrs or {}).items():
                f.attrs[k] = v if isinstance(v, (str, int, float, bool, np.number)) else json.dumps(_canon(v))
            a = f.create_dataset(axes[0], data=grid.alpha)
            a.make_scale(axes[0])
            scales = [a]
            if grid.beta is not None:
                b = f.create_dataset(axes[1], data=grid.beta)
                b.make_scale(axes[1])
                scales.append(b)
            for name, dtype, fill in (("loss", "f8", np.nan), ("accuracy", "f8", np.nan), ("done", "u1", 0)):
                ds = f.create_dataset(name, grid.shape, dtype, fillvalue=fill)
                ds[...] = fill
                for axis, scale in enumerate(scales):
                    ds.dims[axis].attach_scale(scale)
            for name, arr in (datasets or {}).items():
                f.create_dataset(name, data=arr)
            if "trajectory" in f:  # its own dimension: alpha/beta there are the path's, not the grid's
                label_dimension(f["trajectory"], "checkpoint")
            if "items" in f:  # path files: one row per item, the grid's first axis
                label_dimension(f["items"], axes[0], f[axes[0]])

    def pending(self) -> np.ndarray:
        """Flat indices of the points not done yet, in C order."""
        return np.flatnonzero(~self.done.reshape(-1))

    def write(self, flat: np.ndarray, *values: np.ndarray) -> None:
        """Record results, one array per field (loss, accuracy; inf/NaN kept and counted as done); flushes when a
        batch is full or old."""
        idx = np.unravel_index(np.asarray(flat, dtype=np.int64), self.grid.shape)
        for name, v in zip(self.fields, values, strict=True):
            self.values[name][idx] = v
        self.done[idx] = True
        self._dirty.extend(int(i) for i in np.atleast_1d(flat))
        if len(self._dirty) >= self.flush_every or time.monotonic() - self._last_flush >= self.flush_seconds:
            self.flush()

    def flush(self) -> None:
        """Write the rows touched since the last flush (values first, then the done mask) and flush the file;
        SIGTERM/SIGUSR1 wait until it is done."""
        with writes_to(self.path), deferred():
            self._flush()

    def _flush(self) -> None:
        if self._dirty:
            rows = np.unravel_index(np.asarray(self._dirty), self.grid.shape)[0]
            r0, r1 = int(rows.min()), int(rows.max()) + 1
            row = self.done.size // self.done.shape[0]
            ensure_space(self.path, (8 * len(self.fields) + 1) * (r1 - r0) * row)  # the rows rewritten
            for name in self.fields:
                self._f[name][r0:r1] = self.values[name][r0:r1]
            self._f[self.done_name][r0:r1] = self.done[r0:r1].astype(np.uint8)
            self._dirty.clear()
        self._f.flush()
        self._last_flush = time.monotonic()

    def set_attrs(self, **attrs: Any) -> None:
        self._f.attrs.update(attrs)

    def close(self, status: str | None = None) -> None:
        """Flush, record the status (``complete`` when every point is done, else ``partial``) and close."""
        try:
            with deferred(raise_after=False):  # a signal now waits for the next check: the file closes whole
                if not self._f.id.valid:
                    return
                self.flush()
                self._f.attrs[self.status_attr] = status or ("complete" if self.done.all() else "partial")
                self._f.close()
        finally:
            if self._lock is not None:
                self._lock.release()

    def __enter__(self) -> "SurfaceStore":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def read_projected_path(path: str | Path) -> dict[str, np.ndarray] | None:
    """The projected training path stored with a surface (``/trajectory/{alpha,beta,epoch,loss,accuracy}``), or
    None.

    Example:
        >>> import tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "s.h5")
        >>> SurfaceStore.open(p, Grid(np.array([0., 1.])), {}).close()
        >>> read_projected_path(p) is None
        True
    """
    with open_hdf5(path) as f:
        if "trajectory" not in f:
            return None
        return {k: f["trajectory"][k][:].astype(np.float64) for k in f["trajectory"]}


def read_projections(path: str | Path) -> dict[str, dict[str, np.ndarray]]:
    """Other runs projected onto a surface's plane (``/projections/<label>/...``), by label."""
    with open_hdf5(path) as f:
        if "projections" not in f:
            return {}
        return {k: {n: g[n][:] for n in g} for k, g in f["projections"].items()}
