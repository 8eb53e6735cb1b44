"""The ``landscape`` command: a thin layer over the Python API. Each subcommand is one small handler beside
the declaration of its arguments (:mod:`.jobs`, :mod:`.compute`, :mod:`.files`); this module builds the parser,
sets up logging, and turns outcomes into exit statuses on every MPI rank alike.

Example:
    $ landscape demo                         # train LeNet-5 on digits and run every analysis
    $ landscape run jobs/demo.toml train.epochs=5
    $ landscape train --model mlp --data spiral --epochs 20 --out spiral.h5 model.kwargs.depth=5
    $ landscape evaluate spiral.h5:final --model mlp --data spiral model.kwargs.depth=5
    $ landscape info spiral.h5

    >>> build_parser().parse_args(["status", "s.h5"]).command
    'status'
"""
from __future__ import annotations

import argparse
import functools
import gc
import logging
import os
import sys
from typing import Sequence

from ..core.errors import EXIT_INTERRUPTED, LandscapeError
from ..core.signals import check_interrupted, interruptible, interruption_in
from ..core.version import __version__
from ..io.hdf5 import write_failure
from ..run.mpi import abort_if_parallel, check_launcher, exit_together, in_mpi_launch
from .. import _startup_signals
from . import compute, files, jobs  # noqa: F401 - importing registers the subcommands
from .common import COMMANDS

__all__ = ["main", "console", "build_parser"]

log = logging.getLogger("landscape")

