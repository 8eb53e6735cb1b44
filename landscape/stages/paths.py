"""The paths stage: a job's ``[paths]`` (linear and quadratic paths between checkpoints, and learned Bézier and
polychain curves between any two states, at model, layer and parameter level) computed serially or over MPI
ranks, the robust/ambient layer report and the figures. Learned curves are trained first (on rank 0 under MPI),
endpoints named ``seed N`` are trained as second runs of the job first of all.

A path file is a ``landscape.path`` HDF5 file with the surface file's layout and axes ``(item, alpha)``:
``loss[k, a]`` is the loss of item ``k`` at ``alpha[a]``; ``/items/{name,level,distance,numel}`` describe
the items (``distance`` is the Euclidean distance travelled from θ₀ to θ₁ by the item's values).

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> rows = [{"layer": "conv1", "damage": 0.5, "class": "robust", "loss_final": 0.1, "loss_reset": 2.0,
    ...          "accuracy_final": 0.9, "accuracy_reset": 0.4, "distance": 3.0}]
    >>> csv_path, json_path, table = write_report(rows, Path(tempfile.mkdtemp()), 0.1, "accuracy lost")
    >>> table.splitlines()[-1].split()[-1]
    'robust'
"""
from __future__ import annotations

import csv
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..analysis.curves import CURVE_KINDS
from ..analysis.interpolation import path_items
from ..analysis.robustness import layer_report
from ..core.data import TensorData
from ..core.grid import Grid, parse_range
from ..core.params import state_checksum
from ..engine.curve import batchnorm_layers
from ..engine.path import PathEvaluator
from ..io.hdf5 import PATH_SCHEMA
from ..io.path_file import read_path
from ..io.surface_file import SurfaceStore
from ..run.config import JobConfig
from ..run.curves import curve_file, load_curve, train_curve
from ..run.inputs import (job_evaluator, evaluation_data, mid_fraction, prepare_data, prepare_model, resolve_checkpoint,
                          seed_reference, seed_trajectory)
from ..run.mpi import agree, note_output, on_root, pick_device
from ..run.runner import run_points
from ..run.training import train_job
from ..views.path_plots import plot_paths
from .checks import check_dependencies
from .summary import summary

__all__ = ["PathsResult", "run_paths_job", "run_paths", "write_report"]

log = logging.getLogger(__name__)


@dataclass
class PathsResult:
    """The path files by kind, the learned curves' stores by kind, the robust/ambient table when the layer level
    was computed, and what re-estimating BatchNorm statistics cost (seconds, points) when asked."""

    files: dict[str, Path]
    report: str | None = None
    curves: dict[str, Path] = field(default_factory=dict)
    update_bn: tuple[float, int] | None = None


def _seed_runs(job: JobConfig, refs: list[str], trajectory: Path, progress: bool, comm: Any | None) -> None:
    """Train (or resume) the runs named ``seed N[:NAME]`` among ``refs`` on rank 0, the others waiting."""
    for seed in sorted({r[0] for r in map(seed_reference, refs) if r is not None}):
        store = seed_trajectory(trajectory, seed)
        log.info("training the run with seed %d for the paths' endpoints (%s)", seed, store.name)
        on_root(comm, lambda: train_job(job, store.parent, progress, store.name, seed))


def _bn_batches(job: JobConfig, train_data: TensorData, model: Any, kind: str) -> list[Any] | None:
    """Training inputs in fixed order for re-estimating BatchNorm statistics on a learned curve, if asked."""
    if kind not in CURVE_KINDS or not job.paths.curve.update_bn:
        return None
    if not batchnorm_layers(model):
        log.info("paths.curve.update_bn: %s has no BatchNorm layer; nothing to re-estimate", job.model.name)
        return None
    bs = job.evaluate.batch_size
    return [train_data.x[i:i + bs] for i in range(0, len(train_data), bs)]


