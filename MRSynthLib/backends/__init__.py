"""Inference backends behind one small interface, so the pipeline never imports torch or onnxruntime."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ..confidence import ErrorModel
from ..errors import MRSynthError


@dataclass(frozen=True)
class ModelSettings:
    """What a model's card (or a training run) says about running it, given to a backend when it is made:
    nothing is attached or patched afterwards, so every result names the model that really made it."""

    model_id: str  # the registry id, an imported card's id, or a training run's name
    context: int = 0  # 2.5D models: k neighbouring slices on each side come as extra image channels
    # contrast → quantiles (MRSynthLib.calibration); None: the output is not calibrated
    intensity_templates: dict[str, np.ndarray] | None = None
    # the targets whose output is calibrated (the card's ``calibrate_targets``, chosen by site validation);
    # None: every target with a template
    calibrate_targets: frozenset[str] | None = None
    # how far the output moves toward the calibrated tone (the card's ``calibrate_strength``; 1: all the way)
    calibrate_strength: float = 1.0
    # the card's fitted error model of the uncertainty map (MRSynthLib.confidence); None: the project default
    error_model: ErrorModel | None = None


class Backend(Protocol):
    """What the pipeline needs from a model, whatever runs it (every attribute is set at construction)."""

    name: str  # the runtime: onnxruntime, torch
    device: str  # where it really runs
    model_id: str
    mean_styles: np.ndarray  # (n_contrasts, style_dim)
    intensity_templates: dict[str, np.ndarray] | None  # see ModelSettings
    calibrate_targets: frozenset[str] | None
    calibrate_strength: float
    error_model: ErrorModel | None  # see ModelSettings
    context: int
    has_style_encoder: bool
    has_scale_head: bool  # the network predicts its own error's Laplace scale (``generate_with_scale``)

    def generate(self, images: np.ndarray, available: np.ndarray, style: np.ndarray) -> np.ndarray:
        """(N, C·(1+2k), H, W) float32 (see ``nets.unified.images_with_context``), (N, C) float32,
        (N, S) float32 → (N, 1, H, W) float32."""
        ...

    def generate_with_scale(self, images: np.ndarray, available: np.ndarray, style: np.ndarray
                            ) -> tuple[np.ndarray, np.ndarray]:
        """``generate``'s output and the scale head's log b, both (N, 1, H, W), from one pass."""
        ...

    def encode_style(self, images: np.ndarray) -> np.ndarray:
        """(N, 1, H, W) → (N, S) style codes."""
        ...

    def check(self, inputs: list[str], target: str, style_ref: bool = False,
              style_target: str | None = None) -> None:
        """Refuse, before any image work, what this model cannot do (one line, ``MRSynthError``)."""
        ...

    def reads(self, inputs: Sequence[str], target: str) -> list[str]:
        """The inputs the model really reads to make ``target`` (a pairwise model reads one)."""
        ...


class SettingsFromCard:
    """The :class:`ModelSettings` fields as a backend's own attributes, and the checks every
    multi-input backend shares (pairwise backends override ``check`` and ``reads``)."""

    has_style_encoder = True
    has_scale_head = False

    def generate_with_scale(self, images: np.ndarray, available: np.ndarray, style: np.ndarray
                            ) -> tuple[np.ndarray, np.ndarray]:
        raise MRSynthError(f"model '{self.model_id}' has no scale head")

    def _take(self, settings: ModelSettings) -> None:
        self.settings = settings
        self.model_id = settings.model_id
        self.context = int(settings.context)
        self.intensity_templates = settings.intensity_templates
        self.calibrate_targets = settings.calibrate_targets
        self.calibrate_strength = float(settings.calibrate_strength)
        self.error_model = settings.error_model

    def check(self, inputs: list[str], target: str, style_ref: bool = False,
              style_target: str | None = None) -> None:
        if style_ref and not self.has_style_encoder:
            raise MRSynthError(f"model '{self.model_id}' has no style encoder, so a style reference cannot steer it; "
                               "use --match-histogram with the reference, or a unified model")

    def reads(self, inputs: Sequence[str], target: str) -> list[str]:
        return list(inputs)


def is_out_of_memory(exc: BaseException) -> bool:
    """True for the allocation failures of torch (CPU/CUDA) and onnxruntime."""
    if isinstance(exc, MemoryError):
        return True
    text = str(exc).lower()
    return "out of memory" in text or "failed to allocate" in text or "bad_alloc" in text
