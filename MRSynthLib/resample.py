"""Put every input on the grid of the first one: overlap check, optional rigid registration, resampling."""

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
    import SimpleITK as sitk  # noqa: PLC0415

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


def resample_to(reference: Volume, moving: Volume, transform=None, name: str = "input") -> Volume:
    """Linear resampling of ``moving`` onto ``reference``'s grid (identity when already there)."""
    if transform is None and reference.same_grid(moving):
        return moving
    if overlap_fraction(reference, moving) < 0.05:
        raise MRSynthError("does not overlap the first input (fields of view are disjoint)", name)
    import SimpleITK as sitk  # noqa: PLC0415

    tx = transform if transform is not None else sitk.Transform()
    out = sitk.Resample(sitk.Cast(volume_to_sitk(moving), sitk.sitkFloat32), volume_to_sitk(reference),
                        tx, sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    result = volume_from_sitk(out)
    return Volume(result.array, reference.spacing, reference.origin, reference.direction, dict(moving.metadata))


def align_inputs(volumes: dict[str, Volume], register: bool = False) -> dict[str, Volume]:
    """Resample all volumes onto the first one's grid, registering them rigidly if asked."""
    names = list(volumes)
    ref = volumes[names[0]]
    out = {names[0]: ref}
    for name in names[1:]:
        vol = volumes[name]
        label = vol.metadata.get("source_path", name)
        if overlap_fraction(ref, vol) < 0.05:
            raise MRSynthError("does not overlap the first input (fields of view are disjoint)", label)
        tx = rigid_register(ref, vol) if register else None
        out[name] = resample_to(ref, vol, tx, label)
    return out
