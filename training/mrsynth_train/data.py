"""The 2D slice sampler: random brain slices and crops of the training subjects (``subjects``), a
random target and input subset, augmentation, 2.5D neighbours, and the mixture of data sources."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from MRSynthLib.contrasts import CONTRASTS
from MRSynthLib.errors import MRSynthError

from .intensity_aug import apply_curve, random_monotone_curve
from .subjects import SubjectArrays


def mixture_weights(groups: list[list], weights: list[float]) -> list[float]:
    """Per-subject sampling weights so that group g (a data root, the simulator…) is drawn with
    probability ∝ weights[g], spread evenly over its subjects; empty groups drop out."""
    if len(groups) != len(weights):
        raise MRSynthError(f"{len(groups)} data sources but {len(weights)} weights")
    if any(w < 0 for w in weights):
        raise MRSynthError("data source weights must be ≥ 0")
    total = sum(w for g, w in zip(groups, weights, strict=True) if g)
    if total <= 0:
        raise MRSynthError("every non-empty data source has weight 0")
    return [w / total / len(g) for g, w in zip(groups, weights, strict=True) for _ in g]



@dataclass
class Batch:
    """One training batch. Every field is an array (empty, never None), so ``torch.from_numpy`` works
    on all of them.

    ``images``/``available``/``target``/``truth``/``mask``: the imputation task (a random target and a
    random non-empty subset of the other contrasts as inputs), augmented inputs.
    ``contrasts``/``has``: every contrast the sample holds, geometric augmentation only — what the
    pairwise and unpaired recipes draw from. In unpaired mode each contrast channel (and so each
    input, the truth and the mask) comes from its own random subject and slice: not co-registered.
    ``neighbours``: (B, C, 2·context, H, W), the input channels' slices z−k…z−1, z+1…z+k (clamped at
    the volume's ends, same augmentation as the centre); stack them with ``images`` for 2.5D."""

    images: np.ndarray  # (B, C, H, W) with missing channels zero
    available: np.ndarray  # (B, C)
    target: np.ndarray  # (B,) contrast index
    truth: np.ndarray  # (B, 1, H, W)
    mask: np.ndarray  # (B, 1, H, W)
    contrasts: np.ndarray  # (B, C, H, W) every contrast the sample holds
    has: np.ndarray  # (B, C)
    neighbours: np.ndarray  # (B, C, 2·context, H, W)
    # not per sample: a uniform draw for batch-level decisions (which contrast pair a GAN step trains),
    # and under torchrun every shard's ``has`` (world, B/world, C). Both are the same on every rank, so
    # the ranks pick the same pair and their gradient all-reduces stay in step.
    choice: float = 0.0
    shard_has: np.ndarray | None = None
    shard_offset: int = 0  # under torchrun: this shard's first row in the global batch (see recipes.common.global_rows)
    global_mask_area: np.ndarray | None = None  # under torchrun: brain pixels of every row of the global batch

    BATCH_LEVEL = ("choice", "shard_has", "shard_offset", "global_mask_area")


@dataclass
class Augment:
    """Augmentation switches (probabilities per sample or per input channel; 0 switches one off).
    The defaults are the sampler's historical behaviour: left-right flip and gamma only."""

    flip: float = 0.5  # left-right flip of the whole sample (not for sagittal slices)
    gamma: float = 0.3  # per input channel: x ** g, g log-uniform in gamma_range
    gamma_range: tuple[float, float] = (0.8, 1.25)
    scale: float = 0.0  # zoom of the whole sample by a factor in [1 − scale, 1 + scale]
    bias: float = 0.0  # per input channel: smooth multiplicative field exp(quadratic), strength bias_strength
    bias_strength: float = 0.3
    noise: float = 0.0  # per input channel: Rician noise of std noise_std inside the image
    noise_std: float = 0.03
    # whole sample, inputs AND truth: x ** g, one g log-uniform in subject_gamma_range. Subjects differ like
    # this after p99.5 normalization (TCGA-FG-6692 → TCGA-DU-7294 is g ≈ 1.4–1.7 in every contrast), so the
    # model learns to follow the inputs' intensity distribution instead of memorising one subject's.
    subject_gamma: float = 0.0
    subject_gamma_range: tuple[float, float] = (0.6, 1.8)
    curve: float = 0.0  # per input channel: a random monotone tone curve (see intensity_aug)
    curve_knots: int = 6
    curve_concentration: float = 2.0


AXES = {"axial": 0, "coronal": 1, "sagittal": 2}  # canonical arrays are (S, P, L)


