"""Running a whole job: training (or a given checkpoint) and its evaluation, then each analysis stage in
turn, each writing into the job's output folder; ``run_job`` returns that folder.

Example:
    >>> import tempfile
    >>> from landscape.run.jobfile import load_job
    >>> job = load_job(None, ["data.name=spiral", "model.name=mlp", "train.epochs=1",
    ...                       f"output={tempfile.mkdtemp()}"])
    >>> (run_job(job, progress=False) / "trajectory.h5").is_file()
    True
"""
from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..core.errors import ConfigError
from ..core.signals import check_interrupted
from ..engine.device import resolve_device
from ..io.checkpoints import apply_state, complete_state, load_source
from ..io.sample_file import read_sample
from ..io.surface_file import read_surface
from ..io.trajectory import TrajectoryStore
from ..run.config import JobConfig, SurfaceConfig
from ..run.inputs import job_evaluator, evaluation_data, prepare_data, prepare_model
from ..run.jobfile import job_to_dict
from ..run.mpi import note_output, on_root
from ..run.training import train_job
from ..views.animation import animate_path
from ..views.curvature_plots import plot_curvature_maps, plot_spectrum
from ..views.report import write_report
from ..views.surface_plots import plot_surface
from ..views.paraview import write_states
from ..views.vtk_export import export_surface
from .checks import check_dependencies
from .dynamics import run_dynamics
from .curvature import run_curvature
from .paths import run_paths
from .summary import summary, write_summary
from .surface import run_surface_job
from .sample import run_sample_job

__all__ = ["run_job", "demo_job_path", "export_job", "decision_regions"]

log = logging.getLogger(__name__)

Regions = Callable[[int], tuple[np.ndarray, np.ndarray, np.ndarray]]


def run_job(job: JobConfig, progress: bool = True, comm: Any | None = None) -> Path:
    """Run every stage of the job; returns the output folder.

    Under MPI (``comm``), rank 0 trains and evaluates while the others wait; every rank computes the surfaces
    and paths.
    """
    check_dependencies(job)
    note_output(job.output)
    t0 = time.perf_counter()
    on_root(comm, lambda: _train_and_evaluate(job, progress))
    out = Path(job.output)
    root = comm is None or comm.Get_rank() == 0
    check_interrupted()  # between stages: a signal that landed where Python swallowed it stops here
    if job.surface is not None:
        _surface_stage(job, job.surface, "surface", "figures_and_vtk", progress, comm)
        check_interrupted()
    if job.pca is not None:
        _surface_stage(job, job.pca, "surface_pca", None, progress, comm)
        check_interrupted()
    if job.sample is not None:
        path = run_sample_job(job, progress, comm)
        if root:
            log.info("\n%s", read_sample(path).describe())
            with summary(out) as s:
                s["outputs"]["sample"] = path.name if path.parent == out else str(path)
        check_interrupted()
    if job.dynamics is not None and root:
        run_dynamics(job)
        check_interrupted()
    ex = job.export
    states = None  # the view scripts written so far get their ParaView state files while the stages go on
    if root and ex is not None and ex.paraview and ex.paraview_state:
        scripts = sorted(out.rglob("*_view.py"))
        states = _Background(write_states, scripts)
    if job.paths is not None:
        run_paths(job, progress, comm)
        check_interrupted()
    if job.curvature is not None:
        result = on_root(comm, lambda: run_curvature(job, progress))
        if root:
            log.info("\n%s", result.text)
            if job.export is not None and job.export.plots and result.path.parent == out:
                with summary(out) as s:
                    s["outputs"]["curvature_figures"] = [p.name for p in plot_spectrum(result.path, None,
                                                                                       job.export.plots)]
    if root:
        if states is not None:  # every view's state file (a script written since: by one more pvbatch)
            written = states.result()
            later = sorted(set(out.rglob("*_view.py")) - set(scripts))
            written += write_states(later) if later else []
            if written:
                with summary(out) as s:
                    s["outputs"]["paraview_states"] = [p.relative_to(out.resolve()).as_posix() for p in sorted(written)]
        with summary(out) as s:
            s["seconds"] = round(time.perf_counter() - t0, 2)
            if job.export is not None and job.export.report:
                s["outputs"]["report"] = write_report(out).name
    return out


class _Background(threading.Thread):
    """``fn(*args)`` on a daemon thread of its own (a subprocess's wait: the stages go on meanwhile; unlike an
    executor's worker, an interrupted command does not wait for it at exit); :meth:`result` waits for it and
    returns its value, or raises what it raised."""

    def __init__(self, fn: Any, *args: Any):
        super().__init__(daemon=True, name="landscape-background")
        self.fn, self.args = fn, args
        self._value: Any = None
        self._error: BaseException | None = None
        self.start()

    def run(self) -> None:
        try:
            self._value = self.fn(*self.args)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller of result()
            self._error = exc

    def result(self) -> Any:
        self.join()
        if self._error is not None:
            raise self._error
        return self._value


