"""Curvature files (``landscape.curvature``): the Hessian spectrum of the loss at one centre — extreme
eigenpairs, trace, spectral density — and its sharpness summary (see ``docs/schema.md``).

Layout::

    /eigenvalues     float64 [k]            top_k largest (descending), then bottom_k smallest (ascending)
    /eigenvectors    float32 [k, n_state]   unit eigenvectors in the centre's StateSpec order (zeros elsewhere)
    /eigen_kind      str     [k]            "top" or "bottom"
    /residuals       float64 [k]            Lanczos residual bound |β_m s_m| of each pair
    /trace, /trace_stderr   float64 []      Hutchinson/Hutch++ estimate and its standard error (if asked)
    /density/grid, /density/values  float64 [points]   SLQ spectral density (if asked)

Root attributes: schema, schema_version, package_version, created, ``inputs`` (JSON: model, data, split, subset,
centre and its checksum, moved parameters, settings), ``state_spec``, ``lanczos_tol``, ``lanczos_iterations``,
``converged``, ``trace_method``, ``trace_matvecs``, ``seed``, and the sharpness summary ``lambda_max``,
``lambda_min``, ``eps_sharpness``, ``epsilon``, ``ascent_steps``, ``basin`` (JSON list).

Example:
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "c.h5")
    >>> _ = write_curvature(p, {"eigenvalues": np.array([2.0, -1.0]), "eigen_kind": ["top", "bottom"],
    ...                         "eigenvectors": np.zeros((2, 3), np.float32), "residuals": np.zeros(2)},
    ...                     {"model": "toy"}, {"lambda_max": 2.0, "lambda_min": -1.0})
    >>> read_curvature(p)["eigenvalues"].tolist()
    [2.0, -1.0]
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any, Mapping

import h5py
import numpy as np

from ..core.errors import StoreError
from ..core.version import __version__
from .hdf5 import CURVATURE_SCHEMA, CURVATURE_VERSION, ensure_space, read_whole, replaced_atomically
from .surface_file import diff_inputs

__all__ = ["write_curvature", "read_curvature", "describe_curvature", "stored_curvature"]


def _jsonable(v: Any) -> Any:
    return v if isinstance(v, (str, int, float, bool, np.number)) else json.dumps(v)


def stored_curvature(path: str | Path, inputs: Mapping[str, Any]) -> bool:
    """True when ``path`` holds a curvature computed from ``inputs`` (nothing to do); raises
    :class:`StoreError` when it holds one from other inputs; False when it does not exist."""
    path = Path(path)
    if not path.exists():
        return False
    stored = read_curvature(path)["inputs"]
    diffs = diff_inputs(stored, json.loads(json.dumps(dict(inputs))))
    if diffs:
        raise StoreError(f"{path} holds a curvature computed with other inputs; refusing to overwrite it:\n  " +
                         "\n  ".join(diffs) + "\nUse another output file (--out), or the original settings")
    return True


def write_curvature(path: str | Path, arrays: Mapping[str, Any], inputs: Mapping[str, Any],
                    attrs: Mapping[str, Any] | None = None) -> Path:
    """Write a curvature file whole (through a temporary file: a killed run leaves no half file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with replaced_atomically(path) as tmp:
        size = sum(np.asarray(a).nbytes for a in arrays.values() if not isinstance(a, (list, str)))
        ensure_space(tmp, size + (256 << 10))
        with h5py.File(tmp, "w") as f:
            f.attrs.update({"schema": CURVATURE_SCHEMA, "schema_version": CURVATURE_VERSION,
                            "package_version": __version__, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                            "inputs": json.dumps(dict(inputs), sort_keys=True, default=str)})
            for k, v in (attrs or {}).items():
                f.attrs[k] = _jsonable(v)
            for name, value in arrays.items():
                if name == "eigen_kind":
                    f.create_dataset(name, data=np.array(value, dtype=h5py.string_dtype("ascii", 8)))
                elif value is not None:
                    f.create_dataset(name, data=np.asarray(value))
    return path


def read_curvature(path: str | Path) -> dict[str, Any]:
    """Every array and attribute of a curvature file (``inputs`` and ``basin`` parsed from JSON)."""
    path = Path(path)
    out = read_whole(path, CURVATURE_SCHEMA, "curvature", "run landscape curvature (again)")
    out["path"] = path
    out["inputs"] = json.loads(out["attrs"].get("inputs", "{}"))
    if "eigen_kind" in out:
        out["eigen_kind"] = [k.decode() if isinstance(k, bytes) else str(k) for k in out["eigen_kind"]]
    basin = out["attrs"].get("basin")
    out["basin"] = json.loads(basin) if isinstance(basin, str) else []
    return out


def _fmt(v: Any) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{float(v):.6g}"


def describe_curvature(path: str | Path) -> str:
    """The sharpness summary and spectrum of a curvature file, for ``landscape status``."""
    c = read_curvature(path)
    a, inp = c["attrs"], c["inputs"]
    top = [v for v, k in zip(c.get("eigenvalues", []), c.get("eigen_kind", [])) if k == "top"]
    bottom = [v for v, k in zip(c.get("eigenvalues", []), c.get("eigen_kind", [])) if k == "bottom"]
    lines = [f"curvature {c['path']}",
             f"  model     {inp.get('model')} at {inp.get('center')} on {inp.get('split')} "
             f"({inp.get('n', '?')} samples), {inp.get('parameters', '?')} parameters moved",
             f"  λmax      {_fmt(a.get('lambda_max'))}    λmin {_fmt(a.get('lambda_min'))}    "
             f"|λmin/λmax| {_fmt(abs(a['lambda_min'] / a['lambda_max']) if a.get('lambda_max') else None)}",
             f"  top       {', '.join(_fmt(v) for v in top)}"]
    if bottom:
        lines.append(f"  bottom    {', '.join(_fmt(v) for v in bottom)}")
    lines.append(f"  Lanczos   {a.get('lanczos_iterations')} iterations, tol {a.get('lanczos_tol')}, "
                 f"converged {bool(a.get('converged'))}")
    if "trace" in c:
        lines.append(f"  trace     {_fmt(c['trace'])} ± {_fmt(c.get('trace_stderr'))} ({a.get('trace_method')}, "
                     f"{a.get('trace_matvecs')} products)")
    if "eps_sharpness" in a:
        lines.append(f"  ε-sharpness {_fmt(a['eps_sharpness'])} % (ε = {a.get('epsilon')}, "
                     f"{a.get('ascent_steps')} ascent steps)")
    for b in c["basin"]:
        lines.append(f"  basin {b['direction']}: loss doubles at {_fmt(-b['minus'])} and {_fmt(b['plus'])} "
                     f"(width {_fmt(b['minus'] + b['plus'])}, {b.get('norm', '')} direction)")
    if "density/grid" in c:
        g = c["density/grid"]
        lines.append(f"  density   {len(g)} points over [{_fmt(g[0])}, {_fmt(g[-1])}]")
    return "\n".join(lines)
