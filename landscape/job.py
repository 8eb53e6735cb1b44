"""Running a whole job: data, model, training (or a given checkpoint), evaluation, analyses.

Each analysis writes into the job's output folder; ``run_job`` returns that folder.

Example:
    >>> import tempfile
    >>> from landscape.config import load_job
    >>> job = load_job(None, ["data.name=spiral", "model.name=mlp", "train.epochs=1",
    ...                       f"output={tempfile.mkdtemp()}"])
    >>> (run_job(job, progress=False) / "trajectory.h5").is_file()
    True
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .checkpoints import apply_state, load_source
from .config import DataConfig, JobConfig, job_to_dict
from .data import TensorData, load_data, subset
from .evaluate import Evaluator, resolve_device
from .models import build_model
from .train import train

__all__ = ["prepare_data", "prepare_model", "data_meta", "train_job", "run_job", "demo_job_path", "export_job",
           "decision_regions", "run_paths"]

log = logging.getLogger(__name__)


def prepare_data(cfg: DataConfig) -> tuple[TensorData, TensorData]:
    """Load the job's data set and apply its train/test subsets."""
    tr, te = load_data(cfg.name, cfg.root, cfg.task, **cfg.kwargs)
    return (subset(tr, cfg.train_subset, cfg.subset_mode, cfg.subset_seed),
            subset(te, cfg.test_subset, cfg.subset_mode, cfg.subset_seed))


def prepare_model(job: JobConfig, data: TensorData) -> nn.Module:
    """Build the job's model with its initialisation seeded by ``train.seed``."""
    torch.manual_seed(job.train.seed)
    return build_model(job.model.name, data.info(), **job.model.kwargs)


def data_meta(job: JobConfig) -> dict[str, Any]:
    """What identifies the model and data of a job (stored as provenance, compared on resume)."""
    return {"model": job.model.name, "model_kwargs": job.model.kwargs, "data": asdict(job.data)}


def train_job(job: JobConfig, output: Path, progress: bool = True, store_name: str = "trajectory.h5"):
    """Train the job's model into ``output/store_name`` (resuming if present); returns (model, store, data)."""
    tr, te = prepare_data(job.data)
    model = prepare_model(job, tr)
    store = train(model, tr, te, job.train, output / store_name, job.evaluate.device,
                  job.evaluate.batch_size, meta=data_meta(job), progress=progress)
    apply_state(model, store.state("final"), f"{store.path}:final")
    return model, store, (tr, te)


def run_job(job: JobConfig, progress: bool = True, comm: object | None = None) -> Path:
    """Run every stage of the job; returns the output folder.

    Under MPI (``comm``), rank 0 trains and evaluates while the others wait; every rank computes the surface.
    """
    from .parallel import on_root

    check_dependencies(job)
    t0 = time.perf_counter()
    on_root(comm, lambda: _train_and_evaluate(job, progress))
    out = Path(job.output)
    if job.surface is not None:
        _surface_stage(job, job.surface, "surface", "figures_and_vtk", progress, comm)
    if job.pca is not None:
        _surface_stage(job, job.pca, "surface_pca", None, progress, comm)
    if job.dynamics is not None and (comm is None or comm.Get_rank() == 0):
        run_dynamics(job)
    if job.paths is not None:
        run_paths(job, progress, comm)
    if comm is None or comm.Get_rank() == 0:
        summary = json.loads((out / "summary.json").read_text())
        summary["seconds"] = round(time.perf_counter() - t0, 2)
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return out


def run_dynamics(job: JobConfig) -> list[Path]:
    """The job's ``[dynamics]``: norms plot, filter evolution series, weight walk, correlation heatmaps."""
    from .dynamics import correlation_report, export_filter_evolution, plot_norms, plot_weight_walk
    from .trajectory import TrajectoryStore

    dc, out = job.dynamics, Path(job.output)
    store = TrajectoryStore(out / "trajectory.h5")
    written: list[Path] = []
    if store.norms() is not None:
        written += plot_norms(store, out)
    written += export_filter_evolution(store, dc.filter_layer, out / "filters")
    written += plot_weight_walk(store, out, dc.walk)
    tr, te = prepare_data(job.data)
    model = prepare_model(job, tr)
    apply_state(model, store.state("final"), f"{store.path}:final")
    data = te if job.evaluate.split == "test" else tr
    report = correlation_report(model, data.x[: dc.activations_batch], out, dc.correlation_threshold)
    for layer, pairs in report.items():
        log.info("%s: %d weight and %d activation filter pairs with correlation >= %g: %s", layer,
                 len(pairs["weights"]), len(pairs["activations"]), dc.correlation_threshold,
                 pairs["activations"][:5])
    summary = json.loads((out / "summary.json").read_text())
    summary["outputs"]["dynamics"] = sorted({str(p.relative_to(out)).split("/")[0] for p in written} |
                                            {"correlation.h5"})
    summary["correlated_pairs"] = report
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return written


def run_paths(job: JobConfig, progress: bool = True, comm: object | None = None) -> dict[str, Path]:
    """The job's ``[paths]``: path files, the robust/ambient report (layer level, linear) and the figures."""
    from .paths import layer_report, run_paths_job, write_report

    files = run_paths_job(job, progress, comm)
    if comm is not None and comm.Get_rank() != 0:
        return files
    out = Path(job.output)
    summary = json.loads((out / "summary.json").read_text()) if (out / "summary.json").exists() else {"outputs": {}}
    summary["outputs"].update({f"path_{k}": str(p.name) for k, p in files.items()})
    if "layer" in job.paths.levels and "linear" in files:
        rows = layer_report(job, files["linear"], job.paths.robust_threshold)
        measure = "accuracy lost" if rows and np.isfinite(rows[0]["accuracy_final"]) else "relative loss rise"
        csv_path, json_path, table = write_report(rows, out, job.paths.robust_threshold, measure)
        summary["outputs"]["layers_report"] = csv_path.name
        summary["report"] = table
        log.info("\n%s", table)
    if job.export is not None and job.export.plots:
        from .plot import plot_paths

        traj = out / "trajectory.h5"
        figs = plot_paths(list(files.values()), out, job.export.plots, traj if traj.exists() else None)
        summary["outputs"]["path_figures"] = [p.name for p in figs]
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return files


