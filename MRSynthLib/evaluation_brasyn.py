"""The BraSyn challenge's protocol (BraTS 2023 Brain MR Image Synthesis), beside the project's own, so
our numbers can be set beside the literature.

1. Each volume (prediction and truth apart) is clipped to its own 0.5th and 99.5th percentiles over the
   whole volume, the lower bound raised to 0 when negative, and scaled to [0, 1].
2. SSIM in 3D over the whole volume (Gaussian window σ = 1.5, data range 1, scikit-image; averaged, as
   scikit-image and torchmetrics do, over the volume less the window's radius at its border), and the
   same SSIM map averaged inside the tumour label and over the rest of the brain ("healthy"), where a
   tumour label exists; PSNR over the whole volume (data range 1).
The background counts: where both volumes are 0 the SSIM map is exactly 1, which is why BraSyn's SSIMs
run higher than ours (which scores inside the brain only).
"""

from __future__ import annotations

import numpy as np

from .evaluation import SSIM_SIGMA, SSIM_WINDOW, mask_box


def brasyn_normalize(volume: np.ndarray) -> np.ndarray:
    """Clip to the volume's own [p0.5, p99.5] (lower bound ≥ 0) and scale to [0, 1]."""
    v = volume.astype(np.float64)
    lo, hi = np.percentile(v, [0.5, 99.5])
    lo = max(lo, 0.0)
    if hi <= lo:
        return np.zeros_like(v)
    return (np.clip(v, lo, hi) - lo) / (hi - lo)


def brasyn_metrics(pred: np.ndarray, truth: np.ndarray, brain: np.ndarray | None = None,
                   tumour: np.ndarray | None = None) -> dict[str, float]:
    """SSIM (whole volume; tumour and healthy brain when a label is given) and whole-volume PSNR."""
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    p, t = brasyn_normalize(pred), brasyn_normalize(truth)
    mse = float(np.mean((p - t) ** 2))
    out = {"PSNR": float(peak_signal_noise_ratio(t, p, data_range=1.0)) if mse > 0 else float("inf")}
    # Outside the box both volumes are 0 in the whole window, where the SSIM map is exactly 1: compute
    # the map on the box only (same numbers, several times faster on a 240×240×155 volume).
    nonzero = (p != 0) | (t != 0)
    if not nonzero.any():
        return {**out, "SSIM": 1.0}
    box = mask_box(nonzero, SSIM_WINDOW // 2 + 1)
    _, ssim_map = structural_similarity(t[box], p[box], data_range=1.0, gaussian_weights=True, sigma=SSIM_SIGMA,
                                        use_sample_covariance=False, full=True)
    # the mean over the volume less a window radius at its border, as scikit-image's and torchmetrics' means are
    pad = SSIM_WINDOW // 2
    interior = tuple(slice(max(pad - b.start, 0), max(min(n - pad, b.stop) - b.start, 0))
                     for b, n in zip(box, p.shape, strict=True))
    n_interior = int(np.prod([n - 2 * pad for n in p.shape]))
    inside = ssim_map[interior]
    out["SSIM"] = float((inside.sum() + (n_interior - inside.size)) / n_interior)
    if tumour is not None and tumour.any():
        lesion = tumour.astype(bool)[box]
        out["SSIM_tumour"] = float(ssim_map[lesion].mean())
        if brain is not None:
            healthy = brain.astype(bool)[box] & ~lesion
            if healthy.any():
                out["SSIM_healthy"] = float(ssim_map[healthy].mean())
    return out
