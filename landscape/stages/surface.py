"""The surface stage: a job's ``[surface]`` (or ``[pca]``) resolved once into plain inputs, computed serially or
over MPI ranks, then exported and recorded in the job's summary.

Example:
    >>> import tempfile, os, torch
    >>> from landscape.core.models import build_model
    >>> from landscape.run.jobfile import load_job
    >>> ckpt = os.path.join(tempfile.mkdtemp(), "m.pt")
    >>> torch.save(build_model("mlp", {"input_dim": 2, "num_classes": 3}).state_dict(), ckpt)
    >>> job = load_job(None, ["data.name=spiral", "model.name=mlp", f"model.checkpoint={ckpt!r}",
    ...                       "surface.alpha=-1:1:3", "surface.beta=none", f"output={os.path.dirname(ckpt)!r}"])
    >>> plan = resolve_surface(job, job.surface)
    >>> plan.grid.shape, plan.inputs["directions"], plan.inputs["center"] == ckpt
    ((3,), 'random', True)
"""
from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..analysis.directions import cosine
from ..core.data import TensorData
from ..core.errors import StoreError
from ..core.grid import Grid
from ..core.params import StateSpec, flatten_state, model_state, state_checksum
from ..core.threads import fixed_threads
from ..engine.curvature_map import CurvatureMap
from ..engine.hessian import HessianOperator
from ..engine.losses import loss_function
from ..engine.plane import PlaneEvaluator
from ..io.checkpoints import complete_state
from ..io.curvature_maps import open_maps
from ..io.surface_file import SurfaceStore
from ..run.compiling import settle_compile
from ..run.config import CurvatureConfig, JobConfig, SurfaceConfig
from ..run.inputs import job_evaluator, evaluation_data, prepare_data, prepare_model, resolve_checkpoint
from ..run.mpi import agree, note_output, on_root, pick_device
from ..run.planes import (checkpoint_plane, file_plane, find_trajectory, grid_axis, hessian_plane, pca_plane,
                          random_plane)
from ..run.projection import project_trajectory
from ..run.runner import run_points

__all__ = ["SurfacePlan", "resolve_surface", "plan_directions", "run_surface_job", "job_centre"]

log = logging.getLogger(__name__)


@dataclass
class SurfacePlan:
    """Everything a surface computation needs, resolved from a job: the model at the centre, the evaluation
    data, the directions, the grid, and what the file records (inputs, attributes, datasets) and where."""

    model: nn.Module
    data: TensorData
    d1: torch.Tensor
    d2: torch.Tensor | None
    grid: Grid
    inputs: dict[str, Any]
    attrs: dict[str, Any]
    datasets: dict[str, np.ndarray]
    path: Path


def plan_directions(job: JobConfig, model: nn.Module, center: dict[str, torch.Tensor], sf: SurfaceConfig,
                    data: TensorData | None = None) -> tuple[torch.Tensor, torch.Tensor | None, dict]:
    """Flat d₁, d₂ (None for a line) of the surface ``sf`` and the description of how they were made
    (``data``: the evaluation set, which Hessian directions need)."""
    count = 1 if sf.beta is None else 2
    params = [n for n, _ in model.named_parameters()]
    if sf.directions == "pca":
        store = find_trajectory(sf.trajectory, Path(job.output) / "trajectory.h5")
        if store is None:
            raise StoreError("directions=pca needs a trajectory store: train first or set surface.trajectory")
        return pca_plane(store, center, params, sf.ignore, sf.dir_type, sf.pca_checkpoints, count, sf.pca_center_row)
    if sf.directions == "random":
        return random_plane(center, params, sf.seed, sf.norm, sf.ignore, sf.dir_type, count)
    if sf.directions == "checkpoints":
        trajectory = Path(job.output) / "trajectory.h5"
        targets = [resolve_checkpoint(ref, model, trajectory, job.model.checkpoint)
                   for ref in [sf.target1, sf.target2][:count]]
        return checkpoint_plane(center, targets, params, sf.dir_type)
    if sf.directions == "hessian":
        cc = job.curvature or CurvatureConfig()
        ev = job_evaluator(job, model, data, autocast=False)
        ev.set_state(center)
        with fixed_threads(cc.threads):  # the Lanczos vectors' bits depend on the thread count
            d1, d2, info = hessian_plane(ev, sf.hessian_pair, sf.ignore, sf.dir_type, count, cc.tol, cc.max_iter,
                                         cc.seed)
        return d1, d2, {**info, "threads": cc.threads}
    return file_plane(sf.directions_file, center, count)


