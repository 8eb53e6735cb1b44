"""What every subcommand shares: the registry that pairs each subcommand's arguments with its handler, the
common flags, and turning flags into ``key=value`` job overrides.

Example:
    >>> import argparse
    >>> overrides(argparse.Namespace(overrides=["train.lr=0.1"], epochs=3, model="mlp"), FLAGS)
    ['train.lr=0.1', 'model.name="mlp"', 'train.epochs=3']
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from dataclasses import dataclass, field
from typing import Any, Callable

__all__ = ["Command", "COMMANDS", "command", "common_flags", "job_flags", "overrides", "FLAGS", "progress",
           "is_root"]


@dataclass
class Command:
    """One subcommand: its help texts, the function that declares its arguments and the handler that runs it
    (returning the exit status)."""

    name: str
    help: str
    arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    parser_kwargs: dict[str, Any] = field(default_factory=dict)


COMMANDS: dict[str, Command] = {}


def command(name: str, arguments: Callable[[argparse.ArgumentParser], None] = lambda p: None,
            **parser_kwargs: Any) -> Callable[[Callable[[argparse.Namespace], int]], Callable[[argparse.Namespace],
                                                                                            int]]:
    """Register the decorated handler as subcommand ``name`` with the arguments ``arguments`` declares. The
    handler's docstring gives the help: its first line in ``landscape --help``, the rest as the command's
    description. ``parser_kwargs`` go to ``add_parser`` (epilog, formatter_class).

    Example:
        >>> @command("hello")
        ... def hello(args):
        ...     '''say hello
        ...
        ...     Prints a greeting.
        ...     '''
        ...     return 0
        >>> COMMANDS.pop("hello").parser_kwargs["description"]
        'Prints a greeting.'
    """
    def register(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
        first, _, rest = (run.__doc__ or name).strip().partition("\n")
        description = " ".join(line.strip() for line in rest.splitlines() if line.strip())
        COMMANDS[name] = Command(name, first.strip(), arguments, run,
                                 {"description": description or None, **parser_kwargs})
        return run
    return register


def common_flags(p: argparse.ArgumentParser) -> None:
    """Overrides, ``--output``, ``--device`` and ``--no-progress``: the flags of every command that runs a job."""
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="config overrides, e.g. train.epochs=5 model.kwargs.depth=5 data.root=/data/mnist")
    p.add_argument("--output", "-o", help="output folder (job.output)")
    p.add_argument("--device", help="auto, cpu, cuda or cuda:N (evaluate.device)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def job_flags(p: argparse.ArgumentParser) -> None:
    """``--job`` and the model and data flags of the commands that build a model."""
    p.add_argument("--job", help="TOML job file to start from (default: built-in defaults)")
    p.add_argument("--model", help="model name or module:callable (model.name)")
    p.add_argument("--data", help="data set name (data.name)")
    p.add_argument("--root", help="local folder of the data set files (data.root)")


#: flag attribute -> job key, for the flags most commands share
FLAGS = {"output": "output", "device": "evaluate.device", "model": "model.name", "data": "data.name",
         "root": "data.root", "epochs": "train.epochs", "lr": "train.lr", "optimizer": "train.optimizer",
         "batch_size": "train.batch_size", "seed": "train.seed", "split": "evaluate.split"}


def overrides(args: argparse.Namespace, mapping: dict[str, str]) -> list[str]:
    """The command's ``KEY=VALUE`` overrides followed by one per flag given (``mapping``: attribute -> key)."""
    extra = [f"{key}={json.dumps(v) if isinstance(v, str) else v}" for attr, key in mapping.items()
             if (v := getattr(args, attr, None)) is not None]
    return list(getattr(args, "overrides", [])) + extra


def out_file(args: argparse.Namespace, key: str) -> list[str]:
    """The overrides of ``--out FILE`` (``key``: the section's output, e.g. ``surface.output``), alike for every
    command: the file is written where given, and the job's folder (``--output``, the job's ``[job] output``) is
    still where the trajectory and the other inputs are found. With neither a job nor ``--output``, FILE's folder
    is the output folder (nothing else is created).

    Example:
        >>> out_file(argparse.Namespace(out="/r/s.h5", job=None, output=None), "surface.output")
        ['output="/r"', 'surface.output="/r/s.h5"']
    """
    if not getattr(args, "out", None):
        return []
    path = Path(args.out).absolute()
    in_job = getattr(args, "job", None) or getattr(args, "output", None)
    over = [] if in_job else [f"output={json.dumps(str(path.parent))}"]
    return over + [f"{key}={json.dumps(str(path))}"]


def progress(args: argparse.Namespace) -> bool:
    """Progress bars unless ``--no-progress``."""
    return not getattr(args, "no_progress", False)


def is_root(comm: Any | None) -> bool:
    """True on rank 0 of an MPI run, and in a serial run: the process that reports."""
    return comm is None or comm.Get_rank() == 0