def _surface_stage(job: JobConfig, sf: Any, key: str, exports_key: str | None, progress: bool,
                   comm: object | None) -> Path:
    """Compute one surface of the job (every rank), then on rank 0 export it, animate its projected path if
    asked, record it in summary.json and log its description."""
    from .store import read_surface
    from .surface import run_surface_job

    out = Path(job.output)
    path = run_surface_job(job, progress, comm, sf)
    if comm is not None and comm.Get_rank() != 0:
        return path
    summary = json.loads((out / "summary.json").read_text())
    summary["outputs"][key] = str(path.relative_to(out)) if path.is_relative_to(out) else str(path)
    if job.export is not None:
        written = export_job(job, path)
        if exports_key:
            summary["outputs"][exports_key] = [p.name for p in written]
        if job.export.animate and sf.directions == "pca":
            from .plot import animate_path

            tr = prepare_data(job.data)[0]
            two_d = tr.x.dim() == 2 and tr.x.shape[1] == 2 and tr.task == "classification"
            regions, points = decision_regions(job) if two_d else (None, None)
            summary["outputs"]["animation"] = animate_path(path, None, 3.0, regions, points).name
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    log.info("\n%s", read_surface(path).describe())
    return path


def decision_regions(job: JobConfig) -> tuple[Any, tuple[np.ndarray, np.ndarray]]:
    """(regions(k), points) for 2-D classification data: the class of each mesh point at checkpoint k of the
    job's trajectory, and the training points with their labels."""
    from .errors import ConfigError
    from .trajectory import TrajectoryStore

    tr, _ = prepare_data(job.data)
    if tr.x.dim() != 2 or tr.x.shape[1] != 2:
        raise ConfigError(f"decision regions need 2-D inputs; {job.data.name} has shape {tuple(tr.x.shape[1:])}")
    model = prepare_model(job, tr).eval()
    store = TrajectoryStore(Path(job.output) / "trajectory.h5")
    lo, hi = (tr.x.min(0).values - 0.1).tolist(), (tr.x.max(0).values + 0.1).tolist()
    xx, yy = np.meshgrid(np.linspace(lo[0], hi[0], 150), np.linspace(lo[1], hi[1], 150))
    mesh = torch.tensor(np.stack([xx.ravel(), yy.ravel()], 1), dtype=torch.float32)

    def regions(k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        model.load_state_dict(store.state(k))
        with torch.no_grad():
            return xx, yy, model(mesh).argmax(1).reshape(xx.shape).numpy()

    return regions, (tr.x.numpy(), tr.y.numpy())


def check_dependencies(job: JobConfig) -> None:
    """Fail before any work when a stage needs an optional dependency that is missing (names the extra)."""
    from .errors import require

    if job.export is not None and job.export.vtk and (job.surface is not None):
        require("vtk", "vtk")
    if job.export is not None and job.export.plots and (job.surface is not None or job.paths is not None):
        require("matplotlib", "plot")
    if job.dynamics is not None:
        require("vtk", "vtk")
        require("matplotlib", "plot")


def export_job(job: JobConfig, surface: Path) -> list[Path]:
    """The job's ``[export]``: VTK files and figures of a surface file, next to it."""
    ex = job.export
    written = []
    if ex.vtk:
        from .export_vtk import export_surface

        written += export_surface(surface, ex.vtk, None, ex.z, ex.log, ex.zmax, ex.zscale, ex.resample)
    if ex.plots:
        from .plot import plot_surface

        written += plot_surface(surface, None, ex.plots, ex.log, ex.zmax)
    return written


def _train_and_evaluate(job: JobConfig, progress: bool) -> Path:
    """Training (or loading the given checkpoint) and the final evaluation; writes job.json and summary.json."""
    t0 = time.perf_counter()
    out = Path(job.output)
    out.mkdir(parents=True, exist_ok=True)
    (out / "job.json").write_text(json.dumps(job_to_dict(job), indent=2))
    summary: dict[str, Any] = {"job": job.name, "outputs": {}}
    if job.model.checkpoint:
        tr, te = prepare_data(job.data)
        model = prepare_model(job, tr)
        apply_state(model, load_source(job.model.checkpoint, model), job.model.checkpoint)
        summary["checkpoint"] = job.model.checkpoint
    else:
        model, store, (tr, te) = train_job(job, out, progress)
        summary["outputs"]["trajectory"] = store.path.name
        log.info("\n%s", store.describe())
    eval_data = te if job.evaluate.split == "test" else tr
    ev = Evaluator(model, eval_data, job.evaluate.device, job.evaluate.batch_size, job.train.loss,
                   job.evaluate.precision)
    res = ev.evaluate()
    summary["final"] = {"split": job.evaluate.split, "loss": res.loss, "accuracy": res.accuracy, "n": res.n,
                        "device": str(resolve_device(job.evaluate.device))}
    log.info("final model on %s split: loss %.4f accuracy %.4f (%d samples)", job.evaluate.split, res.loss,
             res.accuracy, res.n)
    summary["seconds"] = round(time.perf_counter() - t0, 2)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return out


def demo_job_path() -> Path:
    """The demo job file shipped inside the package (identical to ``jobs/demo.toml``)."""
    return Path(__file__).with_name("resources") / "demo.toml"
