"""Typed job configuration: dataclasses loaded from TOML job files plus ``key=value`` overrides.

Everything is validated up front and all problems are reported at once.

Example:
    >>> job = load_job({"model": {"name": "lenet5"}}, ["train.epochs=3", "data.name=digits"])
    >>> job.train.epochs, job.model.name
    (3, 'lenet5')
    >>> load_job({}, ["train.epochs=0", "train.optimiser=sgd"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    landscape.errors.ConfigError: invalid configuration (2 problems):
    ...
"""
from __future__ import annotations

import copy
import dataclasses
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from .errors import ConfigError

__all__ = ["ModelConfig", "DataConfig", "TrainConfig", "EvalConfig", "SurfaceConfig", "PathsConfig", "ExportConfig", "JobConfig", "load_job", "expand_sweep", "parse_override",
           "apply_overrides", "job_to_dict"]


def _f(default: Any, *, choices: Iterable[Any] | None = None, min: float | None = None, doc: str = "") -> Any:
    meta = {"choices": tuple(choices) if choices else None, "min": min, "doc": doc}
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class ModelConfig:
    """[model]: a built-in name or ``package.module:callable``, with keyword arguments."""

    name: str = _f("lenet5", doc="lenet5, mlp, resnet20/56/110[_noskip], densenet, or module:callable")
    kwargs: dict = _f({}, doc="keyword arguments of the model factory")
    checkpoint: typing.Optional[str] = _f(None, doc="use this state instead of training (file.pt or run.h5:NAME)")


@dataclass
class DataConfig:
    """[data]: the data set and the subsets used for training and evaluation."""

    name: str = _f("digits", doc="digits, spiral, sine, mnist, cifar10, torchvision:Name or module:callable")
    root: typing.Optional[str] = _f(None, doc="local folder of mnist/cifar10/torchvision files")
    task: typing.Optional[str] = _f(None, choices=("classification", "regression"), doc="default: from the data")
    train_subset: typing.Optional[int] = _f(None, min=1, doc="use N training samples")
    test_subset: typing.Optional[int] = _f(None, min=1, doc="use N evaluation samples")
    subset_mode: str = _f("first", choices=("first", "random"))
    subset_seed: int = _f(0)
    kwargs: dict = _f({}, doc="keyword arguments of the loader (e.g. n_per_class for spiral)")


@dataclass
class TrainConfig:
    """[train]: optimiser and schedule of the recorded training run."""

    optimizer: str = _f("sgd", choices=("sgd", "adam"))
    lr: float = _f(0.05, min=0.0)
    momentum: float = _f(0.9, min=0.0)
    nesterov: bool = _f(False)
    weight_decay: float = _f(0.0, min=0.0)
    lr_milestones: list = _f([], doc="multiply the learning rate by lr_gamma at each of these epochs (step decay)")
    lr_gamma: float = _f(0.1, min=0.0, doc="factor of each learning-rate step")
    epochs: int = _f(15, min=1)
    batch_size: int = _f(64, min=1)
    seed: int = _f(0)
    augment: str = _f("none", choices=("none", "crop_flip"), doc="crop_flip: random 4-pixel-padded crops and "
                                                                 "horizontal flips of image batches (CIFAR)")
    checkpoint_every_steps: int = _f(0, min=0, doc="also checkpoint every N optimiser steps (0: off)")
    norms_every: int = _f(0, min=0, doc="record per-layer weight and gradient L2 norms every N steps (0: off)")
    loss: typing.Optional[str] = _f(None, choices=("cross_entropy", "nll", "mse"))


@dataclass
class EvalConfig:
    """[evaluate]: where and how evaluations run."""

    device: str = _f("auto", doc="auto, cpu, cuda or cuda:N")
    batch_size: int = _f(1024, min=1)
    precision: str = _f("fp32", choices=("fp32", "bf16", "fp16"), doc="bf16/fp16 autocast needs CUDA")
    split: str = _f("test", choices=("train", "test"), doc="data split the analyses evaluate on")


