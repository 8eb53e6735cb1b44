"""Data as a user has it, turned into what the engine evaluates: a tuple ``(x, y)`` of tensors or arrays, a
``DataLoader``, a map-style ``Dataset``, any iterable of batches, and batches that are dicts (Hugging Face style,
e.g. ``{"input_ids": ..., "attention_mask": ..., "labels": ...}``).

:func:`given_data` returns a :class:`GivenData`: the :class:`~landscape.core.data.TensorData` (or, for a map-style
``Dataset`` of ``(x, y)`` pairs, a :class:`~landscape.core.streams.StreamedData` read in batches when it does not
fit the device budget) and, for dict batches, the dict's tensors (``fields``). Dict data is held as a
``TensorData`` whose ``x`` is the row index ``0..N-1`` and whose ``y`` is the ``labels`` field (zeros without one):
the evaluator gathers each batch's rows of every field and calls ``model(**batch)``.

A ``DataLoader`` or an iterable is read once, in its order, and held in memory. The task is inferred from the
targets (floating point: ``regression``; integer of the inputs' shape with integer inputs: ``language``; other
integers: ``classification``) unless ``task`` is given.

Example:
    >>> import torch
    >>> g = given_data((torch.randn(6, 2), torch.tensor([0, 1, 2, 0, 1, 2])))
    >>> g.data.task, len(g.data), g.fields is None
    ('classification', 6, True)
    >>> g = given_data([{"input_ids": torch.ones(2, 5, dtype=torch.long), "labels": torch.tensor([0, 1])}] * 2)
    >>> sorted(g.fields), g.data.x.tolist(), g.data.y.tolist()
    (['input_ids', 'labels'], [0, 1, 2, 3], [0, 1, 0, 1])
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import torch

from .data import TensorData
from .errors import DataError
from .streams import StreamedData

__all__ = ["GivenData", "given_data", "infer_task", "DATA_KINDS"]

#: what :func:`given_data` accepts, for error messages and the docs
DATA_KINDS = ("a tuple (x, y) of tensors or arrays", "a torch DataLoader", "a map-style torch Dataset of (x, y) "
              "pairs or dicts", "an iterable of (x, y) batches", "an iterable of dict batches (Hugging Face style)",
              "one dict batch", "landscape TensorData")


@dataclass
class GivenData:
    """The evaluation data (``data``) and, for dict batches, every field's tensor over all rows (``fields``)."""

    data: TensorData | StreamedData
    fields: dict[str, torch.Tensor] | None = None


def infer_task(x: torch.Tensor, y: torch.Tensor) -> str:
    """The task targets ``y`` of inputs ``x`` suggest.

    Example:
        >>> infer_task(torch.zeros(3, 4, dtype=torch.long), torch.zeros(3, 4, dtype=torch.long))
        'language'
        >>> infer_task(torch.zeros(3, 4), torch.zeros(3)), infer_task(torch.zeros(3, 4), torch.zeros(3, dtype=torch.long))
        ('regression', 'classification')
    """
    if y.is_floating_point():
        return "regression"
    if not x.is_floating_point() and x.dim() == 2 and tuple(x.shape) == tuple(y.shape):
        return "language"
    return "classification"


def _tensor(v: Any, what: str) -> torch.Tensor:
    try:
        return torch.as_tensor(np.asarray(v)) if not isinstance(v, torch.Tensor) else v.detach()
    except (TypeError, ValueError) as exc:
        raise DataError(f"{what}: expected a tensor or an array, got {type(v).__name__} ({exc})") from None


def _from_xy(x: Any, y: Any, task: str | None, name: str) -> TensorData:
    x, y = _tensor(x, f"{name} inputs"), _tensor(y, f"{name} targets")
    if x.dim() == 0 or y.dim() == 0 or x.shape[0] != y.shape[0]:
        raise DataError(f"{name}: expected inputs and targets with the same first (sample) dimension; got inputs "
                        f"of shape {tuple(x.shape)} and targets of shape {tuple(y.shape)}")
    task = task or infer_task(x, y)
    if x.dtype == torch.float64 or x.dtype == torch.float16 or x.dtype == torch.bfloat16:
        x = x.float()
    y = y.float() if task == "regression" else y.long()
    classes = None
    if task in ("classification", "language") and y.numel():
        classes = int(y.max()) + 1
    return TensorData(x.cpu().contiguous(), y.cpu().contiguous(), task, classes, name)


