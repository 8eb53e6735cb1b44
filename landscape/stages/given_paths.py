"""``ls.path``, ``ls.curve`` and ``ls.curvature``: interpolation paths between models or state dicts, learned
curves between two of them, and the Hessian spectrum of a model object, on data as you have it, through the same
engine and files as a job's ``[paths]`` and ``[curvature]``. Given models are never changed.

Example:
    >>> import torch
    >>> torch.manual_seed(0) and None
    >>> a, b = (torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.ReLU(), torch.nn.Linear(4, 3)) for _ in "ab")
    >>> x, y = torch.randn(32, 2), torch.randint(0, 3, (32,))
    >>> p = path(a, b, data=(x, y), alpha=(0, 1, 3), level=["model", "layer"], progress=False)
    >>> p.names, p.loss.shape
    (['model', '0', '2'], (3, 3))
"""
from __future__ import annotations

import logging
import shutil
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from ..analysis.curves import CURVE_KINDS, Curve
from ..analysis.interpolation import path_items
from ..analysis.spectrum import extreme_eigenpairs, hutchinson_trace, slq_density
from ..core.data import TensorData
from ..core.errors import ConfigError, DataError
from ..core.grid import Grid
from ..core.params import model_state, state_checksum
from ..core.threads import DEFAULT_STAGE_THREADS, fixed_threads
from ..core.userdata import given_data
from ..engine.hessian import HessianOperator
from ..engine.path import PathEvaluator
from ..io.curvature_file import write_curvature
from ..io.hdf5 import PATH_SCHEMA
from ..io.path_file import read_path
from ..io.surface_file import SurfaceStore
from ..run.config import CurveConfig
from ..run.curves import train_curve
from ..run.mpi import agree, on_root
from ..run.runner import run_points
from .given import (copy_file, as_state, axis_values, data_checksum, data_facts, given_evaluator, loss_label, model_label,
                    progress_default, scratch_path, working_copy)

__all__ = ["PathResult", "CurvatureSummary", "path", "curve", "curvature"]

log = logging.getLogger(__name__)


@dataclass
class PathResult:
    """A computed path: ``loss[k, a]`` of item ``names[k]`` (``model``, a layer, or ``tensor[i,j]``) at
    ``alpha[a]``, ``accuracy`` likewise, and the ``landscape.path`` file holding it (``path``)."""

    alpha: np.ndarray
    names: list[str]
    levels: list[str]
    loss: np.ndarray
    accuracy: np.ndarray
    distance: np.ndarray
    kind: str
    path: Path

    def save(self, path: str | Path) -> Path:
        """Copy the path file to ``path``; returns it."""
        return copy_file(self.path, path)

    def __repr__(self) -> str:
        return f"PathResult({self.kind}, {len(self.names)} item(s) x {len(self.alpha)} points, file {str(self.path)!r})"


def _reference(*objs: Any, model: nn.Module | None) -> nn.Module:
    if model is not None:
        return model
    for o in objs:
        if isinstance(o, nn.Module):
            return o
    raise ConfigError("path: start, mid and end are all state dicts; give model= (a model of that architecture)")


def _levels(level: str | Sequence[str]) -> list[str]:
    return [level] if isinstance(level, str) else list(level)


