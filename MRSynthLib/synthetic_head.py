"""Synthetic heads: a skull, scalp, eyes and neck drawn around a skull-stripped brain.

Every real subject we ship is skull-stripped, but clinical scans are not. This puts a head around a
stripped brain (a real subject's or the physics simulator's) so the brain extraction and the whole
pipeline can be measured on unstripped input with the true brain mask known: the brain voxels are kept
as they are, everything outside them is drawn.

Layers outward from the brain surface, thickness varying smoothly around the head (mm): CSF 1–3, inner
table of the skull (cortical bone, no signal) 1.5–2.5, diploë (fatty marrow) 2–4, outer table 1.5–2.5,
muscle/galea 1–3 (thicker at the temples), subcutaneous fat 3–6, skin 1.5–2. Below the brain a neck
(muscle with fat), in front of it two eyes (vitreous in orbital fat). Intensities come from the
simulator's signal equations (:func:`MRSynthLib.phantom.signal`) with textbook 1.5 T tissue values
(fat T1/T2 ≈ 260/130 ms, the T2 of fast spin echo; muscle ≈ 900/45 ms), scaled so the simulated grey/
white matter level matches the given brain's median: fat is then bright on T1, T2, PD and FLAIR as on
real scans. The background is Rician noise (as scanners store it) or exact zeros (as after resampling).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from . import orientation
from .contrasts import canonical
from .phantom import PROTOCOLS, R1_GD, TISSUES, flair_null_ti, signal, smooth_field
from .volume import Volume

# name: (T1 ms, T2 ms, PD)
HEAD_TISSUES: dict[str, tuple[float, float, float]] = {
    "CSF": TISSUES["CSF"],
    "bone": (400.0, 1.0, 0.03),
    "marrow": (380.0, 110.0, 0.9),
    "muscle": (900.0, 45.0, 0.72),
    "fat": (260.0, 130.0, 1.0),
    "skin": (800.0, 50.0, 0.8),
    "vitreous": (4000.0, 1000.0, 1.0),
}
# layer: (mean thickness mm, relative variation)
LAYERS: tuple[tuple[str, float, float], ...] = (
    ("CSF", 2.0, 0.5), ("bone", 2.0, 0.25), ("marrow", 3.0, 0.35), ("bone", 2.0, 0.25),
    ("muscle", 2.0, 0.5), ("fat", 4.5, 0.35), ("skin", 1.8, 0.15),
)
GD_SOFT_TISSUE_MM = 0.15  # mild enhancement of muscle and skin on T1Gd


def pad_volume(volume: Volume, pad_mm: float) -> Volume:
    """The same image on a grid grown by ``pad_mm`` on every side (zeros there), geometry kept exact."""
    n = [int(np.ceil(pad_mm / s)) for s in volume.spacing]  # (i, j, k)
    arr = np.pad(volume.array, [(n[2], n[2]), (n[1], n[1]), (n[0], n[0])])
    origin = np.asarray(volume.origin) - volume.direction @ (np.asarray(volume.spacing) * n)
    return Volume(arr, volume.spacing, tuple(origin), volume.direction, dict(volume.metadata))


def canonical_spacing(volume: Volume) -> np.ndarray:
    world_to_index, _ = orientation.canonical_plan(volume.direction)
    return np.array([volume.spacing[world_to_index[w]] for w in (2, 1, 0)])  # S, P, L


def _field(rng: np.random.Generator, shape: tuple[int, ...], coarse: int) -> np.ndarray:
    """The simulator's smooth random field, made on a 4× coarser grid and zoomed linearly (8× faster)."""
    small = tuple(max(2, n // 4) for n in shape)
    f = ndimage.zoom(smooth_field(rng, small, coarse), [n / m for n, m in zip(shape, small, strict=True)], order=1)
    return f[tuple(slice(0, n) for n in shape)]


def head_labels(brain: np.ndarray, spacing_spl: np.ndarray, seed: int | None = 0,
                eyes_and_neck: bool = True) -> dict[str, np.ndarray]:
    """Boolean tissue maps of the drawn head on a canonical [S, P, L] grid around ``brain`` (canonical).

    ``seed`` None: every layer at its mean thickness (a generic head, as the brain extraction's template)."""
    rng = np.random.default_rng(0 if seed is None else seed)
    outside = ndimage.distance_transform_edt(~brain, sampling=spacing_spl)
    labels = {name: np.zeros(brain.shape, bool) for name in HEAD_TISSUES}
    inner = np.zeros(brain.shape, np.float32)
    lateral = np.abs(np.linspace(-1, 1, brain.shape[2]))[None, None, :] ** 2  # temples: thicker muscle
    cranium = np.zeros(brain.shape, bool)
    for name, mean, var in LAYERS:
        thick = mean * (1 + var * _field(rng, brain.shape, 5)) if seed is not None else np.full(brain.shape, mean)
        if name == "muscle":
            thick = thick + 6.0 * lateral
        outer = inner + thick
        layer = (outside > inner) & (outside <= outer)
        labels[name] |= layer
        if name not in ("muscle", "fat", "skin"):  # inside the scalp
            cranium |= layer
        inner = outer
    head = brain | (outside <= inner)
    if not eyes_and_neck:
        return {name: where & ~brain for name, where in labels.items()}
    # neck: an elliptic column of muscle streaked with fat below the brain's lowest 15 mm
    s, p, lr = (np.arange(n) * d for n, d in zip(brain.shape, spacing_spl, strict=True))
    idx = np.argwhere(brain)
    low = idx[:, 0].min()
    stem = idx[idx[:, 0] <= low + max(1, int(15 / spacing_spl[0]))]
    cp, cl = stem[:, 1].mean() * spacing_spl[1], stem[:, 2].mean() * spacing_spl[2]
    column = ((p[None, :, None] - cp - 10) / 50) ** 2 + ((lr[None, None, :] - cl) / 55) ** 2 <= 1
    neck = column & (s[:, None, None] < low * spacing_spl[0] + 25) & ~head
    fatty = _field(rng, brain.shape, 8) > 0.3
    labels["muscle"] |= neck & ~fatty
    labels["fat"] |= neck & fatty
    # eyes: globes (r 12 mm) in orbital fat, in front of and below the frontal lobes
    front = idx[:, 1].min() * spacing_spl[1]
    centre_l = idx[:, 2].mean() * spacing_spl[2]
    frontal_floor = idx[idx[:, 1] <= idx[:, 1].min() + 25 / spacing_spl[1], 0].min() * spacing_spl[0]
    for side in (-1, 1):
        centre = (frontal_floor - 8, front - 2, centre_l + side * 32)
        dist = np.sqrt((s[:, None, None] - centre[0]) ** 2 + (p[None, :, None] - centre[1]) ** 2
                       + (lr[None, None, :] - centre[2]) ** 2)
        orbit = (dist <= 19) & ~brain & ~cranium
        for name in labels:
            labels[name] &= ~orbit
        labels["fat"] |= orbit & (dist > 12)
        labels["vitreous"] |= dist <= 12
    for name in labels:
        labels[name] &= ~brain
    return labels


def _tissue_signals(contrast: str, rng: np.random.Generator) -> tuple[dict[str, float], float]:
    """Signal of each head tissue and of the brain (mean of grey and white matter) for one protocol."""
    seq, tr_range, te_range = PROTOCOLS[contrast]
    tr, te = rng.uniform(*tr_range), rng.uniform(*te_range)
    ti = flair_null_ti(tr) if seq == "IR" else 0.0
    sig = lambda t1, t2, pd: float(signal(seq, tr, te, ti, np.float64(t1), np.float64(t2), np.float64(pd)))  # noqa: E731
    out = {}
    for name, (t1, t2, pd) in HEAD_TISSUES.items():
        if contrast == "T1Gd" and name in ("muscle", "skin"):
            t1 = 1.0 / (1.0 / t1 + R1_GD * GD_SOFT_TISSUE_MM)
        out[name] = sig(t1, t2, pd)
    return out, 0.5 * (sig(*TISSUES["GM"]) + sig(*TISSUES["WM"]))


def render_head(volume: Volume, brain: np.ndarray, contrast: str, labels: dict[str, np.ndarray],
                seed: int = 0, noise: float = 0.02, background: str = "noise") -> Volume:
    """``volume`` with the head of ``labels`` (canonical) drawn outside ``brain`` (the volume's grid).

    ``noise`` is the Rician σ relative to the brain's median; ``background`` "noise" or "zero"."""
    rng = np.random.default_rng(seed)
    signals, brain_level = _tissue_signals(canonical(contrast), rng)
    values = volume.array[brain]
    scale = float(np.median(values[values > 0])) / brain_level
    drawn = np.zeros(labels["CSF"].shape, np.float32)
    for name, where in labels.items():
        drawn[where] = signals[name] * scale * (1 + 0.04 * rng.standard_normal(int(where.sum())))
    drawn = ndimage.gaussian_filter(drawn, 0.6)  # partial volume at the layer edges
    arr = orientation.from_canonical(drawn, volume)
    sigma = noise * scale * brain_level
    if background == "noise":
        arr = np.sqrt((arr + rng.normal(0, sigma, arr.shape)) ** 2 + rng.normal(0, sigma, arr.shape) ** 2)
    else:
        head = orientation.from_canonical(np.any(np.stack(list(labels.values())), axis=0), volume)
        arr = np.where(head, np.abs(arr + rng.normal(0, sigma, arr.shape)), 0.0)
    out = np.where(brain, volume.array, arr).astype(np.float32)
    meta = {k: v for k, v in volume.metadata.items() if k != "source_path"}  # no longer that file
    return Volume(out, volume.spacing, volume.origin, volume.direction, {**meta, "synthetic_head": "1"})


def add_head(volumes: dict[str, Volume], brain: np.ndarray, seed: int = 0, pad_mm: float = 0.0,
             noise: float = 0.02, background: str = "noise") -> tuple[dict[str, Volume], np.ndarray]:
    """One subject's contrasts (one grid, skull-stripped) with a head around ``brain``; the same head in
    every contrast. ``pad_mm`` grows the grid first (the simulator's grids end just outside the brain).
    Returns the volumes and the brain mask on their grid."""
    first = next(iter(volumes.values()))
    if pad_mm > 0:
        volumes = {c: pad_volume(v, pad_mm) for c, v in volumes.items()}
        brain = pad_volume(first.with_array(brain.astype(np.float32)), pad_mm).array > 0.5
        first = next(iter(volumes.values()))
    cbrain = orientation.to_canonical(first.with_array(brain))
    labels = head_labels(cbrain, canonical_spacing(first), seed)
    out = {c: render_head(v, brain, c, labels, seed + 1 + i, noise, background)
           for i, (c, v) in enumerate(volumes.items())}
    return out, brain
