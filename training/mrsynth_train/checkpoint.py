"""Checkpoints that make ``--resume`` exact: weights, optimizers and schedules, the fp16 gradient scaler,
every random stream, the recipe's own state (GAN history pools) — and the log cut back to the same step.

Everything is stored as tensors, numbers, strings, lists and dicts, so ``torch.load(weights_only=True)``
reads it: no pickled objects (a checkpoint from an untrusted source cannot run code)."""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path

from MRSynthLib.errors import MRSynthError
from MRSynthLib.io import write_bytes_atomic

from .data import SliceSampler

logger = logging.getLogger("mrsynth_train")


def atomic_torch_save(obj, path: Path) -> None:
    """Saved through memory: torch names the zip's records after the file it writes, so saving to a temp
    file would make the same weights differ byte for byte from run to run (and so their SHA256)."""
    import io

    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    write_bytes_atomic(buffer.getvalue(), path)


def save_checkpoint(path: Path, step: int, recipe, sampler: SliceSampler, wall: float, cpu: float = 0.0,
                    scaler=None) -> None:
    """``scaler``: the run's GradScaler; its state is ``{}`` when disabled (no fp16), but always present."""
    import torch

    state = {
        "step": step,
        "wall_s": wall,
        "cpu_s": cpu,  # CPU seconds spent so far: a CPU budget counts across --resume
        "modules": {k: m.state_dict() for k, m in recipe.modules().items()},
        "optimizers": {k: o.state_dict() for k, o in recipe.optimizers().items()},
        "scaler": scaler.state_dict() if scaler is not None else {},
        "extra": recipe.extra_state() if hasattr(recipe, "extra_state") else {},
        "rng": {"torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                "numpy_sampler": json.dumps(sampler.rng.bit_generator.state),
                "numpy_choice": json.dumps(sampler.choice_rng.bit_generator.state),
                "python": json.dumps(random.getstate())},
    }
    atomic_torch_save(state, path)


def load_checkpoint(path: Path, recipe, sampler: SliceSampler, scaler=None) -> tuple[int, float, float]:
    """Restore everything ``save_checkpoint`` wrote; returns (step, wall seconds, CPU seconds)."""
    import torch

    state = torch.load(str(path), map_location="cpu", weights_only=True)
    for k, m in recipe.modules().items():
        m.load_state_dict(state["modules"][k])
    for k, o in recipe.optimizers().items():
        o.load_state_dict(state["optimizers"][k])
    if scaler is not None and scaler.is_enabled() and state.get("scaler"):
        scaler.load_state_dict(state["scaler"])  # a bf16/fp32 checkpoint has none: fp16 starts afresh
    if hasattr(recipe, "load_extra_state"):
        recipe.load_extra_state(state.get("extra", {}))
    torch.set_rng_state(state["rng"]["torch"])
    if torch.cuda.is_available() and state["rng"].get("cuda"):
        torch.cuda.set_rng_state_all(state["rng"]["cuda"])
    sampler.rng.bit_generator.state = json.loads(state["rng"]["numpy_sampler"])
    if "numpy_choice" in state["rng"]:  # checkpoints written before the batch-level choice existed
        sampler.choice_rng.bit_generator.state = json.loads(state["rng"]["numpy_choice"])
    py = json.loads(state["rng"]["python"])
    random.setstate((py[0], tuple(py[1]), py[2]))
    return int(state["step"]), float(state["wall_s"]), float(state.get("cpu_s", 0.0))


def initialize_from(recipe, run: Path) -> None:
    """Start ``recipe``'s modules from a finished run's weights (``<module>.pt``, loaded with
    ``weights_only``). Parameters the run lacks (a head added since) keep their fresh values and are
    logged; a shape mismatch or a parameter the recipe does not know is an error naming the file."""
    import torch

    for name, module in recipe.modules().items():
        path = Path(run) / f"{name}.pt"
        if not path.exists():
            raise MRSynthError(f"--init-from: the run has no {name}.pt (is it finished?)", str(path))
        state = torch.load(str(path), map_location="cpu", weights_only=True)
        try:
            result = module.load_state_dict(state, strict=False)
        except RuntimeError as exc:
            raise MRSynthError(f"--init-from: weights do not fit this config ({str(exc).splitlines()[-1].strip()})",
                               str(path)) from None
        if result.unexpected_keys:
            raise MRSynthError(f"--init-from: parameters this config does not have: "
                               f"{', '.join(result.unexpected_keys[:4])}", str(path))
        logger.info("initialized %s from %s%s", name, path, f" (fresh: {', '.join(result.missing_keys)})"
                    if result.missing_keys else "")


def truncate_log(path: Path, step: int) -> int:
    """Drop the log.jsonl lines after ``step`` (written after the last checkpoint by a killed run), so the
    resumed run does not log those steps twice; returns how many lines were dropped."""
    if not path.exists():
        return 0
    lines = path.read_text(encoding="utf-8").splitlines()
    keep = []
    for line in lines:
        try:
            if int(json.loads(line)["step"]) <= step:
                keep.append(line)
        except (ValueError, KeyError, TypeError):  # a half-written last line of a killed run
            continue
    if len(keep) != len(lines):
        write_bytes_atomic("".join(x + "\n" for x in keep).encode("utf-8"), path)
    return len(lines) - len(keep)
