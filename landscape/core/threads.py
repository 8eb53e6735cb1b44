"""A stage's CPU thread count fixed by the job, not by how the job was launched.

torch's CPU reductions (the sums behind a bias gradient, a dot product of the Lanczos basis, a batch norm's
statistics) split their work by the number of intra-op threads, and the partial sums round differently for
another count. Training and Hessian products therefore give other bits under ``mpiexec -n 2`` (cores / ranks
threads per rank) or Slurm (``--cpus-per-task``) than in a serial run with all cores. The stages that depend on it
(training, curvature, Hessian directions, curvature maps) run with ``threads`` fixed by the job (``train.threads``,
``curvature.threads``, 2 by default), whatever the launch; ``0`` keeps the launch's count (faster on many cores,
values then depend on it). Evaluations of surfaces and paths do not depend on the thread count.

Example:
    >>> import torch
    >>> before = torch.get_num_threads()
    >>> with fixed_threads(1) as n:
    ...     n, torch.get_num_threads()
    (1, 1)
    >>> torch.get_num_threads() == before
    True
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch

from .errors import ConfigError

__all__ = ["fixed_threads", "threads_pinned", "DEFAULT_STAGE_THREADS"]

DEFAULT_STAGE_THREADS = 2
_PINNED = [0]  # fixed_threads blocks open in this process (any thread): nobody changes the count meanwhile


def threads_pinned() -> bool:
    """Whether a :func:`fixed_threads` block is open anywhere in the process: its stage's values depend on the
    thread count, so nothing may change it (as the end of a distributed grid otherwise does).

    Example:
        >>> with fixed_threads(1):
        ...     threads_pinned()
        True
        >>> threads_pinned()
        False
    """
    return _PINNED[0] > 0


@contextlib.contextmanager
def fixed_threads(threads: int) -> Iterator[int]:
    """Run the block with ``threads`` torch intra-op threads (``0``: leave the current count), restoring the count
    afterwards; yields the count in use.

    Example:
        >>> with fixed_threads(0) as n:
        ...     n == torch.get_num_threads()
        True
    """
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
        raise ConfigError(f"threads: expected a whole number >= 0 (0: the launch's count), got {threads!r}")
    before = torch.get_num_threads()
    if threads and threads != before:
        torch.set_num_threads(threads)
    _PINNED[0] += 1
    try:
        yield torch.get_num_threads()
    finally:
        _PINNED[0] -= 1
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)
