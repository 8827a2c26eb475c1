"""The background synthesis process: ``mrsynth synthesize`` in its own process group, polled, cancellable.

Slicer's UI must never freeze and Cancel must really stop the work, so the whole volume runs in a
separate process (PythonSlicer running :mod:`MRSynthLib.cli`). The panel talks to it only through
:class:`ProcessProtocol` (as SlicerNNUnet does), so the logic can be tested with the real CLI here and
any other runner (a fake, a remote worker) can replace it. Progress comes from the CLI's tqdm bar on
stderr; cancel kills the whole process tree; the CLI writes atomically, so a cancelled run leaves no
output file.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

from .errors import MRSynthError
from .request import SynthesisRequest
from .volume import Volume

_PERCENT = re.compile(r"(\d{1,3})%\|")


@dataclass
class ProcessStatus:
    """What one poll learned: state is idle, running, finished, failed or cancelled."""

    state: str = "idle"
    percent: int | None = None
    log: list[str] = field(default_factory=list)  # new lines since the previous poll
    error: str | None = None


class ProcessProtocol(Protocol):
    """What the panel needs from whatever runs a synthesis in the background."""

    def start(self, request: SynthesisRequest[str]) -> None: ...

    def poll(self) -> ProcessStatus: ...

    def cancel(self) -> None: ...

    def result(self) -> Volume: ...

    def uncertainty(self) -> Volume | None: ...


def parse_progress(text: str) -> int | None:
    """Last percentage in tqdm output (``'FLAIR:  42%|████▏     | 21/50'`` → 42)."""
    found = _PERCENT.findall(text)
    return min(int(found[-1]), 100) if found else None


def module_pythonpath() -> str:
    """Folder that holds ``MRSynthLib`` (source tree or the extension's scripted-modules folder)."""
    return str(Path(__file__).resolve().parent.parent)


class SynthesisProcess:
    """Runs the CLI with ``python -m MRSynthLib.cli`` in a new session / process group."""

    def __init__(self, python: str | list[str] | None = None, env: dict[str, str] | None = None) -> None:
        self.launcher = [python] if isinstance(python, str) else list(python or [sys.executable])
        self.env = env
        self.request: SynthesisRequest[str] | None = None
        self._proc: subprocess.Popen | None = None
        self._lines: list[str] = []
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._status = ProcessStatus()
        self._stderr_tail: list[str] = []

    def command(self, request: SynthesisRequest[str]) -> list[str]:
        """The CLI call for a request on files; its output is always replaced (a work-folder file)."""
        return [*self.launcher, "-m", "MRSynthLib.cli", *replace(request, extras={"force": True}).to_argv()]

    def start(self, request: SynthesisRequest[str]) -> None:
        if self._proc is not None and self._proc.poll() is None:
            raise MRSynthError("a synthesis is already running; cancel it first")
        env = dict(os.environ if self.env is None else self.env)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (module_pythonpath(), env.get("PYTHONPATH")) if p)
        env.setdefault("PYTHONUNBUFFERED", "1")
        env.setdefault("PYTHONIOENCODING", "utf-8")  # _read decodes UTF-8, whatever the parent's locale is
        kwargs: dict = {"start_new_session": True}
        if os.name == "nt":  # pragma: no cover - Windows: a group that taskkill /T can end
            kwargs = {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP | subprocess.CREATE_NO_WINDOW}
        self.request, self._lines, self._stderr_tail = request, [], []
        self._status = ProcessStatus(state="running", percent=0)
        self._proc = subprocess.Popen(self.command(request), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      stdin=subprocess.DEVNULL, env=env, **kwargs)
        self._threads = [threading.Thread(target=self._read, args=(s, s is self._proc.stderr), daemon=True)
                         for s in (self._proc.stdout, self._proc.stderr)]
        for t in self._threads:
            t.start()

    def _read(self, stream, is_stderr: bool) -> None:
        """Split on both \\r and \\n: tqdm redraws its bar with carriage returns."""
        pending = ""
        while chunk := stream.read1(4096) if hasattr(stream, "read1") else stream.read(4096):
            parts = re.split(r"[\r\n]", pending + chunk.decode("utf-8", errors="replace"))
            pending = parts.pop()
            with self._lock:
                self._lines += [p.strip() for p in parts if p.strip()]
                if is_stderr:
                    self._stderr_tail = (self._stderr_tail + [p.strip() for p in parts if p.strip()])[-20:]
        if pending.strip():
            with self._lock:
                self._lines.append(pending.strip())
                if is_stderr:
                    self._stderr_tail.append(pending.strip())

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def poll(self) -> ProcessStatus:
        if self._proc is None or self._status.state == "cancelled":
            return ProcessStatus(state=self._status.state, percent=self._status.percent)
        rc = self._proc.poll()
        if rc is not None:
            for t in self._threads:
                t.join(timeout=5)
        with self._lock:
            new, self._lines = self._lines, []
        for line in new:
            pct = parse_progress(line)
            if pct is not None:
                self._status.percent = pct
        if rc is not None and self._status.state == "running":
            if rc == 0:
                self._status.state, self._status.percent = "finished", 100
            else:
                self._status.state = "failed"
                errors = [ln for ln in self._stderr_tail if ln.startswith("mrsynth: error:")]
                tail = errors[-1].removeprefix("mrsynth: error:").strip() if errors else (
                    self._stderr_tail[-1] if self._stderr_tail else f"exit code {rc}")
                self._status.error = tail
        return ProcessStatus(self._status.state, self._status.percent,
                             [ln for ln in new if parse_progress(ln) is None], self._status.error)

    def wait(self, timeout: float | None = None) -> ProcessStatus:
        """Block until the process ends (console use and tests)."""
        if self._proc is not None:
            self._proc.wait(timeout=timeout)
        return self.poll()

    def cancel(self) -> None:
        """Kill the whole process tree (PythonSlicer is a launcher: the worker is its child)."""
        proc = self._proc
        if proc is None or self._status.state != "running":
            return
        self._status.state = "cancelled"
        if proc.poll() is None:
            if os.name == "nt":  # pragma: no cover
                subprocess.run(["taskkill", "/F", "/T", "/PID", str(proc.pid)], capture_output=True, check=False)
            else:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)  # start_new_session: pgid == pid
                except ProcessLookupError:
                    pass
        proc.wait(timeout=10)
        for t in self._threads:
            t.join(timeout=5)
        if self.request is not None:
            for path in (self.request.output, self.request.confidence):
                if path is not None:
                    remove_partial_output(Path(path))

    def result(self) -> Volume:
        """Read the finished output (raises when the run did not finish)."""
        if self._status.state != "finished" or self.request is None:
            raise MRSynthError(f"no result: the synthesis {self._status.state}"
                               + (f" ({self._status.error})" if self._status.error else ""))
        from .io import read_volume

        volume = read_volume(self.request.output, check_content=False)
        volume.metadata.update(read_labels(self.request.output))
        return volume

    def uncertainty(self) -> Volume | None:
        """The finished run's uncertainty map, when the request asked for one (else None)."""
        if self.request is None or self.request.confidence is None:
            return None
        self.result()  # the same check: only a finished run has one
        from .io import read_volume

        volume = read_volume(self.request.confidence, check_content=False)
        volume.metadata.update(read_labels(self.request.confidence))
        return volume


def read_labels(path: str | os.PathLike) -> dict[str, str]:
    """The ``MRSynth.*`` keys the CLI wrote into the file header (NRRD keeps them; NIfTI does not)."""
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        return {}
    return {k: reader.GetMetaData(k) for k in reader.GetMetaDataKeys() if k.startswith("MRSynth.")}


def remove_partial_output(output: Path) -> None:
    """Delete the temporary files of an interrupted atomic write (``.<name>.XXXX.tmp<ext>``)."""
    if output.parent.exists():
        for stray in output.parent.glob(f".{output.name}.*.tmp*"):
            stray.unlink(missing_ok=True)
