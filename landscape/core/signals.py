"""Stop signals: SIGTERM and SIGUSR1 (Slurm's time-limit warning) turned into :class:`Interrupted`, and
Ctrl-C (SIGINT) into ``KeyboardInterrupt``, each remembered so that a raise Python swallowed is raised again.

Long loops call :func:`check_interrupted`; worker threads, which cannot raise in the main thread, poll
:func:`interrupt_pending`. The end of a run that has already saved ignores them
(:func:`stop_signals_ignored`).

Example:
    >>> with interruptible():
    ...     interrupt_pending()
    False
"""
from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator

from .errors import Interrupted

__all__ = ["interruption_in", "interruptible", "check_interrupted", "interrupt_pending", "stop_signals_ignored", "deferred"]


_SIGNAL: dict[str, int | None] = {"depth": 0, "signum": None}


def interruption_in(exc: BaseException | None, kinds: tuple[type[BaseException], ...] = (Interrupted,)
                    ) -> BaseException | None:
    """The :class:`Interrupted` behind ``exc``, if a signal caused it: the handler raises wherever the main thread
    is, and a library running Python callbacks (h5py iterating attributes, say) may report it as its own error
    (``SystemError: ... returned a result with an exception set``) with the interruption as the cause. ``kinds``:
    what counts (``KeyboardInterrupt`` for Ctrl-C).

    Example:
        >>> try:
        ...     try:
        ...         raise Interrupted("received signal SIGUSR1")
        ...     except Interrupted as inner:
        ...         raise SystemError("returned a result with an exception set") from inner
        ... except SystemError as outer:
        ...     str(interruption_in(outer))
        'received signal SIGUSR1'
    """
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, kinds):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def _interrupted(signum: int) -> BaseException:
    if signum == signal.SIGINT:
        return KeyboardInterrupt()
    return Interrupted(f"received signal {signal.Signals(signum).name}; results so far are saved, "
                       "rerun the same command to resume")


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """Turn SIGTERM and SIGUSR1 (Slurm's time-limit warning, ``--signal=USR1@N``) into :class:`Interrupted`
    raised in the main thread, and SIGINT into ``KeyboardInterrupt``; in other threads it changes nothing. The
    signal is also remembered until the outermost block ends, so :func:`check_interrupted` raises it again where
    Python swallowed the first raise (a signal that lands inside a finaliser or a weakref callback).

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

    with _stop_signals_to(handler, (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)):
        _SIGNAL["depth"] += 1
        try:
            yield
        finally:
            _SIGNAL["depth"] -= 1
            if not _SIGNAL["depth"]:
                _SIGNAL["signum"] = None


@contextlib.contextmanager
def _stop_signals_to(handler: object, signals: tuple[int, ...] = (signal.SIGTERM, signal.SIGUSR1)
                     ) -> Iterator[None]:
    """Send ``signals`` (SIGTERM and SIGUSR1) to ``handler`` inside the block (main thread only), then restore."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {s: signal.signal(s, handler) for s in signals}
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
    """True once SIGTERM/SIGUSR1/SIGINT arrived inside :func:`interruptible` (for worker threads, which cannot
    raise it themselves)."""
    return _SIGNAL["signum"] is not None


def check_interrupted() -> None:
    """Raise :class:`Interrupted` (``KeyboardInterrupt`` for SIGINT) if a signal arrived inside
    :func:`interruptible` (long loops call this, so a raise that Python swallowed still stops the run).

    Example:
        >>> check_interrupted()  # nothing arrived
    """
    if interrupt_pending():
        raise _interrupted(_SIGNAL["signum"])


@contextlib.contextmanager
def deferred(raise_after: bool = True) -> Iterator[None]:
    """Inside :func:`interruptible`, hold SIGTERM/SIGUSR1 until the block ends, then raise :class:`Interrupted`
    (``raise_after``; otherwise the signal stays pending for the next :func:`check_interrupted`): for writes that
    must not be cut in half (an HDF5 dataset resized but not yet filled, a file being closed). Nested blocks
    leave the decision to the outermost. Elsewhere, and in other threads, it changes nothing.

    Example:
        >>> import os
        >>> with interruptible():
        ...     try:
        ...         with deferred():
        ...             os.kill(os.getpid(), signal.SIGTERM)
        ...             print("the write ends")
        ...     except Interrupted:
        ...         print("then the signal stops the run")
        the write ends
        then the signal stops the run
    """
    if threading.current_thread() is not threading.main_thread() or not _SIGNAL["depth"] or _SIGNAL.get("held"):
        yield
        return

    def hold(signum: int, _frame: object) -> None:
        _SIGNAL["signum"] = signum

    _SIGNAL["held"] = 1
    try:
        with _stop_signals_to(hold, (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)):
            yield
    finally:
        _SIGNAL["held"] = 0
    if raise_after:
        check_interrupted()
