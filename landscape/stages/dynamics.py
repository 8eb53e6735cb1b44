"""The dynamics stage (TensorViz, Chen et al. 2017): the norms plot, the filter evolution series for ParaView,
the weight walk, and filter correlations of the final model with their heatmaps.

Example:
    >>> run_dynamics.__name__
    'run_dynamics'
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from ..analysis.dynamics import activation_correlation, correlated_pairs, filter_correlation
from ..core.models import layer_names
from ..io.checkpoints import apply_state
from ..io.hdf5 import CORRELATION_SCHEMA, label_dimension, open_hdf5
from ..io.trajectory import TrajectoryStore
from ..run.config import JobConfig
from ..run.inputs import evaluation_data, prepare_data, prepare_model
from ..views.dynamics_plots import plot_correlation, plot_norms, plot_weight_walk
from ..views.filters_vtk import export_filter_evolution
from .summary import summary

__all__ = ["run_dynamics", "correlation_report"]

log = logging.getLogger(__name__)


def correlation_report(model: nn.Module, data_x: torch.Tensor, out_dir: Path, threshold: float,
                       layers: Sequence[str] | None = None) -> dict[str, Any]:
    """Correlation matrices (weights and activations) of every conv layer, heatmaps, stored arrays
    (``correlation.h5``) and the pairs above ``threshold``."""
    mods = dict(model.named_modules())
    convs = [n for n in (layers or layer_names(model)) if isinstance(mods[n], nn.Conv2d)]
    report: dict[str, Any] = {}
    with open_hdf5(out_dir / "correlation.h5", "w") as f:
        f.attrs.update({"schema": CORRELATION_SCHEMA, "threshold": threshold})
        for layer in convs:
            cw = filter_correlation(mods[layer].weight)
            ca = activation_correlation(model, layer, data_x)
            g = f.create_group(layer)
            g["weights"], g["activations"] = cw, ca
            scale = label_dimension(g, "filter")
            for name in ("weights", "activations"):
                g[name].dims[1].attach_scale(scale)
            pairs = {"weights": correlated_pairs(cw, threshold), "activations": correlated_pairs(ca, threshold)}
            g.attrs["pairs"] = json.dumps(pairs)
            plot_correlation({f"{layer} weights": cw, f"{layer} activations": ca}, out_dir / f"correlation_{layer}.png")
            report[layer] = pairs
    return report


def run_dynamics(job: JobConfig) -> list[Path]:
    """The job's ``[dynamics]``: norms plot, filter evolution series, weight walk, correlation heatmaps."""
    dc, out = job.dynamics, Path(job.output)
    store = TrajectoryStore(out / "trajectory.h5")
    written: list[Path] = []
    if store.norms() is not None:
        written += plot_norms(store, out)
    written += export_filter_evolution(store, dc.filter_layer, out / "filters")  # its state: at the job's end
    written += plot_weight_walk(store, out, dc.walk)
    tr, te = prepare_data(job.data)
    model = prepare_model(job.model, tr, job.train.seed)
    apply_state(model, store.state("final"), f"{store.path}:final")
    data = evaluation_data(tr, te, job.data, job.evaluate.split)
    report = correlation_report(model, data.x[: dc.activations_batch], out, dc.correlation_threshold)
    for layer, pairs in report.items():
        log.info("%s: %d weight and %d activation filter pairs with correlation >= %g: %s", layer,
                 len(pairs["weights"]), len(pairs["activations"]), dc.correlation_threshold,
                 pairs["activations"][:5])
    with summary(out) as s:
        s["outputs"]["dynamics"] = sorted({str(p.relative_to(out)).split("/")[0] for p in written} |
                                          {"correlation.h5"})
        s["correlated_pairs"] = report
    return written
