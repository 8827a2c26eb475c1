"""ONNX graphs of every recipe behind MRSynthLib's backend interface.

* ``unified``: generator (images, available, style) + style encoder (reference) — see ``export.py``.
* ``onehot`` (CollaGAN, Hyper-GAN, MIST): the multi-input generator (images, available, style) where
  ``style`` is the target's one-hot code, so MRSynthLib runs it exactly like the unified model
  (mean styles = identity). Their Python loops skip contrasts missing in every row; for tracing
  they encode every contrast and let the availability weights (already in the maths) drop them.
* ``pairwise`` (CycleGAN, UNIT, supervised, simple): one single-source graph per direction,
  ``<SRC>_to_<TGT>``, image (N, 1, H, W) in [0, 1] → synthetic in [0, 1].
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from MRSynthLib.contrasts import CONTRASTS

from .recipes.common import PairwiseInference, direction_key, from_gan, to_gan

OPSET = 17
ONEHOT_RECIPES = ("collagan", "hypergan", "mist")
PAIRWISE_RECIPES = ("cyclegan", "unit", "supervised", "simple")


def interface_of(recipe: str) -> str:
    if recipe in ONEHOT_RECIPES:
        return "onehot"
    if recipe in PAIRWISE_RECIPES:
        return "pairwise"
    return "unified"


def traceable(module: nn.Module) -> nn.Module:
    """Turn off data-dependent skipping (``skip_unavailable``) so the traced graph handles any subset."""
    for m in module.modules():
        if hasattr(m, "skip_unavailable"):
            m.skip_unavailable = False
    return module.eval()


class UnitRangeTranslator(nn.Module):
    """A [-1, 1] translator wrapped to take and give [0, 1] images, as the pipeline does."""

    def __init__(self, translator: nn.Module) -> None:
        super().__init__()
        self.translator = translator

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return from_gan(self.translator(to_gan(image)))


@contextmanager
def quiet_export():
    """The TorchScript exporter's notices (legacy path, instance norm in train mode = input statistics,
    constant folding) are expected here and would only worry a user reading the export's output."""
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


def export_onehot(module: nn.Module, path: Path) -> None:
    c = len(CONTRASTS)
    args = (torch.rand(2, c, 64, 64), torch.ones(2, c), torch.eye(c)[:2])
    with quiet_export():
        torch.onnx.export(traceable(module), args, str(path), dynamo=False, opset_version=OPSET,
                          input_names=["images", "available", "style"], output_names=["synthetic"],
                          dynamic_axes={"images": {0: "n", 2: "h", 3: "w"}, "available": {0: "n"},
                                        "style": {0: "n"}, "synthetic": {0: "n", 2: "h", 3: "w"}})


def pairwise_directions(module: PairwiseInference) -> list[tuple[int, int]]:
    """Directions in the order of the configured pairs (the backend's source preference)."""
    return [d for a, b in module.pairs for d in ((b, a), (a, b))]


def export_pairwise(module: PairwiseInference, folder: Path, model_id: str) -> dict[str, Path]:
    """One graph per direction; returns {direction key: path}."""
    out = {}
    for src, tgt in pairwise_directions(module):
        key = direction_key(src, tgt)
        path = folder / f"{model_id}-{key}.onnx"
        wrapped = UnitRangeTranslator(module.translators[key]).eval()
        with quiet_export():
            torch.onnx.export(wrapped, (torch.rand(2, 1, 64, 64),), str(path), dynamo=False, opset_version=OPSET,
                              input_names=["image"], output_names=["synthetic"],
                              dynamic_axes={"image": {0: "n", 2: "h", 3: "w"}, "synthetic": {0: "n", 2: "h", 3: "w"}})
        out[key] = path
    return out


def onehot_macs(module: nn.Module, size: int = 256) -> int:
    from .nets.cost import count_macs

    c = len(CONTRASTS)
    return count_macs(traceable(module), size, size,
                      lambda h, w: (torch.zeros(1, c, h, w), torch.ones(1, c), torch.eye(c)[:1]))


def pairwise_macs(module: PairwiseInference, size: int = 256) -> int:
    """MACs of one direction (the one a request runs)."""
    from .nets.cost import count_macs

    src, tgt = pairwise_directions(module)[0]
    wrapped = UnitRangeTranslator(module.translators[direction_key(src, tgt)])
    return count_macs(wrapped, size, size, lambda h, w: (torch.zeros(1, 1, h, w),))
