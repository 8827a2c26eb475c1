"""The grid subjects are trained on: canonical (S, P, L) axes at about 1 mm, whatever the file's grid.

Why: slices are cropped in voxels, so a subject stored at 1.2 mm (Kirby21's MPRAGE) would show the
network its anatomy 17 % smaller than the BraTS/TCGA subjects at 1 mm, and the engine synthesizes on
the user's own grid. Subjects within ``TOLERANCE`` of 1 mm are left untouched (bit-exact)."""

from __future__ import annotations

import numpy as np

from MRSynthLib import orientation
from MRSynthLib.volume import Volume

TARGET_MM = 1.0
TOLERANCE = 0.05


def canonical_spacing(volume: Volume) -> tuple[float, float, float]:
    """Voxel size along the canonical (S, P, L) array axes."""
    world_to_index, _ = orientation.canonical_plan(volume.direction)
    return tuple(float(volume.spacing[world_to_index[w]]) for w in (2, 1, 0))


def to_training_grid(images: dict[str, np.ndarray], mask: np.ndarray, like: Volume
                     ) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Canonical images and mask resampled to ``TARGET_MM`` along every axis that is off by more than
    ``TOLERANCE`` (linear for images, nearest for the mask); unchanged otherwise."""
    from scipy.ndimage import zoom

    spacing = np.asarray(canonical_spacing(like))
    if np.all(np.abs(spacing / TARGET_MM - 1.0) <= TOLERANCE):
        return images, mask
    factors = tuple(float(f) for f in spacing / TARGET_MM)
    out = {c: np.clip(zoom(a, factors, order=1, grid_mode=True, mode="grid-constant"), 0.0, None).astype(np.float32)
           for c, a in images.items()}
    return out, zoom(mask.astype(np.uint8), factors, order=0, grid_mode=True, mode="grid-constant").astype(bool)
