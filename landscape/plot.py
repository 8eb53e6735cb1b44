"""Figures of surface files with matplotlib (PNG and PDF).

For a 2-D surface: ``*_contour`` (labelled contour lines), ``*_filled`` (filled contours), ``*_heatmap``
(with colour bars) and ``*_3d`` (3-D surface), each with a loss and an accuracy panel and the projected
trajectory overlaid when the file holds one; for a 1-D surface ``*_line``. Axis labels name the
directions and their normalisation (or the explained variance of PCA directions).

Example:
    >>> import tempfile, numpy as np
    >>> from landscape.grid import Grid
    >>> from landscape.store import SurfaceStore
    >>> p = tempfile.mkdtemp() + "/s.h5"
    >>> st = SurfaceStore.open(p, Grid(np.linspace(-1, 1, 5), np.linspace(-1, 1, 4)), {"k": 1})
    >>> a, b = st.grid.coords(np.arange(20)); st.write(np.arange(20), a**2 + b**2, 1 - a**2 / 2); st.close()
    >>> sorted(x.name for x in plot_surface(p, formats=("png",)))[:2]
    ['s_3d.png', 's_contour.png']
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .errors import ConfigError, require
from .store import SurfaceData, read_surface

__all__ = ["plot_surface", "plot_paths", "read_path", "axis_labels", "animate_path", "FIGURES"]

_log = logging.getLogger(__name__)

FIGURES = ("contour", "filled", "heatmap", "3d")


def _plt() -> Any:
    mpl = require("matplotlib", "plot")
    mpl.use("Agg")
    return require("matplotlib.pyplot", "plot")


def axis_labels(s: SurfaceData) -> tuple[str, str]:
    """Labels of the alpha and beta axes from how the directions were made.

    Example:
        >>> axis_labels(SurfaceData(None, None, None, None, None, None, {}, {"directions": "random",
        ...             "norm": "filter"}))
        ('α  (random direction d₁, filter-normalised)', 'β  (random direction d₂, filter-normalised)')
    """
    inp = s.inputs
    kind = inp.get("directions", "random")
    if "explained_variance" in s.attrs:
        ev = json.loads(s.attrs["explained_variance"]) if isinstance(s.attrs["explained_variance"], str) \
            else list(s.attrs["explained_variance"])
        return tuple(f"PC{k + 1}  ({100 * ev[k]:.1f}% of variance)" for k in range(2))  # type: ignore[return-value]
    if kind == "checkpoints":
        return (f"α  (towards {inp.get('target1', 'θ₁')})", f"β  (towards {inp.get('target2', 'θ₂')})")
    norm = inp.get("norm", "none")
    suffix = f", {norm}-normalised" if norm not in (None, "none") else ""
    what = "random direction" if kind == "random" else "direction"
    return f"α  ({what} d₁{suffix})", f"β  ({what} d₂{suffix})"


def _title(s: SurfaceData) -> str:
    inp = s.inputs
    data = inp.get("data", {})
    dname = data.get("name") if isinstance(data, dict) else data
    return f"{inp.get('model', '?')} on {dname} ({inp.get('split', '?')}), centre {inp.get('center', '?')}"


def _trajectory(path: Path) -> dict[str, np.ndarray] | None:
    from .export_vtk import _read_trajectory

    return _read_trajectory(path)


def _projections(path: Path) -> dict[str, dict[str, np.ndarray]]:
    """Other runs projected onto this surface's plane (``/projections/<label>``)."""
    import h5py

    with h5py.File(path, "r", locking=False) as f:
        if "projections" not in f:
            return {}
        return {k: {n: g[n][:] for n in g} for k, g in f["projections"].items()}


def _overlay_others(ax: Any, others: dict[str, dict[str, np.ndarray]]) -> None:
    for c, (label, t) in enumerate(others.items()):
        ax.plot(t["alpha"], t["beta"], "-^", ms=3, lw=1.2, color=("deepskyblue", "orange", "lime", "magenta")[c % 4],
                label=label, zorder=4)
        ax.plot(t["alpha"][-1], t["beta"][-1], "*", ms=10, mec="black", color="white", zorder=5)
    if others:
        ax.legend(loc="best", fontsize=7)