def _from_dicts(batches: list[Mapping[str, Any]], task: str | None, name: str) -> GivenData:
    keys = list(batches[0])
    for k, b in enumerate(batches):
        if list(b) != keys:
            raise DataError(f"{name}: dict batch {k} has the keys {sorted(b)}, the first had {sorted(keys)}; every "
                            "batch must have the same keys")
    fields: dict[str, torch.Tensor] = {}
    for key in keys:
        parts = [_tensor(b[key], f"{name} field {key!r}") for b in batches]
        shapes = {tuple(p.shape[1:]) for p in parts}
        if len(shapes) > 1:
            raise DataError(f"{name}: field {key!r} has batches of different shapes {sorted(shapes)}; pad every "
                            "batch to one length (e.g. the tokenizer's padding='max_length')")
        fields[key] = torch.cat(parts).cpu().contiguous()
    n = {k: int(v.shape[0]) for k, v in fields.items()}
    if len(set(n.values())) != 1:
        raise DataError(f"{name}: the fields have different numbers of rows {n}")
    rows = next(iter(n.values()))
    labels = fields.get("labels")
    y = labels if labels is not None else torch.zeros(rows, dtype=torch.long)
    ids = fields.get("input_ids")
    if task is None:
        task = "classification"
        if labels is not None and labels.is_floating_point():
            task = "regression"
        elif labels is not None and ids is not None and tuple(labels.shape) == tuple(ids.shape):
            task = "language"
    y = y.float() if task == "regression" else y.long()
    classes = int(y.max()) + 1 if task != "regression" and y.numel() else None
    data = TensorData(torch.arange(rows), y.contiguous(), task, classes, name)
    return GivenData(data, fields)


def _batches(items: list[Any], task: str | None, name: str) -> GivenData:
    if not items:
        raise DataError(f"{name}: the data yielded no batches")
    first = items[0]
    if isinstance(first, Mapping):
        return _from_dicts(items, task, name)
    if isinstance(first, (tuple, list)) and len(first) >= 2:
        xs, ys = zip(*[(_tensor(b[0], name), _tensor(b[1], name)) for b in items])
        join = torch.stack if ys[0].dim() == 0 else torch.cat  # single (x, y) samples, or batches of them
        try:
            x, y = join(list(xs)), join(list(ys))
        except RuntimeError as exc:
            raise DataError(f"{name}: the batches' inputs or targets have different shapes ({exc}); pad or resize "
                            "them to one shape") from None
        return GivenData(_from_xy(x, y, task, name))
    raise DataError(f"{name}: expected batches that are (inputs, targets) pairs or dicts of tensors; the first is "
                    f"{type(first).__name__}. Accepted data: {'; '.join(DATA_KINDS)}")


def given_data(data: Any, task: str | None = None, name: str = "data") -> GivenData:
    """The evaluation data of ``data`` in any of :data:`DATA_KINDS` (see the module's description).

    Example:
        >>> import torch
        >>> from torch.utils.data import DataLoader, TensorDataset
        >>> ds = TensorDataset(torch.randn(10, 3), torch.randn(10, 1))
        >>> g = given_data(DataLoader(ds, batch_size=4))
        >>> g.data.task, tuple(g.data.x.shape)
        ('regression', (10, 3))
    """
    if isinstance(data, GivenData):
        return data
    if isinstance(data, (TensorData, StreamedData)):
        return GivenData(data)
    if isinstance(data, Mapping):
        return _from_dicts([data], task, name)
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(
            isinstance(t, (torch.Tensor, np.ndarray)) for t in data):
        return GivenData(_from_xy(data[0], data[1], task, name))
    loader_cls = torch.utils.data.DataLoader
    if isinstance(data, torch.utils.data.Dataset) and not isinstance(data, torch.utils.data.IterableDataset) \
            and hasattr(data, "__len__"):
        if len(data) == 0:
            raise DataError(f"{name}: the data set is empty")
        item = data[0]
        if isinstance(item, Mapping):
            return _from_dicts([{k: torch.as_tensor(v).unsqueeze(0) for k, v in data[i].items()}
                                for i in range(len(data))], task, name)
        if not (isinstance(item, (tuple, list)) and len(item) >= 2):
            raise DataError(f"{name}: expected a data set of (x, y) pairs or dicts; item 0 is "
                            f"{type(item).__name__}")
        x0 = torch.as_tensor(np.asarray(item[0]))
        if not x0.is_floating_point():  # token ids and other integer inputs: read into memory as they are
            return _batches([(torch.as_tensor(np.asarray(data[i][0]))[None],
                              torch.as_tensor(np.asarray(data[i][1]))[None]) for i in range(len(data))], task, name)
        stream = StreamedData(data, task, None, name, workers=0)
        if stream.task == "classification":
            targets = getattr(data, "targets", None)
            labels = targets if targets is not None else [data[i][1] for i in range(len(data))]
            stream.num_classes = int(torch.as_tensor(np.asarray(labels)).max()) + 1
        return GivenData(stream)
    if isinstance(data, loader_cls) or (hasattr(data, "__iter__") and not isinstance(data, (str, bytes))):
        try:
            items = list(data)
        except DataError:
            raise
        except Exception as exc:  # noqa: BLE001 - user iterables raise anything
            raise DataError(f"{name}: reading the batches failed: {type(exc).__name__}: {exc}") from exc
        return _batches(items, task, name)
    raise DataError(f"{name}: cannot use data of type {type(data).__name__}. Accepted data: {'; '.join(DATA_KINDS)}")