class SliceSampler:
    """Random brain slices, random crops, random target and random non-empty input subset.

    ``paired``: contrasts of one subject slice (co-registered); unpaired: each contrast from a
    different random subject/slice (Hyper-GAN's setting). ``context``: k neighbouring slices each
    side (2.5D, in ``Batch.neighbours``). ``axis``: axial, coronal or sagittal slices. ``augment``:
    True (defaults), False (none) or an ``Augment``. ``weights``: per-subject sampling weights
    (see ``mixture_weights``). Per-channel intensity augmentation touches the inputs only; the subject
    gamma transforms every contrast of the sample, truth included."""

    def __init__(self, subjects: list[SubjectArrays], weights: list[float] | None = None, patch: int = 128,
                 seed: int = 0, augment: bool | Augment = True, all_inputs_prob: float = 0.5, *,
                 paired: bool = True, context: int = 0, axis: str = "axial") -> None:
        if not subjects:
            raise MRSynthError("the training dataset is empty (no readable subjects)")
        if axis not in AXES:
            raise MRSynthError(f"unknown slice axis '{axis}' (known: {', '.join(AXES)})")
        if context < 0:
            raise MRSynthError(f"context must be ≥ 0, got {context}")
        self.subjects, self.patch, self.paired, self.context, self.axis = subjects, patch, paired, context, axis
        self.aug = (Augment() if augment is True else None if augment is False else augment)
        if self.aug is not None and axis == "sagittal":
            self.aug = Augment(**{**vars(self.aug), "flip": 0.0})
        w = np.asarray(weights if weights is not None else [1.0] * len(subjects), dtype=float)
        if len(w) != len(subjects) or (w < 0).any() or w.sum() <= 0:
            raise MRSynthError("sampling weights must be one non-negative number per subject, not all 0")
        self.weights = w / w.sum()
        self.rng = np.random.default_rng(seed)
        self.choice_rng = np.random.default_rng([seed, 1])  # its own stream: sample draws stay as they were
        self.all_inputs_prob = all_inputs_prob
        self._index()

    def _index(self) -> None:
        """Slices-first views, masks and brain slices of every subject (again after ``replace_subjects``)."""
        ax = AXES[self.axis]
        self._vols = [{c: np.moveaxis(a, ax, 0) for c, a in s.images.items()} for s in self.subjects]
        self._masks = [np.moveaxis(s.mask, ax, 0) for s in self.subjects]
        self.slices = []
        for m in self._masks:
            area = m.reshape(m.shape[0], -1).sum(axis=1)
            self.slices.append(np.flatnonzero(area > 0.25 * area.max()))
        self.union = [c for c in CONTRASTS if any(c in v for v in self._vols)]

    def replace_subjects(self, first: int, subjects: list[SubjectArrays]) -> None:
        """Put ``subjects`` in place of as many subjects from index ``first`` on (same sampling weights):
        how the simulator becomes an endless source (see ``simstream``)."""
        self.subjects = [*self.subjects[:first], *subjects, *self.subjects[first + len(subjects):]]
        self._index()

    def _crop(self, arr: np.ndarray, r0: int, c0: int, size: int | None = None) -> np.ndarray:
        p = size or self.patch
        out = np.zeros(arr.shape[:-2] + (p, p), dtype=np.float32)
        sub = arr[..., max(r0, 0):r0 + p, max(c0, 0):c0 + p]
        out[..., max(-r0, 0):max(-r0, 0) + sub.shape[-2], max(-c0, 0):max(-c0, 0) + sub.shape[-1]] = sub
        return out

    def _location(self, si: int) -> tuple[int, int, int, int]:
        """(slice, row, col, crop size) of a random brain crop of subject si."""
        rng = self.rng
        z = int(rng.choice(self.slices[si]))
        q = self.patch
        if self.aug is not None and self.aug.scale > 0:
            q = max(4, int(round(self.patch / rng.uniform(1 - self.aug.scale, 1 + self.aug.scale))))
        rows, cols = np.where(self._masks[si][z])
        m = min(8, q // 2)  # margin beyond the brain; small crops still overlap it by half
        r0 = int(rng.integers(rows.min() - m, max(rows.max() - q + m + 1, rows.min() - m + 1)))
        c0 = int(rng.integers(cols.min() - m, max(cols.max() - q + m + 1, cols.min() - m + 1)))
        return z, r0, c0, q

    def _patch(self, vol: np.ndarray, loc: tuple[int, int, int, int], flip: bool, k: int,
               order: int = 1) -> np.ndarray:
        """(2k + 1, p, p) crop of slices z−k…z+k (clamped), zoomed to the patch size, flipped."""
        z, r0, c0, q = loc
        zs = np.clip(np.arange(z - k, z + k + 1), 0, vol.shape[0] - 1)
        out = self._crop(vol[zs], r0, c0, q)
        if q != self.patch:
            out = _resize(out, self.patch, order)
        return np.ascontiguousarray(out[..., ::-1]) if flip else out

    def _intensity(self, stack: np.ndarray) -> np.ndarray:
        """Per-channel intensity augmentation, the same transform for the centre and its neighbours."""
        a, rng = self.aug, self.rng
        if a is None:
            return stack
        if a.gamma > 0 and rng.random() < a.gamma:
            lo, hi = a.gamma_range
            stack = stack ** np.float32(rng.uniform(lo, hi))
        if a.curve > 0 and rng.random() < a.curve:
            stack = apply_curve(stack, random_monotone_curve(rng, a.curve_knots, a.curve_concentration))
        if a.bias > 0 and rng.random() < a.bias:
            y, x = np.meshgrid(*(np.linspace(-1, 1, n, dtype=np.float32) for n in stack.shape[-2:]), indexing="ij")
            c = rng.normal(0, a.bias_strength, 5).astype(np.float32)
            stack = stack * np.exp(c[0] * x + c[1] * y + c[2] * x * y + c[3] * x * x + c[4] * y * y)
        if a.noise > 0 and rng.random() < a.noise:
            n1, n2 = rng.normal(0, a.noise_std, (2,) + stack.shape).astype(np.float32)
            stack = np.where(stack > 0, np.sqrt((stack + n1) ** 2 + n2 ** 2), 0.0)
        return np.clip(stack, 0.0, 1.0).astype(np.float32)

    def _subject_gamma(self) -> np.float32:
        """The sample-wide exponent (1 when off): one draw per sample, applied to every contrast."""
        a = self.aug
        if a is None or a.subject_gamma <= 0 or self.rng.random() >= a.subject_gamma:
            return np.float32(1.0)
        lo, hi = a.subject_gamma_range
        return np.float32(np.exp(self.rng.uniform(np.log(lo), np.log(hi))))

    def _draw(self, contrast: str | None = None) -> int:
        """A random subject (by weight), restricted to those holding ``contrast``."""
        if contrast is None:
            return int(self.rng.choice(len(self.subjects), p=self.weights))
        w = np.array([wi if contrast in v else 0.0 for wi, v in zip(self.weights, self._vols, strict=True)])
        if w.sum() <= 0:  # every holder has weight 0: fall back to the holders, evenly
            w = np.array([1.0 if contrast in v else 0.0 for v in self._vols])
        return int(self.rng.choice(len(self.subjects), p=w / w.sum()))

    def sample(self, batch_size: int) -> Batch:
        p, C, k = self.patch, len(CONTRASTS), self.context
        out = Batch(np.zeros((batch_size, C, p, p), np.float32), np.zeros((batch_size, C), np.float32),
                    np.zeros(batch_size, np.int64), np.zeros((batch_size, 1, p, p), np.float32),
                    np.zeros((batch_size, 1, p, p), np.float32), np.zeros((batch_size, C, p, p), np.float32),
                    np.zeros((batch_size, C), np.float32), np.zeros((batch_size, C, 2 * k, p, p), np.float32))
        for b in range(batch_size):
            self._sample_one(out, b)
        out.choice = float(self.choice_rng.random())
        return out

    def _sample_one(self, out: Batch, b: int) -> None:
        rng, k = self.rng, self.context
        if self.paired:
            si = self._draw()
            loc = self._location(si)
            have = [c for c in CONTRASTS if c in self._vols[si]]
            where = dict.fromkeys(have, (si, loc))
        else:
            have = self.union
            where = {}
            for c in have:
                sc = self._draw(c)
                where[c] = (sc, self._location(sc))
        tgt = have[rng.integers(len(have))]
        others = [c for c in have if c != tgt]
        if rng.random() < self.all_inputs_prob:
            chosen = others
        else:
            n = int(rng.integers(1, len(others) + 1))
            chosen = list(rng.choice(others, size=n, replace=False))
        flip = self.aug is not None and self.aug.flip > 0 and rng.random() < self.aug.flip
        g = self._subject_gamma()
        for c in chosen:
            si, loc = where[c]
            stack = self._intensity(self._patch(self._vols[si][c], loc, flip, k) ** g)
            out.images[b, CONTRASTS.index(c)] = stack[k]
            out.neighbours[b, CONTRASTS.index(c)] = np.delete(stack, k, axis=0)
            out.available[b, CONTRASTS.index(c)] = 1.0
        si, loc = where[tgt]
        out.truth[b, 0] = self._patch(self._vols[si][tgt], loc, flip, 0)[0] ** g
        out.mask[b, 0] = self._patch(self._masks[si].astype(np.float32), loc, flip, 0, order=0)[0]
        out.target[b] = CONTRASTS.index(tgt)
        for c in have:
            si, loc = where[c]
            out.contrasts[b, CONTRASTS.index(c)] = self._patch(self._vols[si][c], loc, flip, 0)[0] ** g
            out.has[b, CONTRASTS.index(c)] = 1.0


def _resize(stack: np.ndarray, size: int, order: int) -> np.ndarray:
    """Zoom the last two axes of (n, q, q) to (n, size, size) (linear for images, nearest for masks)."""
    from scipy.ndimage import zoom

    q = stack.shape[-1]
    z = zoom(stack, (1, size / q, size / q), order=order, mode="nearest", grid_mode=True)
    fixed = np.zeros(stack.shape[:-2] + (size, size), np.float32)
    fixed[..., :min(size, z.shape[-2]), :min(size, z.shape[-1])] = z[..., :size, :size]
    return fixed
