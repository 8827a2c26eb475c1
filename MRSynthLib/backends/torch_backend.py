"""PyTorch backend (when torch is installed): CPU or CUDA, optional mixed precision (AMP)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import MRSynthError
from . import ModelSettings, SettingsFromCard


def load_state_dict(path: Path) -> dict:
    """Load weights only: ``weights_only=True`` refuses pickled code objects."""
    import torch

    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise MRSynthError(f"cannot load weights safely: {str(exc).splitlines()[0][:160]}", str(path)) from None


class TorchBackend(SettingsFromCard):
    name = "torch"

    def __init__(self, weights_path: Path | None, arch: dict, settings: ModelSettings, device: str = "auto",
                 amp: bool = False, model=None) -> None:
        self._take(settings)
        try:
            import torch
        except ImportError:
            raise MRSynthError("the torch backend needs PyTorch (pip install torch==2.13.0)") from None
        from ..nets.unified import UnifiedConfig, UnifiedModel

        if device.startswith("cuda") and not torch.cuda.is_available():
            raise MRSynthError(f"CUDA was requested (--device {device}) but torch.cuda.is_available() is False; "
                               "use --device cpu")
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device not in ("cpu",) and not device.startswith("cuda"):
            raise MRSynthError(f"unknown device '{device}' (use auto, cpu, cuda or cuda:N)")
        self.device = device
        self._torch = torch
        if model is None:
            model = UnifiedModel(UnifiedConfig(**arch))
            model.load_state_dict(load_state_dict(weights_path))
        self.model = model.to(device).eval()
        if int(self.model.cfg.context) != self.context:
            raise MRSynthError(f"model '{self.model_id}': the card says {self.context} neighbouring slices per side, "
                               f"the network takes {self.model.cfg.context}")
        self.amp = amp and device.startswith("cuda")
        self.mean_styles = self.model.mean_styles.detach().cpu().numpy().astype(np.float32)
        self.has_scale_head = bool(getattr(self.model.cfg, "scale_head", 0))

    def _run(self, fn, *arrays: np.ndarray):
        torch = self._torch
        tensors = [torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)).to(self.device) for a in arrays]
        with torch.inference_mode(), torch.autocast(self.device.split(":")[0], enabled=self.amp):
            got = fn(*tensors)
            if isinstance(got, tuple):
                return tuple(t.float().cpu().numpy() for t in got)
            return got.float().cpu().numpy()

    def generate(self, images: np.ndarray, available: np.ndarray, style: np.ndarray) -> np.ndarray:
        return self._run(self.model.generator, images, available, style)

    def generate_with_scale(self, images: np.ndarray, available: np.ndarray, style: np.ndarray
                            ) -> tuple[np.ndarray, np.ndarray]:
        if not self.has_scale_head:
            return super().generate_with_scale(images, available, style)
        return self._run(self.model.generator.forward_with_scale, images, available, style)

    def encode_style(self, images: np.ndarray) -> np.ndarray:
        return self._run(self.model.style_encoder, images)
