"""What a run folder records so that a run can be understood and repeated later: the resolved config
(with absolute data paths), the code version (commit + whether the tree had uncommitted changes), the
software and hardware, a human-readable ``train.log``, and TensorBoard when it is installed."""

from __future__ import annotations

import logging
import os
import platform
import subprocess
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from importlib import metadata
from pathlib import Path

log = logging.getLogger("mrsynth_train")
_warned: set[str] = set()


def git_state() -> dict:
    """``{"commit": sha, "dirty": bool}`` of the package's checkout; "unknown"/None outside git."""
    here = Path(__file__).parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                                cwd=here).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                                text=True, timeout=10, cwd=here)
    except (OSError, subprocess.SubprocessError):
        return {"commit": "unknown", "dirty": None}
    if not commit:
        return {"commit": "unknown", "dirty": None}
    return {"commit": commit, "dirty": bool(status.stdout.strip()) if status.returncode == 0 else None}


@cache
def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def environment(device: str, **extra) -> dict:
    """Python, library and accelerator versions (None where absent) plus ``extra`` run facts."""
    import torch

    cuda = device.startswith("cuda")
    return {"python": platform.python_version(), "torch": torch.__version__, "numpy": _version("numpy"),
            "onnx": _version("onnx"), "onnxruntime": _version("onnxruntime"), "machine": platform.machine(),
            "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version() if cuda else None,
            "gpu": torch.cuda.get_device_name(device) if cuda else None, "device": device, "cpu": cpu_model(),
            "cpu_count": os.cpu_count(), **extra}


def cpu_model() -> str:
    """The processor's name (Linux: /proc/cpuinfo's model name), for the card's record of where a run trained."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def warn_once(key: str, message: str) -> None:
    """A warning shown once per process (e.g. an optional dependency missing on every run of a sweep)."""
    if key not in _warned:
        _warned.add(key)
        log.warning(message)


def tensorboard_writer(folder: Path, purge_step: int | None):
    """A SummaryWriter, or None with a one-time warning when tensorboard is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        warn_once("tensorboard", "tensorboard is not installed: no TensorBoard scalars or images (log.jsonl "
                  "has the losses); pip install 'mrsynth[train]' or tensorboard")
        return None
    return SummaryWriter(str(folder), purge_step=purge_step)


@contextmanager
def train_log(path: Path | None) -> Iterator[None]:
    """While training, append the package's log lines (INFO and up) and Python warnings to ``path``;
    warnings are still shown as usual. ``None`` (non-main ranks): nothing."""
    if path is None:
        yield
        return
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO)
    level = log.level
    log.addHandler(handler)
    if log.getEffectiveLevel() > logging.INFO:
        log.setLevel(logging.INFO)
    with warnings.catch_warnings():
        shown = warnings.showwarning

        def show(message, category, filename, lineno, file=None, line=None) -> None:
            handler.handle(logging.makeLogRecord({
                "name": "py.warnings", "levelno": logging.WARNING, "levelname": "WARNING",
                "msg": f"{category.__name__}: {message} ({filename}:{lineno})"}))
            shown(message, category, filename, lineno, file, line)

        warnings.showwarning = show
        try:
            yield
        finally:
            log.removeHandler(handler)
            log.setLevel(level)
            handler.close()