def path(start: Any, end: Any, mid: Any = None, *, data: Any, model: nn.Module | None = None,
         kind: str = "linear", level: str | Sequence[str] = "model", alpha: Any = (-0.5, 1.5, 21),
         layers: Sequence[str] = (), parameters: Sequence[str] = (), params_per_layer: int = 0, t_mid: float = 0.5,
         seed: int = 0, loss: Any = None, out: str | Path | None = None, comm: Any | None = None,
         device: str = "auto", batch_size: int = 256, task: str | None = None,
         progress: bool | None = None) -> PathResult:
    """The loss along θ(α) from ``start`` (α = 0) to ``end`` (α = 1): ``kind="linear"``, or ``"quadratic"`` (the
    Lagrange parabola through ``mid`` at ``t_mid``), at ``level`` ``"model"`` (every tensor moves), ``"layer"``
    (one layer at a time, the others at ``end``) or ``"parameter"`` (``parameters`` such as ``"fc1.weight[3,7]"``
    and ``params_per_layer`` random ones). ``start``/``mid``/``end`` are models or state dicts (``model=`` gives the
    architecture when all are state dicts). Data and losses as for :func:`~landscape.stages.given_surface.surface`.

    Example:
        >>> import torch
        >>> a, b = torch.nn.Linear(2, 1), torch.nn.Linear(2, 1)
        >>> p = path(a, b, data=(torch.randn(8, 2), torch.randn(8, 1)), alpha=(0, 1, 2), progress=False)
        >>> p.loss.shape, p.kind
        ((1, 2), 'linear')
    """
    if kind not in ("linear", "quadratic"):
        raise ConfigError(f"path kind: expected 'linear' or 'quadratic' (learned curves: ls.curve), got {kind!r}")
    if kind == "quadratic" and mid is None:
        raise ConfigError("a quadratic path needs mid= (a model or state dict between start and end)")
    given = given_data(data, task)
    alphas = axis_values(alpha, "alpha")
    ref = _reference(start, end, mid, model=model)
    out_path = Path(out) if out is not None else scratch_path(f"path_{kind}.h5")
    with working_copy(ref) as work:
        s0, s1 = as_state(start, work, "start"), as_state(end, work, "end")
        sm = as_state(mid, work, "mid") if mid is not None else s0
        items = path_items(work, _levels(level), list(layers), params_per_layer, list(parameters), seed)
        ev = given_evaluator(work, given, device, comm, loss, batch_size)
        plane = PathEvaluator(ev, [s0, sm, s1], items, kind, t_mid)
        sums = [state_checksum(s) for s in ([s0, sm, s1] if kind == "quadratic" else [s0, s1])]
        agree(comm, "the checkpoints' checksums", sums)
        inputs = {"model": model_label(ref), "data": data_facts(given), "split": f"{len(given.data)} samples",
                  "data_checksum": data_checksum(given),
                  "kind": kind, "t_mid": t_mid if kind == "quadratic" else None, "checksums": sums,
                  "items": [i.name for i in items], "loss": loss_label(loss) or ev.loss_name, "precision": "fp32"}
        attrs = {"model": inputs["model"], "kind": kind, "t_mid": t_mid if kind == "quadratic" else float("nan"),
                 "start": "given", "end": "given", "loss_name": ev.loss_name, "task": ev.task}
        datasets = {"items/name": np.array([i.name for i in items], dtype=object),
                    "items/level": np.array([i.level for i in items], dtype=object),
                    "items/distance": plane.distance,
                    "items/numel": np.array([sum(b - a for _, a, b in i.regions) for i in items])}
        grid = Grid(np.arange(len(items), dtype=np.float64), alphas)
        store = on_root(comm, lambda: SurfaceStore.open(out_path, grid, inputs, attrs, datasets, schema=PATH_SCHEMA,
                                                        axes=("item", "alpha")))
        run_points(plane, store, out_path, comm, progress_default(progress), len(alphas) if comm is None else 0,
                   str(ev.device))
    if comm is not None:
        out_path = Path(comm.bcast(str(out_path) if comm.Get_rank() == 0 else None, root=0))
    r = read_path(out_path)
    result = PathResult(r["alpha"], r["name"], r["level"], r["loss"], r["accuracy"], r["distance"], kind, out_path)
    if out is None:
        weakref.finalize(result, shutil.rmtree, str(out_path.parent), True)
    return result


