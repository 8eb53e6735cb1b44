"""Data sets as in-memory tensors: embedded digits, spiral, sine, MNIST/CIFAR-10 from local folders,
torchvision data sets and user ``module:callable`` data sets.

Every loader returns ``(train, test)`` :class:`TensorData`; nothing is downloaded.

Example:
    >>> train, test = load_data("digits")
    >>> tuple(train.x.shape[1:]), len(train), len(test)
    ((1, 32, 32), 1437, 360)
"""
from __future__ import annotations

import gzip
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from .errors import DataError, ModelError
from .models import load_callable
from .optional import require
from .streams import ArrayPair, ImageFolder, StreamedData
from .text import TEXT_DATASETS, text_windows

__all__ = ["TensorData", "load_data", "subset", "resident", "DATASETS", "read_idx", "read_cifar10_bin", "spiral",
           "digits", "image_folder", "arrays"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TensorData:
    """Inputs ``x`` and targets ``y`` of one split, held in memory.

    ``task`` is ``"classification"`` (integer class targets), ``"regression"`` (float targets) or ``"language"``
    (token ids (N, T) in, the next token at every position (N, T) as targets, ``num_classes`` the vocabulary).
    """

    x: torch.Tensor
    y: torch.Tensor
    task: str = "classification"
    num_classes: int | None = None
    name: str = ""

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def info(self) -> dict[str, Any]:
        """Shape facts a model factory may need: in_channels, num_classes, input_dim (and for sequences vocab and
        context)."""
        out: dict[str, Any] = {"input_dim": int(np.prod(self.x.shape[1:]))}
        if self.x.dim() == 4:
            out["in_channels"] = int(self.x.shape[1])
        if self.task == "language":
            out.update(vocab=self.num_classes, context=int(self.x.shape[1]), num_classes=self.num_classes)
            return out
        out["num_classes"] = self.num_classes if self.task == "classification" else (
            int(self.y.shape[1]) if self.y.dim() > 1 else 1)
        return out


def subset(data: TensorData, n: int | None, mode: str = "first", seed: int = 0) -> TensorData:
    """The first ``n`` samples, or ``n`` random ones chosen with ``seed`` (order kept).

    Example:
        >>> d = TensorData(torch.arange(10.).reshape(10, 1), torch.arange(10))
        >>> subset(d, 3).y.tolist(), len(subset(d, 4, "random", seed=1))
        ([0, 1, 2], 4)
    """
    if n is None or n == len(data):
        return data
    if not 1 <= n <= len(data):
        raise DataError(f"subset of {data.name or 'data'}: expected 1 <= n <= {len(data)}, got {n}")
    if mode == "first":
        idx = torch.arange(n)
    elif mode == "random":
        g = torch.Generator().manual_seed(seed)
        idx = torch.randperm(len(data), generator=g)[:n].sort().values
    else:
        raise DataError(f"subset mode must be 'first' or 'random', got {mode!r}")
    if isinstance(data, StreamedData):  # the same rows, still streamed
        return data.take(idx.numpy())
    return replace(data, x=data.x[idx].contiguous(), y=data.y[idx].contiguous())


def resident(data: TensorData | StreamedData) -> TensorData:
    """The data in memory: a :class:`TensorData` as it is, a streamed set read once.

    Example:
        >>> d = TensorData(torch.zeros(2, 1), torch.zeros(2, dtype=torch.long))
        >>> resident(d) is d
        True
    """
    if isinstance(data, StreamedData):
        return TensorData(data.x.contiguous(), data.y.contiguous(), data.task, data.num_classes, data.name)
    return data


def _standardise(train: torch.Tensor, test: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    mean, std = train.mean(), train.std()
    return (train - mean) / std, (test - mean) / std


def digits(test_fraction: float = 0.2, split_seed: int = 0) -> tuple[TensorData, TensorData]:
    """scikit-learn's real 8×8 handwritten digits, resized to 1×32×32, fixed stratified split."""
    d = require("sklearn.datasets").load_digits()  # imported when used: it takes a second to import
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0
    x = F.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False)
    split = require("sklearn.model_selection").train_test_split
    idx_tr, idx_te = split(np.arange(len(x)), test_size=test_fraction, random_state=split_seed, stratify=d.target)
    y = torch.tensor(d.target, dtype=torch.long)
    xtr, xte = _standardise(x[idx_tr], x[idx_te])
    return (TensorData(xtr.contiguous(), y[idx_tr], "classification", 10, "digits/train"),
            TensorData(xte.contiguous(), y[idx_te], "classification", 10, "digits/test"))


def spiral(n_per_class: int = 200, classes: int = 3, noise: float = 0.2, seed: int = 0,
           test_fraction: float = 0.25) -> tuple[TensorData, TensorData]:
    """2-D spiral with ``classes`` arms (CS231n style), generated with ``seed``."""
    g = np.random.default_rng(seed)
    xs, ys = [], []
    for k in range(classes):
        r = np.linspace(0.0, 1.0, n_per_class)
        t = np.linspace(k * 4.0, (k + 1) * 4.0, n_per_class) + g.normal(0, noise, n_per_class)
        xs.append(np.stack([r * np.sin(t), r * np.cos(t)], 1))
        ys.append(np.full(n_per_class, k))
    x, y = np.concatenate(xs).astype(np.float32), np.concatenate(ys)
    perm = g.permutation(len(x))
    n_test = int(round(len(x) * test_fraction))
    te, tr = perm[:n_test], perm[n_test:]
    mk = lambda i, s: TensorData(torch.from_numpy(x[i]), torch.from_numpy(y[i]).long(), "classification",
                                 classes, f"spiral/{s}")
    return mk(tr, "train"), mk(te, "test")


def sine(n: int = 512, noise: float = 0.05, seed: int = 0, test_fraction: float = 0.25
         ) -> tuple[TensorData, TensorData]:
    """1-D regression y = sin(3x) + noise on x in [-1, 1]."""
    g = np.random.default_rng(seed)
    x = g.uniform(-1, 1, (n, 1)).astype(np.float32)
    y = (np.sin(3 * x) + g.normal(0, noise, x.shape)).astype(np.float32)
    k = int(round(n * (1 - test_fraction)))
    return (TensorData(torch.from_numpy(x[:k]), torch.from_numpy(y[:k]), "regression", None, "sine/train"),
            TensorData(torch.from_numpy(x[k:]), torch.from_numpy(y[k:]), "regression", None, "sine/test"))


def _open_maybe_gz(path: Path) -> bytes:
    raw = path.read_bytes()
    return gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (MNIST format, optionally gzipped) into a numpy array.

    Example:
        >>> import tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "x-idx1-ubyte")
        >>> _ = open(p, "wb").write(bytes([0, 0, 8, 1, 0, 0, 0, 2, 7, 9]))
        >>> read_idx(p).tolist()
        [7, 9]
    """
    raw = _open_maybe_gz(Path(path))
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"{path}: not an unsigned-byte IDX file (bad magic {raw[:4].hex()}); "
                        "expected the standard MNIST idx files")
    ndim = raw[3]
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    body = np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise DataError(f"{path}: header says {dims} = {int(np.prod(dims))} bytes, file holds {body.size}; "
                        "the file is truncated or corrupted")
    return body.reshape(dims)


def _find(root: Path, candidates: list[str], what: str) -> Path:
    for sub in ("", "raw", "MNIST/raw", "cifar-10-batches-bin"):
        for c in candidates:
            for suffix in ("", ".gz"):
                p = root / sub / (c + suffix)
                if p.is_file():
                    return p
    raise DataError(f"{what}: none of {candidates} (optionally .gz) found under {root}; "
                    "point data.root to the folder that holds the files")


def mnist(root: str | Path, resize: str = "pad") -> tuple[TensorData, TensorData]:
    """MNIST from the four standard idx files in ``root``; 28×28 → 32×32 by zero ``pad`` or ``bilinear``."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"mnist: folder {str(root)!r} does not exist; set data.root to the folder with the idx files")
    out = []
    for split, prefix in (("train", "train"), ("test", "t10k")):
        x = read_idx(_find(root, [f"{prefix}-images-idx3-ubyte", f"{prefix}-images.idx3-ubyte"], "mnist"))
        y = read_idx(_find(root, [f"{prefix}-labels-idx1-ubyte", f"{prefix}-labels.idx1-ubyte"], "mnist"))
        if len(x) != len(y):
            raise DataError(f"mnist {split}: {len(x)} images but {len(y)} labels")
        xt = torch.from_numpy(x.astype(np.float32) / 255.0).unsqueeze(1)
        if resize == "pad":
            xt = F.pad(xt, (2, 2, 2, 2))
        elif resize == "bilinear":
            xt = F.interpolate(xt, size=(32, 32), mode="bilinear", align_corners=False)
        elif resize != "none":
            raise DataError(f"mnist resize must be 'pad', 'bilinear' or 'none', got {resize!r}")
        xt = (xt - 0.1307) / 0.3081
        out.append(TensorData(xt.contiguous(), torch.from_numpy(y.astype(np.int64)), "classification", 10,
                              f"mnist/{split}"))
    return out[0], out[1]


