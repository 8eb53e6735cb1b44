"""Your model, your data: what the functions on objects (``ls.surface``, ``ls.path``, ``ls.curvature``,
``ls.curve``) share. A given model is never changed: the engine works on a copy (parameters, buffers, ``training``
flags and device of the original stay as they were, also when a call fails or is interrupted). Data comes in any
kind :func:`~landscape.core.userdata.given_data` accepts; losses are named or callables (see
:mod:`landscape.engine.objective`).

Example:
    >>> import torch
    >>> m = torch.nn.Linear(2, 3)
    >>> with working_copy(m) as w:
    ...     _ = w.weight.data.zero_()
    >>> bool(m.weight.abs().sum() > 0)
    True
"""
from __future__ import annotations

import contextlib
import copy
import hashlib
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from ..core.data import TensorData
from ..core.errors import ConfigError, ModelError
from ..core.grid import parse_range
from ..core.params import StateSpec, flatten_state, model_state
from ..core.streams import StreamedData
from ..core.userdata import GivenData, given_data
from ..engine.device import resolve_device
from ..engine.evaluator import Evaluator
from ..run.compiling import parse_compile
from ..run.mpi import pick_device

__all__ = ["working_copy", "as_state", "axis_values", "given_evaluator", "check_forward", "data_checksum", "model_label",
           "scratch_path", "progress_default", "copy_file", "flat_directions"]

log = logging.getLogger(__name__)


def _check_model(model: Any, what: str = "model") -> nn.Module:
    if not isinstance(model, nn.Module):
        raise ModelError(f"{what}: expected a torch.nn.Module object, got {type(model).__name__}; build the model "
                         "first (a factory or a class is not a model)")
    return model


@contextlib.contextmanager
def working_copy(model: nn.Module) -> Iterator[nn.Module]:
    """A deep copy of ``model`` to evaluate and move (tied weights stay tied), so the given model is left exactly
    as it was whatever happens inside."""
    _check_model(model)
    try:
        work = copy.deepcopy(model)
    except Exception as exc:  # noqa: BLE001 - models holding handles that cannot be copied
        raise ModelError(f"the model cannot be copied ({type(exc).__name__}: {exc}); landscape evaluates a copy so "
                         "that your model is left as it was. Give a model without open handles") from exc
    eager_attention(work)
    yield work


def eager_attention(model: nn.Module) -> None:
    """Hugging Face models (and their submodules) attend with plain matmuls ("eager"): fused attention kernels
    have no double backward (curvature) and round differently when points are stacked."""
    for m in model.modules():
        config = getattr(m, "config", None)
        if config is None or getattr(config, "_attn_implementation", "eager") == "eager":
            continue
        try:
            if hasattr(m, "set_attn_implementation"):
                m.set_attn_implementation("eager")
            else:
                config._attn_implementation = "eager"
        except (ValueError, AttributeError, TypeError) as exc:
            log.warning("could not switch %s to eager attention (%s); curvature may fail", type(m).__name__, exc)


def as_state(obj: Any, reference: nn.Module, what: str) -> dict[str, torch.Tensor]:
    """A model or a state dict as a state in ``reference``'s order (parameters, then buffers; tied weights once),
    on the CPU, checked against ``reference``."""
    if isinstance(obj, nn.Module):
        state = {k: v.detach() for k, v in model_state(obj).items()}
    elif isinstance(obj, Mapping):
        state = dict(obj)
    else:
        raise ModelError(f"{what}: expected a model or a state dict, got {type(obj).__name__}")
    own = model_state(reference)
    missing = [k for k in own if k not in state]
    if missing:
        raise ModelError(f"{what} lacks {len(missing)} tensor(s) the model has: {missing[:6]}; give a model of the "
                         "same architecture (or its state_dict())")
    bad = [f"{k} {tuple(state[k].shape)} (model {tuple(v.shape)})" for k, v in own.items()
           if tuple(state[k].shape) != tuple(v.shape)]
    if bad:
        raise ModelError(f"{what}: shapes differ from the model's: {bad[:6]}")
    return {k: state[k].detach().to("cpu").clone() for k in own}


def axis_values(axis: Any, name: str) -> np.ndarray | None:
    """An axis given as ``(min, max, num)``, ``"MIN:MAX:NUM"``, a sequence of values, or None.

    Example:
        >>> axis_values((-1, 1, 3), "alpha").tolist(), axis_values([0, 0.5], "beta").tolist()
        ([-1.0, 0.0, 1.0], [0.0, 0.5])
    """
    if axis is None:
        return None
    if isinstance(axis, str):
        return parse_range(axis)
    if isinstance(axis, tuple) and len(axis) == 3 and float(axis[2]).is_integer() and int(axis[2]) >= 1 and \
            not isinstance(axis[2], float):
        lo, hi, num = float(axis[0]), float(axis[1]), int(axis[2])
        if not np.isfinite([lo, hi]).all():
            raise ConfigError(f"{name}: expected finite (min, max, num), got {axis}")
        return np.linspace(lo, hi, num)
    values = np.asarray(axis, dtype=np.float64).reshape(-1)
    if values.size == 0 or not np.isfinite(values).all() or np.any(np.diff(values) <= 0):
        raise ConfigError(f"{name}: expected (min, max, num), 'MIN:MAX:NUM' or increasing finite values; got {axis!r}")
    return values


def model_device(model: nn.Module) -> torch.device | None:
    """The device of the model's first parameter (None without parameters)."""
    p = next(iter(model.parameters()), None)
    return p.device if p is not None else None


def progress_default(progress: bool | None) -> bool:
    """Progress bars by default on a terminal, log lines otherwise (see :mod:`landscape.core.progress`)."""
    return True if progress is None else bool(progress)


