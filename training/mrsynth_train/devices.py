"""Where training runs: the device, mixed precision and host→device copies.

GPU runs put the default torch device on ``cuda:<local rank>`` (``torch.set_default_device``), so every
tensor a recipe creates (random style draws, one-hot codes, labels, loss targets) lands next to the
weights without each recipe naming a device; batches come from pinned host memory with non-blocking
copies. Mixed precision is bfloat16 autocast: it needs no gradient scaler (bfloat16 keeps float32's
exponent range), so the recipes' own backward/step code runs unchanged and checkpoints hold no scaler.
"""

from __future__ import annotations

from contextlib import nullcontext

from MRSynthLib.errors import MRSynthError

DEVICES = ("auto", "cpu", "cuda")
AMP_MODES = ("auto", "on", "off")


def resolve_device(requested: str, local_rank: int = 0) -> str:
    """``auto`` → ``cuda:<local rank>`` when CUDA is available, else ``cpu``; ``cuda`` without CUDA is an error."""
    import torch  # noqa: PLC0415

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
    import torch  # noqa: PLC0415

    if device != "cpu":
        torch.cuda.set_device(device)
        torch.set_default_device(device)


def release_device(device: str) -> None:
    """Back to CPU as the default (after training: validation and export run on CPU)."""
    import torch  # noqa: PLC0415

    if device != "cpu":
        torch.set_default_device(None)


def amp_enabled(mode: str, device: str) -> bool:
    if mode not in AMP_MODES:
        raise MRSynthError(f"config key 'amp' must be one of {', '.join(AMP_MODES)}, got '{mode}'")
    return mode == "on" or (mode == "auto" and device.startswith("cuda"))


def autocast(enabled: bool, device: str):
    """bfloat16 autocast on the training device, or nothing."""
    import torch  # noqa: PLC0415

    if not enabled:
        return nullcontext()
    return torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16)


def to_device(array):
    """numpy → tensor on the default device; pinned memory and a non-blocking copy on GPU."""
    import torch  # noqa: PLC0415

    t = torch.from_numpy(array)
    device = torch.get_default_device()
    if device.type == "cpu":
        return t
    return t.pin_memory().to(device, non_blocking=True)