def run_paths_job(job: JobConfig, progress: bool = True, comm: Any | None = None) -> PathsResult:
    """Compute (or resume) the job's ``[paths]`` for each kind, training the learned curves first; returns the
    path files and curve stores by kind."""
    pc = job.paths
    out_dir = Path(job.output)
    tr, te = prepare_data(job.data)
    data = evaluation_data(tr, te, job.data, job.evaluate.split, pc.subset)
    model = prepare_model(job.model, tr, job.train.seed)
    trajectory = out_dir / "trajectory.h5"
    quadratic = "quadratic" in pc.kinds
    refs = [pc.start, pc.mid, pc.end] if quadratic else [pc.start, pc.end]
    _seed_runs(job, refs, trajectory, progress, comm)
    loaded = [resolve_checkpoint(ref, model, trajectory, job.model.checkpoint) for ref in refs]
    if not quadratic:
        loaded.insert(1, (loaded[0][0], ""))  # no middle node: never weighted
    states, sources = [s for s, _ in loaded], [src for _, src in loaded]
    items = path_items(model, pc.levels, pc.layers, pc.params_per_layer, pc.parameters, pc.seed)
    device = pick_device(comm, job.evaluate.device) if comm is not None else job.evaluate.device
    ev = job_evaluator(job, model, data, device)
    alphas = parse_range(pc.alpha)
    grid = Grid(np.arange(len(items), dtype=np.float64), alphas)
    sums = [state_checksum(s) for s in states]
    agree(comm, "the checkpoints' checksums", sums)
    result = PathsResult({})
    bn_cost = [0.0, 0]
    for kind in pc.kinds:
        t_mid = (0.5 if pc.mid_position == "half" else mid_fraction(sources)) if kind == "quadratic" else None
        three, extra = states, {}
        if kind in CURVE_KINDS:
            cpath = curve_file(out_dir, pc.output, kind)
            meta = {"model": job.model.name, "model_kwargs": job.model.kwargs, "data": asdict(job.data),
                    "start": sources[0], "end": sources[2]}
            curve = on_root(comm, lambda: train_curve(prepare_model(job.model, tr, job.train.seed), kind, states[0],
                                                      states[2], tr, te, pc.curve, cpath, device,
                                                      job.evaluate.batch_size, job.train.loss, meta, progress))
            curve = curve or load_curve(cpath)  # the other ranks read the curve rank 0 trained
            three = [states[0], curve.bend, states[2]]
            result.curves[kind] = cpath
            extra = {"curve": asdict(pc.curve), "curve_file": cpath.name, "bend_checksum": state_checksum(curve.bend)}
        plane = PathEvaluator(ev, three, items, kind, t_mid or 0.5, _bn_batches(job, tr, model, kind))
        checks = [sums[0], sums[2]] if kind == "linear" else ([sums[0], extra["bend_checksum"], sums[2]] if extra
                                                              else sums)
        inputs = {"model": job.model.name, "model_kwargs": job.model.kwargs, "data": asdict(job.data),
                  "split": job.evaluate.split, "subset": pc.subset, "kind": kind, "t_mid": t_mid,
                  "start": sources[0], "mid": sources[1] if kind == "quadratic" else None, "end": sources[2],
                  "checksums": checks, "items": [i.name for i in items], "loss": ev.loss_name,
                  "precision": job.evaluate.precision, **ev.transforms(), **extra}
        attrs = {"model": job.model.name, "kind": kind, "t_mid": t_mid if t_mid is not None else float("nan"),
                 "start": sources[0], "end": sources[2], "loss_name": ev.loss_name, "task": ev.task}
        datasets = {"items/name": np.array([i.name for i in items], dtype=object),
                    "items/level": np.array([i.level for i in items], dtype=object),
                    "items/distance": plane.distance,
                    "items/numel": np.array([sum(b - a for _, a, b in i.regions) for i in items])}
        path = out_dir / f"{pc.output}_{kind}.h5"
        store = on_root(comm, lambda: SurfaceStore.open(path, grid, inputs, attrs, datasets, pc.flush_every,
                                                        schema=PATH_SCHEMA, axes=("item", "alpha")))
        run_points(plane, store, path, comm, progress, len(alphas) if comm is None else pc.chunk, str(ev.device))
        result.files[kind] = path
        if plane.bn_points:
            log.info("paths.curve.update_bn (%s): %.3f s per point re-estimating BatchNorm statistics on %d "
                     "training samples (%d points)", kind, plane.bn_seconds / plane.bn_points, len(tr),
                     plane.bn_points)
            bn_cost[0] += plane.bn_seconds
            bn_cost[1] += plane.bn_points
        plane.set_point(0, 1.0)  # leave the model at θ₁
    result.update_bn = (bn_cost[0], bn_cost[1]) if bn_cost[1] else None
    return result


