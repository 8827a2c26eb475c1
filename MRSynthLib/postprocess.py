"""Where the output's intensity distribution goes, after the generator: the subject's calibrated look
(:mod:`MRSynthLib.calibration`, from the inputs alone), a reference scan's histogram, or both along the
style slider. One :class:`OutputMapping` per request, so the whole-volume run and the live preview
follow the same rules (the preview maps its slice with the volume's output histogram estimated from a few
sample slices; see :class:`MRSynthLib.preview.PreviewSession`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .calibration import blend_geometric, estimate_gamma, target_quantiles
from .contrasts import canonical
from .preprocess import derive_mask, normalize
from .volume import Volume


def reference_quantiles(reference: Volume, n_quantiles: int = 1001) -> np.ndarray:
    """Quantiles of a reference scan inside its own brain mask, in the project's [0, 1] convention.

    The reference is a scan of the target contrast from *another* subject or session with the look
    wanted (same scanner/protocol); its anatomy is never used, only its histogram."""
    ref_mask = derive_mask([reference.array])
    return np.quantile(normalize(reference.array, ref_mask)[ref_mask], np.linspace(0.0, 1.0, n_quantiles))


def quantile_map(values: np.ndarray, mask: np.ndarray, ref_q: np.ndarray, alpha: float = 1.0,
                 src_q: np.ndarray | None = None) -> np.ndarray:
    """Map ``values`` inside ``mask`` so their quantiles move toward ``ref_q`` (strength α); 0 outside.
    ``src_q``: the quantiles to map from, when ``values`` is only part of what is mapped (the live
    preview's slice of a volume); default: those of ``values`` inside ``mask``."""
    if not mask.any():
        return np.zeros_like(values, dtype=np.float32)
    levels = np.linspace(0.0, 1.0, len(ref_q))
    if src_q is None:
        src = np.quantile(values[mask], levels)
    else:
        src = np.interp(levels, np.linspace(0.0, 1.0, len(src_q)), src_q)
    src = src + np.arange(len(ref_q)) * 1e-9  # strictly increasing for interpolation
    out = np.interp(values, src, (1 - alpha) * src + alpha * ref_q).astype(np.float32)
    out[~mask] = 0.0
    return out


def _resample(q: np.ndarray, n: int) -> np.ndarray:
    return np.interp(np.linspace(0.0, 1.0, n), np.linspace(0.0, 1.0, q.size), q)


@dataclass
class OutputMapping:
    """The output distribution for each slider position α (see :meth:`at`)."""

    calibrated: np.ndarray | None = None  # the target's calibrated quantiles (None: no calibration)
    walk: bool = False  # the slider walks toward a second target's mean style
    second: np.ndarray | None = None  # the second target's calibrated quantiles (when it has a template)
    reference_q: np.ndarray | None = None  # the reference's histogram (histogram matching asked for)
    style_reference: bool = False  # a reference's style code drives the generator at α
    gamma: float | None = None  # the subject's tone exponent (reported)
    strength: float = 1.0  # how far calibration moves the output's quantiles (the card's calibrate_strength)

    def at(self, alpha: float) -> tuple[np.ndarray, float] | None:
        """(quantiles, strength) to map the output onto at slider position α, or None (leave it).

        - calibrated only: the calibrated look (at the card's strength s: s of the way from the network's tone);
        - + histogram matching: from the calibrated look (α 0) to the reference's histogram (α 1);
        - + reference style code: the calibration fades out as the reference's code takes over (1 − α);
        - + second target: along tone curves from one calibrated contrast to the other.
        Without calibration only histogram matching maps (the output toward the reference, strength α)."""
        cal, ref, s = self.calibrated, self.reference_q, self.strength
        if cal is None:
            return None if ref is None else (ref, alpha)
        if ref is not None:
            n = max(ref.size, cal.size)
            return (1 - alpha) * _resample(cal, n) + alpha * _resample(ref, n), s + (1 - s) * alpha
        if self.style_reference:
            return cal, s * (1.0 - alpha)
        if self.walk:
            return (cal, s * (1.0 - alpha)) if self.second is None else (blend_geometric(cal, self.second, alpha), s)
        return cal, s

    def apply(self, values: np.ndarray, mask: np.ndarray, alpha: float, src_q: np.ndarray | None = None) -> np.ndarray:
        how = self.at(alpha)
        return values if how is None or how[1] == 0 else quantile_map(values, mask, how[0], how[1], src_q)

    def apply_scale(self, values: np.ndarray, scale: np.ndarray, mask: np.ndarray, alpha: float) -> np.ndarray:
        """An error scale given around the raw ``values`` (the scale head's b), carried through the same
        mapping: half the mapped width of values ± scale, so it follows the tone curve's local slope."""
        how = self.at(alpha)
        if how is None or how[1] == 0 or not mask.any():
            return np.where(mask, scale, 0.0).astype(np.float32)
        src_q = np.quantile(values[mask], np.linspace(0.0, 1.0, 1001))  # the quantiles ``apply`` maps from
        hi = quantile_map(values + scale, mask, how[0], how[1], src_q)
        lo = quantile_map(np.clip(values - scale, 0.0, None), mask, how[0], how[1], src_q)
        return (np.abs(hi - lo) / 2.0).astype(np.float32)


def output_mapping(engine, prepared, target: str, style_target: str | None = None,
                   reference: Volume | None = None, match_histogram: bool = False,
                   calibrate: bool = True) -> OutputMapping:
    """The mapping for one request. Calibration needs the model's templates (card
    ``intensity_templates``, given to the backend with its ModelSettings) and at least one input
    with a template; otherwise the output keeps the generator's look."""
    mapping = OutputMapping(reference_q=reference_quantiles(reference) if match_histogram and reference is not None
                            else None, style_reference=reference is not None and not match_histogram,
                            walk=style_target is not None)
    templates = engine.intensity_templates if calibrate else None
    if templates:
        gamma = estimate_gamma(prepared.stack, prepared.available, prepared.mask, templates)
        if gamma is not None:
            mapping.gamma = gamma
            mapping.strength = float(getattr(engine, "calibrate_strength", 1.0))
            allowed = engine.calibrate_targets
            if allowed is None or canonical(target) in allowed:
                mapping.calibrated = target_quantiles(templates, target, gamma)
            if style_target is not None and mapping.calibrated is not None and (
                    allowed is None or canonical(style_target) in allowed):
                mapping.second = target_quantiles(templates, style_target, gamma)
    return mapping
