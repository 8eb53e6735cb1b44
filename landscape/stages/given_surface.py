"""``ls.surface``: the loss surface (or line) of a model object around its current parameters, on data as you have
it, through the same engine, file and runners as a job's ``[surface]``.

Example:
    >>> import torch
    >>> torch.manual_seed(0) and None
    >>> model = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    >>> x, y = torch.randn(64, 2), torch.randint(0, 3, (64,))
    >>> s = surface(model, (x, y), alpha=(-1, 1, 5), beta=(-1, 1, 3), progress=False)
    >>> s.loss.shape, bool(s.loss[2, 1] > 0), bool(s.done.all())
    ((5, 3), True, True)
"""
from __future__ import annotations

import json
import logging
import shutil
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..analysis.directions import cosine
from ..core.errors import ConfigError
from ..core.grid import Grid
from ..core.params import StateSpec, flatten_state, model_state, state_checksum
from ..core.userdata import given_data
from ..engine.plane import PlaneEvaluator
from ..io.surface_file import SurfaceData, SurfaceStore, read_surface
from ..run.compiling import settle_compile
from ..run.mpi import agree, on_root
from ..io.trajectory import TrajectoryStore
from ..run.planes import grid_axis, pca_plane, random_plane
from ..run.projection import project_trajectory
from ..run.runner import run_points
from ..views.inline import surface_figure, surface_xarray
from .given import (copy_file, flat_directions, axis_values, data_checksum, data_facts, directions_given, given_evaluator, loss_label,
                    model_label, progress_default, scratch_path, working_copy)

__all__ = ["Surface", "surface"]

log = logging.getLogger(__name__)


@dataclass
class Surface:
    """A computed surface: ``loss[i, j]`` at ``(alpha[i], beta[j])`` (``beta`` None and 1-D arrays for a line),
    ``accuracy`` (None for regression), ``done``, and the HDF5 file (``path``) holding it in the documented
    ``landscape.surface`` schema, which ``landscape status/plot/export/report`` read."""

    alpha: np.ndarray
    beta: np.ndarray | None
    loss: np.ndarray
    accuracy: np.ndarray | None
    done: np.ndarray
    path: Path
    attrs: dict[str, Any]
    inputs: dict[str, Any]

    @classmethod
    def read(cls, path: str | Path) -> "Surface":
        """A surface file read back.

        Example:
            >>> Surface.read.__name__
            'read'
        """
        s = read_surface(path)
        acc = None if s.attrs.get("task") == "regression" or not np.isfinite(s.accuracy[s.done.astype(bool)]).any() \
            else s.accuracy
        return cls(s.alpha, s.beta, s.loss, acc, s.done.astype(bool), Path(path), s.attrs, s.inputs)

    def _data(self) -> SurfaceData:
        return read_surface(self.path)

    def save(self, path: str | Path) -> Path:
        """Copy the surface's file to ``path`` (``landscape status/plot/export/report`` read it); returns it."""
        return copy_file(self.path, path)

    def plot(self, kind: str = "contour", log: bool = False, ax: Any = None) -> Any:
        """A matplotlib figure of the surface (``contour``, ``filled``, ``heatmap`` or ``3d``; a line plot for a
        1-D surface); shown inline in a notebook."""
        return surface_figure(self._data(), kind, log, ax)

    def to_xarray(self) -> Any:
        """An ``xarray.Dataset`` with ``loss`` (and ``accuracy``) over the coordinates ``alpha`` (and ``beta``)."""
        return surface_xarray(self._data())

    def __repr__(self) -> str:
        shape = "x".join(str(n) for n in self.loss.shape)
        lo = np.nanmin(self.loss) if np.isfinite(self.loss).any() else float("nan")
        return f"Surface({shape} points, {int(self.done.sum())} done, min loss {lo:.4g}, file {str(self.path)!r})"


def _directions(given: Any, work: nn.Module, center: dict[str, torch.Tensor], count: int, seed: int, norm: str,
                ignore: str, dir_type: str, store: TrajectoryStore | None, pca_checkpoints: str
                ) -> tuple[torch.Tensor, torch.Tensor | None, dict[str, Any]]:
    explicit = directions_given(given, count)
    params = [n for n, _ in work.named_parameters()]
    if explicit is None:
        if given == "pca":
            if store is None:
                raise ConfigError("directions='pca' needs trajectory= (a trajectory store, e.g. one ls.Recorder wrote)")
            return pca_plane(store, center, params, ignore, dir_type, pca_checkpoints, count)
        if given != "random":
            raise ConfigError(f"directions: expected 'random', 'pca' or explicit directions, got {given!r}")
        return random_plane(center, params, seed, norm, ignore, dir_type, count)
    flat = flat_directions(explicit, work, center)
    return flat[0], flat[1] if count == 2 else None, {"directions": "given"}


def _axis(axis: Any, name: str, projected: dict[str, np.ndarray] | None, key: str) -> np.ndarray | None:
    if isinstance(axis, str) and axis.startswith("auto"):
        if projected is None:
            raise ConfigError(f"{name}={axis!r} covers the projected training path: give trajectory=")
        return grid_axis(axis, projected[key])
    return axis_values(axis, name)


