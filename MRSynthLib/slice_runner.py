"""The one slice loop: how slices of a prepared subject become generator batches and come back.

Used by the full run (:func:`MRSynthLib.synthesis.run_slices`) and by the live preview
(:class:`MRSynthLib.preview.PreviewSession`), so both feed the generator the same way: the same in-plane
crop (the whole brain's, whichever slices are asked for: instance normalization makes the output depend
on the crop), the same padding, the same 2.5D neighbours, the same batching with halving on
out-of-memory, the same progress/cancel calls."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from . import orientation
from .backends import Backend, is_out_of_memory
from .errors import CancelledError, MRSynthError

# progress(done, total, message) → return False to cancel
Progress = Callable[[int, int, str], "bool | None"]


def brain_crop(mask2d: np.ndarray, multiple: int = 4, margin: int = 4) -> tuple[slice, slice]:
    """In-plane crop around the brain, grown to a multiple of 4 (two stride-2 levels) where the slice
    allows it; always inside the slice."""
    rows, cols = np.where(mask2d)
    out = []
    for idx, size in ((rows, mask2d.shape[0]), (cols, mask2d.shape[1])):
        lo, hi = max(int(idx.min()) - margin, 0), min(int(idx.max()) + 1 + margin, size)
        extra = (-(hi - lo)) % multiple
        lo, hi = max(lo - extra // 2, 0), hi + (extra - extra // 2)
        out.append(slice(lo, min(hi, size)))  # near the edge: a smaller crop, padded by pad_to_multiple
    return out[0], out[1]


def pad_to_multiple(arr: np.ndarray, multiple: int = 4) -> tuple[np.ndarray, tuple[int, int]]:
    h, w = arr.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        arr = np.pad(arr, [(0, 0)] * (arr.ndim - 2) + [(0, ph), (0, pw)])
    return arr, (h, w)


def neighbour_slices(stack: np.ndarray, chunk: list[int], k: int) -> np.ndarray:
    """(N, a, b, C) slices-first stack → (n, C, 2k, a, b): for each slice z of ``chunk`` the slices
    z−k…z−1, z+1…z+k (clamped at the volume's ends), as the 2.5D training sampler makes them."""
    last = stack.shape[0] - 1
    idx = [[min(max(z + d, 0), last) for d in (*range(-k, 0), *range(1, k + 1))] for z in chunk]
    return np.moveaxis(stack[np.asarray(idx)], -1, 1)  # (n, 2k, a, b, C) → (n, C, 2k, a, b)


class SliceRunner:
    """One prepared subject seen slice by slice along ``plane``: ``run`` gives the generator's output on
    the brain crop for any slices (masked, clipped to [0, 1])."""

    def __init__(self, backend: Backend, stack: np.ndarray, mask: np.ndarray, available: np.ndarray,
                 plane: str = "axial") -> None:
        self.backend, self.available = backend, available
        self.context = int(backend.context)
        self.stack = orientation.slices_first(np.moveaxis(stack, 0, -1), plane)  # (N, a, b, C)
        self.mask = orientation.slices_first(mask, plane)
        self.brain = [int(i) for i in np.flatnonzero(self.mask.reshape(self.mask.shape[0], -1).any(axis=1))]
        self.crop = brain_crop(self.mask[self.brain].any(axis=0)) if self.brain else None

    def run(self, indices: list[int], style: np.ndarray, batch_size: int = 8,
            progress: Progress | None = None) -> np.ndarray:
        """(len(indices), h, w) output on ``self.crop`` for slices ``indices`` (each must hold brain)."""
        return self._loop(indices, style, batch_size, progress, scale=False)[0]

    def run_with_scale(self, indices: list[int], style: np.ndarray, batch_size: int = 8,
                       progress: Progress | None = None) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`run` plus the scale head's Laplace scale b of each voxel's error (output units before
        any intensity mapping; 0 outside the brain). Needs a backend with ``has_scale_head``."""
        if not getattr(self.backend, "has_scale_head", False):
            raise MRSynthError(f"model '{self.backend.model_id}' has no scale head")
        out, scale = self._loop(indices, style, batch_size, progress, scale=True)
        return out, scale

    def _loop(self, indices: list[int], style: np.ndarray, batch_size: int, progress: Progress | None,
              scale: bool) -> list[np.ndarray]:
        from .nets.unified import images_with_context  # numpy-only helper; no torch import

        if self.crop is None:
            raise MRSynthError("the brain mask is empty; nothing to synthesize")
        rows, cols = self.crop
        k = self.context
        shape = (len(indices), rows.stop - rows.start, cols.stop - cols.start)
        outs = [np.zeros(shape, np.float32) for _ in range(2 if scale else 1)]
        done, bs = 0, max(1, batch_size)
        while done < len(indices):
            chunk = list(indices[done:done + bs])
            centre = np.moveaxis(self.stack[chunk][:, rows, cols], -1, 1)
            around = neighbour_slices(self.stack, chunk, k)[..., rows, cols] if k else None
            images, (h, w) = pad_to_multiple(images_with_context(centre, around))
            n = len(chunk)
            args = (images, np.repeat(self.available[None], n, 0), np.repeat(style[None], n, 0))
            try:
                preds = self.backend.generate_with_scale(*args) if scale else (self.backend.generate(*args),)
            except Exception as exc:
                if is_out_of_memory(exc) and bs > 1:
                    bs = max(1, bs // 2)
                    continue
                raise
            brain = self.mask[chunk][:, rows, cols]
            outs[0][done:done + n] = np.clip(preds[0][:, 0, :h, :w], 0.0, 1.0) * brain
            if scale:
                outs[1][done:done + n] = np.exp(preds[1][:, 0, :h, :w]) * brain
            done += n
            if progress is not None and progress(done, len(indices), "synthesizing") is False:
                raise CancelledError()
        return outs
