"""Flat views of a model's state: names, shapes, flattening and checksums.

A *state* is an ordered mapping ``name -> tensor`` (a ``state_dict``). The
functions here turn states into one flat float vector and back, in a fixed
order, which is what trajectories, directions and surfaces store.

Example:
    >>> import torch
    >>> spec = StateSpec.from_state({"w": torch.zeros(2, 3), "b": torch.zeros(2)})
    >>> spec.numel, spec.offsets
    (8, (0, 6, 8))
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Mapping

import numpy as np
import torch

from .errors import CheckpointError

__all__ = ["StateSpec", "model_state", "flatten_state", "unflatten_state", "state_checksum", "is_bn_name",
           "tied_aliases"]


def is_bn_name(name: str) -> bool:
    """True for BatchNorm running statistics (buffers), judged by name.

    Example:
        >>> is_bn_name("layer1.bn.running_mean"), is_bn_name("fc.weight")
        (True, False)
    """
    leaf = name.rsplit(".", 1)[-1]
    return leaf in ("running_mean", "running_var", "num_batches_tracked")


def model_state(model: torch.nn.Module, buffers: bool = True) -> dict[str, torch.Tensor]:
    """The model's tensors by name (parameters, then buffers if asked), sharing storage.

    Example:
        >>> list(model_state(torch.nn.Linear(2, 1)))
        ['weight', 'bias']
    """
    state = dict(model.named_parameters())
    if buffers:
        for name, buf in model.named_buffers():
            state[name] = buf
    return state


def tied_aliases(model: torch.nn.Module) -> dict[str, str]:
    """Names under which ``state_dict()`` repeats a tensor it already holds under an earlier name (tied weights,
    e.g. GPT-2's ``lm_head.weight`` and ``transformer.wte.weight``): alias -> the name :func:`model_state` keeps.

    Example:
        >>> m = torch.nn.Sequential(torch.nn.Embedding(5, 3), torch.nn.Linear(3, 5, bias=False))
        >>> m[1].weight = m[0].weight
        >>> tied_aliases(m), list(model_state(m))
        ({'1.weight': '0.weight'}, ['0.weight'])
    """
    seen: dict[int, str] = {}
    out: dict[str, str] = {}
    for name, t in model.state_dict(keep_vars=True).items():
        key = id(t)
        if key in seen:
            out[name] = seen[key]
        else:
            seen[key] = name
    return out


@dataclass(frozen=True)
class StateSpec:
    """Names, shapes and dtypes of a state, with offsets into the flat vector."""

    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]
    dtypes: tuple[str, ...]

    @classmethod
    def from_state(cls, state: Mapping[str, torch.Tensor]) -> "StateSpec":
        return cls(
            tuple(state),
            tuple(tuple(t.shape) for t in state.values()),
            tuple(str(t.dtype).replace("torch.", "") for t in state.values()),
        )

    @property
    def numels(self) -> tuple[int, ...]:
        return tuple(int(np.prod(s, dtype=np.int64)) for s in self.shapes)

    @property
    def offsets(self) -> tuple[int, ...]:
        return tuple(int(x) for x in np.concatenate([[0], np.cumsum(self.numels, dtype=np.int64)]))

    @property
    def numel(self) -> int:
        return self.offsets[-1]

    def slice(self, name: str) -> slice:
        """The slice of the flat vector that holds ``name``."""
        i = self.names.index(name)
        return slice(self.offsets[i], self.offsets[i + 1])

    def to_json(self) -> dict:
        return {"names": list(self.names), "shapes": [list(s) for s in self.shapes], "dtypes": list(self.dtypes)}

    @classmethod
    def from_json(cls, d: Mapping) -> "StateSpec":
        return cls(tuple(d["names"]), tuple(tuple(s) for s in d["shapes"]), tuple(d["dtypes"]))


def flatten_state(state: Mapping[str, torch.Tensor], spec: StateSpec | None = None,
                  dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Concatenate a state into one flat vector in ``spec`` order (default: the state's order).

    Example:
        >>> flatten_state({"a": torch.tensor([[1., 2.]]), "b": torch.tensor([3.])}).tolist()
        [1.0, 2.0, 3.0]
    """
    names = spec.names if spec is not None else tuple(state)
    missing = [n for n in names if n not in state]
    if missing:
        raise CheckpointError(f"state lacks {len(missing)} expected tensor(s): {missing[:8]}")
    return torch.cat([state[n].detach().reshape(-1).to(dtype) for n in names]) if names else torch.zeros(0, dtype=dtype)


def unflatten_state(vector: torch.Tensor | np.ndarray, spec: StateSpec) -> dict[str, torch.Tensor]:
    """Split a flat vector back into named tensors of the spec's shapes and dtypes.

    Example:
        >>> spec = StateSpec(("a", "b"), ((1, 2), (1,)), ("float32", "int64"))
        >>> {k: v.tolist() for k, v in unflatten_state(torch.tensor([1., 2., 3.]), spec).items()}
        {'a': [[1.0, 2.0]], 'b': [3]}
    """
    v = torch.as_tensor(vector)
    if v.numel() != spec.numel:
        raise CheckpointError(f"flat state has {v.numel()} values, the model expects {spec.numel}")
    out = {}
    for name, shape, dt, a, b in zip(spec.names, spec.shapes, spec.dtypes, spec.offsets[:-1], spec.offsets[1:]):
        t = v[a:b].reshape(shape)
        target = getattr(torch, dt)
        out[name] = t.round().to(target) if not target.is_floating_point else t.to(target)
    return out


def state_checksum(state: Mapping[str, torch.Tensor] | torch.Tensor) -> str:
    """SHA-256 (hex, first 16 digits) of a state's float32 values, in order.

    Equal states give equal checksums on any device.

    Example:
        >>> state_checksum(torch.zeros(3)) == state_checksum({"x": torch.zeros(3)})
        True
    """
    vec = state if isinstance(state, torch.Tensor) else flatten_state(state)
    data = vec.detach().to("cpu", torch.float32).contiguous().numpy().astype("<f4").tobytes()
    return hashlib.sha256(data).hexdigest()[:16]
