"""The evaluation protocol against values computed by hand on toy volumes."""

from __future__ import annotations

import numpy as np
import pytest

from MRSynthLib.errors import MRSynthError
from MRSynthLib.evaluation import evaluate_arrays, histogram_match


def _toy():
    truth = np.zeros((12, 12, 12), np.float32)
    truth[2:10, 2:10, 2:10] = 0.5
    truth[2:10, 2:10, 2:6] = 1.0  # half of the brain at 1.0, half at 0.5
    mask = truth > 0
    return truth, mask


def test_identical_volumes_are_perfect():
    truth, mask = _toy()
    m = evaluate_arrays(truth * 300.0, truth, mask)  # a global scale is not an error
    assert m["MAE"] == 0.0 and m["PSNR"] == float("inf") and m["SSIM"] == pytest.approx(1.0)


def test_mae_and_psnr_hand_computed():
    truth, mask = _toy()
    pred = truth.copy()
    pred[(truth > 0) & (truth < 1)] = 0.6  # 99.5th percentile stays 1.0 for both
    m = evaluate_arrays(pred, truth, mask)
    # half the voxels off by 0.1: MAE = 0.05, MSE = 0.005, PSNR = 10·log10(1 / 0.005) = 23.0103 dB
    assert m["MAE"] == pytest.approx(0.05, abs=1e-7)
    assert m["PSNR"] == pytest.approx(10 * np.log10(1 / 0.005), abs=1e-4)
    assert m["voxels"] == int(mask.sum())
    assert 0 < m["SSIM"] < 1


def test_ssim_matches_wang_formula_with_a_gaussian_window():
    """SSIM map of Wang et al. (2004) written out with scipy's Gaussian filter (σ 1.5, window 11)."""
    from scipy.ndimage import gaussian_filter

    truth, mask = _toy()
    pred = truth.copy()
    pred[(truth > 0) & (truth < 1)] = 0.6
    g = lambda x: gaussian_filter(x, 1.5, truncate=3.5, mode="reflect")  # noqa: E731
    x, y = truth.astype(np.float64), pred.astype(np.float64)
    mx, my = g(x), g(y)
    vx, vy, cxy = g(x * x) - mx**2, g(y * y) - my**2, g(x * y) - mx * my
    c1, c2 = 0.01**2, 0.03**2
    ssim_map = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    assert evaluate_arrays(pred, truth, mask)["SSIM"] == pytest.approx(ssim_map[mask].mean(), abs=1e-6)


def test_mutual_information_is_reported_on_request():
    truth, mask = _toy()
    m = evaluate_arrays(truth, truth, mask, mutual_information=True)
    assert m["NMI"] == pytest.approx(2.0)  # NMI(X, X) = 2 in Studholme's definition


def test_histogram_matching_reproduces_the_reference_distribution():
    rng = np.random.default_rng(0)
    src = rng.random((8, 8, 8)).astype(np.float32)
    ref = (rng.random((8, 8, 8)) ** 3).astype(np.float32)
    mask = np.ones_like(src, bool)
    out = histogram_match(src, ref, mask)
    assert np.allclose(np.sort(out.ravel()), np.sort(ref.ravel()), atol=1e-6)
    from scipy.stats import spearmanr

    assert spearmanr(out.ravel(), src.ravel()).statistic > 0.999  # order kept, values replaced


def test_a_volume_smaller_than_the_ssim_window_is_refused_in_one_line():
    """scikit-image raised a ValueError traceback; a smaller window would change the protocol."""
    truth = np.zeros((12, 12, 10), np.float32)
    truth[2:10, 2:10, 2:8] = 1.0
    with pytest.raises(MRSynthError, match=r"too small for the protocol's 3D SSIM \(needs at least 11 voxels"):
        evaluate_arrays(truth, truth, truth > 0)


def test_cropping_to_the_mask_box_changes_no_metric():
    """The protocol scores SSIM inside the mask on a box around it (speed): every metric must equal the
    same computation on the whole volume, to rounding."""
    from skimage.metrics import structural_similarity

    from MRSynthLib.evaluation import SSIM_SIGMA, evaluate_arrays
    from MRSynthLib.preprocess import normalize

    rng = np.random.default_rng(3)
    truth = rng.random((40, 44, 36)).astype(np.float32)
    pred = np.clip(truth + 0.1 * rng.standard_normal(truth.shape), 0, None).astype(np.float32)
    mask = np.zeros(truth.shape, bool)
    mask[12:30, 10:25, 8:28] = True
    m = evaluate_arrays(pred, truth, mask)
    p, t = normalize(pred, mask).astype(np.float64), normalize(truth, mask).astype(np.float64)
    _, full = structural_similarity(t, p, data_range=1.0, gaussian_weights=True, sigma=SSIM_SIGMA,
                                    use_sample_covariance=False, full=True)
    assert m["SSIM"] == pytest.approx(float(full[mask].mean()), abs=1e-12)
    assert m["MAE"] == pytest.approx(float(np.abs(p[mask] - t[mask]).mean()), abs=1e-12)
