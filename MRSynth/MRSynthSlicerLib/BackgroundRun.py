"""One Apply of the panel: the request frozen when it starts, its background process and work folder.

The selectors stay live while the process runs (the user may look at other volumes), so everything
the result depends on — inputs, first input (the output's geometry), output, reference, mask — is
taken once, at the start, and the result is written with exactly that. The work folder is removed
whatever the end: finished, failed, cancelled, scene closed or module reloaded.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import replace


class BackgroundRun:
    """Starts ``logic.startBackground`` for a request; polls, cancels, loads and cleans up."""

    def __init__(self, logic, request) -> None:
        """``request``: the panel's :class:`MRSynthLib.request.SynthesisRequest` (nodes) when Apply was pressed."""
        self.request = request
        self._logic = logic
        self.workdir: str | None = tempfile.mkdtemp(prefix="MRSynth-")
        try:
            self.process = logic.startBackground(request, self.workdir)
        except BaseException:
            self.close()
            raise

    def poll(self):
        return self.process.poll()

    def load(self):
        """The finished result, written into the output taken at the start (never an input)."""
        r = self.request
        if r.output is not None and r.output.GetScene() is None:  # deleted meanwhile: a new node
            r = replace(r, output=None)
        return self._logic.loadResult(self.process, r)

    def cancel(self) -> None:
        """Kill the process tree (nothing is written) and remove the work folder."""
        self.process.cancel()
        self.close()

    def close(self) -> None:
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None