@dataclass
class SurfaceConfig:
    """[surface]: a loss surface θ(α, β) = θ* + α·d₁ + β·d₂ around a centre model."""

    center: str = _f("final", doc="checkpoint of the job's trajectory (final, epoch N, ...), file.pt or run.h5:NAME")
    alpha: str = _f("-1:1:25", doc="MIN:MAX:NUM")
    beta: typing.Optional[str] = _f("-1:1:25", doc="MIN:MAX:NUM; none for a 1-D line")
    directions: str = _f("random", choices=("random", "checkpoints", "file", "pca"),
                         doc="random (seeded Gaussian), checkpoints (θ₁−θ*, θ₂−θ*), file (reuse another surface's), "
                             "pca (top principal components of the trajectory)")
    trajectory: typing.Optional[str] = _f(None, doc="trajectory store for pca and the projected path "
                                                    "(default: the job's trajectory.h5)")
    pca_checkpoints: str = _f("epochs", choices=("epochs", "all"), doc="rows of the PCA: epoch checkpoints, or "
                                                                      "also step checkpoints")
    projection: str = _f("lstsq", choices=("lstsq", "cos"), doc="how checkpoints are projected onto the plane")
    norm: str = _f("filter", choices=("filter", "layer", "model", "none"))
    ignore: str = _f("biasbn", choices=("biasbn", "none"), doc="biasbn: biases and BatchNorm stay at θ*")
    dir_type: str = _f("weights", choices=("weights", "states"), doc="states also moves BatchNorm statistics")
    seed: int = _f(0)
    target1: typing.Optional[str] = _f(None, doc="θ₁ for directions=checkpoints")
    target2: typing.Optional[str] = _f(None, doc="θ₂ for directions=checkpoints (plane through θ*, θ₁, θ₂)")
    directions_file: typing.Optional[str] = _f(None, doc="surface file whose directions to reuse (directions=file)")
    subset: typing.Optional[int] = _f(None, min=1, doc="evaluate on N samples of the split (data.subset_mode)")
    points_per_batch: typing.Union[int, str] = _f("auto", doc="'auto', N points stacked with vmap, or 'threads:N' "
                                                                 "(N points on concurrent CPU threads)")
    chunk: int = _f(0, min=0, doc="points per work chunk (0: adaptive, about 2 s of work per chunk)")
    flush_every: int = _f(64, min=1, doc="flush results to the file every N points (and every 10 s)")
    output: str = _f("surface.h5", doc="file name inside the job's output folder (or an absolute path)")


@dataclass
class PathsConfig:
    """[paths]: linear and quadratic paths between checkpoints at model, layer and parameter level."""

    kinds: list = _f(["linear", "quadratic"], doc="linear and/or quadratic")
    levels: list = _f(["model", "layer"], doc="any of model, layer, parameter")
    layers: list = _f([], doc="layers for the layer/parameter levels (default: every layer)")
    params_per_layer: int = _f(0, min=0, doc="parameter level: scalars sampled per layer (seeded)")
    parameters: list = _f([], doc="parameter level: named scalars, e.g. fc1.weight[3,7]")
    seed: int = _f(0, doc="seed of the parameter sampling")
    start: str = _f("init", doc="θ₀ at α=0 (checkpoint name or file)")
    mid: str = _f("mid", doc="θ_mid, the middle node of the quadratic path")
    end: str = _f("final", doc="θ₁ at α=1")
    mid_position: str = _f("half", choices=("half", "true"), doc="half: α=0.5; true: its training fraction")
    alpha: str = _f("-0.5:1.5:41", doc="MIN:MAX:NUM (may extrapolate); the report needs 0 and 1 on it")
    subset: typing.Optional[int] = _f(None, min=1, doc="evaluate on N samples of the split")
    robust_threshold: float = _f(0.1, min=0.0, doc="accuracy lost on reset (relative loss rise for "
                                                   "regression) from which a layer is robust")
    chunk: int = _f(0, min=0, doc="points per MPI work chunk (0: adaptive)")
    flush_every: int = _f(64, min=1)
    output: str = _f("path", doc="files OUTPUT/<output>_<kind>.h5")


