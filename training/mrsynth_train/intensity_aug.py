"""Intensity domain randomization for training inputs (SynthSR-style): random monotone tone curves.

Why: after normalization, sites differ by their tone curve (how grey and white matter, CSF and lesion
sit between 0 and 1), not by a single gamma. A network trained on a few sites learns their curves; one
that sees every input through a fresh random monotone curve must read anatomy and contrast *order*,
which is what carries over to a new scanner (Billot et al., SynthSR, 2023; Iglesias et al. 2021)."""

from __future__ import annotations

import numpy as np


def random_monotone_curve(rng: np.random.Generator, knots: int = 6, concentration: float = 2.0
                          ) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) knots of a random increasing piecewise-linear map of [0, 1] onto [0, 1] with y(0) = 0 and
    y(1) = 1 (background stays 0, the normalization's top stays 1). The ``knots`` increments are a
    Dirichlet draw: ``concentration`` → ∞ gives the identity, 1 gives strongly bent curves."""
    xs = np.linspace(0.0, 1.0, knots + 1)
    ys = np.concatenate([[0.0], np.cumsum(rng.dirichlet(np.full(knots, concentration)))])
    ys[-1] = 1.0
    return xs, ys


def apply_curve(stack: np.ndarray, curve: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Map intensities through ``curve`` (values outside [0, 1] are clamped to its ends)."""
    xs, ys = curve
    return np.interp(stack, xs, ys).astype(np.float32)
