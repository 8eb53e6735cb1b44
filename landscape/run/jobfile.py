"""Job files: the configuration dataclasses loaded from TOML plus ``key=value`` overrides, and sweeps.

Everything is validated up front and all problems are reported at once.

Example:
    >>> job = load_job({"model": {"name": "lenet5"}}, ["train.epochs=3", "data.name=digits"])
    >>> job.train.epochs, job.model.name
    (3, 'lenet5')
    >>> load_job({}, ["train.epochs=0", "train.optimiser=sgd"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    landscape.core.errors.ConfigError: invalid configuration (2 problems):
    ...
"""
from __future__ import annotations

import copy
import dataclasses
import itertools
import json
import math
import tomllib
import typing
from pathlib import Path

import numpy as np
from typing import Any, Iterable, Mapping

from ..analysis.interpolation import KINDS
from ..core.design import parse_design
from ..core.errors import ConfigError
from ..core.grid import MAX_POINTS, parse_range
from ..engine.calibration import parse_points_per_batch
from ..engine.curvature_map import MAPS
from .compiling import parse_compile
from .config import PCA_DEFAULTS, SECTIONS, JobConfig
from .inputs import seed_reference

__all__ = ["load_job", "expand_sweep", "parse_override", "apply_overrides", "job_to_dict"]


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
    if not key.strip() or any(not k.strip() for k in key.split(".")):
        raise ConfigError(f"override {text!r}: expected key=value with a dotted key such as train.epochs=5; the key "
                          "is empty")
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
        if dataclasses.is_dataclass(tp):  # a sub-table such as [paths.curve]
            kwargs[key] = _build(tp, f"{section}.{key}", value, problems)
            continue
        if not _type_ok(tp, value):
            problems.append(f"{section}.{key}: expected {_type_name(tp)}, got {value!r}")
            continue
        if isinstance(value, int) and not isinstance(value, bool) and tp is float:
            value = float(value)
        choices, low = f.metadata.get("choices"), f.metadata.get("min")
        if choices and value is not None and value not in choices:
            problems.append(f"{section}.{key}: expected one of {list(choices)}, got {value!r}")
            continue
        if isinstance(value, float) and not math.isfinite(value) and not f.metadata.get("nonfinite"):
            problems.append(f"{section}.{key}: expected a finite number, got {value!r}")
            continue
        if low is not None and value is not None and value < low:
            problems.append(f"{section}.{key}: expected a value >= {low}, got {value!r}")
            continue
        high = f.metadata.get("max")
        if high is not None and value is not None and value > high:
            problems.append(f"{section}.{key}: expected a value <= {high:,}, got {value!r}")
            continue
        if isinstance(value, int) and not isinstance(value, bool) and not -2**63 <= value < 2**63:
            problems.append(f"{section}.{key}: expected a whole number that fits in 64 bits, got {value!r}")
            continue
        kwargs[key] = value
    return cls(**kwargs)


MAX_JOB_BYTES = 1 << 20  # job files are TOML text of a few KiB (jobs/); a larger file is no job file


def load_job(source: str | Path | Mapping[str, Any] | None = None, overrides: Iterable[str] = ()) -> JobConfig:
    """Load and validate a job from a TOML file (or a dict) with ``key=value`` overrides.

    Example:
        >>> load_job(None, ["train.epochs=3"]).train.epochs
        3
    """
    try:
        return _load_job(source, overrides)
    except RecursionError:  # the parser and the checks recurse once per level of nested tables or arrays
        where = "the overrides" if source is None or isinstance(source, Mapping) else str(source)
        raise ConfigError(f"{where}: tables or arrays nested too deeply (hundreds of levels) to be a job; a job "
                          "file holds sections ([model], [train], ...) with values and small tables (see jobs/)"
                          ) from None


