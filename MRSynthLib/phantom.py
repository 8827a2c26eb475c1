"""Physics simulator: multi-contrast brain MR subjects from real anatomy and the signal equations.

Anatomy: the MNI152 ICBM 2009a (nonlinear symmetric) grey- and white-matter probability maps that
nilearn ships inside its wheel; CSF = 1 − GM − WM inside the hole-filled brain.

Signal equations (Haacke et al., *Magnetic Resonance Imaging: Physical Principles and Sequence
Design*, 1999, ch. 8 and 15):
- spin echo: S = PD · (1 − e^(−TR/T1)) · e^(−TE/T2)  (T1, T1Gd, T2, PD weighting by TR/TE);
- inversion recovery (FLAIR): S = PD · |1 − 2e^(−TI/T1) + e^(−TR/T1)| · e^(−TE/T2); CSF is nulled
  near TI = T1_csf · ln 2 (exactly TI = T1_csf · ln(2 / (1 + e^(−TR/T1_csf))));
- gadolinium: 1/T1′ = 1/T1 + r1·[Gd], 1/T2′ = 1/T2 + r2·[Gd], r1 ≈ 4.3, r2 ≈ 5.0 mM⁻¹s⁻¹ at 1.5 T
  (Rohrer et al., Invest Radiol 2005;40:715).
Tissue values at 1.5 T from BrainWeb (Kwan, Evans & Pike, IEEE TMI 1999; Collins et al. 1998):
T1/T2 in ms and PD — CSF 2569/329/1.0, GM 833/83/0.86, WM 500/70/0.77. Lesion values (vasogenic
oedema, necrotic core, enhancing rim) are plausible literature-range choices, not measurements.

Per-subject variety: smooth random deformation and scaling, ±5 % tissue-parameter jitter,
protocol sampling (TR/TE/TI — the "style" within a contrast), a smooth bias field, Rician noise,
arbitrary scanner gain, and an optional lesion. Deterministic per seed; any grid size.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from scipy import ndimage

from .contrasts import CONTRASTS
from .errors import MRSynthError
from .volume import Volume

# name: (T1 ms, T2 ms, PD)
TISSUES: dict[str, tuple[float, float, float]] = {
    "CSF": (2569.0, 329.0, 1.0),
    "GM": (833.0, 83.0, 0.86),
    "WM": (500.0, 70.0, 0.77),
    "oedema": (1100.0, 180.0, 0.90),
    "necrosis": (1900.0, 260.0, 0.95),
    "enhancing": (950.0, 110.0, 0.85),
}
LABELS: tuple[str, ...] = tuple(TISSUES)
R1_GD = 4.3e-3  # per mM per ms
R2_GD = 5.0e-3
GD_ENHANCING_MM = 0.45

# (sequence, TR range, TE range); FLAIR's TI is derived from the CSF null.
PROTOCOLS: dict[str, tuple[str, tuple[float, float], tuple[float, float]]] = {
    "T1": ("SE", (450.0, 650.0), (8.0, 18.0)),
    "T1Gd": ("SE", (450.0, 650.0), (8.0, 18.0)),
    "T2": ("SE", (3000.0, 5000.0), (85.0, 115.0)),
    "PD": ("SE", (2500.0, 4000.0), (10.0, 25.0)),
    "FLAIR": ("IR", (8000.0, 10000.0), (100.0, 140.0)),
}


@dataclass
class PhantomSubject:
    """One simulated subject: a volume per contrast, the brain mask and what made them."""

    volumes: dict[str, Volume]
    mask: Volume
    labels: Volume  # 0 background, then 1 + index in LABELS of the dominant tissue
    protocol: dict[str, dict[str, float]] = field(default_factory=dict)
    lesion: bool = False


@lru_cache(maxsize=1)
def mni_anatomy() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """GM, WM, brain mask ([k, j, i] arrays) and the template's IJK→RAS affine."""
    import importlib.resources as res

    import nibabel as nib

    try:
        folder = res.files("nilearn.datasets") / "data"
    except ImportError as exc:  # nilearn is the optional `phantom` extra
        name = exc.name or "nilearn"
        missing = "" if name.split(".")[0] == "nilearn" else f" ({name} is missing)"
        raise MRSynthError(f"the phantom simulator needs nilearn{missing}: pip install 'mrsynth[phantom]'") from None
    gm_img = nib.load(str(folder / "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz"))
    wm_img = nib.load(str(folder / "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz"))
    gm = np.asarray(gm_img.dataobj, dtype=np.float32).transpose(2, 1, 0)
    wm = np.asarray(wm_img.dataobj, dtype=np.float32).transpose(2, 1, 0)
    gm, wm = gm / max(float(gm.max()), 1.0), wm / max(float(wm.max()), 1.0)  # stored as 0..255
    brain = ndimage.binary_fill_holes(ndimage.binary_closing(gm + wm > 0.3, iterations=2))
    return gm, wm, brain.astype(np.float32), gm_img.affine


