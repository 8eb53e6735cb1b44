"""The curvature stage: the Hessian spectrum of the loss at a centre (extreme eigenpairs by Lanczos, trace by
Hutchinson/Hutch++, density by SLQ) and its sharpness summary (λmax, λmin, trace, ε-sharpness, basin widths
along the surface directions), written to a ``landscape.curvature`` file and logged.

Example:
    >>> run_curvature.__name__  # see the README's Curvature section
    'run_curvature'
"""
from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..analysis.sharpness import basin_width, epsilon_sharpness
from ..analysis.spectrum import extreme_eigenpairs, hutchinson_trace, slq_density
from ..core.params import model_state, state_checksum
from ..core.threads import fixed_threads
from ..engine.evaluator import Evaluator
from ..engine.hessian import HessianOperator
from ..io.curvature_file import describe_curvature, read_curvature, stored_curvature, write_curvature
from ..run.config import CurvatureConfig, JobConfig, SurfaceConfig
from ..run.inputs import job_evaluator, evaluation_data, prepare_data, prepare_model, resolve_checkpoint
from ..run.mpi import note_output
from .checks import check_dependencies
from .summary import summary
from .surface import plan_directions

__all__ = ["CurvatureResult", "run_curvature", "curvature_inputs"]

log = logging.getLogger(__name__)


@dataclass
class CurvatureResult:
    """The curvature file, its contents (see :func:`~landscape.io.curvature_file.read_curvature`) and its
    printable summary."""

    path: Path
    data: dict[str, Any]
    text: str

    def __repr__(self) -> str:  # the summary, not whole eigenvector arrays
        return f"CurvatureResult({str(self.path)!r}, lambda_max={self.data.get('attrs', {}).get('lambda_max')!r})"


def curvature_inputs(job: JobConfig, cc: CurvatureConfig, center_src: str, center_sum: str, n: int,
                     names: list[str], numel: int) -> dict[str, Any]:
    """What a curvature file is computed from (compared on reruns)."""
    settings = {k: v for k, v in asdict(cc).items() if k not in ("output", "center")}
    return {"model": job.model.name, "model_kwargs": job.model.kwargs, "data": asdict(job.data),
            "split": job.evaluate.split, "n": n, "center": center_src, "center_checksum": center_sum,
            "loss": job.train.loss, "moved": names, "parameters": numel, **settings}


def _basin(job: JobConfig, model: Any, state: dict, ev: Evaluator) -> list[dict[str, Any]]:
    """Where the loss doubles along each direction of the job's surface (random filter-normalised ones when the
    job has none, or when its directions need the Hessian themselves)."""
    sf = job.surface if job.surface is not None and job.surface.directions not in ("hessian", "file") else \
        SurfaceConfig(directions="random")
    sf = replace(sf, beta=sf.beta if sf.beta is not None else "-1:1:2")
    d1, d2, info = plan_directions(job, model, state, sf, None)
    ev.set_state(state)
    center = ev.get_flat().clone()
    out = []
    for name, d in (("d1", d1), ("d2", d2)):
        if d is None:
            continue
        d = d.to(center.device)

        def loss_at(s: float) -> float:
            ev.set_flat(center + s * d)
            return ev.evaluate().loss

        minus, plus = basin_width(loss_at, limit=64.0, tol=1e-3)
        out.append({"direction": name, "minus": minus, "plus": plus, "kind": info.get("directions"),
                    "norm": info.get("norm")})
    ev.set_flat(center)
    return out


def run_curvature(job: JobConfig, progress: bool = True) -> CurvatureResult:
    """Compute (or read back) the job's ``[curvature]`` at its centre; returns the file and its summary. A file
    computed from the same inputs is not computed again; one from other inputs is refused. Hessian products run
    with ``curvature.threads`` CPU threads (their bits depend on the count), recorded with the settings."""
    check_dependencies(job)
    note_output(job.output)
    cc = job.curvature or CurvatureConfig()
    with fixed_threads(cc.threads):
        return _run_curvature(job, cc)


