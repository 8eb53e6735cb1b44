"""Data sets too large to hold in memory, read in batches: image folders, memory-mapped arrays, HDF5 datasets and
any map-style ``torch.utils.data.Dataset``.

:class:`StreamedData` stands beside :class:`~landscape.core.data.TensorData`: it has the same ``task``,
``num_classes``, ``name``, ``len()`` and ``info()``, and yields ``(x, y)`` batches in a fixed order from a
``DataLoader`` whose workers read and decode them in parallel (pinned memory for CUDA). The evaluator keeps a
streamed set resident when it fits the device budget (:meth:`landscape.core.data.resident` reads it once) and
otherwise reads each batch once per chunk of grid points. A batch is the same tensor whichever way it is read, so
values do not depend on the mode.

- :class:`ImageFolder`: class sub-folders of JPEG/PNG files (the ImageNet/``ImageFolder`` layout), decoded with
  Pillow, the shorter side resized to ``resize``, centre-cropped to ``crop``, normalised by ``mean``/``std``;
- :class:`ArrayPair`: ``x`` and ``y`` from ``.npy`` files (memory-mapped), ``file.npz:key`` or
  ``file.h5:/dataset`` (read by slices, opened in each worker).

Example:
    >>> import tempfile, numpy as np
    >>> d = tempfile.mkdtemp()
    >>> np.save(d + "/x.npy", np.arange(12, dtype=np.float32).reshape(6, 2)); np.save(d + "/y.npy", np.arange(6))
    >>> s = StreamedData(ArrayPair(d + "/x.npy", d + "/y.npy"), "classification", 6, "arrays", workers=0)
    >>> [tuple(x.shape) for x, _ in s.batches(4)], s.info()["input_dim"]
    ([(4, 2), (2, 2)], 2)
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterator, Sequence

import h5py
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from .errors import DataError
from .optional import require

__all__ = ["StreamedData", "ImageFolder", "ArrayPair", "open_array", "IMAGE_SUFFIXES"]

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".webp")


class ImageFolder(Dataset):
    """Images in class sub-folders (sorted names are the classes 0..C-1; files sorted within each)."""

    def __init__(self, root: str | Path, resize: int | None = None, crop: int | None = None,
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None):
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(f"image folder {self.root}: not a folder; expected class sub-folders of images")
        self.classes = sorted(p.name for p in self.root.iterdir() if p.is_dir())
        self.files = [(p, c) for c, name in enumerate(self.classes) for p in sorted((self.root / name).iterdir())
                      if p.suffix.lower() in IMAGE_SUFFIXES]
        if not self.files:
            raise DataError(f"image folder {self.root}: no images ({', '.join(IMAGE_SUFFIXES)}) in class "
                            f"sub-folders (found {len(self.classes)} sub-folders)")
        self.resize, self.crop = resize, crop
        self.mean = None if mean is None else torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
        self.std = None if std is None else torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)
        require("PIL.Image", "plot")  # fail now, naming the extra, not in a worker

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        image_mod = require("PIL.Image", "plot")
        path, label = self.files[i]
        try:
            with image_mod.open(path) as im:
                im = im.convert("RGB")  # decodes: a truncated file fails here
        except (OSError, SyntaxError, ValueError) as exc:  # PIL: UnidentifiedImageError, "image file is truncated"
            raise DataError(f"image {path}: cannot be read ({type(exc).__name__}: {exc}); it is truncated or not an "
                            f"image: replace or remove it (image {i + 1} of {len(self.files)} in {self.root})"
                            ) from None
        if self.resize:
            w, h = im.size
            s = self.resize / min(w, h)
            im = im.resize((max(1, round(w * s)), max(1, round(h * s))), image_mod.BILINEAR)
        if self.crop:
            w, h = im.size
            left, top = (w - self.crop) // 2, (h - self.crop) // 2
            im = im.crop((left, top, left + self.crop, top + self.crop))
        x = torch.from_numpy(np.asarray(im, dtype=np.uint8).copy()).permute(2, 0, 1).float().div_(255.0)
        if self.mean is not None:
            x = x - self.mean
        if self.std is not None:
            x = x / self.std
        return x, label


def _worker_message(text: str) -> str:
    """The error's own message out of the text a DataLoader worker's error carries (its traceback included).

    Example:
        >>> _worker_message("Caught DataError in DataLoader worker process 0.\\nOriginal Traceback (most recent "
        ...                 "call last):\\n  File ...\\nlandscape.core.errors.DataError: image a.jpg: cannot be read")
        'image a.jpg: cannot be read'
    """
    marker = f"\n{DataError.__module__}.DataError: "
    at = text.find(marker) if "Original Traceback" in text else -1
    return text[at + len(marker):].strip() if at >= 0 else text


def open_array(ref: str) -> Any:
    """An array-like read by slices: ``file.npy`` (memory-mapped), ``file.npz:key`` or ``file.h5:/dataset``.

    Example:
        >>> open_array.__name__
        'open_array'
    """
    path, _, key = str(ref).partition(":") if not Path(ref).is_file() else (str(ref), "", "")
    p = Path(path)
    if not p.is_file():
        raise DataError(f"array {ref!r}: {p} does not exist (expected file.npy, file.npz:key or file.h5:/dataset)")
    if p.suffix == ".npy":
        return np.load(p, mmap_mode="r")
    if p.suffix == ".npz":
        with np.load(p) as z:
            if key not in z.files:
                raise DataError(f"array {ref!r}: expected one of the keys {z.files}")
        return np.load(p, mmap_mode="r")[key]
    if p.suffix in (".h5", ".hdf5"):
        f = h5py.File(p, "r")
        if key not in f:
            raise DataError(f"array {ref!r}: {p} has no dataset {key!r}; it has {list(f)}")
        return f[key]
    raise DataError(f"array {ref!r}: expected a .npy, .npz or .h5 file")


class ArrayPair(Dataset):
    """Inputs and targets from two arrays of the same length, opened lazily (in each worker process)."""

    def __init__(self, x: str, y: str):
        self.refs = (str(x), str(y))
        xs, ys = open_array(x), open_array(y)
        if len(xs) != len(ys):
            raise DataError(f"arrays {x!r} and {y!r}: {len(xs)} inputs but {len(ys)} targets")
        self.n, self.y_float = len(xs), np.dtype(ys.dtype).kind == "f"
        self._arrays: tuple[Any, Any] | None = None

    def _open(self) -> tuple[Any, Any]:
        if self._arrays is None:
            self._arrays = (open_array(self.refs[0]), open_array(self.refs[1]))
        return self._arrays

    def __getstate__(self) -> dict[str, Any]:  # h5py handles do not cross into worker processes
        return {**self.__dict__, "_arrays": None}

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.read(i, i + 1)
        return x[0], y[0]

    def read(self, a: int, b: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows a..b-1 of both arrays: one slice each (contiguous reads)."""
        xs, ys = self._open()
        x = torch.from_numpy(np.array(xs[a:b], dtype=np.float32))  # a copy: memory maps are read-only
        y = np.asarray(ys[a:b])
        return x, torch.from_numpy(y.astype(np.float32) if self.y_float else y.astype(np.int64))