def _load_job(source: str | Path | Mapping[str, Any] | None, overrides: Iterable[str]) -> JobConfig:
    if source is None:
        doc: dict[str, Any] = {}
    elif isinstance(source, Mapping):
        doc = dict(source)
    else:
        path = Path(source)
        if path.is_dir():
            raise ConfigError(f"job file {str(path)!r} is a folder; give the path of a TOML job file (e.g. "
                              "jobs/demo.toml)")
        if not path.is_file():
            raise ConfigError(f"job file {str(path)!r} does not exist")
        size = path.stat().st_size
        if size > MAX_JOB_BYTES:
            raise ConfigError(f"{path}: {size / 2**20:.1f} MiB, not a job file (job files are TOML text of a few "
                              f"KiB, at most {MAX_JOB_BYTES >> 20} MiB; see jobs/): give the job's .toml file")
        try:
            doc = tomllib.loads(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{path}: not a text file in UTF-8 (byte {exc.start}: {exc.reason}); a job file is "
                              "TOML text (see jobs/)") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML ({exc})") from exc
    doc = apply_overrides(doc, overrides)
    problems: list[str] = [f"{key} = {value!r}: a job file holds tables ([job], [model], ...) at the top level, "
                           f"not values; put it under its section (e.g. [job] name = ...)"
                           for key, value in doc.items() if not isinstance(value, Mapping)]
    doc = {k: v for k, v in doc.items() if isinstance(v, Mapping)}
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
    ex = job.export
    if ex is not None and ex.vmin is not None and ex.vmax is not None and ex.vmin >= ex.vmax:
        out.append(f"export.vmin/vmax: expected vmin < vmax, got {ex.vmin} and {ex.vmax}")
    try:
        job.evaluate.compile = parse_compile(job.evaluate.compile)
    except ConfigError as exc:
        out += exc.problems
    if job.evaluate.precision == "fp16" and dev == "cpu":
        out.append("evaluate.precision: fp16 autocast needs CUDA, the device is cpu; use fp32 or bf16")
    for sf in (job.surface, job.pca):
        if sf is None:
            continue
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
        sizes = [len(parse_range(v)) if isinstance(v, str) and not v.startswith("auto") and _is_range(v) else 1
                 for v in (sf.alpha, sf.beta) if v is not None]
        if int(np.prod(sizes)) > MAX_POINTS:
            out.append(f"surface: a grid of {int(np.prod(sizes)):,} points; at most {MAX_POINTS:,} fit a surface file "
                       "(use fewer points, or several files over parts of the plane)")
        try:
            parse_points_per_batch(sf.points_per_batch)
        except ConfigError as exc:
            out += [f"surface.{p}" for p in exc.problems]
        if sf.directions == "checkpoints" and not sf.target1:
            out.append("surface.target1: directions=checkpoints needs target1 (and target2 for a plane)")
        if sf.directions == "checkpoints" and sf.beta is not None and not sf.target2:
            out.append("surface.target2: a 2-D plane from checkpoints needs target2 (or set surface.beta=none)")
        if sf.directions == "pca" and not sf.trajectory and not job.model.checkpoint:
            count = 1 if sf.beta is None else 2  # PCA axes of the job's own training run, whose rows are known now
            rows = 1 + job.train.epochs
            if rows < count + 1 and not (sf.pca_checkpoints == "all" and job.train.checkpoint_every_steps):
                section = "pca" if sf is job.pca else "surface"
                out.append(f"[{section}] directions = 'pca': {count} axes need at least {count + 1} checkpoints, "
                           f"the job's training records {rows} (init and {job.train.epochs} epoch(s)); set "
                           f"train.epochs >= {count}, or train.checkpoint_every_steps with {section}.pca_checkpoints "
                           "= 'all'")
        if (isinstance(sf.alpha, str) and sf.alpha.startswith("auto")) and sf.directions != "pca":
            out.append("surface.alpha: auto ranges follow the projected path; use them with directions=pca")
        bad = [c for c in sf.curvature if c not in MAPS] if isinstance(sf.curvature, list) else [1]
        if bad or len(set(sf.curvature)) != len(sf.curvature):
            out.append(f"surface.curvature: expected a list of distinct names among {list(MAPS)}, got "
                       f"{sf.curvature!r}")
        if sf.directions == "file" and not sf.directions_file:
            out.append("surface.directions_file: directions=file needs the surface file to reuse")
    sc = job.sample
    if sc is not None:
        try:
            design = parse_design(sc.design, sc.k, list(sc.ranges), sc.points, sc.region, sc.design_seed)
            if design.size > MAX_POINTS:
                out.append(f"sample: a design of {design.size:,} points; at most {MAX_POINTS:,} fit a sample file "
                           "(fewer points per axis, or a sobol/halton design)")
        except ConfigError as exc:
            out += [f"sample: {p}" for p in exc.problems]
        if sc.directions == "checkpoints" and len(sc.targets) != sc.k:
            out.append(f"sample.targets: directions=checkpoints needs k={sc.k} targets, got {len(sc.targets)}")
        try:
            if parse_points_per_batch(sc.points_per_batch)[0] == "vmap":
                out.append(f"sample.points_per_batch: expected 'auto', 1 or 'threads:N' (samples are not stacked), "
                           f"got {sc.points_per_batch!r}")
        except ConfigError as exc:
            out += [f"sample.{p}" for p in exc.problems]
    pc = job.paths
    if pc is not None:
        for key, allowed in (("kinds", KINDS), ("levels", ("model", "layer", "parameter"))):
            vals = getattr(pc, key)
            if not vals or any(v not in allowed for v in vals):
                out.append(f"paths.{key}: expected a non-empty list of {list(allowed)}, got {vals}")
        try:
            parse_range(pc.alpha)
        except ConfigError as exc:
            out += [f"paths.alpha: {p}" for p in exc.problems]
        if "layer" in pc.levels and "linear" in pc.kinds:
            try:
                a = parse_range(pc.alpha)
                if not (np.isclose(a, 0.0).any() and np.isclose(a, 1.0).any()):
                    out.append(f"paths.alpha: the robust/ambient report (layer level, linear path) needs alpha = 0 "
                               f"and 1 on the grid; {pc.alpha!r} has neither or one only (e.g. \"-0.5:1.5:41\")")
            except ConfigError:
                pass  # reported above
        ms = pc.curve.lr_milestones
        if not all(isinstance(m, int) and not isinstance(m, bool) and m >= 1 for m in ms) or ms != sorted(ms):
            out.append(f"paths.curve.lr_milestones: expected increasing epoch numbers >= 1, got {ms}")
        for key in ("start", "mid", "end"):
            ref = getattr(pc, key)
            if ref.strip().lower().startswith("seed") and seed_reference(ref) is None:
                out.append(f"paths.{key}: expected 'seed N' or 'seed N:CHECKPOINT' (e.g. 'seed 1:final'), got {ref!r}")
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


def _is_range(text: str) -> bool:
    try:
        parse_range(text)
        return True
    except ConfigError:
        return False


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
    base = load_job(source, overrides)
    if not base.sweep:
        return [({}, base)]
    keys = list(base.sweep)
    out, problems = [], []
    for k, combo in enumerate(itertools.product(*(base.sweep[key] for key in keys))):
        settings = dict(zip(keys, combo))
        extra = [f"{key}={json.dumps(v)}" for key, v in settings.items()]
        try:
            job = load_job(source, list(overrides) + extra + [f"output={json.dumps(str(Path(base.output) / f'{k:03d}'))}"])
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
