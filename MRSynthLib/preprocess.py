"""Brain mask, robust intensity normalization and optional N4 bias correction.

Intensity convention (model inputs, model outputs and the evaluation protocol): inside the brain
mask each volume is divided by its own 99.5th percentile and clipped to [0, 1]; voxels outside
the mask are 0. Negative values (interpolation ringing at the brain edge, seen in real data) are
clipped to 0 before the percentile is taken, so they cannot shift it.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .errors import MRSynthError

PERCENTILE = 99.5


def derive_mask(arrays: list[np.ndarray], rel_threshold: float = 0.02) -> np.ndarray:
    """Brain mask from skull-stripped inputs: any input above a small fraction of its own scale,
    largest connected component, holes filled (ventricles stay inside)."""
    if not arrays:
        raise MRSynthError("no inputs to derive a brain mask from")
    fg = np.zeros(arrays[0].shape, dtype=bool)
    for a in arrays:
        pos = a[a > 0]
        if pos.size == 0:
            continue
        fg |= a > rel_threshold * np.percentile(pos, PERCENTILE)
    if not fg.any():
        raise MRSynthError("cannot derive a brain mask: every input is empty or negative")
    labels, n = ndimage.label(fg)
    if n > 1:
        sizes = ndimage.sum(fg, labels, index=np.arange(1, n + 1))
        fg = labels == (1 + int(np.argmax(sizes)))
    return ndimage.binary_fill_holes(fg)


def robust_scale(array: np.ndarray, mask: np.ndarray, name: str | None = None) -> float:
    """The 99.5th percentile of the positive part inside the mask (the value mapped to 1); ``name`` (the
    file) goes into the error, which is about one image among several."""
    values = np.clip(array[mask], 0, None)
    if values.size == 0:
        raise MRSynthError("the brain mask is empty")
    scale = float(np.percentile(values, PERCENTILE))
    if scale <= 0:
        raise MRSynthError(("" if name else "the image ") + "is zero or negative in almost all of the brain mask "
                           "(its 99.5th percentile there is not positive); nothing to normalize it by", name)
    return scale


def normalize(array: np.ndarray, mask: np.ndarray, scale: float | None = None, name: str | None = None) -> np.ndarray:
    """Map to the project convention: [0, 1], 1 = 99.5th percentile inside the mask, 0 outside."""
    s = robust_scale(array, mask, name) if scale is None else scale
    out = np.clip(array.astype(np.float32) / np.float32(s), 0.0, 1.0)
    out[~mask] = 0.0
    return out


def n4_correct(array: np.ndarray, mask: np.ndarray, shrink: int = 4, iterations: int = 30) -> np.ndarray:
    """N4 bias-field correction (SimpleITK) fitted on a shrunk copy, applied at full resolution."""
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(np.clip(array, 0, None).astype(np.float32))
    mask_img = sitk.GetImageFromArray(mask.astype(np.uint8))
    small = sitk.Shrink(image, [shrink] * 3)
    small_mask = sitk.Shrink(mask_img, [shrink] * 3)
    n4 = sitk.N4BiasFieldCorrectionImageFilter()
    n4.SetMaximumNumberOfIterations([iterations] * 3)
    n4.Execute(small, small_mask)
    log_field = n4.GetLogBiasFieldAsImage(image)
    corrected = sitk.GetArrayFromImage(image) / np.exp(sitk.GetArrayFromImage(log_field))
    return corrected.astype(np.float32)
