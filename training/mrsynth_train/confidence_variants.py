"""Test-time variants of a prepared subject, the candidates the uncertainty-map validation weighs against
the error model (:mod:`MRSynthLib.confidence`): ``flip`` (inputs mirrored left-right, the output mirrored
back: the network is not exactly equivariant) and ``dropout`` (one pass per input left out, with at least
two inputs). Measured, not shipped: they ranked the errors worse than the error model at 2-3x the cost
(docs/confidence.md)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np

from MRSynthLib.contrasts import CONTRASTS

METHODS = ("flip", "dropout", "both")


def variant_passes(method: str, prepared, run: Callable[[object], np.ndarray]) -> list[np.ndarray]:
    """The canonical raw outputs of ``method``'s variants of ``prepared`` (``run(prepared)``: one
    generator pass, e.g. :func:`MRSynthLib.synthesis.run_slices` with the request's style and plane)."""
    if method not in METHODS:
        raise ValueError(f"unknown test-time variant method {method!r} (use {', '.join(METHODS)})")
    out = []
    if method in ("flip", "both"):
        out.append(run(mirrored(prepared))[..., ::-1])
    if method in ("dropout", "both"):
        out += [run(without(prepared, c)) for c in prepared.inputs] if len(prepared.inputs) > 1 else []
    return out


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
