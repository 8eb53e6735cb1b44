"""k-dimensional samples: the loss at θ* + Σᵢ cᵢ·dᵢ for k ≥ 1 directions (random, filter-normalised as for
surfaces; the Hessian's top eigenvectors; a trajectory's principal components; checkpoint differences), on a
k-dimensional grid or a low-discrepancy design (:mod:`landscape.core.design`), from a job's ``[sample]``
(:func:`run_sample_job`, ``landscape sample``) or from a model object (:func:`sample`, ``ls.sample``).

The points are computed by :class:`~landscape.engine.sample.SampleEvaluator` through the surface's runners: the
MPI master hands out point numbers as it does a grid's, rank 0 alone writes, a rerun computes only the points not
done, and every stored value is independent of ranks, chunks and restarts (bitwise).

Example:
    >>> import torch
    >>> torch.manual_seed(0) and None
    >>> model = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    >>> x, y = torch.randn(64, 2), torch.randint(0, 3, (64,))
    >>> s = sample(model, (x, y), k=3, ranges="-1:1:3", progress=False)
    >>> s.loss.shape, s.grid_values().shape, bool(s.done.all())
    ((27,), (3, 3, 3), True)
"""
from __future__ import annotations

import json
import logging
import shutil
import weakref
from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from ..core.design import Design, parse_design
from ..core.errors import ConfigError, StoreError
from ..core.params import StateSpec, flatten_state, model_state, state_checksum
from ..core.threads import fixed_threads
from ..core.userdata import given_data
from ..engine.losses import loss_function
from ..engine.sample import SampleEvaluator
from ..io.checkpoints import complete_state
from ..io.sample_file import SampleData, open_sample, read_sample
from ..io.trajectory import TrajectoryStore
from ..run.compiling import settle_compile
from ..run.config import CurvatureConfig, JobConfig, SampleConfig
from ..run.inputs import job_evaluator, resolve_checkpoint
from ..run.mpi import agree, note_output, on_root, pick_device
from ..run.planes import checkpoint_basis, find_trajectory, hessian_basis, pca_basis, random_basis
from ..run.runner import run_points
from .surface import job_centre
from .given import (flat_directions, data_checksum, data_facts, directions_given, given_evaluator, loss_label,
                    model_label, progress_default, scratch_path, working_copy)

__all__ = ["sample", "run_sample_job", "sample_directions"]

log = logging.getLogger(__name__)


def sample_directions(job: JobConfig, model: nn.Module, center: dict[str, torch.Tensor], sc: SampleConfig,
                      data: Any) -> tuple[list[torch.Tensor], dict[str, Any]]:
    """The ``sc.k`` flat directions of a job's ``[sample]`` and how they were made."""
    params = [n for n, _ in model.named_parameters()]
    if sc.directions == "random":
        return random_basis(center, params, sc.k, sc.seed, sc.norm, sc.ignore, sc.dir_type)
    if sc.directions == "pca":
        store = find_trajectory(sc.trajectory, Path(job.output) / "trajectory.h5")
        if store is None:
            raise StoreError("sample.directions=pca needs a trajectory store: train first or set sample.trajectory")
        return pca_basis(store, center, params, sc.ignore, sc.dir_type, sc.pca_checkpoints, sc.k)
    if sc.directions == "checkpoints":
        trajectory = Path(job.output) / "trajectory.h5"
        targets = [resolve_checkpoint(ref, model, trajectory, job.model.checkpoint) for ref in sc.targets[:sc.k]]
        return checkpoint_basis(center, targets, params, sc.dir_type)
    cc = job.curvature or CurvatureConfig()
    ev = job_evaluator(job, model, data, autocast=False)
    ev.set_state(center)
    with fixed_threads(cc.threads):  # the Lanczos vectors' bits depend on the thread count
        dirs, info = hessian_basis(ev, sc.k, sc.ignore, sc.dir_type, cc.tol, cc.max_iter, cc.seed)
    return dirs, {**info, "threads": cc.threads}


