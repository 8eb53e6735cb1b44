"""1-D paths between checkpoints (Němcová 2021): linear θ(α) = (1−α)θ₀ + αθ₁ and the quadratic Lagrange
path through θ₀ (α=0), θ_mid (α=t) and θ₁ (α=1), at the level of the whole model, of one layer (the final
model with that layer's tensors interpolated) or of one parameter (one scalar interpolated).

A path file is a ``landscape.path`` HDF5 file with the surface file's layout and axes ``(item, alpha)``:
``loss[k, a]`` is the loss of item ``k`` at ``alpha[a]``; ``/items/{name,level,distance,numel}`` describe
the items (``distance`` is the Euclidean distance travelled from θ₀ to θ₁ by the item's values).

Example:
    >>> [round(w, 6) + 0.0 for w in lagrange_weights(0.5, 0.5)]
    [0.0, 1.0, 0.0]
    >>> [round(w, 6) + 0.0 for w in lagrange_weights(2.0, 0.5)]
    [3.0, -8.0, 6.0]
"""
from __future__ import annotations

import csv
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import torch

from .errors import ConfigError
from .evaluate import Evaluator
from .models import layer_names
from .store import PATH_SCHEMA, SurfaceStore, read_surface

if TYPE_CHECKING:
    from .config import JobConfig

__all__ = ["lagrange_weights", "linear_weights", "PathItem", "path_items", "PathEvaluator", "run_paths_job",
           "layer_report", "KINDS", "LEVELS"]

log = logging.getLogger(__name__)

KINDS = ("linear", "quadratic")
LEVELS = ("model", "layer", "parameter")


def linear_weights(alpha: float) -> tuple[float, float, float]:
    """Weights of (θ₀, θ_mid, θ₁) on the linear path.

    Example:
        >>> linear_weights(0.25)
        (0.75, 0.0, 0.25)
    """
    return 1.0 - alpha, 0.0, alpha


def lagrange_weights(alpha: float, t: float = 0.5) -> tuple[float, float, float]:
    """Lagrange basis at ``alpha`` for the nodes 0, ``t``, 1: weights of (θ₀, θ_mid, θ₁).

    L₀ = (α−t)(α−1)/t, L_t = α(α−1)/(t(t−1)), L₁ = α(α−t)/(1−t).

    Example:
        >>> [w + 0.0 for w in lagrange_weights(0.0)], [w + 0.0 for w in lagrange_weights(1.0)]
        ([1.0, 0.0, 0.0], [0.0, 0.0, 1.0])
    """
    if not 0.0 < t < 1.0:
        raise ConfigError(f"quadratic path: the middle node must lie strictly between 0 and 1, got {t}")
    return ((alpha - t) * (alpha - 1.0) / t, alpha * (alpha - 1.0) / (t * (t - 1.0)), alpha * (alpha - t) / (1.0 - t))


@dataclass(frozen=True)
class PathItem:
    """What one path moves: (tensor name, flat start, flat stop) regions of the state."""

    level: str
    name: str
    regions: tuple[tuple[str, int, int], ...]


