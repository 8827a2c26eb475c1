"""Baselines for validation: what a model must beat to be worth running.

- ``histogram_match_best``: each given input mapped onto the TRUE target histogram, best input chosen
  with hindsight (an oracle: it knows the answer's intensity distribution);
- ``LinearBaseline``: no oracle, voxel-wise linear regression target ~ a + Σ b_c · input_c on the
  project's normalized intensities, fitted on the training folds' subjects that hold the task's
  contrasts (what a careful user could do without any network)."""

from __future__ import annotations

import numpy as np

from MRSynthLib.evaluation import histogram_match

VOXELS_PER_SUBJECT = 200_000


def fit_linear(samples: list[tuple[dict[str, np.ndarray], np.ndarray]], inputs: tuple[str, ...], target: str,
               seed: int = 0) -> np.ndarray | None:
    """Least-squares coefficients (intercept first, then one per input) from (normalized contrasts, mask)
    of the subjects that hold the target and every input; None when no subject does."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for images, mask in samples:
        if target not in images or any(c not in images for c in inputs):
            continue
        idx = np.flatnonzero(mask.ravel())
        pick = rng.choice(idx, size=min(VOXELS_PER_SUBJECT, idx.size), replace=False)
        xs.append(np.stack([np.ones(pick.size)] + [images[c].ravel()[pick] for c in inputs], axis=1))
        ys.append(images[target].ravel()[pick])
    if not xs:
        return None
    coef, *_ = np.linalg.lstsq(np.concatenate(xs), np.concatenate(ys), rcond=None)
    return coef


def predict_linear(coef: np.ndarray, images: dict[str, np.ndarray], inputs: tuple[str, ...],
                   mask: np.ndarray) -> np.ndarray:
    """The fitted combination inside the mask, clipped at 0; 0 outside."""
    pred = coef[0] + sum(b * images[c] for b, c in zip(coef[1:], inputs, strict=True))
    return np.where(mask, np.clip(pred, 0.0, None), 0.0).astype(np.float32)


def histogram_match_all(images: dict[str, np.ndarray], target: str, mask: np.ndarray) -> dict[str, np.ndarray]:
    """Every other contrast of a subject mapped onto the true histogram of ``target`` (inside the mask)."""
    return {c: histogram_match(a, images[target], mask) for c, a in images.items() if c != target}
