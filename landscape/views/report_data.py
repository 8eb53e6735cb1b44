"""What the HTML report shows, read from result files alone: plotly.js figure specifications (plain dicts) and
small tables, one builder per file kind. A file that cannot be read (still being created, damaged) becomes a
note, never a failed report; a surface still being computed shows its computed points and its progress.

Example:
    >>> import tempfile, numpy as np
    >>> from landscape.core.grid import Grid
    >>> from landscape.io.surface_file import SurfaceStore
    >>> p = tempfile.mkdtemp() + "/s.h5"
    >>> st = SurfaceStore.open(p, Grid(np.linspace(-1, 1, 5), np.linspace(-1, 1, 4)), {"model": "mlp"})
    >>> a, b = st.grid.coords(np.arange(10)); st.write(np.arange(10), 1 + a**2 + b**2, 1 - a**2 / 2); st.close()
    >>> sec = surface_section(p)
    >>> sec["progress"], [f["data"][0]["type"] for f in sec["figures"]][:2]
    ('10/20 points (50.0%), status partial', ['surface', 'contour'])
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ..engine.curvature_map import MAPS
from ..io.hdf5 import open_hdf5
from ..io.path_file import read_path
from ..io.surface_file import CURVATURE_DONE, read_projected_path, read_surface
from ..io.topology_file import read_topology, share_label
from ..io.trajectory import TrajectoryStore
from ..analysis.merge_tree import merge_tree_segments, topological_profile, tree_order
from .overlay import path_to_draw, surface_height
from .topology_plots import tree_inputs
from .surface_plots import axis_labels, log_tick_values, plain_number

__all__ = ["surface_section", "paths_section", "trajectory_section", "curvature_section", "correlation_section",
           "topology_section",
           "jsonable", "log_ticks", "log_axis", "twin_layout", "MAX_SIDE", "MAX_PARAMETER_LINES"]

#: surfaces larger than this along an axis are shown at every k-th point (the files keep every point)
MAX_SIDE = 201
#: parameter-level path lines shown (those that travelled furthest)
MAX_PARAMETER_LINES = 60
_AXIS = {"showgrid": True, "zeroline": False}


def jsonable(values: Any, digits: int = 7) -> Any:
    """Numbers as JSON-ready lists: rounded to ``digits`` significant digits, NaN/inf as None (gaps in plotly).

    Example:
        >>> jsonable(np.array([[1.23456789, np.nan], [np.inf, 2.0]]), 3)
        [[1.23, None], [None, 2.0]]
    """
    a = np.array(values, dtype=np.float64)
    finite = np.isfinite(a)
    nz = finite & (a != 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = 10.0 ** (digits - 1 - np.floor(np.log10(np.abs(np.where(nz, a, 1.0)))))
    a = np.where(nz, np.round(a * scale) / scale, a)
    out = a.astype(object)
    out[~finite] = None
    return out.tolist()


def log_ticks(lo: float, hi: float) -> tuple[list[float], list[str]]:
    """Colour-bar ticks of a log10-coloured quantity: positions (log10) and plain labels at 1-2-5 steps.

    Example:
        >>> log_ticks(0.1, 1.0)
        ([-1.0, -0.699, -0.301, 0.0], ['0.1', '0.2', '0.5', '1'])
    """
    vals = log_tick_values(lo, hi)
    return [round(float(np.log10(v)), 3) for v in vals], [f"{v:.3g}" for v in vals]


def log_axis(title: str, *values: Any) -> dict[str, Any]:
    """A Plotly log axis labelled with plain numbers (1-2-5 steps; powers of ten beyond four decades) over the
    positive finite ``values``, instead of Plotly's bare mantissa digits ("2, 5, 1, 2 …").

    Example:
        >>> log_axis("loss", [0.15, 2.5])["ticktext"]
        ['0.2', '0.5', '1', '2']
    """
    v = np.concatenate([np.ravel(np.asarray(x, dtype=float)) for x in values]) if values else np.array([])
    v = v[np.isfinite(v) & (v > 0)]
    axis: dict[str, Any] = {"title": {"text": title}, "type": "log"}
    if v.size:
        lo, hi = float(v.min()), float(v.max())
        ticks = log_tick_values(lo, hi)
        if hi > lo * 1e4:
            ticks = [t for t in ticks if abs(np.log10(t) - round(np.log10(t))) < 1e-9] or ticks
        axis.update(tickvals=ticks, ticktext=[plain_number(t) for t in ticks])
    return axis


def twin_layout(layout: dict[str, Any]) -> dict[str, Any]:
    """A layout with a right-hand accuracy axis: room for its title and ticks, and the legend below the plot
    (beside the axis it hid the accuracy ticks)."""
    return {**layout, "margin": {"l": 60, "r": 70, "t": 40, "b": 90},
            "legend": {"orientation": "h", "x": 0, "y": -0.22, "yanchor": "top"}}


def _stride(n: int) -> int:
    return max(1, -(-n // MAX_SIDE))


def _colour(values: np.ndarray, log: bool) -> tuple[np.ndarray, dict[str, Any]]:
    """Values to colour by and the colour bar: log10 with plain tick labels when ``log`` and all positive."""
    v = values[np.isfinite(values)]
    if log and v.size and (v > 0).all() and v.max() > v.min():
        with np.errstate(divide="ignore", invalid="ignore"):
            c = np.log10(values)
        vals, text = log_ticks(float(v.min()), float(v.max()))
        return c, {"tickvals": vals, "ticktext": text}
    return values, {}


def surface_section(path: str | Path) -> dict[str, Any]:
    """A surface file: 3-D surface with the path draped on it, loss and accuracy contours with the projected path,
    curvature maps when the file holds them, the progress and the run history."""
    s = read_surface(path)
    n, total = int(s.done.sum()), s.done.size
    sec: dict[str, Any] = {"kind": "surface", "file": Path(path).name, "inputs": s.inputs,
                           "progress": f"{n}/{total} points ({100.0 * n / max(total, 1):.1f}%), status "
                                       f"{s.attrs.get('status', '?')}", "runs": s.runs, "figures": [], "notes": []}
    xl, yl = axis_labels(s)
    done = s.done.astype(bool)
    if s.attrs.get("task") == "language" and (done & np.isfinite(s.loss)).any():
        low = float(np.min(s.loss[done & np.isfinite(s.loss)]))
        sec["notes"].append(f"language model: lowest loss {low:.4g} per token, perplexity {np.exp(min(low, 700.0)):.4g}")
    loss = np.where(done, s.loss, np.nan)
    acc = np.where(done, s.accuracy, np.nan)
    if s.beta is None:
        sec["figures"].append({"title": f"{Path(path).name}: loss along α", "data": [
            {"type": "scatter", "x": jsonable(s.alpha), "y": jsonable(loss), "name": "loss", "mode": "lines+markers"},
            {"type": "scatter", "x": jsonable(s.alpha), "y": jsonable(acc), "name": "accuracy", "yaxis": "y2",
             "mode": "lines+markers"}],
            "layout": twin_layout({"xaxis": {"title": {"text": xl}}, "yaxis": log_axis("loss", loss),
                                   "yaxis2": {"title": {"text": "accuracy"}, "overlaying": "y", "side": "right",
                                              "tickformat": ".2f"}})})
        return sec
    ka, kb = _stride(len(s.alpha)), _stride(len(s.beta))
    if ka > 1 or kb > 1:
        sec["notes"].append(f"shown at every {ka}th α and {kb}th β point; the file holds all {total}")
    a, b = s.alpha[::ka], s.beta[::kb]
    L, A = loss[::ka, ::kb], acc[::ka, ::kb]
    colour, bar = _colour(L, log=True)
    hover = "α %{x:.4g}<br>β %{y:.4g}<br>loss %{customdata:.5g}<extra></extra>"
    traj, _ = path_to_draw(s, read_projected_path(path))
    surf: list[dict[str, Any]] = [{
        "type": "surface", "x": jsonable(a), "y": jsonable(b), "z": jsonable(L.T), "surfacecolor": jsonable(colour.T),
        "customdata": jsonable(L.T), "colorscale": "Viridis", "hovertemplate": hover,
        "colorbar": {"title": {"text": "loss"}, **bar},
        "contours": {"z": {"show": True, "usecolormap": True, "project": {"z": True}, "width": 1}}}]
    flat: list[dict[str, Any]] = [{
        "type": "contour", "x": jsonable(a), "y": jsonable(b), "z": jsonable(colour.T), "customdata": jsonable(L.T),
        "colorscale": "Viridis", "hovertemplate": hover, "ncontours": 25, "colorbar": {"title": {"text": "loss"}, **bar},
        "contours": {"coloring": "heatmap", "showlines": True}, "line": {"width": 0.5}}]
    if traj is not None:
        h = surface_height(s, s.loss, traj["alpha"], traj["beta"])
        epoch = traj.get("epoch", np.arange(len(traj["alpha"])))
        text = [f"epoch {e:g}" for e in epoch]
        surf.append({"type": "scatter3d", "x": jsonable(traj["alpha"]), "y": jsonable(traj["beta"]), "z": jsonable(h),
                     "mode": "lines+markers", "name": "training path", "text": text,
                     "line": {"color": jsonable(epoch), "colorscale": "Reds", "width": 6},
                     "marker": {"size": 3, "color": "crimson"}})
        flat.append({"type": "scatter", "x": jsonable(traj["alpha"]), "y": jsonable(traj["beta"]), "text": text,
                     "mode": "lines+markers", "name": "training path", "marker": {"color": "crimson", "size": 5},
                     "line": {"color": "crimson"}, "hovertemplate": "%{text}<br>α %{x:.4g}<br>β %{y:.4g}"})
    # the surface fills its card: a wide, flat box seen from a low camera (a cube seen from above was a third of
    # the card and looked down a steep funnel); the axes named as on the figures (PC1/PC2 for PCA planes)
    scene = {"xaxis": {"title": {"text": xl.split("  (")[0]}}, "yaxis": {"title": {"text": yl.split("  (")[0]}},
             "zaxis": {"title": {"text": "loss"}}, "aspectmode": "manual",
             "aspectratio": {"x": 1.3, "y": 1.3, "z": 0.65}, "camera": {"eye": {"x": 1.45, "y": -1.45, "z": 0.8},
                                                                        "center": {"x": 0, "y": 0, "z": -0.05}},
             "domain": {"x": [0, 1], "y": [0, 1]}}
    # contours over the data's own extent (an equal aspect padded a -1..1 grid out to -1.5..1.5)
    plane = {"xaxis": {"title": {"text": xl}, "range": [float(a[0]), float(a[-1])], **_AXIS},
             "yaxis": {"title": {"text": yl}, "range": [float(b[0]), float(b[-1])], **_AXIS}}
    name = Path(path).name
    sec["figures"] += [
        {"title": f"{name}: loss surface (drag to rotate, scroll to zoom)", "data": surf,
         "layout": {"scene": scene, "height": 620, "margin": {"l": 0, "r": 0, "t": 40, "b": 0}}},
        {"title": f"{name}: loss contours" + (" and the projected training path" if traj is not None else ""),
         "data": flat, "layout": plane},
        {"title": f"{name}: accuracy", "data": [{
            "type": "contour", "x": jsonable(a), "y": jsonable(b), "z": jsonable(A.T), "colorscale": "Viridis",
            "ncontours": 20, "colorbar": {"title": {"text": "accuracy"}}, "contours": {"coloring": "heatmap"},
            "hovertemplate": "α %{x:.4g}<br>β %{y:.4g}<br>accuracy %{z:.4g}<extra></extra>"}], "layout": plane}]
    if CURVATURE_DONE in s.maps:
        cd = s.maps[CURVATURE_DONE].astype(bool)
        maps = {k: np.where(cd, s.maps[k], np.nan)[::ka, ::kb] for k in MAPS if k in s.maps}
        if "lambda_max" in maps and "lambda_min" in maps:
            with np.errstate(divide="ignore", invalid="ignore"):
                maps["|λmin/λmax|"] = np.abs(maps["lambda_min"] / maps["lambda_max"])
        sec["curvature_progress"] = f"{int(cd.sum())}/{cd.size} points"
        for k, m in maps.items():
            sec["figures"].append({"title": f"{name}: {k} map", "data": [{
                "type": "heatmap", "x": jsonable(a), "y": jsonable(b), "z": jsonable(m.T), "colorscale": "Viridis",
                "colorbar": {"title": {"text": k}}}], "layout": plane})
    return sec


def paths_section(files: list[Path]) -> dict[str, Any]:
    """Path files: loss and accuracy along α per kind and level (model, layer, the parameters that moved most)."""
    sec: dict[str, Any] = {"kind": "paths", "figures": [], "notes": []}
    for f in files:
        p = read_path(f)
        lv = np.array(p["level"])
        for level in ("model", "layer", "parameter"):
            idx = np.flatnonzero(lv == level)
            if not len(idx):
                continue
            if level == "parameter" and len(idx) > MAX_PARAMETER_LINES:
                idx = idx[np.argsort(-p["distance"][idx])[:MAX_PARAMETER_LINES]]
                sec["notes"].append(f"{f.name}: the {MAX_PARAMETER_LINES} parameters that moved furthest of "
                                    f"{int((lv == level).sum())}")
            for what in ("loss", "accuracy"):
                data = [{"type": "scatter", "mode": "lines", "x": jsonable(p["alpha"]), "y": jsonable(p[what][k]),
                         "name": p["name"][k], "hovertemplate": f"{p['name'][k]}<br>α %{{x:.3g}}<br>{what} "
                                                                "%{y:.5g}<extra></extra>"} for k in idx]
                ends = " → ".join(Path(str(p["inputs"].get(k, "?"))).name for k in ("start", "end"))
                layout = {"xaxis": {"title": {"text": f"α  ({p['kind']}: {ends})"}},
                          "yaxis": log_axis(what, p[what][idx]) if what == "loss" else {"title": {"text": what}},
                          "shapes": [{"type": "rect", "xref": "x", "yref": "paper", "x0": 0, "x1": 1, "y0": 0,
                                      "y1": 1, "fillcolor": "rgba(120,120,120,0.08)", "line": {"width": 0}}]}
                sec["figures"].append({"title": f"{f.name}: {what}, {level} level (shaded: 0 ≤ α ≤ 1)",
                                       "data": data, "layout": layout})
    return sec


def trajectory_section(path: Path) -> dict[str, Any]:
    """A training trajectory: per-epoch train/test loss and accuracy, and per-layer weight and gradient norms."""
    st = TrajectoryStore(path)
    m = st.metrics()
    sec: dict[str, Any] = {"kind": "trajectory", "file": path.name, "checkpoints": len(st), "figures": []}
    if len(m["epoch"]):
        data = [{"type": "scatter", "mode": "lines+markers", "x": jsonable(m["epoch"]), "y": jsonable(m[k]),
                 "name": k.replace("_", " "), **({"yaxis": "y2"} if "accuracy" in k else {})}
                for k in m if k != "epoch"]
        losses = [m[k] for k in m if k != "epoch" and "accuracy" not in k]
        sec["figures"].append({"title": f"{path.name}: training metrics per epoch", "data": data,
                               "layout": twin_layout({
                                   "xaxis": {"title": {"text": "epoch"}}, "yaxis": log_axis("loss", *losses),
                                   "yaxis2": {"title": {"text": "accuracy"}, "overlaying": "y", "side": "right",
                                              "range": [0, 1], "tickformat": ".1f"}})})
    nm = st.norms()
    if nm is not None and len(nm["step"]):
        for what, log in (("weight", False), ("grad", True)):
            data = [{"type": "scatter", "mode": "lines", "x": jsonable(nm["step"]), "y": jsonable(nm[what][:, k]),
                     "name": f"{layer} ({kind})", "line": {"dash": "solid" if kind == "conv" else "dash"}}
                    for k, (layer, kind) in enumerate(zip(nm["layers"], nm["kinds"]))]
            sec["figures"].append({"title": f"{path.name}: {what} L2 norm per layer", "data": data, "layout": {
                "xaxis": {"title": {"text": "optimiser step"}},
                "yaxis": log_axis(f"{what} norm", nm[what]) if log else {"title": {"text": f"{what} norm"}}}})
    return sec


def curvature_section(path: Path) -> dict[str, Any]:
    """A curvature file: the eigenvalues found, trace, ε-sharpness and basin widths, the spectral density."""
    with open_hdf5(path) as f:
        attrs = {k: f.attrs[k] for k in f.attrs}
        eig = f["eigenvalues"][:] if "eigenvalues" in f else np.zeros(0)
        out: dict[str, Any] = {k: float(f[k][()]) for k in ("trace", "trace_stderr") if k in f}
        density = (f["density/grid"][:], f["density/values"][:]) if "density" in f else None
    num = lambda k: f"{float(attrs[k]):.6g}" if k in attrs else None  # noqa: E731
    rows = [("λmax", num("lambda_max")), ("λmin", num("lambda_min")),
            ("trace", f"{out['trace']:.6g} ± {out.get('trace_stderr', float('nan')):.3g}" if "trace" in out else None),
            ("ε-sharpness", f"{float(attrs['eps_sharpness']):.4g} % (ε = {float(attrs.get('epsilon', 0)):g}, "
                            f"{attrs.get('ascent_steps')} ascent steps)" if "eps_sharpness" in attrs else None),
            ("Lanczos", f"{attrs.get('lanczos_iterations')} iterations, tol {attrs.get('lanczos_tol')}, converged "
                        f"{attrs.get('converged')}" if "lanczos_iterations" in attrs else None)]
    basin = json.loads(attrs["basin"]) if isinstance(attrs.get("basin"), str) else []
    rows += [(f"basin along {b.get('direction', k + 1)}", f"loss doubles at −{float(b['minus']):.4g} and "
              f"+{float(b['plus']):.4g} (width {float(b['minus']) + float(b['plus']):.4g})")
             for k, b in enumerate(basin) if isinstance(b, dict) and "minus" in b and "plus" in b]
    sec: dict[str, Any] = {"kind": "curvature", "file": path.name, "rows": [(k, v) for k, v in rows if v is not None],
                           "figures": []}
    if eig.size:
        order = np.argsort(-eig)
        sec["figures"].append({"title": f"{path.name}: Hessian eigenvalues found (largest and smallest)", "data": [{
            "type": "bar", "x": [f"#{k + 1}" for k in range(eig.size)], "y": jsonable(eig[order]),
            "hovertemplate": "%{y:.6g}<extra></extra>"}], "layout": {"yaxis": {"title": {"text": "eigenvalue"}}}})
    if density is not None:
        sec["figures"].append({"title": f"{path.name}: spectral density (stochastic Lanczos quadrature)", "data": [{
            "type": "scatter", "mode": "lines", "x": jsonable(density[0]), "y": jsonable(density[1])}],
            "layout": {"xaxis": {"title": {"text": "eigenvalue"}}, "yaxis": log_axis("density", density[1])}})
    return sec


def correlation_section(path: Path) -> dict[str, Any]:
    """Filter correlation matrices of each convolution layer (weights and activations)."""
    sec: dict[str, Any] = {"kind": "correlation", "file": path.name, "figures": []}
    with open_hdf5(path) as f:
        for layer in f:
            for what in ("weights", "activations"):
                if what in f[layer]:
                    sec["figures"].append({"title": f"{layer}: filter correlation of the {what}", "data": [{
                        "type": "heatmap", "z": jsonable(f[layer][what][()], 4), "zmin": -1, "zmax": 1,
                        "colorscale": "RdBu", "reversescale": True, "colorbar": {"title": {"text": "Pearson r"}}}],
                        "layout": {"xaxis": {"title": {"text": "filter"}},
                                   "yaxis": {"title": {"text": "filter"}, "scaleanchor": "x", "autorange": "reversed"},
                                   "height": 420, "width": 520}})
    return sec


def topology_section(path: Path) -> dict[str, Any]:
    """A topology file: basin counts, roughness, the centre's basin, a path's end barrier, the most persistent
    basins, and the persistence diagram."""
    t = read_topology(path)
    a = t["attrs"]
    name = Path(str(a.get("source", "?"))).name + (f" [{a['item']}]" if a.get("item") else "")
    counts = a.get("thresholds") or {}
    rows = [("landscape", name), ("loss range", f"{float(a['low']):.6g} .. {float(a['high']):.6g}"),
            ("basins", f"{len(t['basins/minimum'])}; above a barrier of " + ", ".join(
                f"{k.split()[-1]}{' of the range' if k.startswith('relative') else ''}: {v}" for k, v in counts.items())),
            ("roughness", f"{float(a['roughness']):.4g} (the other basins' total barrier over the loss range)")]
    if "smad" in a:
        rows.append(("SMAD", f"{float(a['smad']):.4g} (Landscaper's saddle–minimum average distance)"))
    c = a.get("centre")
    if isinstance(c, dict):
        finite = c.get("barrier") not in (None, float("inf")) and np.isfinite(float(c["barrier"]))
        share = share_label(a).split()[-1]
        rows.append(("centre's basin", f"basin {c['basin']}, {100 * float(c['fraction']):.1f} % of the {share}, " +
                     (f"barrier {float(c['barrier']):.4g}" if finite else "the deepest (no barrier inside the grid)")))
    if np.isfinite(float(a.get("end_barrier", np.nan))):
        rows.append(("barrier between the ends", f"{float(a['end_barrier']):.6g}"))
    minima, saddles = t["basins/minimum"], t["basins/saddle"]
    for i in range(min(5, len(minima))):
        where = ", ".join(f"{n} {x:.4g}" for n, x in zip(a.get("axes") or [], t["basins/coords"][i]))
        rows.append((f"basin {i}", f"minimum {minima[i]:.6g} at {where}; " + (
            f"saddle {saddles[i]:.6g} (barrier {saddles[i] - minima[i]:.4g})" if np.isfinite(saddles[i])
            else "never merges")))
    pairs, dims = t["persistence"], t["dimension"]
    top = float(a["high"]) + 0.05 * (float(a["high"]) - float(a["low"]) or 1.0)
    data = [{"type": "scatter", "mode": "markers", "name": f"H{d} ({int((dims == d).sum())})",
             "x": jsonable(pairs[dims == d][:, 0]),
             "y": jsonable(np.where(np.isfinite(pairs[dims == d][:, 1]), pairs[dims == d][:, 1], top)),
             "hovertemplate": "birth %{x:.6g}<br>death %{y:.6g}<extra></extra>"} for d in sorted(set(dims.tolist()))]
    data.append({"type": "scatter", "mode": "lines", "name": "birth = death", "x": [float(a["low"]), top],
                 "y": [float(a["low"]), top], "line": {"color": "#999", "width": 1}, "hoverinfo": "skip"})
    fig = {"title": f"{name}: persistence diagram (points on the top line never merge)", "data": data,
           "layout": {"xaxis": {"title": {"text": "birth: a basin's minimum loss"}},
                      "yaxis": {"title": {"text": "death: the saddle's loss"}},
                      "legend": {"orientation": "h", "y": -0.25}}}
    figures = [fig]
    keep, top, fractions = tree_inputs(t)
    if len(keep) > 1:  # a merge tree and a profile mean something from two basins on
        segs = merge_tree_segments(minima, saddles, t["basins/merges_into"], top, keep)
        xs: list[float | None] = []
        ys: list[float | None] = []
        for (x0, y0), (x1, y1) in segs:
            xs += [x0, x1, None]
            ys += [y0, y1, None]
        order = tree_order(minima, saddles, t["basins/merges_into"], keep)
        figures.append({"title": f"{name}: merge tree (basins join at their saddles)", "data": [
            {"type": "scatter", "mode": "lines", "x": xs, "y": ys, "line": {"color": "#222"}, "hoverinfo": "skip",
             "showlegend": False},
            {"type": "scatter", "mode": "markers+text", "x": list(range(len(order))),
             "y": jsonable(np.asarray(minima)[order]), "text": [str(i) for i in order], "textposition": "bottom center",
             "showlegend": False, "hovertemplate": "basin %{text}<br>minimum %{y:.6g}<extra></extra>"}],
            "layout": {"xaxis": {"visible": False}, "yaxis": {"title": {"text": "loss"}}}})
        px, py = topological_profile(minima, saddles, t["basins/merges_into"], fractions, top, keep)
        figures.append({"title": f"{name}: topological profile (a valley per basin, as wide as its share of the grid)",
                        "data": [{"type": "scatter", "mode": "lines", "x": jsonable(px), "y": jsonable(py),
                                  "fill": "tozeroy", "line": {"color": "#222"}, "showlegend": False}],
                        "layout": {"xaxis": {"title": {"text": share_label(a)}, "range": [0, 1]},
                                   "yaxis": {"title": {"text": "loss"},
                                             "range": [float(np.min(py)) - 0.05 * (top - float(np.min(py))), top]}}})
    return {"kind": "topology", "file": path.name, "rows": rows, "figures": figures}