def path_items(model: torch.nn.Module, levels: Sequence[str], layers: Sequence[str] = (),
               params_per_layer: int = 0, parameters: Sequence[str] = (), seed: int = 0) -> list[PathItem]:
    """Items of the requested levels: ``model``; each layer (or the named ones); sampled or named scalars.

    Parameters are named ``tensor[i,j,...]`` (e.g. ``fc1.weight[3,7]``) or ``tensor[flat]``.

    Example:
        >>> from landscape.models import build_model
        >>> items = path_items(build_model("lenet5"), ["layer", "parameter"], ["conv1"], 0, ["fc3.bias[2]"])
        >>> [(i.level, i.name, i.regions) for i in items]  # doctest: +NORMALIZE_WHITESPACE
        [('layer', 'conv1', (('conv1.weight', 0, 54), ('conv1.bias', 0, 6))),
         ('parameter', 'fc3.bias[2]', (('fc3.bias', 2, 3),))]
    """
    bad = [lv for lv in levels if lv not in LEVELS]
    if bad:
        raise ConfigError(f"path levels: expected any of {list(LEVELS)}, got {bad}")
    state = dict(model.state_dict())
    floats = {n: t for n, t in state.items() if t.is_floating_point()}
    all_layers = layer_names(model)
    unknown = [lay for lay in layers if lay not in all_layers]
    if unknown:
        raise ConfigError(f"path layers {unknown} do not exist; the model's layers are {all_layers}")
    chosen = list(layers) or all_layers
    modules = dict(model.named_modules())

    def layer_tensors(layer: str) -> list[str]:
        mod = modules[layer]
        names = [f"{layer}.{n}" for n, _ in mod.named_parameters(recurse=False)]
        names += [f"{layer}.{n}" for n, b in mod.named_buffers(recurse=False) if b.is_floating_point()]
        return names

    items: list[PathItem] = []
    if "model" in levels:
        items.append(PathItem("model", "model", tuple((n, 0, t.numel()) for n, t in floats.items())))
    if "layer" in levels:
        items += [PathItem("layer", lay, tuple((n, 0, floats[n].numel()) for n in layer_tensors(lay)))
                  for lay in chosen]
    if "parameter" in levels:
        for text in parameters:
            tensor, _, idx = text.partition("[")
            if tensor not in floats or not idx.endswith("]"):
                raise ConfigError(f"parameter {text!r}: expected TENSOR[i,j,...] with a tensor of the model, "
                                  f"e.g. fc1.weight[3,7]")
            try:
                pos = [int(v) for v in idx[:-1].split(",")]
                shape = floats[tensor].shape
                flat = pos[0] if len(pos) == 1 else int(np.ravel_multi_index(pos, tuple(shape)))
                if not 0 <= flat < floats[tensor].numel():
                    raise ValueError
            except ValueError:
                raise ConfigError(f"parameter {text!r}: index out of range for shape "
                                  f"{tuple(floats[tensor].shape)}") from None
            items.append(PathItem("parameter", text, ((tensor, flat, flat + 1),)))
        if params_per_layer:
            g = np.random.default_rng(seed)
            for lay in chosen:
                names = [n for n in layer_tensors(lay) if n in dict(model.named_parameters())]
                sizes = np.array([floats[n].numel() for n in names])
                picks = g.choice(int(sizes.sum()), size=min(params_per_layer, int(sizes.sum())), replace=False)
                offsets = np.concatenate([[0], np.cumsum(sizes)])
                for p in sorted(int(v) for v in picks):
                    k = int(np.searchsorted(offsets, p, side="right") - 1)
                    flat = p - int(offsets[k])
                    idx = ",".join(str(int(v)) for v in np.unravel_index(flat, tuple(floats[names[k]].shape)))
                    items.append(PathItem("parameter", f"{names[k]}[{idx}]", ((names[k], flat, flat + 1),)))
    if not items:
        raise ConfigError("paths: no items to evaluate; set paths.levels (and params_per_layer or parameters)")
    return items


