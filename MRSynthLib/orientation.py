"""Reorient arrays by exact axis permutations and flips so slicing follows anatomy.

Never assume array axis 0 is axial: the direction matrix decides. ``to_canonical`` returns
an array whose numpy axes follow the LPS world axes S, P, L (axis 0 runs inferior→superior,
axis 1 anterior→posterior, axis 2 right→left), so ``canonical[n]`` is an axial slice shown in
radiological convention. ``from_canonical`` undoes it bit-exactly; no interpolation is involved.
"""

from __future__ import annotations

import numpy as np

from .errors import MRSynthError
from .volume import Volume

PLANES = ("axial", "coronal", "sagittal")
# In the canonical array, slicing along axis 0 gives axial slices, axis 1 coronal, axis 2 sagittal.
PLANE_AXIS = {"axial": 0, "coronal": 1, "sagittal": 2}


def canonical_plan(direction: np.ndarray) -> tuple[list[int], list[bool]]:
    """For LPS world axes (L, P, S) find the ITK index axis and whether it runs backwards."""
    d = np.asarray(direction)
    world_to_index: list[int] = []
    flips: list[bool] = []
    used: set[int] = set()
    for world in range(3):
        order = np.argsort(-np.abs(d[world]))
        axis = next(int(a) for a in order if int(a) not in used)
        used.add(axis)
        world_to_index.append(axis)
        flips.append(bool(d[world, axis] < 0))
    return world_to_index, flips


def to_canonical(volume: Volume) -> np.ndarray:
    """Array ordered [S, P, L] (numpy axes) whatever the storage order."""
    world_to_index, flips = canonical_plan(volume.direction)
    arr = volume.array
    # numpy axis of ITK index axis a is 2 - a; canonical numpy order is world S, P, L = world 2, 1, 0
    src_axes = [2 - world_to_index[w] for w in (2, 1, 0)]
    out = np.transpose(arr, src_axes)
    for pos, w in enumerate((2, 1, 0)):
        if flips[w]:
            out = np.flip(out, axis=pos)
    return np.ascontiguousarray(out)


def from_canonical(canonical: np.ndarray, like: Volume) -> np.ndarray:
    """Inverse of :func:`to_canonical` for the grid of ``like``."""
    world_to_index, flips = canonical_plan(like.direction)
    out = canonical
    for pos, w in enumerate((2, 1, 0)):
        if flips[w]:
            out = np.flip(out, axis=pos)
    src_axes = [2 - world_to_index[w] for w in (2, 1, 0)]
    return np.ascontiguousarray(np.transpose(out, np.argsort(src_axes)))


def plane_axis(plane: str) -> int:
    """Canonical array axis to slice along for a named plane."""
    if plane not in PLANE_AXIS:
        raise MRSynthError(f"unknown slice plane '{plane}' (use one of {', '.join(PLANES)})")
    return PLANE_AXIS[plane]


def slices_first(canonical: np.ndarray, plane: str) -> np.ndarray:
    """Move the slicing axis first: result[n] is the n-th slice of the chosen plane."""
    return np.moveaxis(canonical, plane_axis(plane), 0)


def slices_back(stack: np.ndarray, plane: str) -> np.ndarray:
    """Inverse of :func:`slices_first`."""
    return np.moveaxis(stack, 0, plane_axis(plane))


def canonical_volume(volume: Volume) -> Volume:
    """:func:`to_canonical` with its geometry: the same voxels at the same world points, stored [S, P, L],
    so ``canonical_volume(v).array[k:k + 1]`` is an axial slice that still knows where it lies (used for
    single-slice images that must overlay their volume exactly). Exact: no interpolation."""
    world_to_index, flips = canonical_plan(volume.direction)
    size = volume.size_ijk
    columns, spacing = [], []
    origin = np.array(volume.origin, dtype=float)
    for w in range(3):  # canonical index axis w runs along world axis w (L, P, S)
        a = world_to_index[w]
        step = volume.direction[:, a] * volume.spacing[a]
        if flips[w]:  # the canonical index 0 is the original's last along this axis
            origin = origin + step * (size[a] - 1)
        columns.append(-volume.direction[:, a] if flips[w] else volume.direction[:, a])
        spacing.append(volume.spacing[a])
    return Volume(to_canonical(volume), tuple(spacing), tuple(origin), np.stack(columns, axis=1))
