"""Turning configuration sections into plain inputs: data sets with their subsets, a seeded model, checkpoint
states by name, and where the middle node of a quadratic path sits.

Example:
    >>> from landscape.run.config import DataConfig, ModelConfig
    >>> tr, te = prepare_data(DataConfig(name="spiral", test_subset=30, kwargs={"n_per_class": 40}))
    >>> model = prepare_model(ModelConfig(name="mlp", kwargs={"depth": 1}), tr, seed=0)
    >>> len(te), type(model).__name__
    (30, 'MLP')
"""
from __future__ import annotations

import re
from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from ..core.data import TensorData, load_data, subset
from ..core.streams import StreamedData
from ..core.errors import ConfigError, StoreError
from ..core.models import build_model
from ..engine.evaluator import Evaluator
from ..io.checkpoints import load_source, split_source
from ..io.trajectory import TrajectoryStore
from .config import DataConfig, JobConfig, ModelConfig

__all__ = ["prepare_data", "prepare_model", "data_meta", "evaluation_data", "is_source", "resolve_checkpoint",
           "mid_fraction", "seed_reference", "seed_trajectory"]

_SEED = re.compile(r"seed[\s=_]*(\d+)\s*(?::\s*(.+))?", re.IGNORECASE)


def seed_reference(ref: str) -> tuple[int, str] | None:
    """``seed N`` / ``seed N:NAME``: (N, NAME or ``final``) — a checkpoint of the job's training run repeated
    with ``train.seed = N`` (trained into ``trajectory_seedN.h5`` beside the job's trajectory); else None.

    Example:
        >>> seed_reference("seed 1"), seed_reference("seed 2:epoch 3"), seed_reference("final")
        ((1, 'final'), (2, 'epoch 3'), None)
    """
    m = _SEED.fullmatch(ref.strip())
    return (int(m.group(1)), (m.group(2) or "final").strip()) if m else None


def seed_trajectory(trajectory: str | Path, seed: int) -> Path:
    """Where the training run with ``train.seed = seed`` is stored, beside the job's trajectory.

    Example:
        >>> seed_trajectory("out/trajectory.h5", 1).name
        'trajectory_seed1.h5'
    """
    return Path(trajectory).with_name(f"trajectory_seed{seed}.h5")


def prepare_data(cfg: DataConfig) -> tuple[TensorData, TensorData]:
    """Load the data set of ``[data]`` and apply its train/test subsets."""
    tr, te = load_data(cfg.name, cfg.root, cfg.task, **cfg.kwargs)
    return (subset(tr, cfg.train_subset, cfg.subset_mode, cfg.subset_seed),
            subset(te, cfg.test_subset, cfg.subset_mode, cfg.subset_seed))


def prepare_model(cfg: ModelConfig, data: TensorData, seed: int) -> nn.Module:
    """Build the model of ``[model]`` for ``data`` with its initialisation seeded by ``seed`` (``train.seed``)."""
    torch.manual_seed(seed)
    return build_model(cfg.name, data.info(), **cfg.kwargs)


def job_evaluator(job: JobConfig, model: nn.Module, data: TensorData | StreamedData, device: str | None = None,
                  autocast: bool = True) -> Evaluator:
    """The evaluator of ``[evaluate]``: device (or ``device``), batch size, loss, precision (fp32 when not
    ``autocast``: curvature differentiates twice), the logits budget of language models and the resident budget
    of streamed data.

    Example:
        >>> job_evaluator.__name__
        'job_evaluator'
    """
    ec = job.evaluate
    return Evaluator(model, data, device or ec.device, ec.batch_size, job.train.loss,
                     ec.precision if autocast else "fp32", max_resident_bytes=ec.resident_bytes(),
                     logits_budget=int(ec.logits_budget_mb * 2**20), tune_batch=ec.tune_batch,
                     fold_bn=ec.fold_bn, channels_last=ec.channels_last, compile=ec.compile is True and autocast,
                     input_tables=ec.input_tables)


def data_meta(model: ModelConfig, data: DataConfig) -> dict[str, Any]:
    """What identifies a model and its data (stored as provenance, compared on resume).

    Example:
        >>> data_meta(ModelConfig(), DataConfig())["model"]
        'lenet5'
    """
    return {"model": model.name, "model_kwargs": model.kwargs, "data": asdict(data)}


def evaluation_data(train: TensorData, test: TensorData, cfg: DataConfig, split: str, n: int | None = None
                    ) -> TensorData:
    """The split the analyses evaluate on (``evaluate.split``), cut to ``n`` samples with the data's subset
    mode and seed."""
    return subset(test if split == "test" else train, n, cfg.subset_mode, cfg.subset_seed)


def is_source(ref: str) -> bool:
    """True when ``ref`` names a file or ``run.h5:NAME`` rather than a checkpoint of the job's own trajectory.

    Example:
        >>> is_source("run.h5:final"), is_source("model.pt"), is_source("epoch 3")
        (True, True, False)
    """
    _, name = split_source(ref)
    return (name is not None or Path(ref).suffix in (".pt", ".pth", ".bin", ".safetensors") or Path(ref).is_file()
            or Path(ref).is_dir())


def resolve_checkpoint(ref: str, model: nn.Module, trajectory: str | Path, given: str | None = None,
                       key: str | None = None) -> tuple[dict[str, torch.Tensor], str]:
    """The state named ``ref`` and where it came from: a file or ``run.h5:NAME`` source as it is, ``final``
    of a job that was given a checkpoint instead of training (``given``), else a checkpoint name of the
    ``trajectory`` store, or ``seed N[:NAME]`` of the run with another seed (:func:`seed_reference`). Checked
    against ``model``. ``key``: the setting that named ``ref`` (e.g. ``sample.center``), for the message when
    the trajectory it names a checkpoint of does not exist."""
    seeded = seed_reference(ref)
    if seeded is not None:
        source = f"{seed_trajectory(trajectory, seeded[0])}:{seeded[1]}"
        return load_source(source, model), source
    if is_source(ref):
        return load_source(ref, model), ref
    if given and ref == "final":
        return load_source(given, model), given
    if key is not None and not Path(trajectory).exists():
        raise StoreError(f"{trajectory}: trajectory file does not exist, and {key} = {ref!r} names one of its "
                         f"checkpoints; train first (landscape train, or landscape run JOB), or give the centre as "
                         f"a checkpoint file: --center my.pt ({key} = \"my.pt\")")
    source = f"{Path(trajectory)}:{ref}"
    return load_source(source, model), source


def mid_fraction(sources: Sequence[str]) -> float:
    """Where θ_mid sits on the quadratic path: its training fraction (e_mid − e₀) / (e₁ − e₀), from the epochs
    of three ``run.h5:NAME`` sources (start, mid, end)."""
    epochs = []
    for src in sources:
        path, ref = split_source(src)
        if ref is None:
            raise ConfigError("paths.mid_position=true needs start, mid and end from a trajectory store")
        st = TrajectoryStore(path)
        epochs.append(float(st.table()["epoch"][st.resolve(ref)]))
    e0, em, e1 = epochs
    if not e0 < em < e1:
        raise ConfigError(f"paths: the middle checkpoint (epoch {em}) must lie between start ({e0}) and end ({e1})")
    return (em - e0) / (e1 - e0)