@dataclass
class DynamicsConfig:
    """[dynamics]: training dynamics (TensorViz): norms plot, filter evolution, weight walk, correlations."""

    filter_layer: str = _f("conv1", doc="conv layer whose filters evolve in ParaView (.vtp per checkpoint, .pvd)")
    walk: str = _f("first2", choices=("first2", "random"), doc="weight-vector walk: first two coordinates or a "
                                                              "random 2-D projection")
    correlation_threshold: float = _f(0.9, doc="list filter pairs correlated at least this much")
    activations_batch: int = _f(256, min=1, doc="evaluation samples for activation correlations")


@dataclass
class ExportConfig:
    """[export]: VTK files for ParaView and matplotlib figures of the job's surfaces."""

    vtk: list = _f(["vtp"], doc="any of vtp (polydata with quads), vts (structured grid)")
    plots: list = _f(["png", "pdf"], doc="figure formats: png, pdf, svg")
    z: str = _f("loss", choices=("loss", "accuracy", "log_loss"), doc="array used as the height of VTK surfaces")
    log: bool = _f(False, doc="log10 heights and log colour scales")
    zmax: typing.Optional[float] = _f(None, doc="clip heights (and plotted loss) above this value")
    zscale: float = _f(1.0, doc="multiply heights by this factor")
    resample: int = _f(1, min=1, doc="export on a grid this many times finer (linear interpolation)")
    animate: bool = _f(False, doc="an animated GIF of the projected path over the PCA surface (decision "
                                  "regions beside it for 2-D data)")


@dataclass
class JobConfig:
    """A whole experiment: [job] name/output plus the sections above."""

    name: str = "job"
    output: str = "landscape-out"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    evaluate: EvalConfig = field(default_factory=EvalConfig)
    surface: typing.Optional[SurfaceConfig] = None
    paths: typing.Optional[PathsConfig] = None
    export: typing.Optional[ExportConfig] = None
    pca: typing.Optional[SurfaceConfig] = None
    dynamics: typing.Optional[DynamicsConfig] = None
    sweep: dict = field(default_factory=dict)


SECTIONS: dict[str, type] = {"model": ModelConfig, "data": DataConfig, "train": TrainConfig, "evaluate": EvalConfig,
                             "surface": SurfaceConfig, "paths": PathsConfig, "export": ExportConfig,
                             "pca": SurfaceConfig, "dynamics": DynamicsConfig}


PCA_DEFAULTS = {"directions": "pca", "alpha": "auto:25", "beta": "auto:25", "output": "surface_pca.h5"}


def parse_override(text: str) -> tuple[list[str], Any]:
    """``a.b=value`` → (["a", "b"], value), the value read as TOML (bare words are strings).

    Example:
        >>> parse_override("train.lr=0.1"), parse_override("data.name=spiral")
        ((['train', 'lr'], 0.1), (['data', 'name'], 'spiral'))
    """
    if "=" not in text:
        raise ConfigError(f"override {text!r}: expected key=value, e.g. train.epochs=5")
    key, raw = text.split("=", 1)
    raw = raw.strip()
    if raw.lower() in ("none", "null"):
        value: Any = None
    else:
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw
    return [k.strip() for k in key.strip().split(".")], value


