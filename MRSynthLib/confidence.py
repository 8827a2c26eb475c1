"""A per-voxel uncertainty map for a synthesis: the expected size of its error at each brain voxel, as a
standard deviation σ in the output's intensity units, at no extra generator pass.

The method is an *intensity-conditional error model*, chosen over test-time augmentation (left-right
mirror, each input left out) by site-held-out validation (``docs/confidence.md``): for each target, the
mean |error| of synthetic images in 20 bins of output intensity, measured on real subjects from sites the
network never saw, times a per-target scale so that |error| ≤ 1.96·σ on about 95 % of those voxels. It
is an error model, not the network's own uncertainty: it says which tissue intensities a model of this
kind gets wrong, not where this network hesitates.

A model card may carry its own fitted model (``confidence``: the record ``mrsynth-train
validate-confidence`` writes); without one the project's default (:data:`DEFAULT`, fitted on the v3 site
folds) is used, and the map's ``MRSynth.UncertaintyMethod`` says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from .contrasts import canonical
from .errors import MRSynthError
from .volume import Volume

UNITS = "output intensity units (σ scales with the output: the table is read at output / its 99.5th percentile)"
INTERVAL = "|error| <= 1.96 x value on ~95 % of brain voxels (site-held-out validation, docs/confidence.md)"


@dataclass(frozen=True)
class ErrorModel:
    """Mean |error| per output-intensity bin, per target (``"*"``: all targets pooled, for the others), in
    the evaluation protocol's units (each volume / its 99.5th percentile in the brain)."""

    bins: np.ndarray  # bin edges over [0, 1]
    tables: Mapping[str, np.ndarray]  # target → mean |error| per bin
    scales: Mapping[str, float]  # target → k with |error| ≤ 1.96·k·table on 95 % of the validation voxels
    warn_mean_sd: float | None  # a volume whose mean σ (protocol units) reaches this is flagged
    source: str  # where it was fitted

    def table(self, target: str) -> np.ndarray | None:
        return self.tables.get(canonical(target), self.tables.get("*"))

    def expected_error(self, level: np.ndarray, target: str) -> np.ndarray:
        """The fitted mean |error| at each voxel of an output scaled to [0, 1] (0 without a table)."""
        table = self.table(target)
        if table is None:
            return np.zeros(level.shape, np.float32)
        idx = np.clip(np.digitize(level, self.bins) - 1, 0, self.bins.size - 2)
        return np.asarray(table, np.float32)[idx]


def parse_error_model(raw: Mapping | None, source: str) -> ErrorModel | None:
    """A card's ``confidence`` record (or None); a malformed one is an error naming what is wrong."""
    if not raw:
        return None
    try:
        bins = np.asarray(raw["bins"], np.float64)
        tables = {canonical(t) if t != "*" else "*": np.asarray(v, np.float32) for t, v in raw["error_model"].items()}
        scales = {canonical(t): float(k) for t, k in (raw.get("scale_levelfit") or {}).items()}
        warn = raw.get("warn_mean_sd")
    except (KeyError, TypeError, ValueError) as exc:
        raise MRSynthError(f"the card's 'confidence' record is malformed ({exc!r})") from None
    if bins.ndim != 1 or bins.size < 2 or np.any(np.diff(bins) <= 0):
        raise MRSynthError("the card's 'confidence' bins must be increasing edges")
    for t, v in tables.items():
        if v.shape != (bins.size - 1,) or not np.all(np.isfinite(v)) or np.any(v < 0):
            raise MRSynthError(f"the card's 'confidence' table for {t} needs {bins.size - 1} non-negative values")
    return ErrorModel(bins, tables, scales, None if warn is None else float(warn), str(raw.get("fitted_on", source)))


