"""Brain extraction for inputs that still have a skull and scalp, and the test that says whether they do.

The network was trained on skull-stripped brains. A head with a bright scalp sets the 99.5th-percentile
normalization (the brain renders dark) and gets a synthetic "scalp" drawn, so unstripped inputs are
detected and the brain is extracted first; stripped inputs (every real subject we ship, the simulator's)
go through unchanged.

Detection (:func:`check_stripped`): a skull-stripped image is exact zeros around one brain-sized blob.
An image is taken as a head when the voxels around its foreground carry signal (scanner noise in the
air) or when its foreground is larger than any brain (more than 2.2 L).

Extraction (:func:`extract_brain`), the same on every contrast: the MNI152 T1 template (nilearn ships
it) with a generic skull and scalp drawn around its brain (:mod:`MRSynthLib.synthetic_head`, mean layer
thicknesses, no eyes or neck) is registered affinely to the image by Mattes mutual information on ~4 mm
copies (mutual information needs no intensity correspondence, so T2 or FLAIR register to a T1 template;
the scalp in the template fixes the scale: a brain-only template with a brain mask as the metric's
region shrank or swelled by 15–30 %). The template's brain mask is carried onto the image, then fitted
by intensity in every input (:func:`refine`): dark skull and bright fat at its edge cut, brain-like
voxels up to 5 mm beyond it added. Measured on synthetic heads (``Testing/bench/bench_skullstrip.py``,
README): Dice 0.87–0.99, 3–6 s on 2 cores for a 240×240×155 volume.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import ndimage

from .errors import MRSynthError
from .volume import Volume

HEAD_ML = 2200.0  # larger than any brain (the 13 real subjects: 1.0–1.6 L), smaller than a head
ZERO_BACKGROUND = 0.9  # fraction of exact zeros around the foreground of a stripped image
MIN_EXTENT_MM = 80.0  # a smaller field of view cannot hold a head: nothing to strip
REGISTRATION_MM = 4.0  # one level at 4 mm, a quarter of the voxels sampled: Dice 0.93 in ~4 s (finer: +0.01, 3× slower)


@dataclass(frozen=True)
class StripCheck:
    """Whether an image is skull-stripped, and why (said to the user when it is not)."""

    stripped: bool
    reason: str


def _coarse(volume: Volume, mm: float) -> tuple[np.ndarray, np.ndarray]:
    """Every n-th voxel so that the step is about ``mm`` (detection needs no detail), and its spacing."""
    step = [max(1, int(round(mm / s))) for s in volume.spacing[::-1]]
    return volume.array[::step[0], ::step[1], ::step[2]], np.asarray(volume.spacing[::-1]) * step


def check_stripped(volume: Volume) -> StripCheck:
    """Skull-stripped or not: exact zeros around one brain-sized foreground, or a head."""
    extent = np.asarray(volume.array.shape) * np.asarray(volume.spacing[::-1])
    if extent.min() < MIN_EXTENT_MM:
        return StripCheck(True, f"field of view {extent.min():.0f} mm across, too small for a head")
    arr, spacing = _coarse(volume, 2.0)
    positive = arr[arr > 0]
    if positive.size == 0:
        return StripCheck(True, "no positive voxel")
    scale = float(np.percentile(positive, 99.5))
    fg = arr > 0.02 * scale
    labels, n = ndimage.label(fg)
    if n > 1:
        fg = labels == 1 + int(np.argmax(ndimage.sum(fg, labels, index=np.arange(1, n + 1))))
    fg = ndimage.binary_fill_holes(fg)
    around = arr[~ndimage.binary_dilation(fg, iterations=2)]
    zeros = float(np.mean(np.abs(around) <= 1e-6 * scale)) if around.size else 1.0
    if zeros < ZERO_BACKGROUND:
        return StripCheck(False, f"{100 * (1 - zeros):.0f}% of the voxels around the head carry signal")
    litres = float(fg.sum() * np.prod(spacing)) / 1e6
    if litres * 1000 > HEAD_ML:
        return StripCheck(False, f"its foreground is {litres:.1f} L, larger than a brain")
    return StripCheck(True, "zero background around a brain-sized foreground")


@lru_cache(maxsize=1)
def _template() -> tuple[Volume, Volume, Volume]:
    """MNI152 T1 with a generic skull and scalp, its brain mask and the head region (2 mm grid)."""
    import importlib.resources as res

    import nibabel as nib
    import SimpleITK as sitk

    from . import orientation
    from .io import volume_from_sitk, volume_to_sitk
    from .phantom import mni_anatomy
    from .synthetic_head import canonical_spacing, head_labels, render_head

    _, _, brain_1mm, affine = mni_anatomy()  # raises the "install the phantom extra" error without nilearn
    t1 = nib.load(str(res.files("nilearn.datasets") / "data" / "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"))
    t1_1mm = np.asarray(t1.dataobj, dtype=np.float32).transpose(2, 1, 0)
    half = lambda a: volume_from_sitk(sitk.BinShrink(volume_to_sitk(Volume.from_affine_ras(a, affine)), [2] * 3))  # noqa: E731
    image = half(t1_1mm)
    brain = half(brain_1mm.astype(np.float32)).array > 0.5
    labels = head_labels(orientation.to_canonical(image.with_array(brain)), canonical_spacing(image), seed=None,
                         eyes_and_neck=False)
    head = render_head(image.with_array(image.array * brain), brain, "T1", labels, noise=0.0, background="zero")
    region = orientation.from_canonical(np.any(np.stack(list(labels.values())), axis=0), image) | brain
    region = ndimage.binary_dilation(region, iterations=3)
    return head, image.with_array(brain.astype(np.float32)), image.with_array(region.astype(np.uint8))


def register_template(volume: Volume, seed: int = 1):
    """Affine transform (SimpleITK) from ``volume``'s space to the head template's, by mutual information."""
    import SimpleITK as sitk

    from .io import volume_to_sitk

    head, _, region = _template()
    fixed = sitk.Cast(volume_to_sitk(Volume(np.clip(volume.array, 0, None).astype(np.float32), volume.spacing,
                                            volume.origin, volume.direction)), sitk.sitkFloat32)
    fixed = sitk.BinShrink(fixed, [max(1, int(round(REGISTRATION_MM / s))) for s in fixed.GetSpacing()])
    moving = sitk.Cast(volume_to_sitk(head), sitk.sitkFloat32)
    init = sitk.CenteredTransformInitializer(fixed, moving, sitk.AffineTransform(3),  # heads sit mid-field;
                                             sitk.CenteredTransformInitializerFilter.GEOMETRY)  # a neck moves moments
    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=32)
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    reg.SetMetricSamplingPercentage(0.25, seed=seed)  # fewer samples: a noisier metric stops the optimizer early
    reg.SetMetricMovingMask(volume_to_sitk(region))
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetOptimizerAsRegularStepGradientDescent(learningRate=1.0, minStep=1e-3, numberOfIterations=200)
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetInitialTransform(init, inPlace=False)
    return reg.Execute(fixed, moving)


def refine(arrays: list[np.ndarray], prior: np.ndarray, spacing: np.ndarray, core_mm: float = 8.0,
           grow_mm: float = 5.0) -> np.ndarray:
    """Fit the carried template mask to the image(s) by intensity, judged against the brain's core (the
    mask less its outer ``core_mm``) in every image. Trim: voxels dark in any image (skull, air: under 10%
    of the core's median) or, outside the core, brighter than the brain (fat) go; what stays joined to the
    core is kept. Grow: up to ``grow_mm`` beyond the mask, voxels within the core's intensity range in
    every image (1st to 99.5th percentile; the skull is below it, the fat in T1 above it) are added where
    they join the kept brain, as the affine fit misses a few millimetres here and there. Holes filled."""
    idx = np.argwhere(prior)
    pad = np.ceil((grow_mm + 1) / spacing).astype(int)
    lo, hi = np.maximum(idx.min(axis=0) - pad, 0), np.minimum(idx.max(axis=0) + 1 + pad, prior.shape)
    box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    pri = prior[box]
    core = ndimage.distance_transform_edt(pri, sampling=spacing) > core_mm
    if not core.any():
        core = pri
    keep, like_brain = pri.copy(), np.ones(pri.shape, bool)
    for array in arrays:
        img = array[box]
        inside = img[core]
        median = float(np.median(inside))
        low, top = np.percentile(inside, [1.0, 99.5])
        keep &= (img > 0.1 * median) & ~((img > 1.2 * top) & ~core)
        like_brain &= (img >= max(float(low), 0.1 * median)) & (img <= top)
    labels, _ = ndimage.label(keep)
    hits = np.unique(labels[core & keep])
    keep = np.isin(labels, hits[hits > 0])
    if grow_mm > 0:
        near = ndimage.distance_transform_edt(~pri, sampling=spacing) <= grow_mm
        keep = ndimage.binary_propagation(keep, mask=keep | (near & ~pri & like_brain))
    out = np.zeros(prior.shape, bool)
    out[box] = ndimage.binary_fill_holes(keep)
    return out


def extract_brain(volume: Volume, others: tuple[np.ndarray, ...] = ()) -> np.ndarray:
    """Brain mask (bool, ``volume``'s grid) of a head image of any contrast; ``others``: more images of
    the same head on the same grid (other contrasts), which the intensity fit also reads."""
    import SimpleITK as sitk

    from .io import volume_from_sitk, volume_to_sitk

    _, brain, _ = _template()
    transform = register_template(volume)
    warped = sitk.Resample(sitk.Cast(volume_to_sitk(brain), sitk.sitkFloat32), volume_to_sitk(volume), transform,
                           sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    prior = volume_from_sitk(warped).array > 0.5
    if not prior.any():
        raise MRSynthError("brain extraction failed: the brain template does not land on the image "
                           "(give a brain mask with --mask)", volume.metadata.get("source_path"))
    return refine([volume.array, *others], prior, np.asarray(volume.spacing[::-1]))


EXTRACT_ORDER = ("FLAIR", "T1", "T1Gd", "PD", "T2")
"""Which input the brain is extracted from when several have a skull: the cut is cleanest where the fluid
around the brain is dark (Dice on the simulated heads: FLAIR 0.95–0.97, T1 0.93–0.94, T2 0.92–0.93)."""


def check_skull_strip(skull_strip: object) -> None:
    """The three values ``skull_strip`` takes (a typo must not silently mean "auto")."""
    if skull_strip not in ("auto", True, False) or isinstance(skull_strip, int) and not isinstance(skull_strip, bool):
        raise MRSynthError(f"skull_strip must be 'auto', True or False, got {skull_strip!r}")


def input_brain_mask(originals: dict[str, Volume], aligned: dict[str, Volume], labels: dict[str, str],
                     skull_strip: bool | str = "auto") -> tuple[np.ndarray, list[str]]:
    """The brain mask of a request without a given mask, and the note to show with the result.

    ``skull_strip`` "auto": inputs that are all skull-stripped keep today's mask (non-background voxels,
    :func:`MRSynthLib.preprocess.derive_mask`) and no note; when some are stripped and some are not, the
    mask comes from the stripped ones; when none is, the brain is extracted (:func:`extract_brain`).
    ``True`` always extracts, ``False`` never does (a head is then normalized and synthesized whole)."""
    from .preprocess import derive_mask

    check_skull_strip(skull_strip)
    if skull_strip is False:
        return derive_mask([v.array for v in aligned.values()]), []
    checks = {c: check_stripped(v) for c, v in originals.items()}
    heads = [c for c, chk in checks.items() if not chk.stripped]
    if skull_strip == "auto" and not heads:
        return derive_mask([v.array for v in aligned.values()]), []
    override = "the output is 0 outside it (--mask or --no-skull-strip to override)"
    if skull_strip == "auto" and len(heads) < len(checks):
        stripped = [c for c in checks if c not in heads]
        return derive_mask([aligned[c].array for c in stripped]), [
            f"{', '.join(labels[c] for c in heads)}: not skull-stripped ({checks[heads[0]].reason}); the brain "
            f"mask comes from the stripped input{'s' if len(stripped) > 1 else ''} "
            f"({', '.join(labels[c] for c in stripped)}); {override}"]
    source = min(heads or list(aligned), key=EXTRACT_ORDER.index)
    why = f"not skull-stripped ({checks[source].reason})" if source in heads else "brain extraction asked for"
    if importlib.util.find_spec("nilearn") is None:  # the optional `phantom` extra ships the MNI152 template
        raise MRSynthError(f"{why}; brain extraction needs the MNI152 template from nilearn: pip install "
                           "'mrsynth[phantom]' (or give a brain mask with --mask, or pass --no-skull-strip)",
                           labels[source])
    others = tuple(aligned[c].array for c in (heads or aligned) if c != source)
    return extract_brain(aligned[source], others), [
        f"{labels[source]}: {why}; brain extracted by registering the MNI152 template; {override}"]


def reference_brain(reference: Volume | None, skull_strip: bool | str = "auto",
                    label: str = "style reference") -> tuple[Volume | None, list[str]]:
    """The style reference as the style encoder and histogram matching should see it: a head's brain alone
    (0 outside, so its own mask is the brain), by the same rule as the inputs; and the note saying so.

    Without this a head's skull and scalp enter the reference's histogram (its bright fat becomes the top
    of the target's intensity range) and its style code."""
    check_skull_strip(skull_strip)
    if reference is None or skull_strip is False:
        return reference, []
    check = check_stripped(reference)
    if skull_strip == "auto" and check.stripped:
        return reference, []
    why = f"not skull-stripped ({check.reason})" if not check.stripped else "brain extraction asked for"
    if importlib.util.find_spec("nilearn") is None:
        raise MRSynthError(f"{why}; brain extraction needs the MNI152 template from nilearn: pip install "
                           "'mrsynth[phantom]' (or pass --no-skull-strip)", label)
    brain = extract_brain(reference)
    stripped = reference.with_array(np.where(brain, reference.array, 0).astype(reference.array.dtype))
    return stripped, [f"{label}: {why}; its brain was extracted for its style and histogram"]

