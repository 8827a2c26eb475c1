"""Live preview: prepare a subject once, then re-synthesize one slice per style change.

Dragging the style slider must answer in about 100 ms, so everything that does not depend on the
style (alignment, mask, normalization, reorientation, the reference's style code, the in-plane crop)
is computed once in :class:`PreviewSession`. One slice is then a single generator call on the *same*
crop as the full-volume path (:func:`MRSynthLib.synthesis.run_slices`): instance normalization makes
the output depend on the crop, so the preview uses the whole brain's crop, not the slice's own, and
gives the same values as a full run on that slice.
"""

from __future__ import annotations

import numpy as np

from . import orientation
from .backends import Backend
from .errors import MRSynthError
from .postprocess import output_mapping
from .request import SynthesisRequest
from .slice_runner import SliceRunner
from .synthesis import (
    check_engine_for,
    prepare,
    reference_style_or_none,
    style_code,
    style_reference_brain,
    to_output_volume,
)
from .volume import Volume

SAMPLE_SLICES = 8  # slices that estimate the whole volume's output histogram (one batch)
ALPHA_GRID = 5  # slider positions 0, 0.25, …, 1 at which it is estimated
SAMPLE_QUANTILES = 1001
_PLANE_WORLD = {"axial": 2, "coronal": 1, "sagittal": 0}  # LPS world axis normal to each plane


def canonical_view(array: np.ndarray, like: Volume) -> np.ndarray:
    """Like :func:`orientation.to_canonical` but a *view*: writing into it writes into ``array``.

    Lets the preview update one slice of a node's voxel buffer in place, whatever its storage order.
    """
    world_to_index, flips = orientation.canonical_plan(like.direction)
    out = np.transpose(array, [2 - world_to_index[w] for w in (2, 1, 0)])
    for pos, w in enumerate((2, 1, 0)):
        if flips[w]:
            out = np.flip(out, axis=pos)
    return out


class PreviewSession:
    """One subject, one target, one model: style-only re-synthesis of single slices."""

    def __init__(self, engine: Backend, request: SynthesisRequest[Volume]) -> None:
        """Prepare ``request`` (its inputs, target, reference or style target, mask, histogram matching,
        calibration and plane; α comes per slice) for ``engine``, the model the request names."""
        check_engine_for(engine, request)
        self.engine, self.request, self.target = engine, request, request.target
        self.plane, self.style_target = request.plane, request.style_target
        self.prepared = prepare(dict(request.inputs), mask=request.mask, skull_strip=request.skull_strip)
        reference, _ = style_reference_brain(request)
        self.reference_style = reference_style_or_none(engine, reference, self.plane)
        self.mapping = output_mapping(engine, self.prepared, self.target, self.style_target, reference,
                                      request.match_histogram, request.calibrate)
        self._runner = SliceRunner(engine, self.prepared.stack, self.prepared.mask, self.prepared.available,
                                   self.plane)
        self._mask = self._runner.mask
        brain = np.asarray(self._runner.brain)
        if brain.size == 0:
            raise MRSynthError("the brain mask is empty; nothing to preview")
        self.output = np.zeros(self.prepared.mask.shape, dtype=np.float32)  # canonical, last slices shown
        self._style_cache: dict[float, np.ndarray] = {}
        # the full run maps the whole volume's output histogram; the preview estimates it from a few slices
        # spread through the brain, at a few slider positions (interpolated between), all computed here so
        # that a slider release costs one slice (without a reference or second contrast α changes nothing)
        self._sample = brain[np.linspace(0, brain.size - 1, SAMPLE_SLICES + 2)[1:-1].round().astype(int)]
        self._grid = ALPHA_GRID if request.walks else 1
        self._sample_q: list[np.ndarray] = []
        if any(self.mapping.at(a) is not None for a in (0.0, 1.0)):
            for g in range(self._grid):
                raw, (rows, cols) = self._generate(list(self._sample), g / max(self._grid - 1, 1))
                inside = self._mask[self._sample][:, rows, cols]
                self._sample_q.append(np.quantile(raw[inside], np.linspace(0.0, 1.0, SAMPLE_QUANTILES)))

    @property
    def n_slices(self) -> int:
        return int(self._mask.shape[0])

    def style(self, alpha: float) -> np.ndarray:
        key = round(float(alpha), 6)
        if key not in self._style_cache:
            self._style_cache[key] = style_code(self.engine, self.target, self.reference_style, key,
                                                self.style_target)
        return self._style_cache[key]

    def index_from_ras(self, ras: tuple[float, float, float]) -> int:
        """Slice (of this session's plane, canonical order) nearest to an RAS point, e.g. the Red view's."""
        ref = self.prepared.reference
        lps = np.array([-ras[0], -ras[1], ras[2], 1.0])
        ijk = np.linalg.solve(ref.affine_lps, lps)[:3]
        world_to_index, flips = orientation.canonical_plan(ref.direction)
        w = _PLANE_WORLD[self.plane]
        axis = world_to_index[w]
        pos = ijk[axis] if not flips[w] else ref.size_ijk[axis] - 1 - ijk[axis]
        return int(np.clip(np.rint(pos), 0, self.n_slices - 1))

    def _generate(self, indices: list[int], alpha: float) -> tuple[np.ndarray, tuple[slice, slice]]:
        """Raw generator output (clipped, masked) for slices ``indices`` in one batch, on the brain crop:
        the full run's slice loop (:class:`MRSynthLib.slice_runner.SliceRunner`), 2.5D neighbours included."""
        return self._runner.run(indices, self.style(alpha), batch_size=max(len(indices), 1)), self._runner.crop

    def _sampled_quantiles(self, alpha: float) -> np.ndarray:
        """Whole-volume output quantiles at α, from the sample slices (linear between grid positions)."""
        if self._grid == 1:
            return self._sample_q[0]
        pos = float(np.clip(alpha, 0.0, 1.0)) * (self._grid - 1)
        lo, hi = int(np.floor(pos)), int(np.ceil(pos))
        return self._sample_q[lo] + (pos - lo) * (self._sample_q[hi] - self._sample_q[lo])

    def synthesize_slice(self, alpha: float, index: int) -> np.ndarray:
        """Synthesize slice ``index`` (canonical, this plane) for style ``alpha``; also kept in ``output``."""
        if not 0 <= index < self.n_slices:
            raise MRSynthError(f"slice {index} is outside the volume (0…{self.n_slices - 1})")
        plane_out = np.zeros(self._mask.shape[1:], dtype=np.float32)
        if self._mask[index].any():
            raw, (rows, cols) = self._generate([index], alpha)
            plane_out[rows, cols] = raw[0]
            if self.mapping.at(alpha) is not None:
                plane_out = self.mapping.apply(plane_out, self._mask[index], alpha, self._sampled_quantiles(alpha))
        orientation.slices_first(self.output, self.plane)[index] = plane_out
        return plane_out

    def write_slice(self, array: np.ndarray, index: int, like: Volume | None = None) -> None:
        """Copy the last synthesized slice ``index`` into a voxel buffer on the first input's grid."""
        view = orientation.slices_first(canonical_view(array, like or self.prepared.reference), self.plane)
        view[index] = orientation.slices_first(self.output, self.plane)[index]

    def volume(self) -> Volume:
        """The preview buffer as a labelled synthetic Volume on the first input's grid."""
        volume = to_output_volume(self.output, self.prepared, self.target, self.engine.model_id)
        volume.metadata["MRSynth.Device"] = f"{self.engine.device} ({self.engine.name})"
        return volume