def _overlay(ax: Any, traj: dict[str, np.ndarray] | None) -> None:
    if traj is None:
        return
    a, b = traj["alpha"], traj["beta"]
    ax.plot(a, b, "-", color="white", lw=2.5, zorder=3)
    ax.plot(a, b, "-o", color="crimson", lw=1.2, ms=3, zorder=4, label="trajectory")
    ax.plot(a[0], b[0], "s", color="black", ms=7, zorder=5, label="start")
    ax.plot(a[-1], b[-1], "*", color="gold", mec="black", ms=12, zorder=5, label="end")
    if "epoch" in traj:
        step = max(1, len(a) // 8)
        for k in range(0, len(a), step):
            ax.annotate(f"{traj['epoch'][k]:g}", (a[k], b[k]), textcoords="offset points", xytext=(4, 4),
                        fontsize=7, zorder=6)
    ax.legend(loc="best", fontsize=7)


def _panels(s: SurfaceData, log: bool, zmax: float | None) -> list[tuple[str, np.ndarray, bool]]:
    loss = np.ma.masked_invalid(s.loss)
    if zmax is not None:
        loss = np.ma.masked_greater(loss, zmax)
    panels = [("loss", loss, log)]
    if np.isfinite(s.accuracy).any():
        panels.append(("accuracy", np.ma.masked_invalid(s.accuracy), False))
    return panels


def _norm(values: np.ndarray, log: bool) -> Any:
    from matplotlib.colors import LogNorm, Normalize

    v = values.compressed() if np.ma.isMaskedArray(values) else values[np.isfinite(values)]
    if log and (v > 0).any():
        pos = v[v > 0]
        return LogNorm(pos.min(), pos.max())
    return Normalize(v.min(), v.max()) if v.size else Normalize(0, 1)


def _levels(values: np.ndarray, log: bool, n: int = 20) -> np.ndarray:
    v = values.compressed() if np.ma.isMaskedArray(values) else values[np.isfinite(values)]
    if not v.size or v.min() == v.max():
        return np.array([v.min() if v.size else 0.0, (v.max() if v.size else 0.0) + 1e-9])
    if log and (v > 0).all():
        return np.geomspace(v.min(), v.max(), n)
    return np.linspace(v.min(), v.max(), n)


def plot_surface(path: str | Path, out_dir: str | Path | None = None, formats: Sequence[str] = ("png", "pdf"),
                 log: bool = False, zmax: float | None = None, figures: Sequence[str] = FIGURES) -> list[Path]:
    """Write the figures of one surface file; returns the files written."""
    bad = [f for f in formats if f not in ("png", "pdf", "svg")]
    if bad:
        raise ConfigError(f"plot formats: expected png, pdf or svg, got {bad}")
    plt = _plt()
    s = read_surface(path)
    out_dir = Path(out_dir) if out_dir else Path(path).parent
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = Path(path).stem
    xl, yl = axis_labels(s)
    written: list[Path] = []

    def save(fig: Any, name: str) -> None:
        fig.suptitle(_title(s), fontsize=9)
        fig.tight_layout()
        for fmt in formats:
            p = out_dir / f"{stem}_{name}.{fmt}"
            fig.savefig(p, dpi=150)
            written.append(p)
        plt.close(fig)

    if s.beta is None:
        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        axes[0].plot(s.alpha, s.loss, "-o", ms=3)
        axes[0].set_ylabel("loss")
        if log:
            axes[0].set_yscale("log")
        axes[1].plot(s.alpha, s.accuracy, "-o", ms=3, color="tab:green")
        axes[1].set_ylabel("accuracy")
        for ax in axes:
            ax.set_xlabel(xl)
            ax.grid(alpha=0.3)
        save(fig, "line")
        return written

    traj = _trajectory(Path(path))
    others = _projections(Path(path))
    A, B = np.meshgrid(s.alpha, s.beta, indexing="ij")
    if min(A.shape) < 2:  # contours and surfaces need two points along each axis
        skipped = [f for f in figures if f != "heatmap"]
        if skipped:
            _log.warning("%s: grid %s is too small for %s figures; drawing the heatmap only", path, A.shape, skipped)
        figures = [f for f in figures if f == "heatmap"]
    panels = _panels(s, log, zmax)
    for kind in figures:
        if kind not in FIGURES:
            raise ConfigError(f"figure {kind!r}: expected one of {list(FIGURES)}")
        if kind == "3d":
            fig = plt.figure(figsize=(6 * len(panels), 5))
            for k, (name, vals, lg) in enumerate(panels):
                ax = fig.add_subplot(1, len(panels), k + 1, projection="3d")
                z = np.log10(vals) if lg else vals
                ax.plot_surface(A, B, np.ma.filled(z, np.nan), cmap="viridis", linewidth=0, antialiased=True)
                ax.set_xlabel(xl, fontsize=7)
                ax.set_ylabel(yl, fontsize=7)
                ax.set_zlabel(f"log10 {name}" if lg else name)
            save(fig, "3d")
            continue
        fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 5), squeeze=False)
        for ax, (name, vals, lg) in zip(axes[0], panels):
            if kind == "contour":
                cs = ax.contour(A, B, vals, levels=_levels(vals, lg or name == "loss"), norm=_norm(vals, lg),
                                cmap="viridis")
                ax.clabel(cs, cs.levels[::2], inline=True, fontsize=7, fmt="%.3g")
            elif kind == "filled":
                cs = ax.contourf(A, B, vals, levels=_levels(vals, lg or name == "loss"), norm=_norm(vals, lg),
                                 cmap="viridis")
                fig.colorbar(cs, ax=ax, label=name)
            else:
                im = ax.pcolormesh(A, B, vals, shading="nearest", norm=_norm(vals, lg), cmap="viridis")
                fig.colorbar(im, ax=ax, label=f"{name}{' (log scale)' if lg else ''}")
            ax.set_xlabel(xl)
            ax.set_ylabel(yl)
            ax.set_title(name + (" (log scale)" if lg else ""))
            ax.set_aspect("auto")
            _overlay(ax, traj)
            _overlay_others(ax, others)
        save(fig, kind)
    for p in written:
        _log.info("wrote %s", p)
    return written


