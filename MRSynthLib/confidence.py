"""A per-voxel uncertainty map for a synthesis: the expected size of its error at each brain voxel, as a
standard deviation σ in the output's intensity units, without retraining.

Two ingredients, weighed by site-held-out validation (``docs/confidence.md``):

- an *intensity-conditional error model*: for each target, the mean |error| of synthetic images at each
  output intensity (20 bins), measured on real subjects the network never saw (site-grouped fold runs).
  It costs no generator pass;
- the spread of *test-time variants* (``METHODS``), one more generator pass each: ``flip`` (inputs
  mirrored left-right, output mirrored back: the network is not exactly equivariant), ``dropout`` (one
  pass per input left out, with at least two inputs: disagreement where one input carries unique
  information).

σ = SCALE[target] · (error_model[target](output) + VARIANT_WEIGHT · SD of the variants), 0 outside the
brain; SCALE makes |error| ≤ 1.96·σ hold on about 95 % of the validation voxels. ``METHOD`` (the
variants run) and the constants are the validation's choice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np

from .contrasts import CONTRASTS, canonical
from .slice_runner import Progress
from .volume import Volume

METHODS = ("none", "flip", "dropout", "both")  # the variant passes; "none": the error model alone
METHOD = "none"  # chosen by measurement: docs/confidence.md
VARIANT_WEIGHT = 0.0
LEVEL_BINS = np.linspace(0.0, 1.0, 21)
# mean |error| per output-intensity bin, in the evaluation protocol's units: fitted by ``mrsynth-train
# validate-confidence`` on the v3 site-fold runs' held-out subjects (33 tasks; docs/confidence.md);
# "*": all targets pooled (used for PD, which has no real validation data)
ERROR_MODEL: dict[str, tuple[float, ...]] = {
    "FLAIR": (0.2226, 0.1868, 0.1986, 0.2282, 0.2450, 0.2903, 0.2671, 0.2097, 0.1606, 0.1324,
              0.1367, 0.1562, 0.1868, 0.2255, 0.2629, 0.2974, 0.3277, 0.3553, 0.4151, 0.4733),
    "T1": (0.3597, 0.3487, 0.3193, 0.2919, 0.2687, 0.2593, 0.2515, 0.2398, 0.2266, 0.2048,
           0.1851, 0.1602, 0.1477, 0.1348, 0.1234, 0.1198, 0.1252, 0.1430, 0.1725, 0.2535),
    "T1Gd": (0.3228, 0.1957, 0.1574, 0.1288, 0.1362, 0.1372, 0.1336, 0.1219, 0.1184, 0.1354,
             0.1188, 0.0877, 0.0763, 0.0901, 0.1495, 0.2176, 0.2538, 0.3024, 0.3330, 0.4019),
    "T2": (0.3061, 0.3039, 0.2226, 0.1328, 0.0914, 0.1037, 0.1003, 0.1041, 0.1332, 0.1563,
           0.1796, 0.2049, 0.2323, 0.2587, 0.2889, 0.3279, 0.3772, 0.4254, 0.4613, 0.5517),
    "*": (0.2817, 0.2717, 0.2496, 0.2065, 0.1735, 0.1995, 0.1950, 0.1828, 0.1731, 0.1587,
          0.1505, 0.1502, 0.1630, 0.1730, 0.1730, 0.1696, 0.1699, 0.1872, 0.2269, 0.3461),
}
# |error| ≤ 1.96·SCALE·model on 95 % of those voxels
SCALE: dict[str, float] = {"FLAIR": 1.288, "T1": 1.217, "T1Gd": 1.664, "T2": 1.304}  # per target (default 1)
UNITS = "output intensity units (1 = the target's 99.5th percentile inside the brain)"


def error_model(output: np.ndarray, target: str) -> np.ndarray:
    """The expected |error| at each voxel from its output intensity (0 without a fitted model)."""
    table = ERROR_MODEL.get(canonical(target), ERROR_MODEL.get("*"))
    if table is None:
        return np.zeros(output.shape, np.float32)
    idx = np.clip(np.digitize(output, LEVEL_BINS) - 1, 0, LEVEL_BINS.size - 2)
    return np.asarray(table, np.float32)[idx]


def method_label() -> str:
    parts = ["intensity-conditional error model"] if ERROR_MODEL else []
    if METHOD != "none" and VARIANT_WEIGHT:
        parts.append(f"{VARIANT_WEIGHT:g} x SD of test-time variants ({METHOD})")
    return " + ".join(parts) or "none"


def sigma(output: np.ndarray, variants: list[np.ndarray], mask: np.ndarray, target: str) -> np.ndarray:
    """σ of the module docstring on a canonical output and its (mapped) variants."""
    sd = error_model(output, target) + np.float32(VARIANT_WEIGHT) * spread(output, variants, mask)
    sd = sd * np.float32(SCALE.get(canonical(target), 1.0))
    sd[~mask.astype(bool)] = 0.0
    return sd.astype(np.float32)


def variant_passes(method: str, prepared, run: Callable[[object], np.ndarray]) -> list[np.ndarray]:
    """The canonical raw outputs of ``method``'s variants of ``prepared`` (``run(prepared)``: one
    generator pass, e.g. :func:`MRSynthLib.synthesis.run_slices` with the request's style and plane)."""
    if method not in METHODS:
        raise ValueError(f"unknown confidence method {method!r} (use {', '.join(METHODS)})")
    out = []
    if method in ("flip", "both"):
        out.append(run(mirrored(prepared))[..., ::-1])
    if method in ("dropout", "both"):
        out += [run(without(prepared, c)) for c in prepared.inputs] if len(prepared.inputs) > 1 else []
    return out


