"""Inference backends behind one small interface, so the pipeline never imports torch or onnxruntime."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np


class Backend(Protocol):
    """What the pipeline needs from a model, whatever runs it."""

    name: str
    device: str
    mean_styles: np.ndarray  # (n_contrasts, style_dim)
    # contrast → quantiles from the card (MRSynthLib.calibration); None: the output is not calibrated
    intensity_templates: dict[str, np.ndarray] | None
    # the targets whose output is calibrated (the card's ``calibrate_targets``, chosen by site validation);
    # None: every target with a template
    calibrate_targets: frozenset[str] | None
    # 2.5D models: k neighbouring slices on each side come as extra image channels (0: plain 2D; optional)
    context: int

    def generate(self, images: np.ndarray, available: np.ndarray, style: np.ndarray) -> np.ndarray:
        """(N, C·(1+2k), H, W) float32 (see ``nets.unified.images_with_context``), (N, C) float32,
        (N, S) float32 → (N, 1, H, W) float32."""
        ...

    def encode_style(self, images: np.ndarray) -> np.ndarray:
        """(N, 1, H, W) → (N, S) style codes."""
        ...


def check_engine(engine: Backend, inputs: Sequence[str], target: str, style_ref: bool = False,
                 second_target: str | None = None) -> None:
    """Refuse, before any image work, what this model cannot do (e.g. a pairwise model without the
    target's partner among the inputs, or a style reference for a model without a style encoder)."""
    check = getattr(engine, "check", None)
    if check is not None:
        check(list(inputs), target, style_ref=style_ref, second_target=second_target)


def is_out_of_memory(exc: BaseException) -> bool:
    """True for the allocation failures of torch (CPU/CUDA) and onnxruntime."""
    if isinstance(exc, MemoryError):
        return True
    text = str(exc).lower()
    return "out of memory" in text or "failed to allocate" in text or "bad_alloc" in text
