"""Where training runs: the device, mixed precision and host→device copies.

GPU runs put the default torch device on ``cuda:<local rank>`` (``torch.set_default_device``), so every
tensor a recipe creates (random style draws, one-hot codes, labels, loss targets) lands next to the
weights without each recipe naming a device; batches come from pinned host memory with non-blocking
copies. Mixed precision (config key ``amp``) is bfloat16 autocast (``bf16``: no gradient scaler needed, it
keeps float32's exponent range) or float16 autocast with ``torch.amp.GradScaler`` (``fp16``: for GPUs without
fast bfloat16; small gradients would underflow in float16 without the scaled loss). ``auto`` is bf16 on GPU
and off on CPU; fp16 also runs on CPU (torch ≥ 2.3 has a CPU GradScaler), which is how the tests check it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

from MRSynthLib.errors import MRSynthError

DEVICES = ("auto", "cpu", "cuda")
AMP_MODES = ("auto", "bf16", "fp16", "off", "on")  # on: bf16, the historical name


def resolve_device(requested: str, local_rank: int = 0) -> str:
    """``auto`` → ``cuda:<local rank>`` when CUDA is available, else ``cpu``; ``cuda`` without CUDA is an error."""
    import torch

    if requested not in DEVICES and not requested.startswith("cuda:"):
        raise MRSynthError(f"config key 'device' must be auto, cpu, cuda or cuda:N, got '{requested}'")
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise MRSynthError(f"device '{requested}' was requested but torch.cuda.is_available() is False "
                           "(a CPU-only torch build or no GPU); use device: cpu")
    if requested == "auto":
        return f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    return f"cuda:{local_rank}" if requested == "cuda" else requested


def use_device(device: str) -> None:
    """Make ``device`` the default for new tensors (a no-op on CPU)."""
    import torch

    if device != "cpu":
        torch.cuda.set_device(device)
        torch.set_default_device(device)


def release_device(device: str) -> None:
    """Back to CPU as the default (after training: validation and export run on CPU)."""
    import torch

    if device != "cpu":
        torch.set_default_device(None)


def amp_mode(mode: str, device: str) -> str:
    """The autocast precision of a run: ``bf16``, ``fp16`` or ``off``."""
    if mode not in AMP_MODES:
        raise MRSynthError(f"config key 'amp' must be one of {', '.join(AMP_MODES)}, got '{mode}'")
    if mode == "auto":
        return "bf16" if device.startswith("cuda") else "off"
    return "bf16" if mode == "on" else mode


def autocast(mode: str, device: str):
    """bfloat16 or float16 autocast on the training device, or nothing."""
    import torch

    if mode == "off":
        return nullcontext()
    dtype = torch.float16 if mode == "fp16" else torch.bfloat16
    return torch.autocast(device_type=device.split(":")[0], dtype=dtype)


def grad_scaler(mode: str, device: str):
    """A GradScaler, enabled only for fp16 (its empty state is still checkpointed, so every checkpoint
    has the same keys and a resumed fp16 run continues with the scale it had reached)."""
    import torch

    return torch.amp.GradScaler(device.split(":")[0], enabled=mode == "fp16")


@contextmanager
def deterministic(enabled: bool) -> Iterator[None]:
    """``torch.use_deterministic_algorithms(True)`` (and no cuDNN autotuning) while training, restored after.
    cuBLAS reads CUBLAS_WORKSPACE_CONFIG once, when CUDA first uses it: set here when unset, which works
    if training is the first CUDA work of the process (export it in the shell under torchrun)."""
    import torch

    if not enabled:
        yield
        return
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    before, benchmark = torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before)
        torch.backends.cudnn.benchmark = benchmark


def to_device(array):
    """numpy → tensor on the default device; pinned memory and a non-blocking copy on GPU."""
    import torch

    t = torch.from_numpy(array)
    device = torch.get_default_device()
    if device.type == "cpu":
        return t
    return t.pin_memory().to(device, non_blocking=True)