def smooth_field(rng: np.random.Generator, shape: tuple[int, ...], coarse: int = 4) -> np.ndarray:
    """Zero-mean, unit-amplitude smooth random field on ``shape``."""
    field_c = rng.standard_normal((coarse,) * len(shape))
    zoom = [s / coarse for s in shape]
    f = ndimage.zoom(field_c, zoom, order=3, mode="nearest")[tuple(slice(0, s) for s in shape)]
    return f / (np.abs(f).max() + 1e-8)


def signal(seq: str, tr: float, te: float, ti: float, t1: np.ndarray, t2: np.ndarray, pd: np.ndarray) -> np.ndarray:
    """MR signal equation for spin echo ('SE') or inversion recovery ('IR')."""
    if seq == "SE":
        return pd * (1 - np.exp(-tr / t1)) * np.exp(-te / t2)
    return pd * np.abs(1 - 2 * np.exp(-ti / t1) + np.exp(-tr / t1)) * np.exp(-te / t2)


def flair_null_ti(tr: float, t1_csf: float = TISSUES["CSF"][0]) -> float:
    """Inversion time nulling CSF for a given TR."""
    return float(t1_csf * np.log(2.0 / (1.0 + np.exp(-tr / t1_csf))))


def _lesion_fractions(rng, wm: np.ndarray, shape, spacing) -> dict[str, np.ndarray]:
    """Soft fractions of necrosis, enhancing rim and oedema around a random white-matter centre."""
    candidates = np.argwhere(wm > 0.8)
    centre = candidates[rng.integers(len(candidates))]
    radius_mm = rng.uniform(10, 20)
    grids = np.meshgrid(*[np.arange(s) for s in shape], indexing="ij")
    sp = np.asarray(spacing)[::-1]  # [k, j, i] order
    dist = np.sqrt(sum(((g - c) * s) ** 2 for g, c, s in zip(grids, centre, sp, strict=True))) / radius_mm
    dist = dist + 0.15 * smooth_field(rng, shape, coarse=6)
    soft = lambda lo, hi: np.clip((dist - lo) / 0.08, 0, 1) * np.clip((hi - dist) / 0.08, 0, 1)  # noqa: E731
    necrosis = np.clip((0.45 - dist) / 0.08, 0, 1)
    enhancing = soft(0.45, 0.7)
    oedema = soft(0.7, 1.6) * np.clip(wm * 1.2, 0, 1)
    return {"necrosis": necrosis, "enhancing": enhancing, "oedema": oedema}