def job_centre(job: JobConfig, center: str, subset: int | None, section: str = "surface"
               ) -> tuple[Any, nn.Module, dict[str, torch.Tensor], str]:
    """A job's evaluation data (``subset`` of its split), its model, the centre's state (``center``: a checkpoint
    of the job's trajectory, a file or run.h5:NAME) in the evaluator's order, and where the centre came from;
    ``section``: the job section that named the centre (for the message when there is no trajectory)."""
    tr, te = prepare_data(job.data)
    data = evaluation_data(tr, te, job.data, job.evaluate.split, subset)
    model = prepare_model(job.model, tr, job.train.seed)
    state, source = resolve_checkpoint(center, model, Path(job.output) / "trajectory.h5", job.model.checkpoint,
                                       f"{section}.center")
    return data, model, {name: state[name] for name in model_state(model)}, source  # parameters, then buffers


def resolve_surface(job: JobConfig, sf: SurfaceConfig) -> SurfacePlan:
    """Resolve ``sf`` of ``job`` once into a :class:`SurfacePlan` (data, model at the centre, directions, grid,
    the projected training path, and the file's records)."""
    data, model, state, center_src = job_centre(job, sf.center, sf.subset)
    trajectory = Path(job.output) / "trajectory.h5"
    d1, d2, dir_info = plan_directions(job, model, state, sf, data)
    model.load_state_dict(complete_state(model, state))
    spec = StateSpec.from_state(state)
    cvec = flatten_state(state, spec)
    # the training path in the plane: every checkpoint of the trajectory, projected
    traj = find_trajectory(sf.trajectory, trajectory) if sf.directions in ("pca", "random", "checkpoints") else None
    projected = project_trajectory(traj, cvec, d1, d2, sf.projection) if traj is not None and traj.spec == spec \
        else None
    grid = Grid(grid_axis(sf.alpha, None if projected is None else projected["trajectory/alpha"]),
                grid_axis(sf.beta, None if projected is None else projected["trajectory/beta"]))
    loss_name = loss_function(job.train.loss, data.task)[0]
    dir_sum = state_checksum(torch.cat([d1] + ([d2] if d2 is not None else [])))
    inputs = {"model": job.model.name, "model_kwargs": job.model.kwargs, "data": asdict(job.data),
              "split": job.evaluate.split, "subset": sf.subset, "center": center_src,
              "center_checksum": state_checksum(state), "directions_checksum": dir_sum,
              "loss": loss_name, "precision": job.evaluate.precision, **dir_info}
    cos = cosine(d1, d2) if d2 is not None else float("nan")
    if d2 is not None:
        log.info("cos(d1, d2) = %.4g", cos)
    attrs = {"model": job.model.name, "center_checksum": inputs["center_checksum"], "directions_checksum": dir_sum,
             "norm": dir_info.get("norm") or "none", "ignore": dir_info.get("ignore") or "none",
             "dir_type": dir_info.get("dir_type") or "weights", "seed": int(dir_info.get("seed") or 0),
             "data": job.data.name, "split": job.evaluate.split, "subset": sf.subset or 0,
             "cosine_d1_d2": cos, "state_spec": json.dumps(spec.to_json()), "loss_name": loss_name,
             "task": data.task}
    if "explained_variance" in dir_info:
        attrs["explained_variance"] = json.dumps(dir_info["explained_variance"])
    if "eigenvalues" in dir_info:
        attrs["eigenvalues"] = json.dumps(dir_info["eigenvalues"])
    datasets = {"directions/d1": d1.numpy(), "directions/center": cvec.numpy()}
    if projected is not None:
        datasets.update(projected)
        inputs["projection"] = sf.projection
    if d2 is not None:
        datasets["directions/d2"] = d2.numpy()
    path = Path(sf.output) if Path(sf.output).is_absolute() else Path(job.output) / sf.output
    return SurfacePlan(model, data, d1, d2, grid, inputs, attrs, datasets, path)


