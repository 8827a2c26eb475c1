"""Checks on what a request feeds the network: odd images and inputs the model would silently not read.

Each refusal is one line naming the file: a network given a constant, inverted or tiny volume, or the same
scan under two contrast names, returns an image anyway, and that image looks like a result.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np

from .backends import Backend
from .errors import MRSynthError
from .volume import Volume

MIN_VOXELS = 8
"""Fewest voxels along each axis of an input. The generators halve the image twice and reflect-pad by one
voxel at that level, which needs 2 voxels there: a 4×4×4 volume crashed deep inside onnxruntime/torch."""


def check_image(volume: Volume, name: str) -> None:
    """An MR image the network can read: big enough, with positive voxels that differ from each other.

    After :func:`MRSynthLib.io.check_voxels` (finite, not all zero). Refused: a volume too small for the
    network, one without a positive voxel (inverted or offset: normalization clips negatives, so it would
    come out empty), and one without contrast (constant, a single voxel, a binary mask)."""
    arr = volume.array
    if min(arr.shape) < MIN_VOXELS:
        size = "×".join(str(n) for n in volume.size_ijk)
        raise MRSynthError(f"is {size} voxels, too small for the network (it needs at least {MIN_VOXELS} "
                           "along each axis)", name)
    top = float(arr.max())
    if top <= 0:
        raise MRSynthError(f"has no positive voxel (values {float(arr.min()):.4g} to {top:.4g}); an MR image is "
                           "positive: is it inverted or offset?", name)
    positive = arr[arr > 0]
    if float(positive.min()) == top:
        if positive.size == arr.size:
            what = f"is constant (every voxel is {top:.4g})"
        elif positive.size == 1:
            what = "has a single non-zero voxel"
        else:
            what = f"has one value ({top:.4g}) in all {positive.size} non-zero voxels, like a mask"
        raise MRSynthError(f"{what}: no contrast to synthesize from", name)


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # one is missing: its read will say so
        return os.path.realpath(a) == os.path.realpath(b)


def check_distinct_paths(paths: Mapping[str, str]) -> None:
    """The same file (or a link to it) given as two contrasts would be read as two scans."""
    seen: list[tuple[str, str]] = []
    for contrast, path in paths.items():
        for other, other_path in seen:
            if _same_file(path, other_path):
                raise MRSynthError(f"given as both {other} and {contrast}; each contrast needs its own scan", path)
        seen.append((contrast, path))


def check_distinct_volumes(volumes: Mapping[str, Volume], labels: Mapping[str, str]) -> None:
    """In-memory inputs (Python API, Slicer nodes): the same source file, or identical voxels on the same
    grid, under two contrast names are one scan, not two."""
    seen: list[tuple[str, Volume]] = []
    for contrast, vol in volumes.items():
        for other, prev in seen:
            a, b = vol.metadata.get("source_path"), prev.metadata.get("source_path")
            if (a and b and _same_file(a, b)) or (vol.same_grid(prev) and np.array_equal(vol.array, prev.array)):
                raise MRSynthError(f"given as both {other} and {contrast}; each contrast needs its own scan",
                                   labels[contrast])
        seen.append((contrast, vol))


def check_pairwise_inputs(engine: Backend, paths: Mapping[str, str], target: str) -> None:
    """A pairwise model (one single-source graph per direction) reads one input; others would be loaded,
    aligned and then ignored, so they are refused, saying which input the model uses."""
    reads = engine.reads(list(paths), target)
    extra: Sequence[str] = [c for c in paths if c not in reads]
    if not reads or not extra:
        return  # without its source the engine's own check has already refused
    used, model = reads[0], engine.model_id
    raise MRSynthError(f"model '{model}' is a pairwise translator: it makes {target} from {used} alone and does "
                       f"not read {', '.join(extra)}; drop {'that input' if len(extra) == 1 else 'those inputs'}",
                       paths[extra[0]])
