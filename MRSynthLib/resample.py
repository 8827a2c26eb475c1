"""Put every input on the grid of the first one: overlap check, optional rigid registration, resampling,
and where each input has data on that grid (an input may cover only part of it)."""

from __future__ import annotations

import numpy as np

from .errors import MRSynthError
from .io import volume_from_sitk, volume_to_sitk
from .volume import Volume


def overlap_fraction(a: Volume, b: Volume) -> float:
    """Fraction of the smaller world bounding box shared by both volumes."""
    amin, amax = a.world_bounds()
    bmin, bmax = b.world_bounds()
    inter = np.clip(np.minimum(amax, bmax) - np.maximum(amin, bmin), 0, None)
    vol = lambda lo, hi: float(np.prod(np.maximum(hi - lo, 1e-6)))  # noqa: E731
    return float(np.prod(inter)) / min(vol(amin, amax), vol(bmin, bmax))


def rigid_register(fixed: Volume, moving: Volume, iterations: int = 100):
    """Rigid (Euler 3D) registration by Mattes mutual information; returns a SimpleITK transform."""
    import SimpleITK as sitk

    f = sitk.Cast(volume_to_sitk(fixed), sitk.sitkFloat32)
    m = sitk.Cast(volume_to_sitk(moving), sitk.sitkFloat32)
    init = sitk.CenteredTransformInitializer(f, m, sitk.Euler3DTransform(),
                                             sitk.CenteredTransformInitializerFilter.GEOMETRY)
    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=32)
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    reg.SetMetricSamplingPercentage(0.05, seed=1)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetOptimizerAsRegularStepGradientDescent(learningRate=2.0, minStep=1e-3, numberOfIterations=iterations)
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetShrinkFactorsPerLevel([4, 2, 1])
    reg.SetSmoothingSigmasPerLevel([2, 1, 0])
    reg.SetInitialTransform(init, inPlace=False)
    return reg.Execute(f, m)


def resample_with_coverage(reference: Volume, moving: Volume, transform=None,
                           name: str = "input") -> tuple[Volume, np.ndarray | None]:
    """Linear resampling of ``moving`` onto ``reference``'s grid, and where it has data there (None: all
    of the grid). Voxels outside ``moving`` are 0 in the result; the coverage tells them from real zeros."""
    if transform is None and reference.same_grid(moving):
        return moving, None
    if overlap_fraction(reference, moving) < 0.05:
        raise MRSynthError("does not overlap the first input (fields of view are disjoint)", name)
    import SimpleITK as sitk

    tx = transform if transform is not None else sitk.Transform()
    out = sitk.Resample(sitk.Cast(volume_to_sitk(moving), sitk.sitkFloat32), volume_to_sitk(reference),
                        tx, sitk.sitkLinear, float("nan"), sitk.sitkFloat32)  # NaN marks "no data here"
    array = volume_from_sitk(out).array
    covered = np.isfinite(array)
    array[~covered] = 0.0
    result = Volume(array, reference.spacing, reference.origin, reference.direction, dict(moving.metadata))
    return result, (None if covered.all() else covered)


def resample_to(reference: Volume, moving: Volume, transform=None, name: str = "input") -> Volume:
    """Linear resampling of ``moving`` onto ``reference``'s grid (identity when already there); 0 outside it."""
    return resample_with_coverage(reference, moving, transform, name)[0]


def align_with_coverage(volumes: dict[str, Volume],
                        register: bool = False) -> tuple[dict[str, Volume], dict[str, np.ndarray]]:
    """Resample all volumes onto the first one's grid (registering them rigidly if asked); also, for each
    input that does not cover the whole grid, where it has data."""
    names = list(volumes)
    ref = volumes[names[0]]
    out, coverage = {names[0]: ref}, {}
    for name in names[1:]:
        vol = volumes[name]
        label = vol.metadata.get("source_path", name)
        if overlap_fraction(ref, vol) < 0.05:
            raise MRSynthError("does not overlap the first input (fields of view are disjoint)", label)
        tx = rigid_register(ref, vol) if register else None
        out[name], covered = resample_with_coverage(ref, vol, tx, label)
        if covered is not None:
            coverage[name] = covered
    return out, coverage


def align_inputs(volumes: dict[str, Volume], register: bool = False) -> dict[str, Volume]:
    """Resample all volumes onto the first one's grid, registering them rigidly if asked."""
    return align_with_coverage(volumes, register)[0]


def limit_to_coverage(mask: np.ndarray, coverage: dict[str, np.ndarray],
                      labels: dict[str, str]) -> tuple[np.ndarray, list[str]]:
    """The brain mask less the voxels where an input has no data, and one note per such input.

    The network reads a missing part of one contrast as a black region of that contrast and draws a seam;
    the output is 0 there instead (outside the mask), and the note says so."""
    total = int(np.count_nonzero(mask))
    keep, notes = mask.copy(), []
    for name, covered in coverage.items():
        inside = int(np.count_nonzero(mask & covered))
        if inside == total:
            continue
        if inside == 0:
            raise MRSynthError("covers none of the brain in the first input's field of view", labels[name])
        notes.append(f"{labels[name]}: covers only {100 * inside // total}% of the brain in the output's field of "
                     "view; the output is 0 where it has no data")
        keep &= covered
    if not keep.any():
        raise MRSynthError("no brain voxel is covered by every input; nothing to synthesize")
    return keep, notes
