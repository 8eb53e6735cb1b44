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

from typing import Iterable

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
