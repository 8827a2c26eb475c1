"""Training subjects: real subject folders, BIDS roots (each session apart, no derivatives) and the
physics simulator. Every subject is held as canonical (S, P, L) arrays in the project's intensity
convention, so the sampler (``data``) only crops; a subject with a missing or corrupt file is skipped with
a warning and counted. Evaluation and validation find their subjects here too."""

from __future__ import annotations

import functools
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from MRSynthLib import orientation
from MRSynthLib.contrasts import detect
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
    """Canonical, normalized arrays on the training grid (1 mm where the subject's voxels are not)."""
    from .training_grid import to_training_grid

    first = next(iter(volumes.values()))
    m = derive_mask([v.array for v in volumes.values()]) if mask is None else mask
    images = {c: orientation.to_canonical(v.with_array(normalize(v.array, m))) for c, v in volumes.items()}
    images, canon_mask = to_training_grid(images, orientation.to_canonical(first.with_array(m)), first)
    return SubjectArrays(name, images, canon_mask, first)


_BIDS_SUFFIX = {"t1w": "T1", "t2w": "T2", "flair": "FLAIR", "pdw": "PD"}
_BIDS_SKIP = {"derivatives", "sourcedata", "code", "stimuli", "phenotype"}
_IMAGE = re.compile(r"\.(nii\.gz|nii|nrrd|mha)$")


def bids_contrast(filename: str) -> str | None:
    """Contrast of a BIDS anatomical file from its suffix (``_T1w``, ``_T2w``, ``_FLAIR``, ``_PDw``);
    a ``ce-<label>`` entity on a T1w (e.g. ``ce-gadolinium``) makes it T1Gd. Other suffixes → None."""
    m = re.match(r"(?P<stem>.+)_(?P<suffix>[A-Za-z0-9]+)\.(nii\.gz|nii)$", filename)
    if not m:
        return None
    contrast = _BIDS_SUFFIX.get(m["suffix"].lower())
    if contrast == "T1" and re.search(r"(^|_)ce-[A-Za-z0-9]+", m["stem"]):
        return "T1Gd"
    return contrast


def find_subject_files(folder: Path) -> dict[str, Path]:
    """Contrast → file for a subject folder (``<Contrast>.nii.gz``) or a BIDS subject/session folder
    (``anat/*_{T1w,T2w,FLAIR,PDw}.nii.gz``; only ``anat`` is read, runs sorted, the first wins)."""
    files: dict[str, Path] = {}
    if (folder / "anat").is_dir():
        for p in sorted((folder / "anat").iterdir()):
            c = bids_contrast(p.name) if p.is_file() else None
            if c and c not in files:
                files[c] = p
        return files
    for p in sorted(folder.rglob("*")):
        if p.is_file() and _IMAGE.search(p.name):
            c = detect(p.name)
            if c and c not in files:
                files[c] = p
    return files


def read_subject_volumes(folder: Path) -> dict[str, Volume]:
    """Contrast → volume of one subject (or BIDS session); an error naming the file when a contrast is
    not on the first one's voxel grid (the contrasts of a subject must be co-registered)."""
    files = find_subject_files(folder)
    if not files:
        raise MRSynthError("no contrast files found", str(folder))
    volumes = {c: read_volume(p) for c, p in files.items()}
    first = next(iter(volumes))
    for c, v in volumes.items():
        if v.array.shape != volumes[first].array.shape:
            raise MRSynthError(f"{c} has shape {v.array.shape} but {first} has {volumes[first].array.shape}: "
                               "the contrasts of a subject must be co-registered on one grid", str(files[c]))
    return volumes


def load_subject_folder(folder: Path, name: str | None = None) -> SubjectArrays:
    return _from_volumes(name or folder.name, read_subject_volumes(folder))


def subject_units(root: Path) -> list[tuple[str, Path]]:
    """(name, folder) of every loadable unit under ``root``: plain subject folders, BIDS ``sub-*``
    folders, and each ``sub-*/ses-*`` session separately (sessions are not co-registered)."""
    units = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        if folder.name in _BIDS_SKIP or folder.name.startswith("."):
            continue
        sessions = sorted(p for p in folder.glob("ses-*") if p.is_dir()) if folder.name.startswith("sub-") else []
        if sessions and not (folder / "anat").is_dir():
            units += [(f"{folder.name}_{ses.name}", ses) for ses in sessions]
        else:
            units.append((folder.name, folder))
    return units


def selected_units(root: Path, include: list[str] | None = None,
                   exclude: list[str] | None = None) -> list[tuple[str, Path]]:
    """``subject_units`` filtered: ``include``/``exclude`` match the unit name or its subject part
    (``sub-01`` selects every session)."""
    if not root.exists():
        raise MRSynthError("data root not found", str(root))
    units = []
    for name, folder in subject_units(root):
        keys = {name, name.split("_ses-")[0]}
        if not ((include and not keys & set(include)) or (exclude and keys & set(exclude))):
            units.append((name, folder))
    return units


def load_root(root: Path, include: list[str] | None = None,
              exclude: list[str] | None = None) -> tuple[list[SubjectArrays], list[str]]:
    """Load every subject folder (or BIDS subject/session) under ``root`` (see ``selected_units``);
    returns (subjects, skipped) where skipped lists "name: reason" of each unreadable subject (missing,
    corrupt or unreadable file, contrasts on different grids), each also logged as a warning."""
    subjects, skipped = [], []
    for name, folder in selected_units(root, include, exclude):
        try:
            subjects.append(load_subject_folder(folder, name))
        except (MRSynthError, OSError) as exc:
            skipped.append(f"{name}: {exc}")
            log.warning("skipping subject %s: %s", name, exc)
    return subjects, skipped


def simulated_subjects(n: int, shape: tuple[int, int, int], seed: int = 1000) -> list[SubjectArrays]:
    """``n`` simulated subjects (cached per process: an equal-budget comparison trains many recipes on them)."""
    return list(_simulated_cached(int(n), tuple(int(x) for x in shape), int(seed)))


@functools.lru_cache(maxsize=4)
def _simulated_cached(n: int, shape: tuple[int, int, int], seed: int) -> tuple[SubjectArrays, ...]:
    return tuple(simulate_set(n, shape, seed))


def simulate_set(n: int, shape: tuple[int, int, int], seed: int) -> list[SubjectArrays]:
    """``n`` simulated subjects with seeds ``seed`` … ``seed + n − 1`` (uncached; every third without lesion)."""
    out = []
    for i in range(n):
        s = simulate_subject(seed + i, shape=shape, lesion=(i % 3 != 2))
        out.append(_from_volumes(f"sim-{seed + i}", s.volumes, s.mask.array > 0))
    return out
