"""Loading model states from user checkpoint files and trajectory stores.

A *source* is a checkpoint file (``.pt``/``.pth``: a state dict, or a dict with a
``state_dict`` or ``model`` entry; DataParallel ``module.`` prefixes are removed)
or a trajectory reference ``run.h5:final`` / ``run.h5:epoch 7``. Files are always
read with ``torch.load(weights_only=True)``.

Example:
    >>> import torch, tempfile, os
    >>> m = torch.nn.Linear(2, 1)
    >>> p = os.path.join(tempfile.mkdtemp(), "c.pt")
    >>> torch.save({"state_dict": {"module." + k: v for k, v in m.state_dict().items()}}, p)
    >>> sorted(load_state_file(p))
    ['bias', 'weight']
"""
from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Mapping

import torch
from torch import nn

from ..core.errors import CheckpointError
from ..core.optional import require
from ..core.params import tied_aliases
from .trajectory import TrajectoryStore

__all__ = ["load_state_file", "check_state", "load_source", "apply_state", "split_source", "complete_state",
           "WEIGHT_FILES"]

#: the weight files of a Hugging Face model directory, in the order they are looked for
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")

_H5 = re.compile(r"^(.*\.(?:h5|hdf5))(?::(.*))?$", re.IGNORECASE)


def load_state_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state dict from a checkpoint file (``weights_only=True``), unwrapping common layouts."""
    path = Path(path)
    if path.is_dir():
        found = [path / f for f in WEIGHT_FILES if (path / f).is_file()]
        if not found:
            raise CheckpointError(f"checkpoint {str(path)!r} is a folder without {' or '.join(WEIGHT_FILES)}; give "
                                  "the path of a .pt file, a model directory, or run.h5:NAME")
        path = found[0]
    if path.suffix == ".safetensors" and path.is_file():
        try:
            return dict(require("safetensors.torch", "hf").load_file(str(path)))
        except (OSError, ValueError, RuntimeError) as exc:
            raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from exc
    if not path.is_file():
        raise CheckpointError(f"checkpoint file {str(path)!r} does not exist")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: the file is empty (0 bytes); it was not saved completely. Save it again "
                              "with torch.save(model.state_dict(), path)")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(f"{path}: holds Python objects other than tensors (whole models, optimisers or "
                              "custom classes), which are not loaded for safety (torch.load(weights_only=True)). "
                              "Save a plain state dict instead: torch.save(model.state_dict(), path)") from exc
    except (RuntimeError, EOFError, ValueError) as exc:
        reason = str(exc).strip() or type(exc).__name__
        raise CheckpointError(f"{path}: not a readable torch checkpoint ({reason[:200]}); the file is damaged or "
                              "was not written by torch.save. Save the model with torch.save(model.state_dict(), "
                              "path)") from exc
    for key in ("state_dict", "model", "model_state_dict", "net"):
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            obj = obj[key]
            break
    if isinstance(obj, nn.Module):
        obj = obj.state_dict()
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: expected a state dict of tensors, or a dict with a 'state_dict' "
                              f"or 'model' entry; found {type(obj).__name__}")
    state = dict(obj)
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def check_state(model: nn.Module, state: Mapping[str, torch.Tensor], origin: str = "checkpoint") -> None:
    """Raise :class:`CheckpointError` naming missing, unexpected and mis-shaped keys.

    Example:
        >>> check_state(torch.nn.Linear(2, 1), {"weight": torch.zeros(1, 3)})  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        landscape.core.errors.CheckpointError: checkpoint does not fit the model: missing keys ['bias']; mis-shaped ...
    """
    aliases = tied_aliases(model)  # tied weights: a state may hold them once, or under every name
    expected = {k: v for k, v in model.state_dict().items() if k not in aliases}
    untied = [f"{alias} (differs from {name} by up to {float((state[alias] - state[name]).abs().max()):.3g})"
              for alias, name in aliases.items() if alias in state and name in state
              and state[alias].shape == state[name].shape and not torch.equal(state[alias], state[name])]
    if untied:  # the model holds one tensor for both: loading would drop one of them without a word
        raise CheckpointError(f"{origin} holds different values for weights the model ties together: "
                              f"{untied[:5]}. The checkpoint is of an untied model: build the model untied "
                              "(Hugging Face: model.kwargs.tie_word_embeddings = false) or give a tied checkpoint")
    state = {k: v for k, v in state.items() if k not in aliases}
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    misshaped = [f"{k} (model {tuple(expected[k].shape)}, {origin} {tuple(state[k].shape)})"
                 for k in expected if k in state and tuple(expected[k].shape) != tuple(state[k].shape)]
    parts = []
    if missing:
        parts.append(f"missing keys {missing[:10]}{' ...' if len(missing) > 10 else ''}")
    if unexpected:
        parts.append(f"unexpected keys {unexpected[:10]}{' ...' if len(unexpected) > 10 else ''}")
    if misshaped:
        parts.append(f"mis-shaped {misshaped[:10]}")
    if parts:
        raise CheckpointError(f"{origin} does not fit the model: " + "; ".join(parts) +
                              ". Check that the model name and its arguments match the checkpoint")


def split_source(source: str) -> tuple[Path, str | None]:
    """Split ``run.h5:epoch 7`` into the path and the checkpoint name (None for plain files).

    Example:
        >>> split_source("out/run.h5:epoch 7")
        (PosixPath('out/run.h5'), 'epoch 7')
    """
    m = _H5.match(source)
    if m:
        return Path(m.group(1)), (m.group(2) or "final")
    return Path(source), None


def load_source(source: str, model: nn.Module | None = None) -> dict[str, torch.Tensor]:
    """Load a state from a file or ``trajectory.h5:NAME``; checked against ``model`` when given."""
    path, ref = split_source(source)
    if ref is not None:
        state = TrajectoryStore(path).state(ref)
    else:
        state = load_state_file(path)
        if model is not None and hasattr(model, "adapt_state"):  # e.g. older published DenseNet key names
            state = model.adapt_state(state)
        if model is not None:  # files saved before BatchNorm counted its batches (torchvision's own) lack the count
            state = {**{k: v for k, v in model.state_dict().items()
                        if k.endswith(".num_batches_tracked") and k not in state}, **state}
    if model is not None:
        check_state(model, state, origin=source)
        aliases = tied_aliases(model)  # each tied tensor once, under the name model_state keeps
        state = {k: v for k, v in state.items() if k not in aliases}
    return state


@torch.no_grad()
def apply_state(model: nn.Module, state: Mapping[str, torch.Tensor], origin: str = "checkpoint") -> nn.Module:
    """Check and load ``state`` into ``model`` in place; returns the model."""
    check_state(model, state, origin)
    model.load_state_dict(complete_state(model, state))
    return model


def complete_state(model: nn.Module, state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` with every tied alias of ``model`` filled from the tensor it shares (``load_state_dict`` wants
    each name), e.g. a trajectory's GPT-2 state, which holds ``wte.weight`` once.

    Example:
        >>> m = torch.nn.Sequential(torch.nn.Embedding(5, 3), torch.nn.Linear(3, 5, bias=False))
        >>> m[1].weight = m[0].weight
        >>> sorted(complete_state(m, {"0.weight": torch.zeros(5, 3)}))
        ['0.weight', '1.weight']
    """
    out = dict(state)
    for alias, name in tied_aliases(model).items():
        if name in out:
            out[alias] = out[name]
    return out