def curve(start: Any, end: Any, data: Any, *, model: nn.Module | None = None, kind: str = "bezier",
          test: Any = None, epochs: int = 10, lr: float = 0.02, batch_size: int = 64, seed: int = 0,
          loss: str | None = None, out: str | Path | None = None, device: str = "auto",
          progress: bool | None = None) -> Curve:
    """Train a learned curve (``"bezier"`` or ``"polychain"``, Garipov et al. 2018) between ``start`` and ``end``
    (models or state dicts) on ``data`` (tensor data with a named loss); returns the
    :class:`~landscape.analysis.curves.Curve` (``curve.state(t)`` at any t). ``out`` keeps the curve's store
    (resumable; a rerun with the same inputs reads it back).

    Example:
        >>> curve.__name__  # tests/stages/test_given.py trains one
        'curve'
    """
    if kind not in CURVE_KINDS:
        raise ConfigError(f"curve kind: expected one of {list(CURVE_KINDS)}, got {kind!r}")
    if loss is not None and not isinstance(loss, str):
        raise ConfigError("ls.curve trains with a named loss (cross_entropy, nll, mse); a callable or a step is not "
                          "supported for training")
    train_set = given_data(data, None, "train")
    if train_set.fields is not None or not isinstance(train_set.data, TensorData):
        raise DataError("ls.curve trains on tensor data ((x, y), a DataLoader or a data set of (x, y) pairs); dict "
                        "batches are not supported for training")
    test_set = given_data(test, None, "test").data if test is not None else train_set.data
    ref = _reference(start, end, model=model)
    cfg = CurveConfig(epochs=epochs, lr=lr, batch_size=batch_size, seed=seed)
    out_path = Path(out) if out is not None else scratch_path(f"curve_{kind}.h5")
    with working_copy(ref) as work:
        s0, s1 = as_state(start, work, "start"), as_state(end, work, "end")
        meta = {"model": model_label(ref), "data": data_facts(train_set), "data_checksum": data_checksum(train_set)}
        result = train_curve(work, kind, s0, s1, train_set.data, test_set, cfg, out_path, device, 256, loss, meta,
                             progress_default(progress))
    if out is None:
        shutil.rmtree(out_path.parent, ignore_errors=True)
    return result


@dataclass
class CurvatureSummary:
    """The Hessian's extreme eigenvalues (``top`` descending, ``bottom`` ascending) with their Ritz residuals, the
    trace estimate and its standard error (None unless asked), the SLQ density (``density_grid``,
    ``density``) when asked, and the ``landscape.curvature`` file (``path``). Eigenvectors stay in the file."""

    top: np.ndarray
    bottom: np.ndarray
    residuals: np.ndarray
    trace: float | None
    trace_stderr: float | None
    density_grid: np.ndarray | None
    density: np.ndarray | None
    parameters: int
    path: Path

    @property
    def lambda_max(self) -> float:
        return float(self.top[0])

    def __repr__(self) -> str:
        tr = f", trace {self.trace:.6g} ± {self.trace_stderr:.2g}" if self.trace is not None else ""
        bottom = f", bottom {np.array2string(self.bottom, precision=4)}" if len(self.bottom) else ""
        return (f"CurvatureSummary(top {np.array2string(self.top, precision=4)}{bottom}{tr}, "
                f"{self.parameters} parameters)")


