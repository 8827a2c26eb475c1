"""onnxruntime backends (the default): CPU everywhere, CUDA when onnxruntime-gpu provides it.

``OnnxBackend`` runs one multi-input generator (the unified model, or a one-hot-steered CollaGAN /
Hyper-GAN / MIST export); ``PairwiseOnnxBackend`` runs the single-source graphs of the pairwise
baselines (CycleGAN, UNIT, supervised, simple), one per direction, behind the same interface.

A GPU is never silently unused: ``cuda:N`` selects that GPU, and a session that onnxruntime created
without the CUDA provider (missing CUDA/cuDNN libraries, a bad device id) is an error when CUDA was
asked for and a warning under ``auto``."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from ..contrasts import CONTRASTS, canonical
from ..errors import MRSynthError
from . import ModelSettings, SettingsFromCard

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"


def cuda_index(device: str) -> int:
    """GPU number of ``cuda`` (0) or ``cuda:N``."""
    _, _, index = device.partition(":")
    if not index:
        return 0
    if not index.isdigit():
        raise MRSynthError(f"unknown device '{device}' (use auto, cpu, cuda or cuda:N)")
    return int(index)


def execution_providers(device: str, available: list[str]) -> tuple[list, str]:
    """(providers for ``InferenceSession``, resolved device) for ``device`` given onnxruntime's providers."""
    if device.startswith("cuda"):
        index = cuda_index(device)
        if CUDA not in available:
            raise MRSynthError(
                f"CUDA was requested (--device {device}) but onnxruntime has no CUDA provider "
                f"(available: {', '.join(available)}); install onnxruntime-gpu or use --device cpu")
        return [(CUDA, {"device_id": index}), CPU], f"cuda:{index}"
    if device == "auto" and CUDA in available:
        return [(CUDA, {"device_id": 0}), CPU], "cuda:0"
    if device in ("auto", "cpu"):
        return [CPU], "cpu"
    raise MRSynthError(f"unknown device '{device}' (use auto, cpu, cuda or cuda:N)")


def checked_device(requested: str, resolved: str, used: list[str]) -> str:
    """The device a session really runs on. CUDA asked for but not used by the session: an error for
    ``cuda``/``cuda:N``, a warning (and ``cpu``) for ``auto``."""
    if not resolved.startswith("cuda") or CUDA in used:
        return resolved
    message = (f"CUDA was requested (--device {requested}) but onnxruntime created the session with "
               f"{', '.join(used) or 'no provider'} only (CUDA/cuDNN libraries missing or GPU {resolved} "
               "not usable)")
    if requested.startswith("cuda"):
        raise MRSynthError(message + "; fix the CUDA installation or use --device cpu")
    warnings.warn(message + "; running on the CPU", RuntimeWarning, stacklevel=3)
    return "cpu"


class SessionFactory:
    """Makes onnxruntime sessions for one device request; ``device`` is where they really run."""

    def __init__(self, device: str, threads: int | None) -> None:
        import onnxruntime as ort

        self._ort = ort
        self.requested = device
        self.providers, self.device = execution_providers(device, ort.get_available_providers())
        self.options = ort.SessionOptions()
        if threads:
            self.options.intra_op_num_threads = threads
        self.options.log_severity_level = 3

    def __call__(self, path: Path):
        session = self._ort.InferenceSession(str(path), self.options, providers=self.providers)
        self.device = checked_device(self.requested, self.device, session.get_providers())
        return session


class OnnxBackend(SettingsFromCard):
    name = "onnxruntime"

    def __init__(self, generator_path: Path, style_path: Path | None, mean_styles: np.ndarray,
                 settings: ModelSettings, device: str = "auto", threads: int | None = None) -> None:
        self._take(settings)
        make = SessionFactory(device, threads)
        self._gen = make(generator_path)
        self._style = make(style_path) if style_path is not None else None
        self.device = make.device
        self.has_style_encoder = self._style is not None
        self.has_scale_head = "log_scale" in {o.name for o in self._gen.get_outputs()}
        self.mean_styles = np.asarray(mean_styles, dtype=np.float32)

    def generate(self, images: np.ndarray, available: np.ndarray, style: np.ndarray) -> np.ndarray:
        return self._gen.run(["synthetic"], self._feeds(images, available, style))[0]

    def generate_with_scale(self, images: np.ndarray, available: np.ndarray, style: np.ndarray
                            ) -> tuple[np.ndarray, np.ndarray]:
        if not self.has_scale_head:
            return super().generate_with_scale(images, available, style)
        out, log_b = self._gen.run(["synthetic", "log_scale"], self._feeds(images, available, style))
        return out, log_b

    @staticmethod
    def _feeds(images: np.ndarray, available: np.ndarray, style: np.ndarray) -> dict[str, np.ndarray]:
        return {"images": images.astype(np.float32), "available": available.astype(np.float32),
                "style": style.astype(np.float32)}

    def encode_style(self, images: np.ndarray) -> np.ndarray:
        if self._style is None:
            raise MRSynthError(f"model '{self.model_id}' has no style encoder")
        return self._style.run(["style"], {"reference": images.astype(np.float32)})[0]


class PairwiseOnnxBackend(SettingsFromCard):
    """One graph per direction ``<SRC>_to_<TGT>`` taking (N, 1, H, W) in [0, 1]; the source is the
    target's first partner among the inputs (the order of the card's pairs)."""

    name = "onnxruntime"
    has_style_encoder = False

    def __init__(self, graphs: dict[str, Path], mean_styles: np.ndarray, settings: ModelSettings,
                 device: str = "auto", threads: int | None = None) -> None:
        self._take(settings)
        make = SessionFactory(device, threads)
        self._sessions = {key: make(path) for key, path in graphs.items()}
        self.device = make.device
        self.mean_styles = np.asarray(mean_styles, dtype=np.float32)

    def sources(self, target: str) -> list[str]:
        return [k.split("_to_")[0] for k in self._sessions if k.split("_to_")[1] == target]

    def reads(self, inputs, target: str) -> list[str]:
        have = {canonical(c) for c in inputs}
        return next(([s] for s in self.sources(canonical(target)) if s in have), [])

    def check(self, inputs: list[str], target: str, style_ref: bool = False, style_target: str | None = None) -> None:
        tgt = canonical(target)
        have = {canonical(c) for c in inputs}
        sources = self.sources(tgt)
        if not sources:
            known = ", ".join(self._sessions)
            raise MRSynthError(f"model '{self.model_id}' cannot synthesize {tgt} (its directions: {known})")
        if not have & set(sources):
            raise MRSynthError(f"model '{self.model_id}' synthesizes {tgt} from {' or '.join(sources)}, "
                               "which is not among the inputs")
        if style_ref or style_target:
            raise MRSynthError(f"model '{self.model_id}' is a pairwise translator: no style reference or style walk "
                               "(use --match-histogram with a reference, or a unified model)")

    def generate(self, images: np.ndarray, available: np.ndarray, style: np.ndarray) -> np.ndarray:
        tgt = CONTRASTS[int(np.argmax(style[0]))]
        have = [CONTRASTS[c] for c in range(len(CONTRASTS)) if available[0, c] > 0]
        self.check(have, tgt)
        src = next(s for s in self.sources(tgt) if s in have)
        x = images[:, CONTRASTS.index(src):CONTRASTS.index(src) + 1].astype(np.float32)
        return self._sessions[f"{src}_to_{tgt}"].run(["synthetic"], {"image": x})[0]

    def encode_style(self, images: np.ndarray) -> np.ndarray:
        raise MRSynthError(f"model '{self.model_id}' has no style encoder")