def read_cifar10_bin(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR-10 binary batch: records of 1 label byte + 3072 pixel bytes."""
    raw = Path(path).read_bytes()
    if len(raw) % 3073:
        raise DataError(f"{path}: size {len(raw)} is not a multiple of 3073 bytes; not a CIFAR-10 binary batch")
    rec = np.frombuffer(raw, np.uint8).reshape(-1, 3073)
    return rec[:, 1:].reshape(-1, 3, 32, 32), rec[:, 0].astype(np.int64)


_CIFAR_MEAN, _CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def cifar10(root: str | Path) -> tuple[TensorData, TensorData]:
    """CIFAR-10 from the standard binary batches (``data_batch_1..5.bin``, ``test_batch.bin``) in ``root``."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"cifar10: folder {str(root)!r} does not exist; set data.root to the "
                        "folder with data_batch_*.bin (the 'binary version' of CIFAR-10)")
    mean = torch.tensor(_CIFAR_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(_CIFAR_STD).view(1, 3, 1, 1)
    out = []
    for split, names in (("train", [f"data_batch_{i}.bin" for i in range(1, 6)]), ("test", ["test_batch.bin"])):
        parts = [read_cifar10_bin(_find(root, [n], "cifar10")) for n in names]
        x = torch.from_numpy(np.concatenate([p[0] for p in parts]).astype(np.float32) / 255.0)
        y = torch.from_numpy(np.concatenate([p[1] for p in parts]))
        out.append(TensorData(((x - mean) / std).contiguous(), y, "classification", 10, f"cifar10/{split}"))
    return out[0], out[1]


def _materialise(ds: Any, name: str, task: str | None, workers: int = 2,
                 num_classes: int | None = None) -> TensorData | StreamedData:
    if isinstance(ds, (TensorData, StreamedData)):
        return ds
    if isinstance(ds, torch.utils.data.Dataset) and hasattr(ds, "__len__") and hasattr(ds, "__getitem__"):
        # any map-style data set: streamed in batches (read into memory only when it fits the device budget)
        classes, targets = getattr(ds, "classes", None), getattr(ds, "targets", None)
        ncls = num_classes or (len(classes) if classes is not None else None)
        out = StreamedData(ds, task, ncls, name, workers)
        if out.task == "classification" and out.num_classes is None:  # from the targets, or one pass over them
            labels = targets if targets is not None else [ds[i][1] for i in range(len(ds))]
            out.num_classes = int(torch.as_tensor(np.asarray(labels)).max()) + 1
        return out
    if not hasattr(ds, "__getitem__") and hasattr(ds, "__iter__") and not isinstance(ds, (tuple, list)):
        ds = list(ds)  # an iterable of (x, y) pairs: read once
    if isinstance(ds, (tuple, list)) and len(ds) == 2 and all(isinstance(t, (torch.Tensor, np.ndarray)) for t in ds):
        x, y = (torch.as_tensor(t) for t in ds)
    else:
        try:
            items = [ds[i] for i in range(len(ds))]
        except Exception as exc:  # noqa: BLE001 - user data sets raise anything
            raise DataError(f"{name}: expected (x, y) tensors or a map-style data set of (x, y) pairs; {exc}") from exc
        x = torch.stack([torch.as_tensor(np.asarray(a)) for a, _ in items])
        y = torch.as_tensor(np.asarray([np.asarray(b) for _, b in items]))
    if x.shape[0] != y.shape[0]:
        raise DataError(f"{name}: {x.shape[0]} inputs but {y.shape[0]} targets")
    task = task or ("classification" if not y.is_floating_point() else "regression")
    x = x.float()
    y = y.long() if task == "classification" else y.float()
    ncls = int(y.max()) + 1 if task == "classification" and len(y) else None
    return TensorData(x.contiguous(), y.contiguous(), task, ncls, name)


def torchvision_data(dataset: str, root: str | Path, **kwargs: Any) -> tuple[TensorData, TensorData]:
    """A torchvision data set class by name (e.g. ``FashionMNIST``) read from ``root`` (no download)."""
    tv = require("torchvision")
    cls = getattr(tv.datasets, dataset, None)
    if cls is None:
        raise DataError(f"torchvision has no data set {dataset!r}")
    tt = tv.transforms.ToTensor()
    out = []
    for train in (True, False):
        ds = cls(str(root), train=train, download=False, transform=tt, **kwargs)
        out.append(_materialise(ds, f"{dataset}/{'train' if train else 'test'}", "classification"))
    return out[0], out[1]


def _user(ref: str, task: str | None, workers: int = 2, num_classes: int | None = None,
          **kwargs: Any) -> tuple[TensorData, TensorData]:
    try:
        fn: Callable[..., Any] = load_callable(ref)
    except ModelError as exc:
        raise DataError(str(exc)) from exc
    return tuple(_materialise(fn(split=s, **kwargs), f"{ref}/{s}", task, workers, num_classes)  # type: ignore
                 for s in ("train", "test"))


def image_folder(root: str, resize: int | None = None, crop: int | None = None, mean: Any = None, std: Any = None,
                 workers: int = 2) -> tuple[StreamedData, StreamedData]:
    """An image folder in the ImageNet layout: ``root/train/CLASS/*.jpg`` and ``root/val/CLASS/*.jpg`` (or
    ``test``); a folder of class sub-folders alone is both splits. Streamed, decoded with Pillow.

    Example:
        >>> image_folder.__name__  # tested with generated JPEG folders in tests/core/test_streams.py
        'image_folder'
    """
    base = Path(root)
    splits = {s: base / s for s in ("train", "val", "test") if (base / s).is_dir()}
    test_dir = splits.get("val") or splits.get("test") or base
    train_dir = splits.get("train") or test_dir
    out = []
    for label, folder in (("train", train_dir), ("test", test_dir)):
        ds = ImageFolder(folder, resize, crop, mean, std)
        out.append(StreamedData(ds, "classification", len(ds.classes), f"imagefolder/{label}", workers))
    return out[0], out[1]


def arrays(x: str | None = None, y: str | None = None, train_x: str | None = None, train_y: str | None = None,
           task: str | None = None, num_classes: int | None = None, workers: int = 2
           ) -> tuple[StreamedData, StreamedData]:
    """Inputs and targets from arrays read by slices (``x.npy`` memory-mapped, ``f.npz:key``, ``f.h5:/x``):
    ``x``/``y`` are evaluated on, ``train_x``/``train_y`` (default: the same) trained on.

    Example:
        >>> arrays.__name__  # tested with .npy, .npz and .h5 files in tests/core/test_streams.py
        'arrays'
    """
    if not x or not y:
        raise DataError("arrays: set data.kwargs.x and data.kwargs.y (file.npy, file.npz:key or file.h5:/name)")
    out = []
    for label, (a, b) in (("train", (train_x or x, train_y or y)), ("test", (x, y))):
        pair = ArrayPair(a, b)
        t = task or ("regression" if pair.y_float else "classification")
        ncls = num_classes
        if t == "classification" and ncls is None:
            ncls = int(pair.read(0, len(pair))[1].max()) + 1
        out.append(StreamedData(pair, t, ncls, f"arrays/{label}", workers))
    return out[0], out[1]


def _text(name: str) -> Callable[..., tuple[TensorData, TensorData]]:
    def load(root: str | None = None, **kwargs: Any) -> tuple[TensorData, TensorData]:
        train, test, vocab = text_windows(name, root, **kwargs)
        return tuple(TensorData(w[:, :-1].contiguous(), w[:, 1:].contiguous(), "language", vocab, f"{name}/{label}")
                     for w, label in ((train, "train"), (test, "test")))  # type: ignore[return-value]
    load.__doc__ = f"next-token windows of {name} (see landscape.core.text)"
    return load


DATASETS: dict[str, Callable[..., tuple[TensorData, TensorData]]] = {
    "digits": digits, "spiral": spiral, "sine": sine, "mnist": mnist, "cifar10": cifar10,
    **{name: _text(name) for name in TEXT_DATASETS},
    "imagefolder": image_folder, "arrays": arrays,
}


def load_data(name: str, root: str | None = None, task: str | None = None,
              **kwargs: Any) -> tuple[TensorData, TensorData]:
    """Load ``(train, test)`` by name: a built-in, ``torchvision:Name`` or ``module:callable``.

    A user callable is called as ``fn(split="train"|"test", **kwargs)`` and returns
    ``(x, y)`` tensors or a map-style data set of pairs.

    Example:
        >>> tr, te = load_data("spiral", n_per_class=50)
        >>> tr.x.shape[1], tr.num_classes
        (2, 3)
    """
    if name.startswith("torchvision:"):
        if root is None:
            raise DataError(f"{name}: set data.root to the folder holding the data set (nothing is downloaded)")
        return torchvision_data(name.split(":", 1)[1], root, **kwargs)
    if ":" in name:
        return _user(name, task, **kwargs)
    if name not in DATASETS:
        raise DataError(f"unknown data set {name!r}; expected one of {sorted(DATASETS)}, "
                        "'torchvision:Name' or 'package.module:callable'")
    if name in ("text", "tokens", "imagefolder"):
        if name == "imagefolder" and root is None:
            raise DataError("imagefolder: set data.root to the folder of class sub-folders (or of train/ and val/)")
        kwargs["root"] = root
    if name == "arrays" and task is not None:
        kwargs["task"] = task
    if name in ("mnist", "cifar10"):
        if root is None:
            raise DataError(f"{name}: set data.root to a local folder with the standard files (nothing is downloaded)")
        kwargs["root"] = root
    try:
        return DATASETS[name](**kwargs)
    except TypeError as exc:
        raise DataError(f"data set {name!r} does not accept {kwargs}: {exc}") from exc
