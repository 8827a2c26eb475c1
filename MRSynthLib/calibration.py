"""Intensity calibration: give the output the intensity distribution the *inputs* say the subject has.

Why: after the project's 99.5th-percentile normalization, subjects differ mostly by a shared tone curve
— the two real subjects differ by x ↦ x^g with g ≈ 1.4–1.7 in *every* contrast (TCGA-FG-6692 →
TCGA-DU-7294). The generator's instance norms discard that, so on an unfamiliar subject it renders the
training subjects' look. Calibration measures g on the given inputs against per-contrast templates
(quantiles of the training subjects, kept in the model card) and maps the output's quantiles onto the
target template raised to that g. It reads nothing but the inputs: no reference, no truth.

- template of a contrast: its quantiles inside the brain mask at ``N_QUANTILES`` evenly spaced levels,
  geometric mean over the training subjects (so the template is itself a "mean gamma" subject);
- g: median over the inputs with a template of the median over the levels ``GAMMA_LEVELS`` of
  log q_input / log q_template, clipped to ``GAMMA_RANGE``;
- output: quantile mapping (:func:`MRSynthLib.postprocess.quantile_map`) onto template[target] ** g.
"""

from __future__ import annotations

import numpy as np

from .contrasts import CONTRASTS, canonical
from .errors import MRSynthError

N_QUANTILES = 1001
GAMMA_LEVELS = np.linspace(0.05, 0.9, 18)  # bulk of the histogram; the top end is pinned near 1 by normalization
GAMMA_RANGE = (0.2, 5.0)
_EPS = 1e-4


def levels(n: int = N_QUANTILES) -> np.ndarray:
    return np.linspace(0.0, 1.0, n)


def subject_quantiles(normalized: np.ndarray, mask: np.ndarray, n: int = N_QUANTILES) -> np.ndarray:
    """Quantiles of one normalized volume ([0, 1] convention) inside its brain mask."""
    values = normalized[mask.astype(bool)]
    if values.size == 0:
        raise MRSynthError("the brain mask is empty")
    return np.quantile(values, levels(n)).astype(np.float64)


def combine(per_subject: list[np.ndarray]) -> np.ndarray:
    """Geometric mean of quantile vectors (log-domain mean: the average tone curve, not an average image)."""
    if not per_subject:
        raise MRSynthError("no subjects to build an intensity template from")
    logs = np.log(np.clip(np.asarray(per_subject, dtype=np.float64), _EPS, None))
    return np.exp(logs.mean(axis=0))


def templates_from_subjects(subjects: list[tuple[dict[str, np.ndarray], np.ndarray]]) -> dict[str, list[float]]:
    """Per-contrast templates from (contrast → normalized array, mask) pairs; contrasts nobody has are absent."""
    out = {}
    for c in CONTRASTS:
        qs = [subject_quantiles(images[c], mask) for images, mask in subjects if c in images]
        if qs:
            out[c] = [round(float(v), 6) for v in combine(qs)]
    return out


def parse_templates(raw: dict | None) -> dict[str, np.ndarray] | None:
    """Templates from a card or run file (contrast → quantile list); None when absent or empty."""
    if not raw:
        return None
    out = {}
    for name, values in raw.items():
        arr = np.asarray(values, dtype=np.float64)
        if arr.ndim != 1 or arr.size < 3 or not np.all(np.isfinite(arr)) or np.any(np.diff(arr) < -1e-9):
            raise MRSynthError(f"intensity template of '{name}' is not an increasing list of quantiles")
        out[canonical(name)] = arr
    return out


def parse_calibrate_targets(record: dict) -> frozenset[str] | None:
    """The targets a card calibrates (``calibrate_targets``, decided per target by site validation: the
    product never applies calibration where validation shows it hurts); None when the card does not say
    (older cards: every target with a template)."""
    raw = record.get("calibrate_targets")
    if raw is None:
        return None
    if not isinstance(raw, list) or not all(isinstance(c, str) for c in raw):
        raise MRSynthError("intensity_templates.calibrate_targets must be a list of contrast names")
    return frozenset(canonical(c) for c in raw)


def parse_calibrate_strength(record: dict) -> float:
    """How far the output's quantiles move toward the calibrated ones (``calibrate_strength``, chosen by
    site validation among 0, 0.25 … 1: a blend of the network's own tone and the templates'); 1 when the
    card does not say (older cards: full calibration)."""
    raw = record.get("calibrate_strength", 1.0)
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not 0.0 <= float(raw) <= 1.0:
        raise MRSynthError(f"intensity_templates.calibrate_strength must be a number in [0, 1], not {raw!r}")
    return float(raw)


def _at_levels(template: np.ndarray, at: np.ndarray) -> np.ndarray:
    return np.interp(at, levels(template.size), template)


def estimate_gamma(stack: np.ndarray, available: np.ndarray, mask: np.ndarray,
                   templates: dict[str, np.ndarray]) -> float | None:
    """The subject's tone exponent g (input ≈ template ** g), from every given input with a template;
    None when no input has one. ``stack``: C×… normalized inputs in CONTRASTS order."""
    m = mask.astype(bool)
    per_input = []
    for i, c in enumerate(CONTRASTS):
        if not available[i] or c not in templates:
            continue
        q_in = np.quantile(stack[i][m], GAMMA_LEVELS)
        q_t = _at_levels(templates[c], GAMMA_LEVELS)
        ok = (q_in > 0.02) & (q_in < 0.98) & (q_t > 0.02) & (q_t < 0.98)
        if ok.any():
            per_input.append(float(np.median(np.log(q_in[ok]) / np.log(q_t[ok]))))
    if not per_input:
        return None
    return float(np.clip(np.median(per_input), *GAMMA_RANGE))


def target_quantiles(templates: dict[str, np.ndarray], target: str, gamma: float) -> np.ndarray | None:
    """The calibrated distribution of ``target`` for a subject with exponent ``gamma`` (None: no template)."""
    t = templates.get(canonical(target))
    return None if t is None else np.clip(t, 0.0, 1.0) ** gamma


def blend_geometric(a: np.ndarray, b: np.ndarray, alpha: float) -> np.ndarray:
    """Quantiles walking from ``a`` (α = 0) to ``b`` (α = 1) along tone curves (log domain)."""
    n = max(a.size, b.size)
    a, b = _at_levels(a, levels(n)), _at_levels(b, levels(n))
    la, lb = np.log(np.clip(a, _EPS, None)), np.log(np.clip(b, _EPS, None))
    return np.exp((1 - alpha) * la + alpha * lb)