# -- 1-D paths ------------------------------------------------------------------------------------

def read_path(path: str | Path) -> dict[str, Any]:
    """A path file: ``alpha``, ``loss``/``accuracy`` [items, alpha], item ``name``/``level``/``distance``, attrs."""
    import h5py

    s = read_surface(path)
    with h5py.File(path, "r", locking=False) as f:
        dec = lambda a: [x.decode() if isinstance(x, bytes) else str(x) for x in a]  # noqa: E731
        names, levels, dist = dec(f["items/name"][:]), dec(f["items/level"][:]), f["items/distance"][:]
    return {"alpha": s.beta, "loss": s.loss, "accuracy": s.accuracy, "name": names, "level": levels,
            "distance": dist, "kind": str(s.attrs.get("kind", "?")), "attrs": s.attrs, "inputs": s.inputs,
            "path": Path(path)}


def _epoch_alpha(p: dict[str, Any], trajectory: Path | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, float,
                                                                     float] | None:
    """Per-epoch test loss/accuracy of the training run placed on the α axis: α = (e − e₀) / (e₁ − e₀)."""
    if trajectory is None:
        return None
    from .checkpoints import split_source
    from .trajectory import TrajectoryStore

    st = TrajectoryStore(trajectory)
    t = st.table()
    ends = []
    for key in ("start", "end"):
        src, ref = split_source(str(p["inputs"].get(key, "")))
        if ref is None or src.resolve() != Path(trajectory).resolve():
            return None
        ends.append(float(t["epoch"][st.resolve(ref)]))
    m = st.metrics()
    if ends[1] == ends[0]:
        return None
    return (m["epoch"] - ends[0]) / (ends[1] - ends[0]), m["test_loss"], m["test_accuracy"], ends[0], ends[1]