# Fitted by ``mrsynth-train validate-confidence`` on the v3 site-fold runs' held-out subjects (33 tasks;
# docs/confidence.md): the model for cards that carry none.
DEFAULT = parse_error_model({
    "bins": np.linspace(0.0, 1.0, 21).tolist(),
    "error_model": {
        "FLAIR": (0.2226, 0.1868, 0.1986, 0.2282, 0.2450, 0.2903, 0.2671, 0.2097, 0.1606, 0.1324,
                  0.1367, 0.1562, 0.1868, 0.2255, 0.2629, 0.2974, 0.3277, 0.3553, 0.4151, 0.4733),
        "T1": (0.3597, 0.3487, 0.3193, 0.2919, 0.2687, 0.2593, 0.2515, 0.2398, 0.2266, 0.2048,
               0.1851, 0.1602, 0.1477, 0.1348, 0.1234, 0.1198, 0.1252, 0.1430, 0.1725, 0.2535),
        "T1Gd": (0.3228, 0.1957, 0.1574, 0.1288, 0.1362, 0.1372, 0.1336, 0.1219, 0.1184, 0.1354,
                 0.1188, 0.0877, 0.0763, 0.0901, 0.1495, 0.2176, 0.2538, 0.3024, 0.3330, 0.4019),
        "T2": (0.3061, 0.3039, 0.2226, 0.1328, 0.0914, 0.1037, 0.1003, 0.1041, 0.1332, 0.1563,
               0.1796, 0.2049, 0.2323, 0.2587, 0.2889, 0.3279, 0.3772, 0.4254, 0.4613, 0.5517),
        "*": (0.2817, 0.2717, 0.2496, 0.2065, 0.1735, 0.1995, 0.1950, 0.1828, 0.1731, 0.1587,
              0.1505, 0.1502, 0.1630, 0.1730, 0.1730, 0.1696, 0.1699, 0.1872, 0.2269, 0.3461)},
    "scale_levelfit": {"FLAIR": 1.288, "T1": 1.217, "T1Gd": 1.664, "T2": 1.304},
    "warn_mean_sd": 0.238,
}, "the mrsynth-unified-v3 site folds (project default)")


@dataclass(frozen=True)
class Uncertainty:
    """σ on the canonical grid (output units) and its brain mean in protocol units (the warning's measure)."""

    sd: np.ndarray
    mean_sd: float
    high: bool  # the mean reaches the model's warning threshold


def sigma(output: np.ndarray, mask: np.ndarray, target: str, model: ErrorModel) -> Uncertainty:
    """σ of the module docstring for a canonical output inside ``mask`` (0 outside)."""
    brain = mask.astype(bool)
    top = float(np.percentile(output[brain], 99.5)) if brain.any() else 0.0
    top = top if top > 0 else 1.0
    unit = model.expected_error(output / top, target) * np.float32(model.scales.get(canonical(target), 1.0))
    unit[~brain] = 0.0
    mean_sd = float(unit[brain].mean()) if brain.any() else 0.0
    high = model.warn_mean_sd is not None and mean_sd >= model.warn_mean_sd
    return Uncertainty((unit * np.float32(top)).astype(np.float32), mean_sd, high)


def high_uncertainty_note(target: str, mean_sd: float, model: ErrorModel) -> str:
    """The one-line warning for a volume whose expected error is high (threshold: docs/confidence.md)."""
    return (f"high uncertainty: the expected error of this synthetic {target} (mean σ {mean_sd:.3f} of its "
            f"99.5th percentile) is in the range where validation found the largest errors "
            f"(≥ {model.warn_mean_sd:.3f}); check it against the acquired images before use")


def confidence_volume(sd_image: Volume, target: str, model_id: str, model: ErrorModel, mean_sd: float) -> Volume:
    """The SD array (already on the output's grid) labelled as an uncertainty map, never as an image."""
    meta = {"MRSynth.Uncertainty": "1", "MRSynth.UncertaintyOf": f"synthetic {target}",
            "MRSynth.UncertaintyMethod": f"intensity-conditional error model fitted on {model.source}",
            "MRSynth.UncertaintyInterval": INTERVAL, "MRSynth.UncertaintyUnits": UNITS,
            "MRSynth.UncertaintyMean": f"{mean_sd:.4f}", "MRSynth.Contrast": target, "MRSynth.Model": model_id,
            "descrip": f"MRSynth uncertainty (SD) of SYNTHETIC {target}"[:80]}
    for key in ("MRSynth.Inputs", "MRSynth.Device", "MRSynth.Calibration"):
        if key in sd_image.metadata:
            meta[key] = sd_image.metadata[key]
    return Volume(sd_image.array.astype(np.float32), sd_image.spacing, sd_image.origin, sd_image.direction, meta)