def _run_curvature(job: JobConfig, cc: CurvatureConfig) -> CurvatureResult:
    tr, te = prepare_data(job.data)
    data = evaluation_data(tr, te, job.data, job.evaluate.split, cc.subset)
    model = prepare_model(job.model, tr, job.train.seed)
    out = Path(job.output)
    state, src = resolve_checkpoint(cc.center, model, out / "trajectory.h5", job.model.checkpoint)
    state = {name: state[name] for name in model_state(model)}
    ev = job_evaluator(job, model, data, autocast=False)
    ev.set_state(state)
    op = HessianOperator(ev, ignore=cc.ignore, dir_type=cc.dir_type)
    path = Path(cc.output) if Path(cc.output).is_absolute() else out / cc.output
    inputs = curvature_inputs(job, cc, src, state_checksum(state), len(data), op.names, op.numel)
    if stored_curvature(path, inputs):
        log.info("%s already holds this curvature; nothing to compute", path)
        return CurvatureResult(path, read_curvature(path), describe_curvature(path))
    t0 = time.perf_counter()
    n_top = min(cc.top_k, op.numel)
    n_bottom = min(cc.bottom_k, op.numel - n_top)
    eig = extreme_eigenpairs(op.matvec, op.numel, n_top, n_bottom, cc.tol, cc.max_iter, seed=cc.seed,
                             device=ev.device, block=cc.block, matmat=op.block_matmat)
    if not eig.converged:
        log.warning("Lanczos stopped after %d iterations above tol %g (residuals %s); raise curvature.max_iter",
                    eig.iterations, cc.tol, np.array2string(eig.residuals, precision=3))
    kinds = ["top"] * n_top + ["bottom"] * n_bottom
    arrays: dict[str, Any] = {"eigenvalues": eig.values, "eigen_kind": kinds, "residuals": eig.residuals,
                              "eigenvectors": torch.stack([op.embed(v) for v in eig.vectors]).numpy()}
    lam_min = float(eig.values[n_top]) if n_bottom else float("nan")  # the bottom ones ascend
    attrs: dict[str, Any] = {"model": job.model.name, "lanczos_tol": cc.tol, "lanczos_iterations": eig.iterations,
                             "lanczos_block": eig.block,
                             "converged": eig.converged, "seed": cc.seed, "lambda_max": float(eig.values[0]),
                             "lambda_min": lam_min, "state_spec": ev.spec.to_json(), "loss_name": ev.loss_name}
    seconds = {"eigenpairs": time.perf_counter() - t0}
    if cc.trace:
        t = time.perf_counter()
        tr_est = hutchinson_trace(op.matvec, op.numel, cc.trace_samples, cc.seed, cc.trace_method, ev.device,
                                  matmat=op.matmat)
        arrays.update(trace=np.float64(tr_est.value), trace_stderr=np.float64(tr_est.stderr))
        attrs.update(trace_method=tr_est.method, trace_matvecs=tr_est.matvecs)
        seconds["trace"] = time.perf_counter() - t
    if cc.density:
        t = time.perf_counter()
        grid, dens = slq_density(op.matvec, op.numel, cc.density_runs, cc.density_steps, seed=cc.seed,
                                 device=ev.device, matmat=op.block_matmat)
        arrays.update({"density/grid": grid, "density/values": dens})
        seconds["density"] = time.perf_counter() - t
    if cc.sharpness:
        t = time.perf_counter()
        theta = op.get()

        def loss_grad(x: torch.Tensor) -> tuple[float, torch.Tensor]:
            op.set(x)
            return op.loss_and_gradient()

        eps, _ = epsilon_sharpness(loss_grad, theta, cc.epsilon, cc.ascent_steps)
        op.set(theta)
        attrs.update(eps_sharpness=eps, epsilon=cc.epsilon, ascent_steps=cc.ascent_steps,
                     basin=_basin(job, model, state, ev))
        seconds["sharpness"] = time.perf_counter() - t
    attrs["seconds"] = {k: round(v, 3) for k, v in seconds.items()}
    write_curvature(path, arrays, inputs, attrs)
    text = describe_curvature(path)
    log.info("curvature at %s: λmax %.6g, λmin %.6g, trace %s (%s)", src, attrs["lambda_max"], lam_min,
             f"{float(arrays['trace']):.6g} ± {float(arrays['trace_stderr']):.3g}" if "trace" in arrays else "-",
             path)
    if path.parent == out:
        with summary(out) as s:
            s["outputs"]["curvature"] = path.name
            s["curvature"] = {"lambda_max": attrs["lambda_max"], "lambda_min": lam_min,
                              "trace": float(arrays["trace"]) if "trace" in arrays else None,
                              "eps_sharpness": attrs.get("eps_sharpness")}
    return CurvatureResult(path, read_curvature(path), text)
