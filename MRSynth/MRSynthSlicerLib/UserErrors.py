"""How the panel reports a failure: errors the user can fix as one line, bugs with Slicer's traceback.

An ``MRSynthError`` (a missing input, output = input, a declined install, a failed background run…)
says what to change, so it becomes one line in the panel's log box and a warning dialog, without a
traceback. Anything else is a bug: ``slicer.util.tryWithErrorDisplay`` shows it with its details and
lets it propagate, as Slicer's own modules do.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import slicer


@dataclass
class Outcome:
    """What a reported block ended with: ``error`` is the user error's line, None when it succeeded."""

    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def reportUserError(what: str, error: str, log: Callable[[str], None]) -> None:
    """One line in the panel's log box and a warning dialog (no traceback)."""
    line = f"{what}: {error}"
    log(line)
    slicer.util.warningDisplay(line, windowTitle="MRSynth")


@contextlib.contextmanager
def reportErrors(what: str, log: Callable[[str], None], waitCursor: bool = False) -> Iterator[Outcome]:
    """Run a panel action; a user error is reported by :func:`reportUserError` and swallowed (check
    ``outcome.ok``), an unexpected exception goes through ``tryWithErrorDisplay`` and is re-raised."""
    from MRSynthLib.errors import MRSynthError

    outcome = Outcome()
    with slicer.util.tryWithErrorDisplay(f"{what}: unexpected error.", waitCursor=waitCursor):
        try:
            yield outcome
        except MRSynthError as err:
            outcome.error = str(err)
    if outcome.error is not None:  # after the wait cursor is restored
        reportUserError(what, outcome.error, log)