def plot_paths(files: Sequence[str | Path], out_dir: str | Path | None = None,
               formats: Sequence[str] = ("png", "pdf"), trajectory: str | Path | None = None) -> list[Path]:
    """Figures of path files: per level and kind, linear vs quadratic overlays, and the comparison with the
    per-epoch test loss recorded during training (interpolation and epoch axes together)."""
    plt = _plt()
    paths = [read_path(f) for f in files]
    out_dir = Path(out_dir) if out_dir else paths[0]["path"].parent
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def save(fig: Any, name: str) -> None:
        fig.tight_layout()
        for fmt in formats:
            fig.savefig(out_dir / f"{name}.{fmt}", dpi=150)
            written.append(out_dir / f"{name}.{fmt}")
        plt.close(fig)

    cmap = plt.get_cmap("tab10")
    for p in paths:
        stem, a = p["path"].stem, p["alpha"]
        lv = np.array(p["level"])
        for level in ("model", "layer", "parameter"):
            idx = np.flatnonzero(lv == level)
            if not len(idx):
                continue
            fig, axes = plt.subplots(1, 2, figsize=(11, 4))
            layer_of = [p["name"][k].split(".")[0] for k in idx]
            colours = {lay: cmap(c % 10) for c, lay in enumerate(dict.fromkeys(layer_of))}
            dmax = max(float(np.max(p["distance"][idx])), 1e-12)
            for k, lay in zip(idx, layer_of):
                style: dict[str, Any] = {"lw": 1.2}
                if level == "parameter":  # opacity proportional to the distance travelled
                    style.update(color=colours[lay], alpha=0.1 + 0.9 * float(p["distance"][k]) / dmax, lw=1.0)
                label = p["name"][k] if level != "parameter" else None
                axes[0].plot(a, p["loss"][k], label=label, **style)
                axes[1].plot(a, p["accuracy"][k], label=label, **style)
            if level == "parameter":
                for lay, c in colours.items():
                    axes[0].plot([], [], color=c, label=f"{lay} (opacity ∝ distance)")
            for ax, what in zip(axes, ("loss", "accuracy")):
                ax.set_xlabel(f"α  ({p['kind']} path, {p['inputs'].get('start')} → {p['inputs'].get('end')})",
                              fontsize=8)
                ax.set_ylabel(what)
                for x in (0, 1):
                    ax.axvline(x, color="grey", lw=0.6, ls=":")
                ax.grid(alpha=0.3)
            axes[0].legend(fontsize=7)
            fig.suptitle(f"{p['kind']} path, {level} level: {p['inputs'].get('model')}", fontsize=9)
            save(fig, f"{stem}_{level}")

    # linear vs quadratic, and the training run on the same axis
    models = [p for p in paths if "model" in p["level"]]
    if models:
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        rows: dict[str, Any] = {}
        for p in models:
            k = p["level"].index("model")
            axes[0].plot(p["alpha"], p["loss"][k], label=f"{p['kind']} path")
            axes[1].plot(p["alpha"], p["accuracy"][k], label=f"{p['kind']} path")
            rows[p["kind"]] = p
        ep = _epoch_alpha(models[0], Path(trajectory) if trajectory else None)
        if ep is not None:
            ea, el, eacc, e0, e1 = ep
            axes[0].plot(ea, el, "o--", color="black", ms=3, label="training (test loss per epoch)")
            axes[1].plot(ea, eacc, "o--", color="black", ms=3, label="training (test accuracy per epoch)")
            for ax in axes:  # epoch = e0 + α (e1 − e0): the training run on the interpolation axis
                top = ax.secondary_xaxis("top", functions=(lambda x: e0 + x * (e1 - e0), lambda e: (e - e0) / (e1 - e0)))
                top.set_xlabel("epoch", fontsize=8)
        axes[0].set_yscale("log")
        for ax, what in zip(axes, ("loss (log scale)", "accuracy")):
            ax.set_xlabel("α  (interpolation: 0 = start, 1 = end)", fontsize=8)
            ax.set_ylabel(what)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
        save(fig, "paths_compare")
        with open(out_dir / "paths_compare.csv", "w") as fh:
            fh.write("alpha," + ",".join(f"{k}_loss,{k}_accuracy" for k in rows) + "\n")
            for j, x in enumerate(models[0]["alpha"]):
                vals = []
                for p in rows.values():
                    k = p["level"].index("model")
                    vals += [f"{p['loss'][k, j]:.6g}", f"{p['accuracy'][k, j]:.6g}"]
                fh.write(f"{x:.6g}," + ",".join(vals) + "\n")
            if ep is not None:
                fh.write("\n# training: alpha_of_epoch,test_loss,test_accuracy\n")
                for x, lo, ac in zip(*ep[:3]):
                    fh.write(f"{x:.6g},{lo:.6g},{ac:.6g}\n")
        written.append(out_dir / "paths_compare.csv")
    layered = [p for p in paths if "layer" in p["level"]]
    if len(layered) > 1:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for p, ls in zip(layered, ("-", "--", ":")):
            for c, k in enumerate(np.flatnonzero(np.array(p["level"]) == "layer")):
                ax.plot(p["alpha"], p["loss"][k], ls, color=cmap(c % 10),
                        label=f"{p['name'][k]} ({p['kind']})")
        ax.set_xlabel("α")
        ax.set_ylabel("loss")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, ncol=2)
        save(fig, "paths_layers_compare")
    return written


