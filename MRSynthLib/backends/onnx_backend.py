"""onnxruntime backend (the default): CPU everywhere, CUDA when onnxruntime-gpu provides it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import MRSynthError


class OnnxBackend:
    name = "onnxruntime"

    def __init__(self, generator_path: Path, style_path: Path, mean_styles: np.ndarray,
                 device: str = "auto", threads: int | None = None) -> None:
        import onnxruntime as ort  # noqa: PLC0415

        available = ort.get_available_providers()
        if device.startswith("cuda"):
            if "CUDAExecutionProvider" not in available:
                raise MRSynthError(
                    f"CUDA was requested (--device {device}) but onnxruntime has no CUDA provider "
                    f"(available: {', '.join(available)}); install onnxruntime-gpu or use --device cpu")
            providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
            self.device = device
        elif device == "auto" and "CUDAExecutionProvider" in available:
            providers, self.device = ["CUDAExecutionProvider", "CPUExecutionProvider"], "cuda"
        elif device in ("auto", "cpu"):
            providers, self.device = ["CPUExecutionProvider"], "cpu"
        else:
            raise MRSynthError(f"unknown device '{device}' (use auto, cpu, cuda or cuda:N)")
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        opts.log_severity_level = 3
        self._gen = ort.InferenceSession(str(generator_path), opts, providers=providers)
        self._style = ort.InferenceSession(str(style_path), opts, providers=providers)
        self.mean_styles = np.asarray(mean_styles, dtype=np.float32)

    def generate(self, images: np.ndarray, available: np.ndarray, style: np.ndarray) -> np.ndarray:
        feeds = {"images": images.astype(np.float32), "available": available.astype(np.float32),
                 "style": style.astype(np.float32)}
        return self._gen.run(["synthetic"], feeds)[0]

    def encode_style(self, images: np.ndarray) -> np.ndarray:
        return self._style.run(["style"], {"reference": images.astype(np.float32)})[0]