def _surface_stage(job: JobConfig, sf: SurfaceConfig, key: str, exports_key: str | None, progress: bool,
                   comm: Any | None) -> Path:
    """Compute one surface of the job (every rank), then on rank 0 export it, animate its projected path if
    asked, record it in summary.json and log its description."""
    out = Path(job.output)
    path = run_surface_job(job, progress, comm, sf)
    if comm is not None and comm.Get_rank() != 0:
        return path
    with summary(out) as s:
        s["outputs"][key] = str(path.relative_to(out)) if path.is_relative_to(out) else str(path)
        if job.export is not None:
            written = export_job(job, path)
            if exports_key:
                s["outputs"][exports_key] = [p.name for p in written]
            if job.export.animate and sf.directions == "pca":
                tr = prepare_data(job.data)[0]
                two_d = tr.x.dim() == 2 and tr.x.shape[1] == 2 and tr.task == "classification"
                regions, points = decision_regions(job) if two_d else (None, None)
                s["outputs"]["animation"] = animate_path(path, None, 3.0, regions, points).name
    log.info("\n%s", read_surface(path).describe())
    return path


def decision_regions(job: JobConfig) -> tuple[Regions, tuple[np.ndarray, np.ndarray]]:
    """(regions(k), points) for 2-D classification data: the class of each mesh point at checkpoint k of the
    job's trajectory, and the training points with their labels."""
    tr, _ = prepare_data(job.data)
    if tr.x.dim() != 2 or tr.x.shape[1] != 2:
        raise ConfigError(f"decision regions need 2-D inputs; {job.data.name} has shape {tuple(tr.x.shape[1:])}")
    model = prepare_model(job.model, tr, job.train.seed).eval()
    store = TrajectoryStore(Path(job.output) / "trajectory.h5")
    lo, hi = (tr.x.min(0).values - 0.1).tolist(), (tr.x.max(0).values + 0.1).tolist()
    xx, yy = np.meshgrid(np.linspace(lo[0], hi[0], 150), np.linspace(lo[1], hi[1], 150))
    mesh = torch.tensor(np.stack([xx.ravel(), yy.ravel()], 1), dtype=torch.float32)

    def regions(k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        model.load_state_dict(complete_state(model, store.state(k)))
        with torch.no_grad():
            return xx, yy, model(mesh).argmax(1).reshape(xx.shape).numpy()

    return regions, (tr.x.numpy(), tr.y.numpy())


def export_job(job: JobConfig, surface: Path) -> list[Path]:
    """The job's ``[export]``: VTK files and figures of a surface file, next to it."""
    ex = job.export
    written = []
    if ex.vtk:
        # the state files of the views are written once for the whole job, at its end (one pvbatch)
        written += export_surface(surface, ex.vtk, None, ex.z, ex.log, ex.zmax, ex.zscale, ex.resample, ex.paraview,
                                  state=False)
    if ex.plots:
        written += plot_surface(surface, None, ex.plots, ex.log, ex.zmax, vmin=ex.vmin, vmax=ex.vmax,
                                n_levels=ex.levels, equal_aspect=ex.equal_aspect)
        written += plot_curvature_maps(surface, None, ex.plots)
    return written


def _train_and_evaluate(job: JobConfig, progress: bool) -> Path:
    """Training (or loading the given checkpoint) and the final evaluation; writes job.json and summary.json."""
    t0 = time.perf_counter()
    out = Path(job.output)
    out.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"job": job.name, "outputs": {}}
    if job.model.checkpoint:
        tr, te = prepare_data(job.data)
        model = prepare_model(job.model, tr, job.train.seed)
        apply_state(model, load_source(job.model.checkpoint, model), job.model.checkpoint)
        result["checkpoint"] = job.model.checkpoint
    else:
        model, store, (tr, te) = train_job(job, out, progress)
        result["outputs"]["trajectory"] = store.path.name
        log.info("\n%s", store.describe())
    ev = job_evaluator(job, model, evaluation_data(tr, te, job.data, job.evaluate.split))
    res = ev.evaluate()
    result["final"] = {"split": job.evaluate.split, "loss": res.loss, "accuracy": res.accuracy, "n": res.n,
                       "device": str(resolve_device(job.evaluate.device))}
    if ev.task == "language":
        result["final"]["perplexity"] = res.perplexity
        log.info("final model on %s split: loss %.4f per token, perplexity %.4g, next-token accuracy %.4f "
                 "(%d sequences, %d tokens)", job.evaluate.split, res.loss, res.perplexity, res.accuracy, res.n,
                 ev.count)
    else:
        log.info("final model on %s split: loss %.4f accuracy %.4f (%d samples)", job.evaluate.split, res.loss,
                 res.accuracy, res.n)
    result["seconds"] = round(time.perf_counter() - t0, 2)
    # written once the job has run (a rejected run leaves an earlier run's job.json, or none, as it was)
    (out / "job.json").write_text(json.dumps(job_to_dict(job), indent=2))
    write_summary(out, result)
    return out


def demo_job_path() -> Path:
    """The demo job file shipped inside the package (identical to ``jobs/demo.toml``)."""
    return Path(__file__).resolve().parents[1] / "resources" / "demo.toml"
