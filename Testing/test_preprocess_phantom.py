"""Mask, normalization and the physics simulator behave as the signal equations say."""

from __future__ import annotations

import numpy as np
import pytest

from MRSynthLib.errors import MRSynthError
from MRSynthLib.phantom import TISSUES, flair_null_ti, signal, simulate_subject
from MRSynthLib.preprocess import derive_mask, normalize, robust_scale


def test_normalization_convention_and_negative_values():
    arr = np.zeros((10, 10, 10), np.float32)
    arr[2:8, 2:8, 2:8] = np.linspace(1, 200, 216).reshape(6, 6, 6)
    arr[2, 2, 2] = -50.0  # ringing at the edge, as in the real data
    mask = arr != 0
    out = normalize(arr, mask)
    assert out.min() == 0.0 and out.max() == 1.0
    assert out[0, 0, 0] == 0.0 and out[2, 2, 2] == 0.0
    scale = robust_scale(arr, mask)
    assert scale == pytest.approx(np.percentile(np.clip(arr[mask], 0, None), 99.5))


def test_mask_is_filled_and_keeps_the_largest_component():
    arr = np.zeros((20, 20, 20), np.float32)
    arr[4:16, 4:16, 4:16] = 100
    arr[8:12, 8:12, 8:12] = 0  # a "ventricle" must stay inside
    arr[0, 0, 0] = 100  # a speck outside
    m = derive_mask([arr])
    assert m[10, 10, 10] and not m[0, 0, 0]
    with pytest.raises(MRSynthError):
        derive_mask([np.zeros((4, 4, 4))])


def test_signal_equations_hand_checked():
    t1, t2, pd = np.float64(1000.0), np.float64(100.0), np.float64(0.8)
    se = signal("SE", 500.0, 10.0, 0.0, t1, t2, pd)
    assert se == pytest.approx(0.8 * (1 - np.exp(-0.5)) * np.exp(-0.1))
    ti = flair_null_ti(9000.0)
    csf_t1, csf_t2, csf_pd = TISSUES["CSF"]
    assert signal("IR", 9000.0, 120.0, ti, np.float64(csf_t1), np.float64(csf_t2), np.float64(csf_pd)) == pytest.approx(0, abs=1e-9)
    assert ti == pytest.approx(csf_t1 * np.log(2), rel=0.05)


def test_phantom_is_deterministic_and_varied(small_subject):
    again = simulate_subject(seed=3, shape=(48, 56, 48), lesion=True)
    other = simulate_subject(seed=4, shape=(48, 56, 48), lesion=True)
    for c in ("T1", "FLAIR"):
        assert np.array_equal(small_subject.volumes[c].array, again.volumes[c].array)
        assert not np.array_equal(small_subject.volumes[c].array, other.volumes[c].array)
    assert small_subject.volumes["T1"].array.shape == (48, 56, 48)
    assert set(small_subject.volumes) == {"T1", "T1Gd", "T2", "PD", "FLAIR"}


def test_phantom_contrasts_follow_tissue_physics():
    s = simulate_subject(seed=11, shape=(64, 64, 64), lesion=False)
    from MRSynthLib.phantom import mni_anatomy  # noqa: F401 - warms the cache

    mask = s.mask.array > 0
    t1, t2, flair = (normalize(s.volumes[c].array, mask) for c in ("T1", "T2", "FLAIR"))
    # CSF = dark on T1 and FLAIR, bright on T2: use T2-brightest voxels as CSF, T1-brightest as WM
    csf = t2 > np.percentile(t2[mask], 97)
    wm = t1 > np.percentile(t1[mask], 90)
    assert t2[csf].mean() > t2[wm].mean()
    assert t1[csf].mean() < t1[wm].mean()
    assert flair[csf].mean() < flair[wm].mean()


def test_gadolinium_enhances_only_the_lesion_rim():
    s = simulate_subject(seed=5, shape=(64, 64, 64), lesion=True)
    from MRSynthLib.phantom import LABELS

    ratio = s.volumes["T1Gd"].array / np.maximum(s.volumes["T1"].array, 1e-3)
    labels = s.labels.array
    rim, wm, core = (labels == 1 + LABELS.index(n) for n in ("enhancing", "WM", "necrosis"))
    assert rim.sum() > 10 and core.sum() > 0
    # scanner gains differ per contrast, so compare ratios between tissues of the same subject
    assert np.median(ratio[rim]) > 1.3 * np.median(ratio[wm])
    assert np.median(ratio[core]) < np.median(ratio[rim])


def test_n4_removes_most_of_a_smooth_bias_field():
    from MRSynthLib.preprocess import n4_correct

    s = simulate_subject(seed=12, shape=(48, 56, 48), lesion=False)
    mask = s.mask.array > 0
    clean = s.volumes["T1"].array.astype(np.float64)
    k, j, i = np.meshgrid(*[np.linspace(-1, 1, n) for n in clean.shape], indexing="ij")
    biased = (clean * np.exp(0.4 * i + 0.2 * k)).astype(np.float32)
    corrected = n4_correct(biased, mask)
    # compare log-ratios to the clean image inside the brain: the field's spread must shrink a lot
    spread = lambda a: float(np.std(np.log(np.maximum(a[mask], 1e-3)) - np.log(np.maximum(clean[mask], 1e-3))))  # noqa: E731
    assert spread(corrected) < 0.5 * spread(biased)