def surface(model: nn.Module, data: Any, alpha: Any = (-1, 1, 25), beta: Any = (-1, 1, 25), *,
            directions: Any = "random", norm: str = "filter", ignore: str = "biasbn", seed: int = 0,
            loss: Any = None, out: str | Path | None = None, comm: Any | None = None, device: str = "auto",
            batch_size: int = 256, points_per_batch: int | str = "auto", dir_type: str = "weights",
            trajectory: str | Path | None = None, pca_checkpoints: str = "epochs", task: str | None = None,
            precision: str = "fp32", input_tables: bool = True, compile: bool | str = "auto",
            progress: bool | None = None) -> Surface:
    """The loss surface θ* + α·d₁ + β·d₂ of ``model`` (θ* its current parameters) on ``data``.

    ``alpha``/``beta``: ``(min, max, num)``, ``"MIN:MAX:NUM"`` or values; ``beta=None`` gives a line. ``directions``:
    ``"random"`` (seeded Gaussian, ``norm``-normalised, ``ignore="biasbn"`` leaves 1-D tensors at θ*) or two
    directions (models, state dicts or flat tensors), or ``"pca"``: the top principal components of the checkpoints
    of ``trajectory`` (a trajectory store, e.g. written by :class:`~landscape.run.recorder.Recorder`; its checkpoints
    are also projected onto the plane and drawn on the figures, and ``"auto:NUM"`` axes cover them). ``loss``: a name (``cross_entropy``, ``mse``, ``nll``,
    ``token_cross_entropy``), a callable ``(outputs, targets) -> summed loss`` or a ``step(model, batch) ->
    (loss_sum, count)``. ``out``: the file to write as it goes (a rerun computes only missing points; other
    inputs are refused); without it a temporary file (``Surface.save`` keeps it). ``comm``: an MPI communicator
    (every rank calls with the same model and data; rank 0 writes). ``input_tables``: combine tables of the first
    convolution's outputs at every point instead of running it (values equal up to float32 rounding, recorded in
    the file's inputs; see ``docs/performance.md``). ``compile``: ``"auto"`` compiles the forward with
    ``torch.compile`` when timing shows the grid repays it (decided before the first point, recorded in the file),
    ``True`` always, ``False`` never. The model is left as it was.

    Example:
        >>> import torch
        >>> m = torch.nn.Linear(3, 1)
        >>> s = surface(m, (torch.randn(16, 3), torch.randn(16, 1)), alpha=(-1, 1, 3), beta=None, progress=False)
        >>> s.loss.shape, s.accuracy is None
        ((3,), True)
    """
    given = given_data(data, task)
    store_t = TrajectoryStore(trajectory) if trajectory is not None else None
    path = Path(out) if out is not None else scratch_path("surface.h5")
    count = 1 if beta is None else 2
    with working_copy(model) as work:
        center = {k: v.detach().cpu().clone() for k, v in model_state(work).items()}
        d1, d2, info = _directions(directions, work, center, count, seed, norm, ignore, dir_type, store_t,
                                   pca_checkpoints)
        spec = StateSpec.from_state(center)
        projected = None
        if store_t is not None:
            if store_t.spec != spec:
                raise ConfigError(f"trajectory {store_t.path}: recorded from a model of another layout; give the "
                                  "trajectory of this model")
            projected = project_trajectory(store_t, flatten_state(center, spec), d1, d2)
        grid = Grid(_axis(alpha, "alpha", projected, "trajectory/alpha"),
                    _axis(beta, "beta", projected, "trajectory/beta"))
        ev = given_evaluator(work, given, device, comm, loss, batch_size, precision, input_tables, compile)
        dir_sum = state_checksum(torch.cat([d1] + ([d2] if d2 is not None else [])))
        inputs = {"model": model_label(model), "data": data_facts(given), "split": f"{len(given.data)} samples",
                  "data_checksum": data_checksum(given),
                  "center": "given model", "center_checksum": state_checksum(center),
                  "directions_checksum": dir_sum, "loss": loss_label(loss) or ev.loss_name, "precision": precision,
                  **info, **ev.transforms()}
        cos = cosine(d1, d2) if d2 is not None else float("nan")
        attrs = {"model": inputs["model"], "center_checksum": inputs["center_checksum"],
                 "directions_checksum": dir_sum, "norm": info.get("norm") or "none",
                 "ignore": info.get("ignore") or "none", "dir_type": info.get("dir_type") or "weights",
                 "seed": int(info.get("seed") or 0), "data": given.data.name or "data", "split": "given",
                 "subset": 0, "cosine_d1_d2": cos, "state_spec": json.dumps(spec.to_json()),
                 "loss_name": ev.loss_name, "task": ev.task}
        datasets = {"directions/d1": d1.numpy(), "directions/center": flatten_state(center, spec).numpy()}
        if d2 is not None:
            datasets["directions/d2"] = d2.numpy()
        if projected is not None:
            datasets.update(projected)
            inputs["trajectory"] = str(store_t.path.name)
        if "explained_variance" in info:
            attrs["explained_variance"] = json.dumps(info["explained_variance"])
        flat = ev.get_flat()
        per_rank = -(-grid.size // (comm.Get_size() if comm is not None else 1))
        plane = settle_compile(compile, PlaneEvaluator(ev, flat, d1, d2, points_per_batch),
                               lambda: PlaneEvaluator(ev, flat, d1, d2, points_per_batch), per_rank, comm, path)
        inputs.update(ev.transforms())  # the input tables the plane keeps, or the compilation chosen
        agree(comm, "the centre and directions checksums", (inputs["center_checksum"], dir_sum))
        store = on_root(comm, lambda: SurfaceStore.open(path, grid, inputs, attrs, datasets))
        plane.expected_points = per_rank
        run_points(plane, store, path, comm, progress_default(progress), 0, str(ev.device))
    if comm is not None and comm.Get_rank() != 0:
        path = Path(comm.bcast(None, root=0))
    elif comm is not None:
        comm.bcast(str(path), root=0)
    result = Surface.read(path)
    if out is None:
        weakref.finalize(result, shutil.rmtree, str(path.parent), True)
    return result
