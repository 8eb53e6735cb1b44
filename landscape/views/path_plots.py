"""Figures of path files: per level and kind, linear vs quadratic overlays, and the comparison with the
per-epoch test loss recorded during training (interpolation and epoch axes together).

Example:
    >>> plot_paths.__name__
    'plot_paths'
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..core.errors import ConfigError
from ..io.checkpoints import split_source
from ..io.path_file import read_path
from ..io.trajectory import TrajectoryStore
from ..io.hdf5 import writes_to
from .mpl import pyplot, savefig

__all__ = ["plot_paths", "distance_opacity", "loss_limits", "KIND_LABELS", "Y_SCALES"]

#: how the loss axis of path figures is drawn: ``log``; ``linear``; ``clip``: linear, limited to the values inside
#: the interpolation range 0 ≤ α ≤ 1 (extrapolated values, often orders of magnitude larger, leave the axis)
Y_SCALES = ("log", "linear", "clip")

KIND_LABELS = {"linear": "linear path", "quadratic": "quadratic (Lagrange) path",
               "bezier": "Bézier curve (learned)", "polychain": "polychain (learned)"}


def distance_opacity(distance: np.ndarray) -> np.ndarray:
    """Line opacity from 0.1 to 1 in proportion to the distance each parameter travelled, kept inside [0, 1]
    whatever the rounding (``0.1 + 0.9 * d / d`` is 1.0000000000000002 for d = 2.697867137638703).

    Example:
        >>> distance_opacity(np.array([0.0, 1.0, 2.697867137638703])).tolist()
        [0.1, 0.4335968578451648, 1.0]
    """
    d = np.asarray(distance, dtype=np.float64)
    dmax = max(float(np.nanmax(d)) if d.size else 0.0, 1e-12)
    return np.clip(0.1 + 0.9 * (d / dmax), 0.0, 1.0)


def loss_limits(alpha: np.ndarray, loss: np.ndarray, margin: float = 0.15) -> tuple[float, float] | None:
    """The loss axis of a ``clip`` path figure: the finite values at 0 ≤ α ≤ 1 (all rows), with a margin.

    Example:
        >>> loss_limits(np.array([-1.0, 0.0, 1.0, 2.0]), np.array([[50.0, 1.0, 2.0, 90.0]]))
        (0.85, 2.15)
    """
    inside = (alpha >= -1e-12) & (alpha <= 1 + 1e-12)
    v = np.asarray(loss)[..., inside]
    v = v[np.isfinite(v)]
    if not v.size:
        return None
    lo, hi = float(v.min()), float(v.max())
    pad = margin * max(hi - lo, 1e-12)
    return lo - pad, hi + pad


def _loss_axis(ax: Any, curves: Sequence[tuple[np.ndarray, np.ndarray]], y_scale: str) -> None:
    """Log, linear or clipped loss axis; ``curves`` are (alpha, loss rows) pairs, grids may differ."""
    if y_scale == "log":
        ax.set_yscale("log")
    elif y_scale == "clip":
        lims = [lim for a, lo in curves if (lim := loss_limits(a, lo)) is not None]
        if lims:
            ax.set_ylim(min(x[0] for x in lims), max(x[1] for x in lims))


def _ends(p: dict[str, Any]) -> str:
    return " → ".join(Path(str(p["inputs"].get(k, "?"))).name for k in ("start", "end"))


def _epoch_alpha(p: dict[str, Any], trajectory: Path | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, float,
                                                                     float] | None:
    """Per-epoch test loss/accuracy of the training run placed on the α axis: α = (e − e₀) / (e₁ − e₀)."""
    if trajectory is None:
        return None
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
               formats: Sequence[str] = ("png", "pdf"), trajectory: str | Path | None = None,
               y_scale: str = "log") -> list[Path]:
    """Figures of path files: per level and kind, linear vs quadratic overlays, and the comparison with the
    per-epoch test loss recorded during training (interpolation and epoch axes together). The interpolation
    range 0 ≤ α ≤ 1 is shaded; the loss axis is ``y_scale`` (one of :data:`Y_SCALES`)."""
    if y_scale not in Y_SCALES:
        raise ConfigError(f"path y scale: expected one of {list(Y_SCALES)}, got {y_scale!r}")
    plt = pyplot()
    paths = [read_path(f) for f in files]
    out_dir = Path(out_dir) if out_dir else paths[0]["path"].parent
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def save(fig: Any, name: str) -> None:
        fig.tight_layout()
        for fmt in formats:
            savefig(fig, out_dir / f"{name}.{fmt}")
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
            opacity = dict(zip(idx, distance_opacity(p["distance"][idx])))
            for k, lay in zip(idx, layer_of):
                style: dict[str, Any] = {"lw": 1.2}
                if level == "parameter":  # opacity proportional to the distance travelled
                    style.update(color=colours[lay], alpha=opacity[k], lw=1.0)
                label = p["name"][k] if level != "parameter" else None
                axes[0].plot(a, p["loss"][k], label=label, **style)
                axes[1].plot(a, p["accuracy"][k], label=label, **style)
            if level == "parameter":
                for lay, c in colours.items():
                    axes[0].plot([], [], color=c, label=f"{lay} (opacity ∝ distance)")
            _loss_axis(axes[0], [(a, p["loss"][idx])], y_scale)
            for ax, what in zip(axes, ("loss" + ("" if y_scale == "linear" else f" ({y_scale})"), "accuracy")):
                ax.set_xlabel(f"α  ({_ends(p)})", fontsize=8)
                ax.set_ylabel(what)
                ax.axvspan(0, 1, color="grey", alpha=0.12, lw=0, label="_interpolation")
                ax.grid(alpha=0.3)
            axes[0].legend(fontsize=7, title="shaded: 0 ≤ α ≤ 1", title_fontsize=7)
            fig.suptitle(f"{KIND_LABELS.get(p['kind'], p['kind'])}, {level} level: {p['inputs'].get('model')}",
                         fontsize=9)
            save(fig, f"{stem}_{level}")

    # linear vs quadratic, and the training run on the same axis
    models = [p for p in paths if "model" in p["level"]]
    if models:
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        rows: dict[str, Any] = {}
        for p in models:
            k = p["level"].index("model")
            label = KIND_LABELS.get(p["kind"], p["kind"])
            axes[0].plot(p["alpha"], p["loss"][k], label=label)
            axes[1].plot(p["alpha"], p["accuracy"][k], label=label)
            rows[p["kind"]] = p
        ep = _epoch_alpha(models[0], Path(trajectory) if trajectory else None)
        if ep is not None:
            ea, el, eacc, e0, e1 = ep
            axes[0].plot(ea, el, "o--", color="black", ms=3, label="training (test loss per epoch)")
            axes[1].plot(ea, eacc, "o--", color="black", ms=3, label="training (test accuracy per epoch)")
            for ax in axes:  # epoch = e0 + α (e1 − e0): the training run on the interpolation axis
                top = ax.secondary_xaxis("top", functions=(lambda x: e0 + x * (e1 - e0), lambda e: (e - e0) / (e1 - e0)))
                top.set_xlabel("epoch", fontsize=8)
        _loss_axis(axes[0], [(p["alpha"], p["loss"][p["level"].index("model")]) for p in models], y_scale)
        ends = _ends(models[0])
        for ax, what in zip(axes, ("loss" + ("" if y_scale == "linear" else f" ({y_scale})"), "accuracy")):
            ax.axvspan(0, 1, color="grey", alpha=0.12, lw=0)
            ax.set_xlabel(f"α or t  (0 = start, 1 = end: {ends}; shaded: 0 ≤ α ≤ 1)", fontsize=8)
            ax.set_ylabel(what)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
        save(fig, "paths_compare")
        with writes_to(out_dir / "paths_compare.csv"), open(out_dir / "paths_compare.csv", "w") as fh:
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
        _loss_axis(ax, [(p["alpha"], p["loss"][np.array(p["level"]) == "layer"]) for p in layered], y_scale)
        ax.axvspan(0, 1, color="grey", alpha=0.12, lw=0)
        ax.set_xlabel(f"α  ({_ends(layered[0])}; shaded: 0 ≤ α ≤ 1)", fontsize=8)
        ax.set_ylabel("loss" + ("" if y_scale == "linear" else f" ({y_scale})"))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, ncol=2)
        save(fig, "paths_layers_compare")
    return written
