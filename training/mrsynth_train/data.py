"""Training subjects (real folders, BIDS, the physics simulator) and a 2D slice sampler.

Every subject is held as canonical (S, P, L) arrays in the project's intensity convention, so the
sampler only crops; a subject with a missing or corrupt file is skipped with a warning and counted.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from MRSynthLib import orientation
from MRSynthLib.contrasts import CONTRASTS, detect
from MRSynthLib.errors import MRSynthError
from MRSynthLib.io import read_volume
from MRSynthLib.phantom import simulate_subject
from MRSynthLib.preprocess import derive_mask, normalize
from MRSynthLib.volume import Volume

log = logging.getLogger("mrsynth_train")


@dataclass
class SubjectArrays:
    name: str
    images: dict[str, np.ndarray]  # contrast → canonical normalized float32
    mask: np.ndarray  # canonical bool
    reference: Volume | None = None  # first volume (geometry) for whole-volume evaluation


def _from_volumes(name: str, volumes: dict[str, Volume], mask: np.ndarray | None = None) -> SubjectArrays:
    first = next(iter(volumes.values()))
    m = derive_mask([v.array for v in volumes.values()]) if mask is None else mask
    images = {c: orientation.to_canonical(v.with_array(normalize(v.array, m))) for c, v in volumes.items()}
    return SubjectArrays(name, images, orientation.to_canonical(first.with_array(m)), first)


def find_subject_files(folder: Path) -> dict[str, Path]:
    """Contrast → file for a subject folder (``<Contrast>.nii.gz``) or a BIDS ``anat`` folder."""
    files: dict[str, Path] = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file() and re.search(r"\.(nii\.gz|nii|nrrd|mha)$", p.name):
            c = detect(p.name)
            if c and c not in files:
                files[c] = p
    return files


def load_subject_folder(folder: Path) -> SubjectArrays:
    files = find_subject_files(folder)
    if not files:
        raise MRSynthError("no contrast files found", str(folder))
    return _from_volumes(folder.name, {c: read_volume(p) for c, p in files.items()})


def load_root(root: Path, include: list[str] | None = None, exclude: list[str] | None = None) -> tuple[list[SubjectArrays], int]:
    """Load every subject folder (or BIDS ``sub-*``) under ``root``; returns (subjects, skipped)."""
    if not root.exists():
        raise MRSynthError("data root not found", str(root))
    subjects, skipped = [], 0
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        if (include and folder.name not in include) or (exclude and folder.name in exclude):
            continue
        try:
            subjects.append(load_subject_folder(folder))
        except MRSynthError as exc:
            skipped += 1
            log.warning("skipping subject: %s", exc)
    return subjects, skipped


def simulated_subjects(n: int, shape: tuple[int, int, int], seed: int = 1000) -> list[SubjectArrays]:
    out = []
    for i in range(n):
        s = simulate_subject(seed + i, shape=shape, lesion=(i % 3 != 2))
        out.append(_from_volumes(f"sim-{seed + i}", s.volumes, s.mask.array > 0))
    return out


@dataclass
class Batch:
    images: np.ndarray  # (B, C, H, W) with missing channels zero
    available: np.ndarray  # (B, C)
    target: np.ndarray  # (B,) contrast index
    truth: np.ndarray  # (B, 1, H, W)
    mask: np.ndarray  # (B, 1, H, W)


class SliceSampler:
    """Random brain slices, random crops, random target and random non-empty input subset."""

    def __init__(self, subjects: list[SubjectArrays], weights: list[float] | None = None, patch: int = 128,
                 seed: int = 0, augment: bool = True, all_inputs_prob: float = 0.5) -> None:
        if not subjects:
            raise MRSynthError("the training dataset is empty (no readable subjects)")
        self.subjects, self.patch, self.augment = subjects, patch, augment
        w = np.asarray(weights if weights is not None else [1.0] * len(subjects), dtype=float)
        self.weights = w / w.sum()
        self.rng = np.random.default_rng(seed)
        self.all_inputs_prob = all_inputs_prob
        self.slices = []
        for s in subjects:
            area = s.mask.reshape(s.mask.shape[0], -1).sum(axis=1)
            self.slices.append(np.flatnonzero(area > 0.25 * area.max()))

    def _crop(self, arr: np.ndarray, r0: int, c0: int) -> np.ndarray:
        p = self.patch
        out = np.zeros(arr.shape[:-2] + (p, p), dtype=np.float32)
        sub = arr[..., max(r0, 0):r0 + p, max(c0, 0):c0 + p]
        out[..., max(-r0, 0):max(-r0, 0) + sub.shape[-2], max(-c0, 0):max(-c0, 0) + sub.shape[-1]] = sub
        return out

    def sample(self, batch_size: int) -> Batch:
        rng, p, C = self.rng, self.patch, len(CONTRASTS)
        images = np.zeros((batch_size, C, p, p), np.float32)
        avail = np.zeros((batch_size, C), np.float32)
        target = np.zeros(batch_size, np.int64)
        truth = np.zeros((batch_size, 1, p, p), np.float32)
        mask = np.zeros((batch_size, 1, p, p), np.float32)
        for b in range(batch_size):
            si = rng.choice(len(self.subjects), p=self.weights)
            s = self.subjects[si]
            z = int(rng.choice(self.slices[si]))
            m2 = s.mask[z]
            rows, cols = np.where(m2)
            r0 = int(rng.integers(rows.min() - 8, max(rows.max() - p + 9, rows.min() - 7)))
            c0 = int(rng.integers(cols.min() - 8, max(cols.max() - p + 9, cols.min() - 7)))
            have = [c for c in CONTRASTS if c in s.images]
            tgt = have[rng.integers(len(have))]
            others = [c for c in have if c != tgt]
            if rng.random() < self.all_inputs_prob:
                chosen = others
            else:
                k = int(rng.integers(1, len(others) + 1))
                chosen = list(rng.choice(others, size=k, replace=False))
            flip = self.augment and rng.random() < 0.5
            for c in chosen:
                img = self._crop(s.images[c][z], r0, c0)
                if self.augment and rng.random() < 0.3:
                    img = img ** rng.uniform(0.8, 1.25)
                images[b, CONTRASTS.index(c)] = img[:, ::-1] if flip else img
                avail[b, CONTRASTS.index(c)] = 1.0
            t = self._crop(s.images[tgt][z], r0, c0)
            mm = self._crop(m2.astype(np.float32), r0, c0)
            truth[b, 0] = t[:, ::-1] if flip else t
            mask[b, 0] = mm[:, ::-1] if flip else mm
            target[b] = CONTRASTS.index(tgt)
        return Batch(images, avail, target, truth, mask)