#: the order of ``landscape --help``
ORDER = ("demo", "run", "submit", "train", "evaluate", "surface", "path", "curvature", "export", "plot", "project",
         "reduce", "animate", "status", "info", "list")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``landscape`` command."""
    parser = argparse.ArgumentParser(
        prog="landscape", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Loss surfaces, interpolation paths and training trajectories of neural networks.",
        epilog="Job files are TOML (see jobs/); any key can be overridden as section.key=value.\n"
               "Run 'landscape COMMAND --help' for each command's options.")
    parser.add_argument("--version", action="version", version=f"landscape {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    parser.add_argument("-q", "--quiet", action="store_true", default=False, help="only warnings and errors")
    # the same flags after the command name; SUPPRESS keeps the values given before it
    verbosity = argparse.ArgumentParser(add_help=False)
    verbosity.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS,
                           help="more log output (-vv for debug)")
    verbosity.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                           help="only warnings and errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    add = functools.partial(sub.add_parser, parents=[verbosity])
    for name in sorted(COMMANDS, key=lambda n: ORDER.index(n) if n in ORDER else len(ORDER)):
        cmd = COMMANDS[name]
        p = add(name, help=cmd.help, **cmd.parser_kwargs)
        cmd.arguments(p)
        p.set_defaults(handler=cmd.run)
    return parser


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    for i in range(len(argv) - 1):  # "--alpha -1:1:25": a value that starts with '-'
        if argv[i] in ("--alpha", "--beta") and argv[i + 1].startswith("-"):
            argv[i:i + 2] = [f"{argv[i]}={argv[i + 1]}", ""]
    args, extra = parser.parse_known_args([a for a in argv if a != ""])
    bad = [a for a in extra if a.startswith("-") or "=" not in a]
    if bad or (extra and not hasattr(args, "overrides")):
        parser.error(f"unrecognized arguments: {' '.join(bad or extra)}")
    if extra:
        args.overrides = list(args.overrides) + extra
    return args


def _setup_logging(args: argparse.Namespace) -> None:
    level = logging.WARNING if args.quiet else (logging.INFO if args.verbose < 2 else logging.DEBUG)
    fmt = "%(levelname)s %(name)s: %(message)s"
    if in_mpi_launch():  # rank 0 reports; the other ranks only warn, unless -vv
        rank = int(os.environ.get("PMI_RANK", os.environ.get("OMPI_COMM_WORLD_RANK", os.environ.get("PMIX_RANK", 0))))
        fmt = f"%(levelname)s [rank {rank}] %(name)s: %(message)s"
        if rank != 0 and args.verbose < 2:
            level = max(level, logging.WARNING)
    handler = _StderrHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(fmt))
    logging.basicConfig(level=level, handlers=[handler])


class _StderrHandler(logging.StreamHandler):
    """The command's log on stderr. A stop signal that lands while a line is written stops the command as it
    would anywhere else, instead of being reported (and swallowed) as a "--- Logging error ---"."""

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
        if interruption_in(sys.exc_info()[1]) is not None:
            raise  # noqa: PLE0704 - re-raises the interruption being handled
        super().handleError(record)


def console() -> int:
    """Entry point of the ``landscape`` console script and of ``python -m landscape``: :func:`main` in a process
    of its own, whose modules live as long as it does, so the garbage collector is told not to scan them."""
    gc.freeze()
    try:
        rc = main()
        sys.stdout.flush()
    except BrokenPipeError:  # `landscape status F | head`: the reader has gone; not an error of the command
        rc = 0
    if not _stdout_open():
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second BrokenPipeError at exit
    return rc


def _stdout_open() -> bool:
    try:
        sys.stdout.flush()
        return True
    except (BrokenPipeError, ValueError):
        return False


def main(argv: Sequence[str] | None = None) -> int:
    """The command line, from a Python caller (the tests call it so): ``main(["status", "surface.h5"])``."""
    args = _parse(argv)
    _setup_logging(args)
    try:
        with interruptible():  # SIGTERM/SIGUSR1 anywhere: save, stop, exit EXIT_INTERRUPTED
            _deliver_startup_signals()
            check_launcher()
            rc = args.handler(args)
            check_interrupted()  # a signal Python swallowed (in a finaliser) still ends the command as interrupted
    except KeyboardInterrupt:
        log.error("interrupted; rerun the same command to resume")
        return 130
    except BrokenPipeError:
        raise  # the output's reader has gone (console() ends quietly)
    except Exception as exc:  # noqa: BLE001 - each kind is sorted out by _failure, which re-raises bugs
        rc = _failure(exc)
    # under MPI, no rank ends while another still saves or works alone, and all exit with one status
    return exit_together(rc, timeout=None if rc == 0 else 60)


def _deliver_startup_signals() -> None:
    """A stop signal that arrived while the package was imported (held by ``landscape/__init__``) is raised now,
    under the command's handlers: the command ends as interrupted (75) before it starts any work."""
    if _startup_signals:
        os.kill(os.getpid(), _startup_signals[0])
        check_interrupted()


def _failure(exc: Exception) -> int:
    """The exit status of a command that raised ``exc``, logged; under MPI the other ranks are ended. A signal
    that arrived inside a library's callback comes back wrapped (h5py: ``SystemError``): still an interruption."""
    interrupted = interruption_in(exc)
    if interrupted is not None:  # a requeue (Slurm's warning) is no error: a warning, and status 75
        log.warning("%s", interrupted)
        return EXIT_INTERRUPTED
    if interruption_in(exc, (KeyboardInterrupt,)) is not None:
        log.error("interrupted; rerun the same command to resume")
        return 130
    if isinstance(exc, LandscapeError):
        log.error("%s", exc)
        abort_if_parallel(exc)  # an error on one rank alone must not leave the others waiting
        return 2
    failure = write_failure(exc.filename or "a file", exc) if isinstance(exc, OSError) else None
    if failure is not None:  # a write refused by the file system (full, read-only) outside the stores' checks
        log.error("%s", failure)
        abort_if_parallel(failure)
        return 2
    if in_mpi_launch():  # a bug or a library failure: under MPI, end every rank, not only this one
        log.exception("unexpected error on this rank; ending the whole job", exc_info=exc)
        abort_if_parallel(exc)
    raise exc


if __name__ == "__main__":
    sys.exit(main())
