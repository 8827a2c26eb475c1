"""User-facing errors: one line that names the file and the problem, never a traceback."""

from __future__ import annotations


class MRSynthError(Exception):
    """An error the user can fix; the CLI prints ``str(err)`` and exits with code 2."""

    def __init__(self, message: str, path: str | None = None) -> None:
        self.path = path
        super().__init__(f"{path}: {message}" if path else message)


class CancelledError(MRSynthError):
    """Raised when a progress callback asks to stop; nothing is written."""

    def __init__(self) -> None:
        super().__init__("cancelled by the user")
