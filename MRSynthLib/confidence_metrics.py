"""How good an uncertainty map is, against the true per-voxel error (arrays of the brain's voxels).

- ``spearman``: rank correlation of the predicted SD with |error| (1: the SD orders the errors perfectly);
- ``sparsification``: mean |error| of the voxels left after removing the x % most uncertain, for
  x = 0 … 90 %, beside the oracle that removes the x % largest errors; ``ause`` is the mean gap
  between the two curves (0 for a perfect ranking), here divided by the mean |error| (unitless);
- ``coverage``: fraction of voxels with |error| ≤ z·scale·SD (z = 1.96: a 95 % interval if calibrated);
- ``top_ratio``: mean |error| in the 10 % most uncertain voxels / median |error| of all.
"""

from __future__ import annotations

import numpy as np

FRACTIONS = np.round(np.arange(0.0, 0.91, 0.01), 2)  # removed fractions of the sparsification curves
Z95 = 1.96


def spearman(sd: np.ndarray, err: np.ndarray) -> float:
    from scipy.stats import spearmanr

    sd, err = np.ravel(sd), np.ravel(err)
    if np.ptp(sd) == 0 or np.ptp(err) == 0:
        return 0.0
    return float(spearmanr(sd, err).statistic)


def _kept_means(order: np.ndarray, err: np.ndarray, fractions: np.ndarray) -> np.ndarray:
    """Mean error of the voxels kept after removing the first ``fraction`` of ``order``."""
    ranked = err[order][::-1]  # the kept voxels are a prefix of the reversed order
    csum = np.cumsum(ranked, dtype=np.float64)
    n = err.size
    kept = np.maximum(np.round((1.0 - fractions) * n).astype(int), 1)
    return csum[kept - 1] / kept


def sparsification(sd: np.ndarray, err: np.ndarray, fractions: np.ndarray = FRACTIONS
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(curve, oracle): mean |error| left after removing the most uncertain / the largest-error voxels.
    Ties in SD are broken at random (a constant SD then gives the flat random-removal curve)."""
    sd, err = np.ravel(sd).astype(np.float64), np.ravel(err).astype(np.float64)
    jitter = np.random.default_rng(0).random(sd.size)
    by_sd = np.lexsort((jitter, -sd))  # most uncertain first
    by_err = np.argsort(-err, kind="stable")
    return _kept_means(by_sd, err, fractions), _kept_means(by_err, err, fractions)


def ause(curve: np.ndarray, oracle: np.ndarray, mean_error: float | None = None) -> float:
    """Mean gap between a sparsification curve and its oracle, relative to ``mean_error`` (default: the
    curve's first point, the mean |error| of all voxels)."""
    scale = float(curve[0] if mean_error is None else mean_error) or 1.0
    return float(np.mean(curve - oracle) / scale)


def coverage(sd: np.ndarray, err: np.ndarray, scale: float = 1.0, z: float = Z95) -> float:
    return float(np.mean(np.ravel(err) <= z * scale * np.ravel(sd) * (1 + 1e-9)))  # rounding: err/z·z ≤ err


def scale_for_coverage(sd: np.ndarray, err: np.ndarray, target: float = 0.95, z: float = Z95) -> float:
    """The scale k for which |error| ≤ z·k·SD holds on a fraction ``target`` of the voxels."""
    sd, err = np.ravel(sd).astype(np.float64), np.ravel(err).astype(np.float64)
    ratio = np.where(sd > 0, err / np.maximum(z * sd, 1e-12), np.where(err > 0, np.inf, 0.0))
    return float(np.quantile(ratio, target))


def top_ratio(sd: np.ndarray, err: np.ndarray, top: float = 0.1) -> float:
    sd, err = np.ravel(sd), np.ravel(err)
    jitter = np.random.default_rng(0).random(sd.size)
    n = max(1, int(round(top * sd.size)))
    most = np.lexsort((jitter, -sd))[:n]
    median = float(np.median(err))
    return float(err[most].mean() / median) if median > 0 else float("inf")