def apply_overrides(doc: Mapping[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Return a copy of the TOML document with ``key=value`` overrides applied."""
    out = copy.deepcopy(dict(doc))
    problems = []
    for text in overrides:
        try:
            keys, value = parse_override(text)
        except ConfigError as exc:
            problems += exc.problems
            continue
        node = out
        if keys[0] in ("name", "output"):
            keys = ["job"] + keys
        for k in keys[:-1]:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                problems.append(f"override {text!r}: {k!r} is not a table")
                break
        else:
            node[keys[-1]] = value
    if problems:
        raise ConfigError(problems)
    return out


def _type_ok(tp: Any, value: Any) -> bool:
    origin = typing.get_origin(tp)
    if origin is typing.Union:
        return any(_type_ok(a, value) for a in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, tp)


def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) is typing.Union:
        return " or ".join(_type_name(a) for a in typing.get_args(tp) if a is not type(None)) + " (optional)"
    return getattr(tp, "__name__", str(tp))


def _build(cls: type, section: str, values: Mapping[str, Any], problems: list[str]) -> Any:
    if not isinstance(values, Mapping):
        problems.append(f"[{section}]: expected a table, got {values!r}")
        return cls()
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in values.items():
        if key not in fields:
            problems.append(f"{section}.{key}: unknown key; expected one of {sorted(fields)}")
            continue
        f, tp = fields[key], hints[key]
        if not _type_ok(tp, value):
            problems.append(f"{section}.{key}: expected {_type_name(tp)}, got {value!r}")
            continue
        if isinstance(value, int) and not isinstance(value, bool) and tp is float:
            value = float(value)
        choices, low = f.metadata.get("choices"), f.metadata.get("min")
        if choices and value is not None and value not in choices:
            problems.append(f"{section}.{key}: expected one of {list(choices)}, got {value!r}")
            continue
        if low is not None and value is not None and value < low:
            problems.append(f"{section}.{key}: expected a value >= {low}, got {value!r}")
            continue
        kwargs[key] = value
    return cls(**kwargs)


def load_job(source: str | Path | Mapping[str, Any] | None = None, overrides: Iterable[str] = ()) -> JobConfig:
    """Load and validate a job from a TOML file (or a dict) with ``key=value`` overrides."""
    if source is None:
        doc: dict[str, Any] = {}
    elif isinstance(source, Mapping):
        doc = dict(source)
    else:
        path = Path(source)
        if not path.is_file():
            raise ConfigError(f"job file {str(path)!r} does not exist")
        try:
            doc = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML ({exc})") from exc
    doc = apply_overrides(doc, overrides)
    problems: list[str] = []
    job_table = doc.get("job", {})
    job = JobConfig()
    for key, value in (job_table.items() if isinstance(job_table, Mapping) else []):
        if key in ("name", "output"):
            if isinstance(value, str) and value:
                setattr(job, key, value)
            else:
                problems.append(f"job.{key}: expected a non-empty string, got {value!r}")
        else:
            problems.append(f"job.{key}: unknown key; expected 'name' or 'output'")
    sweep = doc.get("sweep", {})
    if not isinstance(sweep, Mapping) or not all(isinstance(v, list) and v for v in sweep.values()):
        problems.append(f"[sweep]: expected keys (like \"model.kwargs.depth\") with non-empty lists, got {sweep!r}")
    else:
        job.sweep = dict(sweep)
    for section, value in doc.items():
        if section in ("job", "sweep"):
            continue
        if section not in SECTIONS:
            problems.append(f"[{section}]: unknown section; expected one of {['job'] + sorted(SECTIONS)}")
            continue
        if section == "pca" and isinstance(value, Mapping):  # a second surface, in the plane of the PCA
            value = {**PCA_DEFAULTS, **value}
        setattr(job, section, _build(SECTIONS[section], section, value, problems))
    problems += _cross_checks(job)
    if problems:
        raise ConfigError(problems)
    return job


def _cross_checks(job: JobConfig) -> list[str]:
    out = []
    if job.data.name in ("mnist", "cifar10") and not job.data.root:
        out.append(f"data.root: the {job.data.name} data set is read from a local folder; set data.root")
    if job.data.task == "regression" and job.train.loss in ("cross_entropy", "nll"):
        out.append(f"train.loss: {job.train.loss!r} does not suit a regression task; use 'mse'")
    ms = job.train.lr_milestones
    if not all(isinstance(m, int) and not isinstance(m, bool) and m >= 1 for m in ms) or ms != sorted(ms):
        out.append(f"train.lr_milestones: expected increasing epoch numbers >= 1, got {ms}")
    dev = job.evaluate.device
    if not (dev in ("auto", "cpu", "cuda") or (dev.startswith("cuda:") and dev[5:].isdigit())):
        out.append(f"evaluate.device: expected auto, cpu, cuda or cuda:N, got {dev!r}")
    if job.evaluate.precision != "fp32" and dev == "cpu":
        out.append(f"evaluate.precision: {job.evaluate.precision} autocast needs CUDA, the device is cpu; use fp32")
    for sf in (job.surface, job.pca):
        if sf is None:
            continue
        from .grid import parse_range

        for key in ("alpha", "beta"):
            value = getattr(sf, key)
            if isinstance(value, str) and value.startswith("auto"):
                n = value[5:] if value.startswith("auto:") else ""
                if value != "auto" and not (n.isdigit() and int(n) >= 2):
                    out.append(f"surface.{key}: expected auto or auto:NUM (NUM >= 2), got {value!r}")
                continue
            if value is not None:
                try:
                    parse_range(value)
                except ConfigError as exc:
                    out += [f"surface.{key}: {p}" for p in exc.problems]
        from .surface import parse_points_per_batch

        try:
            parse_points_per_batch(sf.points_per_batch)
        except ConfigError as exc:
            out += [f"surface.{p}" for p in exc.problems]
        if sf.directions == "checkpoints" and not sf.target1:
            out.append("surface.target1: directions=checkpoints needs target1 (and target2 for a plane)")
        if sf.directions == "checkpoints" and sf.beta is not None and not sf.target2:
            out.append("surface.target2: a 2-D plane from checkpoints needs target2 (or set surface.beta=none)")
        if (isinstance(sf.alpha, str) and sf.alpha.startswith("auto")) and sf.directions != "pca":
            out.append("surface.alpha: auto ranges follow the projected path; use them with directions=pca")
        if sf.directions == "file" and not sf.directions_file:
            out.append("surface.directions_file: directions=file needs the surface file to reuse")
    pc = job.paths
    if pc is not None:
        for key, allowed in (("kinds", ("linear", "quadratic")), ("levels", ("model", "layer", "parameter"))):
            vals = getattr(pc, key)
            if not vals or any(v not in allowed for v in vals):
                out.append(f"paths.{key}: expected a non-empty list of {list(allowed)}, got {vals}")
        try:
            from .grid import parse_range

            parse_range(pc.alpha)
        except ConfigError as exc:
            out += [f"paths.alpha: {p}" for p in exc.problems]
        if "parameter" in pc.levels and not (pc.params_per_layer or pc.parameters):
            out.append("paths.levels has 'parameter': set paths.params_per_layer or paths.parameters")
    ex = job.export
    if ex is not None:
        bad = [f for f in ex.vtk if f not in ("vtp", "vts")]
        if bad:
            out.append(f"export.vtk: expected a list of 'vtp'/'vts', got {bad}")
        bad = [f for f in ex.plots if f not in ("png", "pdf", "svg")]
        if bad:
            out.append(f"export.plots: expected a list of 'png'/'pdf'/'svg', got {bad}")
        if ex.zscale == 0:
            out.append("export.zscale: expected a non-zero factor")
    return out


def expand_sweep(source: str | Path | Mapping[str, Any] | None, overrides: Iterable[str] = ()
                 ) -> list[tuple[dict[str, Any], JobConfig]]:
    """Every combination of a job's ``[sweep]`` lists as its own validated job, output ``OUTPUT/NNN``
    (numbered in itertools.product order; the settings of each are returned beside it). A job without a
    sweep gives itself.

    Example:
        >>> jobs = expand_sweep({"sweep": {"train.lr": [0.1, 0.2], "train.seed": [0, 1]}}, ["output=o"])
        >>> [(s, j.output) for s, j in jobs][:2]
        [({'train.lr': 0.1, 'train.seed': 0}, 'o/000'), ({'train.lr': 0.1, 'train.seed': 1}, 'o/001')]
    """
    import itertools
    import json as _json

    base = load_job(source, overrides)
    if not base.sweep:
        return [({}, base)]
    keys = list(base.sweep)
    out, problems = [], []
    for k, combo in enumerate(itertools.product(*(base.sweep[key] for key in keys))):
        settings = dict(zip(keys, combo))
        extra = [f"{key}={_json.dumps(v)}" for key, v in settings.items()]
        try:
            job = load_job(source, list(overrides) + extra + [f"output={_json.dumps(str(Path(base.output) / f'{k:03d}'))}"])
        except ConfigError as exc:
            problems += [f"sweep {settings}: {p}" for p in exc.problems]
            continue
        job.sweep = {}
        out.append((settings, job))
    if problems:
        raise ConfigError(problems)
    return out


def job_to_dict(job: JobConfig) -> dict[str, Any]:
    """The job as a plain dict (TOML layout), for storing as provenance."""
    d = dataclasses.asdict(job)
    return {"job": {"name": d.pop("name"), "output": d.pop("output")}, **d}
