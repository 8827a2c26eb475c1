"""A function run in a daemon thread, polled from the main thread by a QTimer.

For panel work that takes seconds but needs no MRML (preparing the live preview, downloading a model):
the main thread reads what it needs from the scene first, starts the worker, and polls ``alive``; Qt keeps
painting meanwhile. The worker's exception is kept and re-raised by ``result()`` on the main thread, where
the panel reports it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable


class WorkerThread:
    """``fn()`` in a daemon thread; ``result()`` returns its value or raises its exception."""

    def __init__(self, fn: Callable[[], object], name: str = "MRSynth worker") -> None:
        self._value, self._error = None, None
        self._thread = threading.Thread(target=self._run, args=(fn,), name=name, daemon=True)
        self._thread.start()

    def _run(self, fn: Callable[[], object]) -> None:
        try:
            self._value = fn()
        except BaseException as exc:  # re-raised on the main thread by result()
            self._error = exc

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def result(self):
        """The function's value (waits for it if still running); its exception is raised here."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value