def simulate_subject(seed: int = 0, shape: int | tuple[int, int, int] = 64, lesion: bool = True,
                     contrasts: tuple[str, ...] = CONTRASTS) -> PhantomSubject:
    """Make one subject; ``shape`` is the (i, j, k) grid covering the brain's bounding box."""
    rng = np.random.default_rng(seed)
    gm_t, wm_t, brain_t, affine_ras = mni_anatomy()
    size_ijk = (shape,) * 3 if isinstance(shape, int) else tuple(shape)
    out_shape = tuple(int(s) for s in size_ijk[::-1])  # [k, j, i]
    nz = np.argwhere(brain_t > 0)
    lo, hi = nz.min(axis=0) - 3, nz.max(axis=0) + 3
    step = (hi - lo) / (np.asarray(out_shape) - 1)
    # template coordinates of each output voxel: scale about the centre + smooth deformation
    centre = (np.asarray(out_shape) - 1) / 2
    scale = 1 + rng.uniform(-0.06, 0.06, 3)
    grids = np.meshgrid(*[np.arange(s, dtype=np.float32) for s in out_shape], indexing="ij")
    coords = []
    for ax in range(3):
        disp_mm = rng.uniform(1.5, 4.0) * smooth_field(rng, out_shape)
        c = lo[ax] + ((grids[ax] - centre[ax]) / scale[ax] + centre[ax]) * step[ax] + disp_mm
        coords.append(c)
    warp = lambda a: ndimage.map_coordinates(a, coords, order=1, mode="constant", cval=0.0)  # noqa: E731
    gm, wm, brain = warp(gm_t), warp(wm_t), warp(brain_t) > 0.5
    gm, wm = gm * brain, wm * brain
    csf = np.clip(1 - gm - wm, 0, 1) * brain
    tmpl = np.abs(affine_ras[:3, :3]).diagonal()
    spacing = tuple(float(s) for s in (step * tmpl[::-1])[::-1])  # (i, j, k) mm
    fractions = {"CSF": csf, "GM": gm, "WM": wm}
    if lesion:
        les = _lesion_fractions(rng, wm, out_shape, spacing)
        healthy = np.clip(1 - sum(les.values()), 0, 1)
        fractions = {k: v * healthy for k, v in fractions.items()} | {k: v * brain for k, v in les.items()}
    params = {k: np.asarray(TISSUES[k]) * (1 + 0.05 * rng.standard_normal(3)) for k in fractions}

    # output geometry: template orientation (RAS storage → LPS), origin at the box corner
    lps = np.diag([-1.0, -1.0, 1.0]) @ affine_ras[:3, :3]
    direction = lps / np.abs(lps).sum(axis=0)
    origin_ras = affine_ras @ np.r_[lo[::-1], 1.0]
    origin = (-origin_ras[0], -origin_ras[1], origin_ras[2])

    volumes: dict[str, Volume] = {}
    protocol: dict[str, dict[str, float]] = {}
    wm_mask = wm > 0.9
    for name in contrasts:
        seq, tr_range, te_range = PROTOCOLS[name]
        tr, te = rng.uniform(*tr_range), rng.uniform(*te_range)
        ti = flair_null_ti(tr) * rng.uniform(0.95, 1.05) if seq == "IR" else 0.0
        img = np.zeros(out_shape, dtype=np.float64)
        for tissue, frac in fractions.items():
            t1, t2, pd = params[tissue]
            if name == "T1Gd" and tissue == "enhancing":
                t1 = 1.0 / (1.0 / t1 + R1_GD * GD_ENHANCING_MM)
                t2 = 1.0 / (1.0 / t2 + R2_GD * GD_ENHANCING_MM)
            img += frac * signal(seq, tr, te, ti, np.float64(t1), np.float64(t2), np.float64(pd))
        img *= np.exp(0.15 * smooth_field(rng, out_shape, coarse=3))  # bias field
        sigma = rng.uniform(0.01, 0.03) * float(img[wm_mask].mean() if wm_mask.any() else img[brain].mean())
        img = np.sqrt((img + rng.normal(0, sigma, out_shape)) ** 2 + rng.normal(0, sigma, out_shape) ** 2)
        img = (img * brain * rng.uniform(200, 3000)).astype(np.float32)
        volumes[name] = Volume(img, spacing, origin, direction, {"contrast": name, "synthetic": "phantom"})
        protocol[name] = {"TR": round(tr, 1), "TE": round(te, 1), "TI": round(ti, 1)}
    mask = Volume(brain.astype(np.uint8), spacing, origin, direction, {"contrast": "mask"})
    names = list(fractions)
    dominant = np.argmax(np.stack([fractions[n] for n in names]), axis=0)
    label_ids = np.array([1 + LABELS.index(n) for n in names], dtype=np.uint8)
    labels = np.where(brain, label_ids[dominant], 0).astype(np.uint8)
    return PhantomSubject(volumes, mask, Volume(labels, spacing, origin, direction, {"contrast": "labels"}),
                          protocol, lesion)