def _records(dirs: Sequence[torch.Tensor], center: dict[str, torch.Tensor], info: dict[str, Any]
             ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The file's direction records: checksums (inputs) and the flat vectors (datasets)."""
    spec = StateSpec.from_state(center)
    datasets = {"directions/center": flatten_state(center, spec).numpy()}
    datasets.update({f"directions/d{i}": d.numpy() for i, d in enumerate(dirs, 1)})
    inputs = {"center_checksum": state_checksum(center), "directions_checksum": state_checksum(torch.cat(list(dirs))),
              "k": len(dirs), **info}
    return inputs, datasets


def _compute(ev: Any, dirs: Sequence[torch.Tensor], design: Design, path: Path, inputs: dict[str, Any],
             attrs: dict[str, Any], datasets: dict[str, np.ndarray], comm: Any | None, progress: bool,
             points_per_batch: int | str, points_per_pass: int = 8, chunk: int = 0, flush_every: int = 64,
             compile: bool | str = "auto") -> None:
    coefficients = design.coefficients()
    agree(comm, "the centre, directions and design checksums",
          (inputs["center_checksum"], inputs["directions_checksum"], design.describe()))
    flat = ev.get_flat()

    def make() -> SampleEvaluator:
        return SampleEvaluator(ev, flat, dirs, coefficients, points_per_batch, points_per_pass)

    per_rank = -(-design.size // (comm.Get_size() if comm is not None else 1))
    sampler = settle_compile(compile, make(), make, per_rank, comm, path)
    inputs.update(ev.transforms())  # folding, layout, compilation, input tables: they may change values by rounding
    store = on_root(comm, lambda: open_sample(path, design, coefficients, inputs, attrs, datasets, flush_every))
    sampler.expected_points = per_rank
    run_points(sampler, store, path, comm, progress, chunk, str(ev.device))


def run_sample_job(job: JobConfig, progress: bool = True, comm: Any | None = None,
                   sc: SampleConfig | None = None) -> Path:
    """Compute (or resume) the job's ``[sample]``; returns the sample file's path. With an MPI communicator every
    rank evaluates (each on its own device) and rank 0 alone writes the file."""
    sc = sc or job.sample or SampleConfig()
    note_output(job.output)
    design = parse_design(sc.design, sc.k, list(sc.ranges), sc.points, sc.region, sc.design_seed)
    data, model, state, center_src = job_centre(job, sc.center, sc.subset, "sample")
    dirs, info = sample_directions(job, model, state, sc, data)
    model.load_state_dict(complete_state(model, state))
    records, datasets = _records(dirs, state, info)
    loss_name = loss_function(job.train.loss, data.task)[0]
    inputs = {"model": job.model.name, "model_kwargs": job.model.kwargs, "data": asdict(job.data),
              "split": job.evaluate.split, "subset": sc.subset, "center": center_src, "loss": loss_name,
              "precision": job.evaluate.precision, **records}
    attrs = {"model": job.model.name, "center_checksum": records["center_checksum"],
             "directions_checksum": records["directions_checksum"], "data": job.data.name,
             "split": job.evaluate.split, "loss_name": loss_name, "task": data.task,
             "state_spec": json.dumps(StateSpec.from_state(state).to_json())}
    path = Path(sc.output) if Path(sc.output).is_absolute() else Path(job.output) / sc.output
    device = pick_device(comm, job.evaluate.device) if comm is not None else job.evaluate.device
    ev = job_evaluator(job, model, data, device)
    _compute(ev, dirs, design, path, inputs, attrs, datasets, comm, progress, sc.points_per_batch,
             sc.points_per_pass, sc.chunk, sc.flush_every, job.evaluate.compile)
    return path


def _given_directions(given: Any, work: nn.Module, center: dict[str, torch.Tensor], k: int, seed: int, norm: str,
                      ignore: str, dir_type: str, trajectory: str | Path | None
                      ) -> tuple[list[torch.Tensor], dict[str, Any]]:
    params = [n for n, _ in work.named_parameters()]
    explicit = directions_given(given, k)
    if explicit is None:
        if given == "pca":
            if trajectory is None:
                raise ConfigError("directions='pca' needs trajectory= (a trajectory store, e.g. one ls.Recorder wrote)")
            return pca_basis(TrajectoryStore(trajectory), center, params, ignore, dir_type, "epochs", k)
        if given != "random":
            raise ConfigError(f"directions: expected 'random', 'pca' or {k} explicit directions, got {given!r}")
        return random_basis(center, params, k, seed, norm, ignore, dir_type)
    return flat_directions(explicit, work, center), {"directions": "given"}


def sample(model: nn.Module, data: Any, k: int = 2, ranges: str | Sequence[str] = "-1:1:11", *,
           design: str = "grid", points: int = 1024, region: str = "box", design_seed: int = 0,
           directions: Any = "random", norm: str = "filter", ignore: str = "biasbn", seed: int = 0,
           dir_type: str = "weights", trajectory: str | Path | None = None, loss: Any = None,
           out: str | Path | None = None, comm: Any | None = None, device: str = "auto", batch_size: int = 256,
           points_per_batch: int | str = "auto", task: str | None = None, precision: str = "fp32",
           input_tables: bool = True, compile: bool | str = "auto", progress: bool | None = None) -> SampleData:
    """The loss of ``model`` on ``data`` at θ* + Σᵢ cᵢ·dᵢ for ``k`` directions (θ* its current parameters).

    ``design``: ``grid`` (``ranges``: one ``MIN:MAX:NUM`` for every axis, or one per axis; C order, the last axis
    fastest), ``sobol`` or ``halton`` (``points`` of scipy's scrambled sequence, seeded by ``design_seed``, in the
    ``box`` of the first range's MIN and MAX, or the ``ball`` of radius MAX). ``directions``: ``"random"``
    (seeded, ``norm``-normalised as for surfaces), ``"pca"`` (with ``trajectory``), or ``k`` directions (models,
    state dicts or flat tensors). ``out``: the file to write as it goes (a rerun computes only missing points);
    without it a temporary one. ``comm``: an MPI communicator (every rank calls alike; rank 0 writes).
    ``compile``: as for :func:`~landscape.stages.given_surface.surface`. The model is left as it was. Returns the
    file read back (:class:`~landscape.io.sample_file.SampleData`).

    Example:
        >>> m = torch.nn.Linear(3, 2)
        >>> s = sample(m, (torch.randn(16, 3), torch.randint(0, 2, (16,))), k=4, design="sobol", points=32,
        ...            progress=False)
        >>> s.coefficients.shape, bool(s.done.all())
        ((32, 4), True)
    """
    ranges = [ranges] if isinstance(ranges, str) else list(ranges)
    plan = parse_design(design, int(k), ranges, int(points), region, int(design_seed))
    given = given_data(data, task)
    path = Path(out) if out is not None else scratch_path("sample.h5")
    with working_copy(model) as work:
        center = {name: v.detach().cpu().clone() for name, v in model_state(work).items()}
        dirs, info = _given_directions(directions, work, center, int(k), seed, norm, ignore, dir_type, trajectory)
        ev = given_evaluator(work, given, device, comm, loss, batch_size, precision, input_tables, compile)
        records, datasets = _records(dirs, center, info)
        inputs = {"model": model_label(model), "data": data_facts(given), "split": f"{len(given.data)} samples",
                  "data_checksum": data_checksum(given), "center": "given model",
                  "loss": loss_label(loss) or ev.loss_name, "precision": precision, **records}
        attrs = {"model": inputs["model"], "center_checksum": records["center_checksum"],
                 "directions_checksum": records["directions_checksum"], "data": given.data.name or "data",
                 "split": "given", "loss_name": ev.loss_name, "task": ev.task,
                 "state_spec": json.dumps(StateSpec.from_state(center).to_json())}
        _compute(ev, dirs, plan, path, inputs, attrs, datasets, comm, progress_default(progress), points_per_batch,
                 compile=compile)
    if comm is not None and comm.Get_rank() != 0:
        path = Path(comm.bcast(None, root=0))
    elif comm is not None:
        comm.bcast(str(path), root=0)
    result = read_sample(path)
    if out is None:
        weakref.finalize(result, shutil.rmtree, str(path.parent), True)
    return result