def n_variants(method: str, n_inputs: int) -> int:
    """How many extra generator passes ``method`` costs for a request with ``n_inputs`` inputs."""
    drop = n_inputs if n_inputs > 1 else 0
    return {"none": 0, "flip": 1, "dropout": drop, "both": 1 + drop}[method]


def mirrored(prepared):
    """The prepared subject mirrored left-right (canonical order is S, P, L: the last axis)."""
    return replace(prepared, stack=np.ascontiguousarray(prepared.stack[..., ::-1]),
                   mask=np.ascontiguousarray(prepared.mask[..., ::-1]))


def without(prepared, contrast: str):
    """The prepared subject with one input left out (its channel zeroed, marked unavailable)."""
    i = CONTRASTS.index(contrast)
    stack, available = prepared.stack.copy(), prepared.available.copy()
    stack[i], available[i] = 0.0, 0.0
    return replace(prepared, stack=stack, available=available,
                   inputs=tuple(c for c in prepared.inputs if c != contrast))


def spread(main: np.ndarray, variants: list[np.ndarray], mask: np.ndarray) -> np.ndarray:
    """SD over the main output and its variants (same units), 0 outside ``mask``; zeros without variants."""
    if not variants:
        return np.zeros(main.shape, np.float32)
    sd = np.stack([main, *variants]).astype(np.float32).std(axis=0)
    sd[~mask.astype(bool)] = 0.0
    return sd


def passes_progress(progress: Progress | None, n_passes: int, first: int) -> Callable[[int], Progress | None]:
    """``progress`` for pass number k of ``n_passes`` (each pass's done/total folded into the whole run)."""
    if progress is None:
        return lambda _k: None

    def for_pass(k: int) -> Progress:
        def report(done: int, total: int, message: str) -> bool | None:
            return progress((first + k) * total + done, n_passes * total, message)
        return report

    return for_pass


def confidence_volume(sd_image: Volume, target: str, model_id: str, method: str) -> Volume:
    """The SD array (already on the output's grid) labelled as an uncertainty map, never as an image."""
    meta = {"MRSynth.Uncertainty": "1", "MRSynth.UncertaintyOf": f"synthetic {target}",
            "MRSynth.UncertaintyMethod": method, "MRSynth.UncertaintyInterval": "|error| <= 1.96 x value on ~95 % "
            "of brain voxels (site-held-out validation, docs/confidence.md)", "MRSynth.UncertaintyUnits": UNITS,
            "MRSynth.Contrast": target, "MRSynth.Model": model_id,
            "descrip": f"MRSynth uncertainty (SD) of SYNTHETIC {target}"[:80]}
    for key in ("MRSynth.Inputs", "MRSynth.Device", "MRSynth.Calibration"):
        if key in sd_image.metadata:
            meta[key] = sd_image.metadata[key]
    return Volume(sd_image.array.astype(np.float32), sd_image.spacing, sd_image.origin, sd_image.direction, meta)
