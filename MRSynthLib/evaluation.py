"""The evaluation protocol, one function used everywhere (CLI, training validation, benchmarks).

1. Brain mask: given, else derived from the truth (:func:`MRSynthLib.preprocess.derive_mask`).
2. Truth and prediction are each divided by their own 99.5th percentile inside the mask and
   clipped to [0, 1] (so a global intensity scale never counts as an error).
3. MAE and PSNR (data range 1) over the voxels inside the mask.
4. SSIM in 3D with a Gaussian window (σ = 1.5, no sample-covariance correction, data range 1),
   the SSIM map averaged inside the mask. The window is 11 voxels wide (scikit-image: 2·⌈3.5σ⌉+1), so a
   volume under 11 voxels along any axis is refused rather than scored with a smaller window: numbers
   from a different window would not be comparable with the rest.
5. Optionally normalized mutual information (Studholme) inside the mask.
SSIM, PSNR and NMI come from scikit-image, not from hand-written formulas. PSNR is ``inf`` when the two
normalized volumes agree exactly inside the mask (the CLI prints it as JSON ``null``).
"""

from __future__ import annotations

import numpy as np

from .errors import MRSynthError
from .preprocess import derive_mask, normalize

SSIM_SIGMA = 1.5
SSIM_WINDOW = 2 * int(3.5 * SSIM_SIGMA + 0.5) + 1  # 11: scikit-image's Gaussian window for σ = 1.5


def evaluate_arrays(pred: np.ndarray, truth: np.ndarray, mask: np.ndarray | None = None,
                    mutual_information: bool = False) -> dict[str, float]:
    """Metrics of ``pred`` against ``truth`` (same grid) under the project's protocol."""
    from skimage.metrics import (
        normalized_mutual_information,
        peak_signal_noise_ratio,
        structural_similarity,
    )

    if pred.shape != truth.shape:
        raise MRSynthError(f"prediction shape {pred.shape} differs from truth shape {truth.shape}")
    if truth.ndim != 3 or min(truth.shape) < SSIM_WINDOW:
        raise MRSynthError(f"volume of shape {truth.shape} is too small for the protocol's 3D SSIM "
                           f"(needs at least {SSIM_WINDOW} voxels along every axis)")
    m = derive_mask([truth]) if mask is None else mask.astype(bool)
    if not m.any():
        raise MRSynthError("the evaluation mask is empty")
    p = normalize(pred, m).astype(np.float64)
    t = normalize(truth, m).astype(np.float64)
    box = mask_box(m, SSIM_WINDOW // 2 + 1)  # SSIM inside the mask never reads beyond it: same numbers, 2–3× faster
    p, t, m = p[box], t[box], m[box]
    mae = float(np.abs(p[m] - t[m]).mean())
    psnr = float(peak_signal_noise_ratio(t[m], p[m], data_range=1.0)) if mae > 0 else float("inf")
    _, ssim_map = structural_similarity(t, p, data_range=1.0, gaussian_weights=True, sigma=SSIM_SIGMA,
                                        use_sample_covariance=False, full=True)
    out = {"MAE": mae, "PSNR": psnr, "SSIM": float(ssim_map[m].mean()), "voxels": int(m.sum())}
    if mutual_information:
        out["NMI"] = float(normalized_mutual_information(t[m], p[m], bins=64))
    return out


def mask_box(mask: np.ndarray, margin: int) -> tuple[slice, ...]:
    """Bounding box of the mask grown by ``margin`` voxels each side (clipped to the array), as slices.
    The margin must cover the SSIM window's radius, so every masked voxel's window stays inside the box
    and the filters' border handling never touches a value that counts; the box is never smaller than
    the window."""
    idx = np.nonzero(mask)
    out = []
    for axis, size in enumerate(mask.shape):
        lo, hi = max(int(idx[axis].min()) - margin, 0), min(int(idx[axis].max()) + 1 + margin, size)
        short = SSIM_WINDOW - (hi - lo)
        if short > 0:
            lo, hi = max(lo - short, 0), min(hi + short, size)
        out.append(slice(lo, hi))
    return tuple(out)


def histogram_match(source: np.ndarray, reference: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Baseline: map ``source``'s intensity histogram inside the mask onto ``reference``'s."""
    from skimage.exposure import match_histograms

    out = np.zeros_like(source, dtype=np.float32)
    out[mask] = match_histograms(source[mask].astype(np.float64), reference[mask].astype(np.float64))
    return out