class PathEvaluator:
    """Evaluates (item, α) points in place: the model holds θ₁ except the current item's regions."""

    auto = False
    points_per_batch = 1

    def __init__(self, evaluator: Evaluator, states: Sequence[dict[str, torch.Tensor]], items: Sequence[PathItem],
                 kind: str = "linear", t_mid: float = 0.5):
        if kind not in KINDS:
            raise ConfigError(f"path kind: expected one of {list(KINDS)}, got {kind!r}")
        self.ev, self.items, self.kind, self.t_mid = evaluator, list(items), kind, t_mid
        if kind == "quadratic":
            lagrange_weights(0.0, t_mid)  # validates t
        dev = evaluator.device
        s0, sm, s1 = (dict((k, v.to(dev, torch.float32)) for k, v in s.items()) for s in states)
        evaluator.set_state({k: v for k, v in s1.items()}, strict=False)
        self._views = []
        for item in self.items:
            views = []
            for name, a, b in item.regions:
                target = evaluator.state[name].view(-1)[a:b]
                views.append((target, s0[name].reshape(-1)[a:b].to(target.dtype),
                              sm[name].reshape(-1)[a:b].to(target.dtype), s1[name].reshape(-1)[a:b].to(target.dtype)))
            self._views.append(views)
        self.distance = np.array([float(torch.sqrt(sum(((v1.double() - v0.double()) ** 2).sum()
                                                        for _, v0, _, v1 in views))) for views in self._views])
        self._current: int | None = None

    def weights(self, alpha: float) -> tuple[float, float, float]:
        return linear_weights(alpha) if self.kind == "linear" else lagrange_weights(alpha, self.t_mid)

    @torch.no_grad()
    def set_point(self, item: int, alpha: float) -> None:
        """Write item ``item`` at ``alpha`` (restoring the previous item to θ₁ first)."""
        if self._current is not None and self._current != item:
            for target, _, _, v1 in self._views[self._current]:
                target.copy_(v1)
        self._current = item
        w0, wm, w1 = self.weights(float(alpha))
        for target, v0, vm, v1 in self._views[item]:
            torch.mul(v0, w0, out=target)
            if wm:
                target.add_(vm, alpha=wm)
            target.add_(v1, alpha=w1)

    def evaluate_points(self, items: np.ndarray, alphas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Loss and accuracy of item ``items[k]`` at ``alphas[k]`` (items as floats, as the store keeps them)."""
        loss, acc = np.empty(len(items)), np.empty(len(items))
        for k, (i, a) in enumerate(zip(items, alphas)):
            self.set_point(int(round(float(i))), float(a))
            r = self.ev.evaluate()
            loss[k], acc[k] = r.loss, r.accuracy
        return loss, acc


def _t_mid(job: "JobConfig", refs: tuple[str, str, str], sources: list[str]) -> float:
    """Where the middle node sits: 0.5, or its true training fraction (epochs of mid vs start and end)."""
    pc = job.paths
    if pc.mid_position == "half":
        return 0.5
    from .checkpoints import split_source
    from .trajectory import TrajectoryStore

    epochs = []
    for src in sources:
        path, ref = split_source(src)
        if ref is None:
            raise ConfigError("paths.mid_position=true needs start, mid and end from a trajectory store")
        st = TrajectoryStore(path)
        epochs.append(float(st.table()["epoch"][st.resolve(ref)]))
    e0, em, e1 = epochs
    if not e0 < em < e1:
        raise ConfigError(f"paths: the middle checkpoint (epoch {em}) must lie between start ({e0}) and end ({e1})")
    return (em - e0) / (e1 - e0)


def run_paths_job(job: "JobConfig", progress: bool = True, comm: Any | None = None) -> dict[str, Path]:
    """Compute (or resume) the job's ``[paths]`` for each kind; returns ``{kind: path file}``."""
    from .data import subset
    from .grid import Grid, parse_range
    from .job import prepare_data, prepare_model
    from .params import state_checksum
    from .parallel import agree, on_root, pick_device
    from .surface import run_points, resolve_center

    pc = job.paths
    tr, te = prepare_data(job.data)
    data = subset(te if job.evaluate.split == "test" else tr, pc.subset, job.data.subset_mode, job.data.subset_seed)
    model = prepare_model(job, tr)
    loaded = [resolve_center(job, ref, model) for ref in (pc.start, pc.mid, pc.end)]
    states, sources = [s for s, _ in loaded], [src for _, src in loaded]
    items = path_items(model, pc.levels, pc.layers, pc.params_per_layer, pc.parameters, pc.seed)
    device = pick_device(comm, job.evaluate.device) if comm is not None else job.evaluate.device
    ev = Evaluator(model, data, device, job.evaluate.batch_size, job.train.loss, job.evaluate.precision)
    alphas = parse_range(pc.alpha)
    grid = Grid(np.arange(len(items), dtype=np.float64), alphas)
    sums = [state_checksum(s) for s in states]
    agree(comm, "the checkpoints' checksums", sums)
    out: dict[str, Path] = {}
    for kind in pc.kinds:
        t_mid = _t_mid(job, (pc.start, pc.mid, pc.end), sources) if kind == "quadratic" else None
        plane = PathEvaluator(ev, states, items, kind, t_mid or 0.5)
        inputs = {"model": job.model.name, "model_kwargs": job.model.kwargs, "data": asdict(job.data),
                  "split": job.evaluate.split, "subset": pc.subset, "kind": kind, "t_mid": t_mid,
                  "start": sources[0], "mid": sources[1] if kind == "quadratic" else None, "end": sources[2],
                  "checksums": sums if kind == "quadratic" else [sums[0], sums[2]],
                  "items": [i.name for i in items], "loss": ev.loss_name, "precision": job.evaluate.precision}
        attrs = {"model": job.model.name, "kind": kind, "t_mid": t_mid if t_mid is not None else float("nan"),
                 "start": sources[0], "end": sources[2], "loss_name": ev.loss_name}
        datasets = {"items/name": np.array([i.name for i in items], dtype=object),
                    "items/level": np.array([i.level for i in items], dtype=object),
                    "items/distance": plane.distance,
                    "items/numel": np.array([sum(b - a for _, a, b in i.regions) for i in items])}
        path = Path(job.output) / f"{pc.output}_{kind}.h5"
        store = on_root(comm, lambda: SurfaceStore.open(path, grid, inputs, attrs, datasets, pc.flush_every,
                                                        schema=PATH_SCHEMA, axes=("item", "alpha")))
        run_points(plane, store, path, comm, progress, len(alphas) if comm is None else pc.chunk, str(ev.device))
        out[kind] = path
        plane.set_point(0, 1.0)  # leave the model at θ₁
    return out


def layer_report(job: "JobConfig", path_file: Path, threshold: float) -> list[dict[str, Any]]:
    """Robust vs ambient layers: each layer reset to θ₀ (α=0 of the layer-level linear path) against the
    final model. A layer is *robust* when the reset costs at least ``threshold`` accuracy (classification)
    or raises the loss by at least ``threshold`` relative to the final loss (regression); else *ambient*.
    Rows are sorted from the most to the least damaging."""
    import h5py

    s = read_surface(path_file)
    with h5py.File(path_file, "r", locking=False) as f:
        names = [n.decode() if isinstance(n, bytes) else n for n in f["items/name"][:]]
        levels = [n.decode() if isinstance(n, bytes) else n for n in f["items/level"][:]]
        dist = f["items/distance"][:]
    a = s.beta
    i0, i1 = np.flatnonzero(np.isclose(a, 0.0)), np.flatnonzero(np.isclose(a, 1.0))
    if not len(i0) or not len(i1):
        raise ConfigError("the robust/ambient report needs alpha = 0 and 1 on the path grid (e.g. paths.alpha = "
                          "\"-0.5:1.5:41\")")
    rows = []
    classify = np.isfinite(s.accuracy).any()
    for k, (name, level) in enumerate(zip(names, levels)):
        if level != "layer":
            continue
        l0, l1, a0, acc1 = s.loss[k, i0[0]], s.loss[k, i1[0]], s.accuracy[k, i0[0]], s.accuracy[k, i1[0]]
        damage = (acc1 - a0) if classify else (l0 - l1) / max(abs(l1), 1e-12)
        rows.append({"layer": name, "loss_final": l1, "loss_reset": l0, "accuracy_final": acc1,
                     "accuracy_reset": a0, "damage": damage, "distance": float(dist[k]),
                     "class": "robust" if damage >= threshold else "ambient"})
    rows.sort(key=lambda r: -r["damage"])
    return rows


def write_report(rows: list[dict[str, Any]], out_dir: Path, threshold: float, measure: str) -> tuple[Path, Path, str]:
    """CSV and JSON of the report and its terminal table."""
    csv_path, json_path = out_dir / "layers_robust_ambient.csv", out_dir / "layers_robust_ambient.json"
    with open(csv_path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else ["layer"])
        w.writeheader()
        w.writerows(rows)
    json_path.write_text(json.dumps({"threshold": threshold, "measure": measure, "layers": rows}, indent=2))
    lines = [f"layers reset to their initial values ({measure}; robust if damage >= {threshold:g}):",
             f"  {'layer':<16} {'loss final':>10} {'loss reset':>10} {'acc final':>9} {'acc reset':>9} "
             f"{'damage':>8} {'distance':>9}  class"]
    for r in rows:
        lines.append(f"  {r['layer']:<16} {r['loss_final']:>10.4f} {r['loss_reset']:>10.4f} "
                     f"{r['accuracy_final']:>9.4f} {r['accuracy_reset']:>9.4f} {r['damage']:>8.4f} "
                     f"{r['distance']:>9.3f}  {r['class']}")
    return csv_path, json_path, "\n".join(lines)

