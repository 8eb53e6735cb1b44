"""Token sequences for language models (the ``language`` task), with nothing downloaded.

- ``pytext``: a byte-level corpus made of the Python standard library's own source files (every Python
  installation has them), so language jobs run anywhere;
- ``text``: a user text file (``data.root``), byte-level (vocabulary 256);
- ``tokens``: a user ``.npy`` of token ids (``data.root``, memory-mapped: only the windows taken are read), with
  the vocabulary given as ``vocab`` or taken as the largest id + 1.

A token stream is cut into windows of ``context + 1`` tokens at a fixed stride; windows are shuffled with
``seed`` and split into train and test. Inputs are the first ``context`` tokens (N, T), targets the next token at
every position (N, T): the model learns next-token prediction.

Example:
    >>> train, test, vocab = text_windows("pytext", context=32, n_train=64, n_test=16)
    >>> tuple(train.shape), tuple(test.shape), vocab
    ((64, 33), (16, 33), 256)
"""
from __future__ import annotations

import sysconfig
from pathlib import Path

import numpy as np
import torch

from .errors import DataError

__all__ = ["text_windows", "stdlib_corpus", "windows", "TEXT_DATASETS"]

TEXT_DATASETS = ("pytext", "text", "tokens")


def stdlib_corpus(max_bytes: int = 4_000_000) -> np.ndarray:
    """The first ``max_bytes`` bytes of the standard library's top-level ``*.py`` files in sorted order (the
    same bytes for the same Python release), as uint8 token ids.

    Example:
        >>> stdlib_corpus(1000).dtype, len(stdlib_corpus(1000))
        (dtype('uint8'), 1000)
    """
    lib = Path(sysconfig.get_paths()["stdlib"])
    chunks, size = [], 0
    for path in sorted(lib.glob("*.py")):
        data = path.read_bytes()
        chunks.append(data)
        size += len(data)
        if size >= max_bytes:
            break
    if not chunks:
        raise DataError(f"no Python source files found in {lib}; use data.name = 'text' with your own file")
    return np.frombuffer(b"".join(chunks)[:max_bytes], dtype=np.uint8)


def windows(stream: np.ndarray, context: int, count: int, seed: int) -> torch.Tensor:
    """``count`` windows of ``context + 1`` tokens from ``stream``, at a stride of ``context`` (non-overlapping
    targets), chosen with ``seed`` (order shuffled), as int64 (count, context + 1). Only those windows are read
    from a memory-mapped stream.

    Example:
        >>> windows(np.arange(10), 3, 2, 0).tolist()
        [[6, 7, 8, 9], [0, 1, 2, 3]]
    """
    starts = np.arange(0, len(stream) - context, context)
    if count > len(starts):
        raise DataError(f"the token stream of {len(stream):,} tokens holds {len(starts):,} windows of "
                        f"{context + 1} tokens; asked for {count:,} (lower n_train/n_test or context; "
                        "n_train = 0 leaves the training split empty, for a surface or path on the test split)")
    pick = np.random.default_rng(seed).permutation(len(starts))[:count]
    return torch.from_numpy(np.stack([np.asarray(stream[s:s + context + 1], dtype=np.int64) for s in starts[pick]]))


def text_windows(name: str, root: str | None = None, context: int = 64, n_train: int = 2048, n_test: int = 256,
                 seed: int = 0, vocab: int | None = None, max_bytes: int = 4_000_000
                 ) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Train and test windows (int64, (n, context + 1)) of ``pytext``, a ``text`` file or a ``tokens`` ``.npy``
    file, and the vocabulary size. ``n_train = 0``: no training windows (a file too short for both splits can
    still be evaluated on)."""
    if context < 1 or n_train < 0 or n_test < 1:
        raise DataError(f"{name}: expected context >= 1, n_train >= 0 (0: the test split alone) and n_test >= 1, got "
                        f"{context}, {n_train}, {n_test}")
    if name == "pytext":
        stream, v = stdlib_corpus(max_bytes), 256
    elif name in ("text", "tokens"):
        if root is None or not Path(root).is_file():
            raise DataError(f"{name}: set data.root to the {'text file' if name == 'text' else '.npy file of token ids'}"
                            f" to read, got {root!r}")
        if name == "text":
            stream, v = np.fromfile(root, dtype=np.uint8), 256
        else:
            stream = np.load(root, mmap_mode="r")
            if stream.ndim != 1 or stream.dtype.kind not in "iu":
                raise DataError(f"{root}: expected a 1-D array of integer token ids, got {stream.dtype} "
                                f"{stream.shape}")
            v = int(vocab) if vocab else int(stream.max()) + 1
    else:
        raise DataError(f"unknown text data set {name!r}; expected one of {list(TEXT_DATASETS)}")
    w = windows(stream, context, n_train + n_test, seed)
    if int(w.max()) >= v or int(w.min()) < 0:
        raise DataError(f"{name}: token ids must lie in [0, {v}); found {int(w.min())}..{int(w.max())} "
                        "(set data.kwargs.vocab)")
    return w[:n_train], w[n_train:], v
