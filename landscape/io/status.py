"""What a result file holds, in a few lines: the text of ``landscape status`` / ``landscape info`` for every
kind of file the package writes (surface, path, trajectory, correlation) and for a sweep's ``sweep.json``.

Example:
    >>> import tempfile, os, numpy as np
    >>> from landscape.core.grid import Grid
    >>> from landscape.io.surface_file import SurfaceStore
    >>> p = os.path.join(tempfile.mkdtemp(), "s.h5")
    >>> SurfaceStore.open(p, Grid(np.array([0., 1.])), {}).close()
    >>> describe_file(p).splitlines()[0].startswith("surface")
    True
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..core.errors import StoreError
from .curvature_file import describe_curvature
from .hdf5 import (CORRELATION_SCHEMA, CURVATURE_SCHEMA, PATH_SCHEMA, SAMPLE_SCHEMA, TRAJECTORY_SCHEMA, file_schema,
                   open_hdf5)
from .path_file import read_path
from .sample_file import read_sample
from .surface_file import read_surface
from .trajectory import TrajectoryStore

__all__ = ["describe_file", "describe_path", "describe_correlation", "describe_sweep"]


def describe_path(path: str | Path) -> str:
    """A path file: kind, ends, items per level, progress, and the loss along the whole-model path."""
    p, s = read_path(path), read_surface(path)
    inp = p["inputs"]
    levels = {lv: p["level"].count(lv) for lv in dict.fromkeys(p["level"])}
    n, total = int(s.done.sum()), s.done.size
    lines = [f"path {Path(path)}", f"  kind      {p['kind']}" + (f" (middle node at α={inp['t_mid']:g}: {inp['mid']})"
                                                              if inp.get("t_mid") is not None else ""),
             f"  from      {inp.get('start')}", f"  to        {inp.get('end')}",
             "  items     " + ", ".join(f"{k} {v}" for k, v in levels.items()),
             f"  alpha     {p['alpha'][0]:g}..{p['alpha'][-1]:g} ({len(p['alpha'])})",
             f"  progress  {n}/{total} points done ({100.0 * n / max(total, 1):.1f}%), status {s.attrs.get('status')}"]
    if "model" in p["level"]:
        k = p["level"].index("model")
        row = np.where(s.done[k].astype(bool), p["loss"][k], np.nan)
        if np.isfinite(row).any():
            j = int(np.nanargmax(row))
            lines.append(f"  model     highest loss {row[j]:.6g} at α={p['alpha'][j]:g}")
    return "\n".join(lines)


def describe_correlation(path: str | Path) -> str:
    """A correlation file: per layer, the filters and the pairs correlated above the threshold."""
    with open_hdf5(path) as f:
        lines = [f"correlation {Path(path)}", f"  threshold {float(f.attrs.get('threshold', np.nan)):g}"]
        for layer, g in f.items():
            pairs = json.loads(g.attrs.get("pairs", "{}"))
            lines.append(f"  {layer:<10} {g['weights'].shape[0]} filters; pairs of weights "
                         f"{len(pairs.get('weights', []))}, of activations {len(pairs.get('activations', []))}")
    return "\n".join(lines)


def describe_sweep(path: str | Path) -> str:
    """A sweep's ``sweep.json``: every combination, its output folder and how far it got."""
    path = Path(path)
    try:
        tasks = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StoreError(f"{path}: not a readable sweep.json ({exc})") from exc
    if not isinstance(tasks, list) or not all(isinstance(t, dict) and "output" in t and "task" in t for t in tasks):
        raise StoreError(f"{path}: not a sweep.json (expected the list of combinations a [sweep] writes, each with "
                         "task, output and settings); status reads result files (.h5) and a sweep's sweep.json")
    lines = [f"sweep {path} ({len(tasks)} combinations)"]
    sharp = []
    for t in tasks:
        out = Path(t["output"])
        summary = out / "summary.json"
        data = json.loads(summary.read_text()) if summary.exists() else {}
        state = "done" if "seconds" in data else "started" if out.exists() else "not started"
        lines.append(f"  {t['task']:>3}  {state:<11} {out}  {t['settings']}")
        if isinstance(data.get("curvature"), dict):
            sharp.append((t, data["curvature"]))
    if sharp:  # the combinations side by side by the sharpness of their final models
        lines.append("  sharpness:  task        λmax        λmin       trace  ε-sharpness %  settings")
        for t, c in sharp:
            vals = [c.get(k) for k in ("lambda_max", "lambda_min", "trace", "eps_sharpness")]
            lines.append(f"             {t['task']:>4}" + "".join(f" {v:>11.5g}" if isinstance(v, (int, float))
                                                                  else f" {'-':>11}" for v in vals)
                         + f"    {t['settings']}")
    return "\n".join(lines)


def describe_file(path: str | Path) -> str:
    """A summary of any result file: surface, path, trajectory, correlation, curvature, or a sweep's
    ``sweep.json``."""
    path = Path(path)
    if path.suffix == ".json":
        return describe_sweep(path)
    kind = file_schema(path)
    if kind == PATH_SCHEMA:
        return describe_path(path)
    if kind == TRAJECTORY_SCHEMA:
        return TrajectoryStore(path).describe()
    if kind == CORRELATION_SCHEMA:
        return describe_correlation(path)
    if kind == CURVATURE_SCHEMA:
        return describe_curvature(path)
    if kind == SAMPLE_SCHEMA:
        return read_sample(path).describe()
    if not path.exists():
        raise StoreError(f"{path}: file does not exist; status and info read result files (surface, path, trajectory, "
                         "curvature, correlation .h5 files) and a sweep's sweep.json")
    return read_surface(path).describe()  # a surface, or a foreign file: the reader's clear error