class _Batches(Dataset):
    """Batch k of a data set (rows bounds[k]..bounds[k+1]-1 of its index list) as one item, so DataLoader
    workers read whole batches in parallel while the batches come out in order."""

    def __init__(self, dataset: Any, index: np.ndarray, batch_size: int):
        self.dataset, self.index, self.batch_size = dataset, index, batch_size

    def __len__(self) -> int:
        return -(-len(self.index) // self.batch_size)

    def __getitem__(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        rows = self.index[k * self.batch_size:(k + 1) * self.batch_size]
        if hasattr(self.dataset, "read") and len(rows) and rows[-1] - rows[0] == len(rows) - 1:
            return self.dataset.read(int(rows[0]), int(rows[-1]) + 1)  # contiguous rows: one slice
        items = [self.dataset[int(i)] for i in rows]
        x = torch.stack([torch.as_tensor(a) for a, _ in items]).float()
        y = torch.as_tensor(np.asarray([np.asarray(b) for _, b in items]))
        return x, y


class StreamedData:
    """A data set read in batches (see the module's description); ``index`` keeps a subset, in order."""

    def __init__(self, dataset: Any, task: str | None, num_classes: int | None, name: str, workers: int = 2,
                 index: np.ndarray | None = None):
        self.dataset, self.name, self.workers = dataset, name, workers
        self.index = np.arange(len(dataset)) if index is None else np.asarray(index)
        x0, y0 = dataset[int(self.index[0])] if len(self.index) else (torch.zeros(1), 0)
        self._x0, self._y0 = torch.as_tensor(x0), torch.as_tensor(np.asarray(y0))
        self.task = task or ("regression" if self._y0.is_floating_point() else "classification")
        self.num_classes = num_classes
        self._cache: tuple[torch.Tensor, torch.Tensor] | None = None

    def __len__(self) -> int:
        return len(self.index)

    def info(self) -> dict[str, Any]:
        """Shape facts a model factory may need, from the first sample."""
        out: dict[str, Any] = {"input_dim": int(self._x0.numel())}
        if self._x0.dim() == 3:
            out["in_channels"] = int(self._x0.shape[0])
        out["num_classes"] = self.num_classes if self.task == "classification" else max(1, int(self._y0.numel()))
        return out

    def nbytes(self) -> int:
        """The size of the whole set in memory (inputs as float32), from the first sample."""
        target = 4 if self.task == "regression" else 8  # float32 targets, int64 classes
        return len(self) * (4 * int(self._x0.numel()) + target * max(1, int(self._y0.numel())))

    def first_input(self) -> torch.Tensor:
        """The first input as a float32 batch of one, as :meth:`batches` gives it (without reading a batch)."""
        return self._x0.float().unsqueeze(0)

    def take(self, rows: np.ndarray) -> "StreamedData":
        """The subset of the given rows (positions in this set), in order."""
        return StreamedData(self.dataset, self.task, self.num_classes, self.name, self.workers, self.index[rows])

    def batches(self, batch_size: int, pin: bool = False) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(x, y) batches in the set's order; ``workers`` processes read ahead."""
        loader = DataLoader(_Batches(self.dataset, self.index, batch_size), batch_size=None, shuffle=False,
                            num_workers=self.workers, pin_memory=pin,
                            persistent_workers=False, prefetch_factor=4 if self.workers else None)
        try:
            for x, y in loader:
                yield x, (y.float() if self.task == "regression" else y.long())
        except DataError as exc:  # from a worker: torch puts the worker's traceback into the message
            raise DataError(_worker_message(str(exc))) from None

    @property
    def x(self) -> torch.Tensor:
        """All inputs, read once (for consumers that need the whole set in memory, e.g. training)."""
        return self._read()[0]

    @property
    def y(self) -> torch.Tensor:
        return self._read()[1]

    def _read(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._cache is None:
            log.info("%s: reading all %d samples into memory (%.1f MiB)", self.name, len(self), self.nbytes() / 2**20)
            parts = list(self.batches(256))
            self._cache = (torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]))
        return self._cache
