"""Error hierarchy of landscape.

Every error a user can cause derives from :class:`LandscapeError`; messages say
what was expected, what was given and what to do.

Example:
    >>> try:
    ...     raise ConfigError(["train.epochs: expected an integer >= 1, got 0"])
    ... except LandscapeError as exc:
    ...     print(exc)
    invalid configuration (1 problem):
      - train.epochs: expected an integer >= 1, got 0
"""
from __future__ import annotations

import importlib
import contextlib
import signal
import threading
from types import ModuleType
from typing import Iterable, Iterator

__all__ = [
    "LandscapeError",
    "ConfigError",
    "DataError",
    "ModelError",
    "CheckpointError",
    "StoreError",
    "DependencyError",
    "Interrupted",
    "EXIT_INTERRUPTED",
    "interruptible",
    "check_interrupted",
    "interrupt_pending",
    "stop_signals_ignored",
    "require",
]

#: exit status of a run stopped by SIGTERM/SIGUSR1 after saving its results (BSD EX_TEMPFAIL: "try again");
#: the sbatch scripts requeue the job when they see it
EXIT_INTERRUPTED = 75


class LandscapeError(Exception):
    """Base class of every error raised for bad input or a bad environment."""


class ConfigError(LandscapeError):
    """One or more configuration problems, all reported at once."""

    def __init__(self, problems: Iterable[str] | str):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        n = len(self.problems)
        head = f"invalid configuration ({n} problem{'s' if n != 1 else ''}):"
        super().__init__("\n".join([head] + [f"  - {p}" for p in self.problems]))


class DataError(LandscapeError):
    """A data set could not be found, read or subset."""


class ModelError(LandscapeError):
    """A model name, factory or its arguments are wrong."""


class CheckpointError(LandscapeError):
    """A checkpoint is missing, unreadable or does not fit the model."""


class StoreError(LandscapeError):
    """An HDF5 store is missing, corrupted, or does not match the request."""


class DependencyError(LandscapeError, ImportError):
    """An optional dependency is missing; the message names the pip extra."""


class Interrupted(LandscapeError):
    """SIGTERM/SIGUSR1 arrived; results so far were saved and rerunning the same command resumes.
    The command line exits with :data:`EXIT_INTERRUPTED`."""


_SIGNAL: dict[str, int | None] = {"depth": 0, "signum": None}


def _interrupted(signum: int) -> Interrupted:
    return Interrupted(f"received signal {signal.Signals(signum).name}; results so far are saved, "
                       "rerun the same command to resume")


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """Turn SIGTERM and SIGUSR1 (Slurm's time-limit warning, ``--signal=USR1@N``) into :class:`Interrupted`
    raised in the main thread; in other threads it changes nothing. The signal is also remembered until the
    outermost block ends, so :func:`check_interrupted` raises it again where Python swallowed the first raise
    (a signal that lands inside a finaliser or a weakref callback).

    Example:
        >>> import os
        >>> with interruptible():
        ...     try:
        ...         os.kill(os.getpid(), signal.SIGUSR1)
        ...     except Interrupted as exc:
        ...         print(str(exc).split(";")[0])
        received signal SIGUSR1
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: object) -> None:
        _SIGNAL["signum"] = signum
        raise _interrupted(signum)

    with _stop_signals_to(handler):
        _SIGNAL["depth"] += 1
        try:
            yield
        finally:
            _SIGNAL["depth"] -= 1
            if not _SIGNAL["depth"]:
                _SIGNAL["signum"] = None


@contextlib.contextmanager
def _stop_signals_to(handler: object) -> Iterator[None]:
    """Send SIGTERM and SIGUSR1 to ``handler`` inside the block (main thread only), then restore."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGUSR1)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def stop_signals_ignored() -> contextlib.AbstractContextManager:
    """SIGTERM and SIGUSR1 change nothing inside the block (the end of a run that has already saved).

    Example:
        >>> import os
        >>> with stop_signals_ignored():
        ...     os.kill(os.getpid(), signal.SIGTERM)
        >>> "still here"
        'still here'
    """
    return _stop_signals_to(lambda *_: None)


def interrupt_pending() -> bool:
    """True once SIGTERM/SIGUSR1 arrived inside :func:`interruptible` (for worker threads, which cannot raise
    it themselves)."""
    return _SIGNAL["signum"] is not None


def check_interrupted() -> None:
    """Raise :class:`Interrupted` if a signal arrived inside :func:`interruptible` (long loops call this, so a
    raise that Python swallowed still stops the run).

    Example:
        >>> check_interrupted()  # nothing arrived
    """
    if interrupt_pending():
        raise _interrupted(_SIGNAL["signum"])


_EXTRAS = {
    "mpi4py": "mpi",
    "vtk": "vtk",
    "matplotlib": "plot",
    "torchvision": "vision",
}


def require(module: str, extra: str | None = None) -> ModuleType:
    """Import an optional dependency or raise :class:`DependencyError` naming the extra.

    Example:
        >>> require("json").__name__
        'json'
    """
    try:
        return importlib.import_module(module)
    except (ImportError, RuntimeError, OSError) as exc:  # torchvision raises RuntimeError on a CUDA/CPU mismatch
        top = module.split(".")[0]
        extra = extra or _EXTRAS.get(top)
        hint = f'pip install "landscape[{extra}]"' if extra else f"pip install {top}"
        raise DependencyError(
            f"optional dependency '{module}' is not usable here ({type(exc).__name__}: {exc}); "
            f"install it with: {hint}"
        ) from exc
