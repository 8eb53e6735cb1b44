"""The report's section for a k-dimensional sample file (``landscape.sample``): its design and progress, the lowest
point, and figures of the points — a 3-D scatter coloured by loss over the first three directions, the slice of a
grid through the centre on c0, c1 (the other coefficients at their value nearest 0), or the points seen along c0,
c1 for a scattered design, and a line for k = 1.

Example:
    >>> import tempfile, numpy as np
    >>> from landscape.core.design import Design
    >>> from landscape.io.sample_file import open_sample
    >>> p = tempfile.mkdtemp() + "/s.h5"
    >>> d = Design.grid(["-1:1:3"] * 3)
    >>> c = d.coefficients()
    >>> st = open_sample(p, d, c, {"model": "mlp"})
    >>> st.write(np.arange(27), 1 + (c ** 2).sum(1), np.full(27, 0.5)); st.close()
    >>> sec = sample_section(p)
    >>> sec["progress"], [f["data"][0]["type"] for f in sec["figures"]]
    ('27/27 points (100.0%), status complete', ['scatter3d', 'contour'])
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ..io.sample_file import SampleData, read_sample
from .report_data import _AXIS, _colour, jsonable, log_axis

__all__ = ["sample_section", "MAX_SAMPLE_POINTS"]

#: scattered points drawn at most (every k-th beyond it; the file keeps every point)
MAX_SAMPLE_POINTS = 20000
_HOVER = "<br>".join(f"c{i} %{{{x}:.4g}}" for i, x in enumerate("xyz"))


def _colours(loss: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
    """The report's colouring (:func:`~landscape.views.report_data._colour`): by log10 of the loss where its
    finite values span a decade or more (narrower spans would get no log tick inside them), else by the loss."""
    v = loss[np.isfinite(loss)]
    return _colour(loss, log=bool(v.size) and v.min() > 0 and v.max() >= 10 * v.min())


def _centre_slice(s: SampleData) -> tuple[np.ndarray, str]:
    """A grid's values on c0, c1 with every other coefficient at its value nearest 0, and what was fixed."""
    values = np.where(s.done.astype(bool), s.loss, np.nan).reshape(s.shape)
    at = [int(np.argmin(np.abs(a))) for a in s.axes[2:]]
    fixed = ", ".join(f"c{i + 2} = {s.axes[i + 2][j]:.3g}" for i, j in enumerate(at))
    return values[(slice(None), slice(None), *at)], fixed


def sample_section(path: str | Path) -> dict[str, Any]:
    """A sample file's section: progress, design, the lowest point, and its figures (see the module)."""
    s = read_sample(path)
    name = Path(path).name
    done = s.done.astype(bool)
    n, total = int(done.sum()), len(done)
    a = s.attrs
    rows: list[tuple[str, str]] = [("design", f"{a.get('design', '?')} ({total} points, k = {s.k})"),
                                   ("directions", str(s.inputs.get("directions", "?")))]
    ok = done & np.isfinite(s.loss)
    if ok.any():
        i = int(np.flatnonzero(ok)[np.argmin(s.loss[ok])])
        rows.append(("lowest loss", f"{s.loss[i]:.6g} at point {i} (c = "
                     + ", ".join(f"{v:.4g}" for v in s.coefficients[i]) + ")"))
        zero = np.flatnonzero(ok & (np.abs(s.coefficients).sum(axis=1) == 0))
        if len(zero):
            rows.append(("loss at the centre", f"{s.loss[zero[0]]:.6g}"))
    sec: dict[str, Any] = {"kind": "sample", "file": name, "inputs": s.inputs, "rows": rows, "figures": [],
                           "runs": json.loads(a.get("runs", "[]")),
                           "notes": [], "progress": f"{n}/{total} points ({100.0 * n / max(total, 1):.1f}%), status "
                                                    f"{a.get('status', '?')}"}
    idx = np.flatnonzero(ok)
    if not len(idx):
        return sec
    c, loss = s.coefficients[idx], s.loss[idx]
    if s.k == 1:
        order = np.argsort(c[:, 0])
        sec["figures"].append({"title": f"{name}: loss along c0", "data": [
            {"type": "scatter", "mode": "lines+markers", "x": jsonable(c[order, 0]), "y": jsonable(loss[order]),
             "name": "loss"}], "layout": {"xaxis": {"title": {"text": "c0"}}, "yaxis": log_axis("loss", loss)}})
        return sec
    step = max(1, -(-len(idx) // MAX_SAMPLE_POINTS))
    if step > 1:
        sec["notes"].append(f"every {step}th point drawn; the file holds all {total}")
    shown, values = c[::step], loss[::step]
    colour, bar = _colours(values)
    marker = {"color": jsonable(colour), "colorscale": "Viridis", "colorbar": {"title": {"text": "loss"}, **bar},
              "size": 2 if len(shown) > 2000 else 3 if len(shown) > 400 else 5}
    if s.k >= 3:
        sec["figures"].append({"title": f"{name}: the points along c0, c1, c2 coloured by loss (drag to rotate)",
                               "data": [{"type": "scatter3d", "mode": "markers", "x": jsonable(shown[:, 0]),
                                         "y": jsonable(shown[:, 1]), "z": jsonable(shown[:, 2]), "marker": marker,
                                         "customdata": jsonable(values),
                                         "hovertemplate": _HOVER + "<br>loss %{customdata:.5g}<extra></extra>"}],
                               "layout": {"height": 560, "margin": {"l": 0, "r": 0, "t": 40, "b": 0},
                                          "scene": {"xaxis": {"title": {"text": "c0"}},
                                                    "yaxis": {"title": {"text": "c1"}},
                                                    "zaxis": {"title": {"text": "c2"}}}}})
    lo, hi = c.min(axis=0), c.max(axis=0)
    if s.shape is None:  # scattered: a margin, so that the outermost markers are whole
        lo, hi = lo - 0.04 * (hi - lo), hi + 0.04 * (hi - lo)
    axes2d = {"xaxis": {"title": {"text": "c0"}, "range": [float(lo[0]), float(hi[0])], **_AXIS},
              "yaxis": {"title": {"text": "c1"}, "range": [float(lo[1]), float(hi[1])], **_AXIS}}
    if s.shape is not None:
        plane, fixed = _centre_slice(s)
        full, zbar = _colours(plane)
        sec["figures"].append({"title": f"{name}: loss on c0, c1" + (f" ({fixed})" if fixed else ""), "data": [
            {"type": "contour", "x": jsonable(s.axes[0]), "y": jsonable(s.axes[1]), "z": jsonable(full.T),
             "customdata": jsonable(plane.T), "colorscale": "Viridis", "ncontours": 20,
             "colorbar": {"title": {"text": "loss"}, **zbar}, "contours": {"coloring": "heatmap"},
             "hovertemplate": "c0 %{x:.4g}<br>c1 %{y:.4g}<br>loss %{customdata:.5g}<extra></extra>"}],
            "layout": axes2d})
    else:
        low_last = np.argsort(-values)  # the lowest drawn last, on top
        sec["figures"].append({"title": f"{name}: the points seen along c0, c1, coloured by loss", "data": [
            {"type": "scatter", "mode": "markers", "x": jsonable(shown[low_last, 0]),
             "y": jsonable(shown[low_last, 1]), "customdata": jsonable(values[low_last]),
             "marker": {**marker, "color": jsonable(colour[low_last]), "size": 4 if len(shown) > 2000 else 7},
             "hovertemplate": "c0 %{x:.4g}<br>c1 %{y:.4g}<br>loss %{customdata:.5g}<extra></extra>"}],
            "layout": axes2d})
    return sec