def run_surface_job(job: JobConfig, progress: bool = True, comm: Any | None = None,
                    sf: SurfaceConfig | None = None) -> Path:
    """Compute (or resume) the job's ``[surface]`` (or the given ``sf``); returns the surface file's path.

    With an MPI communicator every rank evaluates (each on its own device) and rank 0 alone writes the file.
    """
    sf = sf or job.surface
    note_output(job.output)
    plan = resolve_surface(job, sf)
    device = pick_device(comm, job.evaluate.device) if comm is not None else job.evaluate.device
    ev = job_evaluator(job, plan.model, plan.data, device)
    if ev.precision != "fp32" and (comm is None or comm.Get_rank() == 0):
        gap = ev.precision_gap()
        log.info("centre loss in %s %.7g, in fp32 %.7g (difference %.3g)", ev.precision, gap[ev.precision],
                 gap["fp32"], gap["difference"])
        plan.attrs["precision_loss_difference"] = gap["difference"]
        plan.attrs["precision_center_loss"] = json.dumps(gap)
    agree(comm, "the centre and directions checksums",
          (plan.inputs["center_checksum"], plan.inputs["directions_checksum"]))
    center = ev.get_flat()

    def make_plane() -> PlaneEvaluator:
        return PlaneEvaluator(ev, center, plan.d1, plan.d2, sf.points_per_batch, sf.points_per_pass)

    per_rank = -(-plan.grid.size // (comm.Get_size() if comm is not None else 1))
    plane = settle_compile(job.evaluate.compile, make_plane(), make_plane, per_rank, comm, plan.path)
    # folding, layout, compilation, input tables: they may change values by rounding
    plan.inputs.update(ev.transforms())
    store = on_root(comm, lambda: SurfaceStore.open(plan.path, plan.grid, plan.inputs, plan.attrs, plan.datasets,
                                                    flush_every=sf.flush_every))
    plane.expected_points = per_rank
    run_points(plane, store, plan.path, comm, progress, sf.chunk, str(ev.device))
    if sf.curvature:
        _curvature_maps(job, sf, plan, plane, comm, progress)
    return plan.path


def _curvature_maps(job: JobConfig, sf: SurfaceConfig, plan: SurfacePlan, plane: PlaneEvaluator, comm: Any | None,
                    progress: bool) -> None:
    """``surface.curvature``: λmax, λmin and/or the trace at every grid point, beside the loss (same ranks)."""
    cc = job.curvature or CurvatureConfig()
    op = HessianOperator(plane.ev, ignore=cc.ignore, dir_type=cc.dir_type)
    row = len(plan.grid.beta) if plan.grid.beta is not None else 1
    cmap = CurvatureMap(plane, op, sf.curvature, row, cc.tol, cc.max_iter, cc.trace_samples, cc.trace_method,
                        cc.seed)
    inputs = {"tol": cc.tol, "max_iter": cc.max_iter, "trace_samples": cc.trace_samples,
              "trace_method": cc.trace_method, "seed": cc.seed, "ignore": cc.ignore, "dir_type": cc.dir_type,
              "parameters": op.numel, "warm_start": "along each row (beta ascending), rows start cold",
              "threads": cc.threads}
    store = on_root(comm, lambda: open_maps(plan.path, sf.curvature, inputs))
    with fixed_threads(cc.threads):  # Hessian products' bits depend on the thread count: fixed, not the launch's
        run_points(cmap, store, plan.path, comm, progress, 0, str(plane.ev.device))
    if cmap.iterations:
        log.info("curvature maps: %.1f Lanczos iterations per point on this rank (%d points)",
                 float(np.mean(cmap.iterations)), len(cmap.iterations))