def write_report(rows: list[dict[str, Any]], out_dir: Path, threshold: float, measure: str,
                 start: str | None = None) -> tuple[Path, Path, str]:
    """CSV and JSON of the robust/ambient report and its terminal table (``start``: where θ₀ came from, named
    in the header when it is not the run's initial state)."""
    csv_path, json_path = out_dir / "layers_robust_ambient.csv", out_dir / "layers_robust_ambient.json"
    with open(csv_path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else ["layer"])
        w.writeheader()
        w.writerows(rows)
    json_path.write_text(json.dumps({"threshold": threshold, "measure": measure, "start": start, "layers": rows},
                                    indent=2))
    values = "initial values" if start is None or start.endswith(":init") or start == "init" else \
        f"values at the path's start ({start})"
    lines = [f"layers reset to their {values} ({measure}; robust if damage >= {threshold:g}):",
             f"  {'layer':<16} {'loss final':>10} {'loss reset':>10} {'acc final':>9} {'acc reset':>9} "
             f"{'damage':>8} {'distance':>9}  class"]
    for r in rows:
        lines.append(f"  {r['layer']:<16} {r['loss_final']:>10.4f} {r['loss_reset']:>10.4f} "
                     f"{r['accuracy_final']:>9.4f} {r['accuracy_reset']:>9.4f} {r['damage']:>8.4f} "
                     f"{r['distance']:>9.3f}  {r['class']}")
    return csv_path, json_path, "\n".join(lines)


def run_paths(job: JobConfig, progress: bool = True, comm: Any | None = None) -> PathsResult:
    """The job's ``[paths]``: path files, the robust/ambient report (layer level, linear) and, with an
    ``[export]`` section that asks for plots, the figures. Under MPI every rank computes; rank 0 reports.

    Example:
        >>> run_paths.__name__  # see the README's Python API section
        'run_paths'
    """
    check_dependencies(job)
    note_output(job.output)
    out = Path(job.output)
    out.mkdir(parents=True, exist_ok=True)
    result = run_paths_job(job, progress, comm)
    files = result.files
    if comm is not None and comm.Get_rank() != 0:
        return result
    table = None
    with summary(out) as s:
        s["outputs"].update({f"path_{k}": str(p.name) for k, p in files.items()})
        s["outputs"].update({f"curve_{k}": str(p.name) for k, p in result.curves.items()})
        if result.update_bn is not None:
            s["update_bn"] = {"seconds": round(result.update_bn[0], 3), "points": result.update_bn[1]}
        if "layer" in job.paths.levels and "linear" in files:
            p = read_path(files["linear"])
            rows = layer_report(p["name"], p["level"], p["distance"], p["alpha"], p["loss"], p["accuracy"],
                                job.paths.robust_threshold)
            measure = "accuracy lost" if rows and np.isfinite(rows[0]["accuracy_final"]) else "relative loss rise"
            csv_path, _, table = write_report(rows, out, job.paths.robust_threshold, measure, p["inputs"].get("start"))
            s["outputs"]["layers_report"] = csv_path.name
            s["report"] = table  # the commands print it once
        if job.export is not None and job.export.plots:
            traj = out / "trajectory.h5"
            figs = plot_paths(list(files.values()), out, job.export.plots, traj if traj.exists() else None,
                              job.export.path_y)
            s["outputs"]["path_figures"] = [p.name for p in figs]
    result.report = table
    return result