def animate_path(path: str | Path, out: str | Path | None = None, fps: float = 3.0,
                 regions: Callable[[int], tuple[np.ndarray, np.ndarray, np.ndarray]] | None = None,
                 points: tuple[np.ndarray, np.ndarray] | None = None) -> Path:
    """An animated GIF (pillow writer, no external binary) of the projected path moving over the filled
    contour, titled with the current epoch, loss and accuracy. ``regions(k)`` gives (xx, yy, classes) of a
    model's decision regions at checkpoint ``k`` (2-D data), drawn beside the path with ``points`` (x, y)."""
    plt = _plt()
    from matplotlib.animation import FuncAnimation, PillowWriter

    s = read_surface(path)
    traj = _trajectory(Path(path))
    if traj is None or s.beta is None:
        raise ConfigError(f"{path}: no projected trajectory on a 2-D surface to animate (compute a surface with "
                          "directions=pca, or one around a checkpoint of a trained run)")
    out = Path(out) if out else Path(path).with_name(Path(path).stem + "_path.gif")
    A, B = np.meshgrid(s.alpha, s.beta, indexing="ij")
    loss = np.ma.masked_invalid(s.loss)
    ncols = 2 if regions is not None else 1
    fig, axes = plt.subplots(1, ncols, figsize=(5.5 * ncols, 4.6), squeeze=False)
    ax = axes[0][0]
    cs = ax.contourf(A, B, loss, levels=_levels(loss, True), cmap="viridis")
    fig.colorbar(cs, ax=ax, label="loss")
    xl, yl = axis_labels(s)
    ax.set_xlabel(xl, fontsize=8)
    ax.set_ylabel(yl, fontsize=8)
    (line,) = ax.plot([], [], "-o", color="crimson", ms=3, lw=1.5)
    (head,) = ax.plot([], [], "*", color="gold", mec="black", ms=14)
    ax.plot(traj["alpha"][0], traj["beta"][0], "s", color="black", ms=6)
    title = fig.suptitle("")

    def frame(k: int) -> list:
        line.set_data(traj["alpha"][: k + 1], traj["beta"][: k + 1])
        head.set_data([traj["alpha"][k]], [traj["beta"][k]])
        lo, ac = traj.get("loss", [np.nan] * (k + 1))[k], traj.get("accuracy", [np.nan] * (k + 1))[k]
        title.set_text(f"epoch {traj['epoch'][k]:g}   loss {lo:.4g}   accuracy {ac:.3g}")
        if regions is not None:
            rax = axes[0][1]
            rax.clear()
            xx, yy, zz = regions(k)
            rax.contourf(xx, yy, zz, alpha=0.35, cmap="brg")
            if points is not None:
                rax.scatter(points[0][:, 0], points[0][:, 1], c=points[1], s=6, cmap="brg")
            rax.set_title("decision regions", fontsize=9)
        return [line, head, title]

    anim = FuncAnimation(fig, frame, frames=len(traj["alpha"]), blit=False)
    anim.save(out, writer=PillowWriter(fps=fps))
    plt.close(fig)
    _log.info("wrote %s", out)
    return out
