"""``evaluate.compile``: settle once per run, on every rank alike, whether grid points are evaluated compiled.

``true`` compiles (the evaluator was built so), ``false`` never does, and ``"auto"`` decides before the first point
is stored (:mod:`landscape.engine.compile_choice`): rank 0 times and estimates, every rank compiles when a trial
is worth it, rank 0 times the compiled forward against the eager one and every rank keeps its choice. A file that
already holds points was computed one way, recorded in its inputs (``compile``): a resumed run takes that way and
measures nothing, so that every value of a file comes from one way.

Example:
    >>> parse_compile("auto"), parse_compile(True), parse_compile("false")
    ('auto', True, False)
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable

from ..core.errors import ConfigError
from ..engine.compile_choice import cannot_compile, estimate_compile, trial_compile
from ..io.hdf5 import recorded_inputs
from .mpi import on_root, share

__all__ = ["parse_compile", "settle_compile"]

log = logging.getLogger(__name__)


def parse_compile(value: Any) -> bool | str:
    """``evaluate.compile`` as True, False or ``"auto"``.

    Example:
        >>> try:
        ...     parse_compile("yes")
        ... except ConfigError as exc:
        ...     print(exc.problems[0])
        evaluate.compile: expected true, false or "auto", got 'yes'
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("auto", "true", "false"):
        return {"auto": "auto", "true": True, "false": False}[value.lower()]
    raise ConfigError(f'evaluate.compile: expected true, false or "auto", got {value!r}')


def settle_compile(setting: Any, plane: Any, make_plane: Callable[[], Any], points: int, comm: Any | None = None,
                   path: str | Path | None = None) -> Any:
    """The plane to evaluate a grid with: ``plane`` (eager, as built) or a compiled one from ``make_plane()``.

    ``setting`` is ``evaluate.compile``; ``points`` the points this rank will compute; ``path`` the file the
    points go to: when it exists, the way it was started (its inputs' ``compile``) is taken and nothing is
    measured. Every rank calls it.
    """
    if parse_compile(setting) != "auto" or plane.ev.compile:
        return plane
    ev = plane.ev
    tables, layer = ev.input_tables, ev.input_tables_layer

    def eager() -> Any:
        ev.set_compile(False)
        ev.input_tables, ev.input_tables_layer = tables, layer
        return plane

    stored = on_root(comm, lambda: recorded_inputs(path) if path is not None else None)
    if comm is not None:
        stored = share(comm, stored)
    if stored is not None:  # the way the file was started
        if stored.get("compile"):
            log.info("compile: on, as the file's points are computed")
            return trial_compile(plane, make_plane, measure=False)[0]
        return plane
    why = cannot_compile(ev)
    if why is not None:
        log.debug("compile: not tried (%s)", why)
        return plane
    root = comm is None or comm.Get_rank() == 0
    estimate = estimate_compile(plane, points) if root else None
    trying = estimate is not None and estimate.worth_trying()
    if estimate is not None:
        log.info("compile: %s%s", estimate.describe(), "; trying it" if trying else "; not tried")
    if comm is not None:
        trying = share(comm, trying)
    if not trying:
        return plane
    try:
        chosen, report = trial_compile(plane, make_plane, estimate.seconds_per_point if root else 0.0,
                                       measure=root)
    except Exception as exc:  # an inductor or C++ failure: the eager forward is as good as it was
        log.warning("compile: compiling the forward failed (%s); evaluating eagerly", str(exc).splitlines()[0][:200])
        chosen, report = eager(), {"kept": False, "failed": True}
    keep = bool(report.get("kept", True))
    if comm is not None:
        agreed = share(comm, keep)
        if not root and chosen is plane and agreed:  # this rank failed to compile what rank 0 keeps
            raise ConfigError("compile: this rank could not compile the forward that rank 0 compiled; set "
                              "evaluate.compile = false")
        keep = agreed
    if root:
        log.info("compile: compiled in %.1f s (%d graph(s)), %s eager: %s",
                 report.get("compile_seconds", float("nan")), report.get("graphs", 0),
                 "—" if report.get("speedup") is None else f"{report['speedup']:.2f}x",
                 "kept" if keep else "not kept")
    return chosen if keep else eager()