def curvature(model: nn.Module, data: Any, *, top_k: int = 1, bottom_k: int = 0, trace: bool = True,
              trace_samples: int = 30, trace_method: str = "hutchinson", density: bool = False, tol: float = 1e-3,
              max_iter: int = 100, ignore: str = "none", seed: int = 0, loss: Any = None,
              out: str | Path | None = None, device: str = "auto", batch_size: int = 256,
              task: str | None = None, threads: int = DEFAULT_STAGE_THREADS, block: int = 0) -> CurvatureSummary:
    """The Hessian of the mean loss of ``model`` on ``data`` at its current parameters: ``top_k`` largest and
    ``bottom_k`` smallest eigenvalues (block Lanczos to ``tol``, ``block`` vectors at a time; 0: the larger of
    the two counts where products are batched, else 1), the trace (``trace_samples`` Hutchinson/Hutch++
    probes) and the SLQ spectral density. ``ignore="biasbn"`` leaves biases and BatchNorm weights out (as surface
    directions do); by default every parameter counts. Exact double-backward products, float64 accumulation, on
    ``threads`` CPU threads (2, as the job's ``curvature.threads``: the bits depend on the count; 0: the current).

    Example:
        >>> import torch
        >>> m = torch.nn.Linear(3, 1, bias=False)
        >>> x = torch.eye(3)
        >>> c = curvature(m, (x, torch.zeros(3, 1)), top_k=1, trace=False)
        >>> round(c.lambda_max, 4)  # mse of a linear model: H = 2 XᵀX / (N·outputs) = (2/3)·I
        0.6667
    """
    given = given_data(data, task)
    out_path = Path(out) if out is not None else scratch_path("curvature.h5")
    with working_copy(model) as work, fixed_threads(threads):
        ev = given_evaluator(work, given, device, None, loss, batch_size)
        op = HessianOperator(ev, ignore=ignore)
        n_top = min(int(top_k), op.numel)
        n_bottom = min(int(bottom_k), op.numel - n_top)
        if n_top < 1:
            raise ConfigError(f"curvature: top_k must be >= 1, got {top_k}")
        eig = extreme_eigenpairs(op.matvec, op.numel, n_top, n_bottom, tol, max_iter, seed=seed, device=ev.device,
                                 block=block, matmat=op.block_matmat)
        if not eig.converged:
            log.warning("Lanczos stopped after %d iterations above tol %g; raise max_iter", eig.iterations, tol)
        arrays: dict[str, Any] = {"eigenvalues": eig.values, "eigen_kind": ["top"] * n_top + ["bottom"] * n_bottom,
                                  "residuals": eig.residuals,
                                  "eigenvectors": torch.stack([op.embed(v) for v in eig.vectors]).numpy()}
        tr = None
        if trace:
            tr = hutchinson_trace(op.matvec, op.numel, trace_samples, seed, trace_method, ev.device,
                                  matmat=op.matmat)
            arrays.update(trace=np.float64(tr.value), trace_stderr=np.float64(tr.stderr))
        grid = dens = None
        if density:
            grid, dens = slq_density(op.matvec, op.numel, seed=seed, device=ev.device, matmat=op.block_matmat)
            arrays.update({"density/grid": grid, "density/values": dens})
        state = model_state(work)
        inputs = {"model": model_label(model), "data": data_facts(given), "split": f"{len(given.data)} samples",
                  "data_checksum": data_checksum(given),
                  "center": "given model", "center_checksum": state_checksum(state), "loss": loss_label(loss),
                  "moved": op.names, "parameters": op.numel, "top_k": n_top, "bottom_k": n_bottom, "tol": tol,
                  "max_iter": max_iter, "block": eig.block, "trace": trace, "trace_samples": trace_samples,
                  "seed": seed, "ignore": ignore, "threads": threads}
        lam_min = float(eig.values[n_top]) if n_bottom else float("nan")
        attrs = {"model": inputs["model"], "lanczos_tol": tol, "lanczos_iterations": eig.iterations,
                 "lanczos_block": eig.block, "converged": eig.converged, "seed": seed,
                 "lambda_max": float(eig.values[0]), "lambda_min": lam_min, "state_spec": ev.spec.to_json(),
                 "loss_name": ev.loss_name}
        if tr is not None:
            attrs.update(trace_method=tr.method, trace_matvecs=tr.matvecs)
        write_curvature(out_path, arrays, inputs, attrs)
    result = CurvatureSummary(eig.values[:n_top], eig.values[n_top:], eig.residuals,
                              None if tr is None else float(tr.value), None if tr is None else float(tr.stderr),
                              grid, dens, op.numel, out_path)
    if out is None:
        weakref.finalize(result, shutil.rmtree, str(out_path.parent), True)
    return result
