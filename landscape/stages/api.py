"""Job-level operations behind the commands, callable from a notebook as well: sweeps of jobs, one checkpoint's
evaluation, and merging correlated filters.

Example:
    >>> import tempfile
    >>> from landscape.run.jobfile import load_job
    >>> runs = run_sweep({"data": {"name": "spiral"}, "model": {"name": "mlp"}, "train": {"epochs": 1},
    ...                   "sweep": {"model.kwargs.width": [4, 8]}}, [f"output={tempfile.mkdtemp()!r}"],
    ...                  progress=False)
    >>> [(r.settings, r.output.name) for r in runs]
    [({'model.kwargs.width': 4}, '000'), ({'model.kwargs.width': 8}, '001')]
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from ..analysis.dynamics import activation_correlation, correlated_pairs, filter_correlation, merge_filters
from ..core.errors import ConfigError
from ..engine.evaluator import EvalResult
from ..io.checkpoints import apply_state, load_source
from ..run.config import JobConfig
from ..run.inputs import job_evaluator, evaluation_data, prepare_data, prepare_model
from ..run.jobfile import expand_sweep
from .job import run_job
from .summary import read_summary

__all__ = ["SweepRun", "run_sweep", "evaluate_checkpoint", "ReduceResult", "reduce_filters"]

log = logging.getLogger(__name__)


@dataclass
class SweepRun:
    """One job of a sweep: its settings, output folder and robust/ambient table (if any)."""

    settings: dict[str, Any]
    output: Path
    report: str | None = None


def run_sweep(source: str | Path | Mapping[str, Any], overrides: Sequence[str] = (), task: int | None = None,
              progress: bool = True, comm: Any | None = None) -> list[SweepRun]:
    """Run a job file (or dict) with overrides: every combination of its ``[sweep]`` (outputs ``OUTPUT/000``,
    ``OUTPUT/001``, ... listed in ``OUTPUT/sweep.json``), or only combination ``task``; a job without a sweep
    runs once (``task`` is ignored)."""
    jobs = expand_sweep(source, overrides)
    if len(jobs) > 1:
        if task is not None and not 0 <= task < len(jobs):
            raise ConfigError(f"--task {task}: the sweep has {len(jobs)} combinations (0..{len(jobs) - 1})")
        root = Path(jobs[0][1].output).parent
        root.mkdir(parents=True, exist_ok=True)
        (root / "sweep.json").write_text(json.dumps([{"task": k, "output": j.output, "settings": st}
                                                     for k, (st, j) in enumerate(jobs)], indent=2))
        if task is not None:
            jobs = [jobs[task]]
    runs = []
    for settings, job in jobs:
        if settings:
            log.info("sweep combination %s -> %s", settings, job.output)
        out = run_job(job, progress=progress, comm=comm)
        report = read_summary(out).get("report") if comm is None or comm.Get_rank() == 0 else None
        runs.append(SweepRun(settings, out, report))
    return runs


def evaluate_checkpoint(job: JobConfig, checkpoint: str) -> EvalResult:
    """Loss and accuracy of ``checkpoint`` (``file.pt`` or ``run.h5:NAME``) on the job's evaluation split."""
    tr, te = prepare_data(job.data)
    model = prepare_model(job.model, tr, job.train.seed)
    apply_state(model, load_source(checkpoint, model), checkpoint)
    return job_evaluator(job, model, evaluation_data(tr, te, job.data, job.evaluate.split)).evaluate()


@dataclass
class ReduceResult:
    """What merging one layer's correlated filters did."""

    layer: str
    source: str
    threshold: float
    pairs: list[tuple[int, int, float]]
    filters_before: int
    filters_after: int
    before: EvalResult
    after: EvalResult
    model: torch.nn.Module

    def describe(self) -> str:
        """Two lines: the pairs merged, and the filters, accuracy and loss before and after."""
        return (f"{self.layer}: {self.filters_before} filters, {len(self.pairs)} pair(s) with {self.source} "
                f"correlation >= {self.threshold:g}: {[(i, j) for i, j, _ in self.pairs]}\n"
                f"filters {self.filters_before} -> {self.filters_after}; accuracy {self.before.accuracy:.4f} -> "
                f"{self.after.accuracy:.4f}, loss {self.before.loss:.4f} -> {self.after.loss:.4f}")


def reduce_filters(job: JobConfig, layer: str, source: str = "activations", threshold: float = 0.9,
                   batch: int = 256, checkpoint: str | None = None, save: str | Path | None = None) -> ReduceResult:
    """Merge the filters of ``layer`` whose weight or activation correlation is at least ``threshold`` in the
    job's final model (or ``checkpoint``) and evaluate before and after; ``save`` writes the reduced state."""
    tr, te = prepare_data(job.data)
    data = evaluation_data(tr, te, job.data, job.evaluate.split)
    model = prepare_model(job.model, tr, job.train.seed)
    src = checkpoint or f"{Path(job.output) / 'trajectory.h5'}:final"
    apply_state(model, load_source(src, model), src)
    before = job_evaluator(job, model, data, autocast=False).evaluate()
    mods = dict(model.named_modules())
    if layer not in mods:
        raise ConfigError(f"--layer {layer!r} is not a layer of {job.model.name}")
    corr = (activation_correlation(model.cpu(), layer, data.x[:batch]) if source == "activations"
            else filter_correlation(mods[layer].weight))
    pairs = correlated_pairs(corr, threshold)
    merge_filters(model, layer, [(i, j) for i, j, _ in pairs])
    after = job_evaluator(job, model, data, autocast=False).evaluate()
    if save:
        torch.save(model.state_dict(), save)
    return ReduceResult(layer, source, threshold, pairs, len(corr), dict(model.named_modules())[layer].out_channels,
                        before, after, model)