def given_evaluator(model: nn.Module, data: GivenData, device: str, comm: Any | None, loss: Any,
                    batch_size: int, precision: str = "fp32", input_tables: bool = True,
                    compile: bool | str = False) -> Evaluator:
    """The evaluator of a working copy on the given data: ``device="auto"`` keeps a CUDA model on its device, else
    picks one (under MPI each rank its own). ``compile=True`` compiles its forward (``"auto"`` is settled later,
    by :func:`~landscape.run.compiling.settle_compile`)."""
    where = model_device(model)
    if comm is not None:
        device = pick_device(comm, device)
    elif device == "auto" and where is not None and where.type == "cuda":
        device = str(where)
    ev = Evaluator(model, data.data, resolve_device(device), batch_size, loss, precision, tune_batch=False,
                   fields=data.fields, input_tables=input_tables, compile=parse_compile(compile) is True)
    check_forward(ev, data)
    return ev


def check_forward(ev: Evaluator, data: GivenData) -> None:
    """One forward over the first batch, so that a model that does not accept the data says so with the shapes
    (instead of a traceback from inside the model, later)."""
    try:
        ev.forward(batches=1)
    except ModelError:
        raise
    except (RuntimeError, TypeError, ValueError, IndexError) as exc:
        if data.fields is not None:
            shapes = ", ".join(f"{k} {tuple(v.shape[1:])}" for k, v in data.fields.items())
        else:
            shapes = f"inputs {tuple(data.data.x.shape) if isinstance(data.data, TensorData) else '?'}"
        raise ModelError(f"the model does not accept the data ({shapes}; targets "
                         f"{tuple(data.data.y.shape) if isinstance(data.data, TensorData) else '?'}): "
                         f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}. Check the data's shapes "
                         "against the model's first layer") from exc


def data_checksum(data: GivenData) -> str:
    """A checksum of the evaluation data (inputs, targets and dict fields), for a file's inputs: a rerun on other
    data is refused instead of mixing values.

    Example:
        >>> g = given_data((torch.zeros(2, 1), torch.zeros(2, dtype=torch.long)))
        >>> len(data_checksum(g))
        16
    """
    h = hashlib.sha256()
    d = data.data
    tensors: list[torch.Tensor] = []
    if isinstance(d, StreamedData):
        h.update(f"{type(d.dataset).__name__}:{len(d)}".encode())
        x0, y0 = d.dataset[int(d.index[0])]
        tensors += [torch.as_tensor(np.asarray(x0)), torch.as_tensor(np.asarray(y0))]
    else:
        tensors += [d.x, d.y]
    if data.fields is not None:
        tensors += [data.fields[k] for k in sorted(data.fields)]
    for t in tensors:
        t = t.detach().cpu().contiguous()
        h.update(str((tuple(t.shape), str(t.dtype))).encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:16]


def model_label(model: nn.Module) -> str:
    """What a file calls a given model: its class, with the Hugging Face model type when it has one."""
    kind = getattr(getattr(model, "config", None), "model_type", None)
    return type(model).__name__ + (f" ({kind})" if kind else "")


def copy_file(source: Path, target: str | Path) -> Path:
    """A result's file copied to ``target`` (its folder made; nothing done when it is the same file)."""
    target = Path(target)
    if target.resolve() != Path(source).resolve():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    return target


def scratch_path(name: str) -> Path:
    """A file in a fresh temporary folder, for results asked without ``out`` (removed with the result)."""
    return Path(tempfile.mkdtemp(prefix="landscape-")) / name


def data_facts(data: GivenData) -> dict[str, Any]:
    """What a file records of given data: kind, size, task, and the dict fields' names."""
    d: TensorData | StreamedData = data.data
    out = {"name": d.name or "data", "n": len(d), "task": d.task}
    if data.fields is not None:
        out["fields"] = sorted(data.fields)
    return out


def loss_label(loss: Any) -> Any:
    """A loss as a file records it: its name, or the callable's name."""
    if loss is None or isinstance(loss, str):
        return loss
    return getattr(getattr(loss, "fn", loss), "__qualname__", type(loss).__name__)


def flat_directions(given: Sequence[Any], work: nn.Module, center: Mapping[str, torch.Tensor]) -> list[torch.Tensor]:
    """Explicit directions (models, state dicts or flat tensors) as flat float32 vectors in ``center``'s order.

    Example:
        >>> m = torch.nn.Linear(2, 1)
        >>> [d.shape for d in flat_directions([torch.zeros(3), m.state_dict()], m, m.state_dict())]
        [torch.Size([3]), torch.Size([3])]
    """
    spec = StateSpec.from_state(dict(center))
    flat = []
    for k, d in enumerate(given, 1):
        if isinstance(d, torch.Tensor):
            if d.numel() != spec.numel:
                raise ConfigError(f"direction {k}: a flat tensor of {d.numel()} values; the model's state has "
                                  f"{spec.numel} (parameters, then buffers)")
            flat.append(d.detach().reshape(-1).float().cpu())
        else:
            flat.append(flatten_state(as_state(d, work, f"direction {k}"), spec))
    return flat


def directions_given(directions: Any, count: int) -> Sequence[Any] | None:
    """Explicit directions (models, state dicts or flat tensors), or None for a named kind."""
    if isinstance(directions, str):
        return None
    if not isinstance(directions, (tuple, list)) or len(directions) < count:
        raise ConfigError(f"directions: expected 'random' or {count} direction(s) (models, state dicts or flat "
                          f"tensors), got {type(directions).__name__}")
    return directions[:count]
