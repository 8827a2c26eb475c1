"""Make the sample subject shipped with the Slicer extension (``MRSynth/Resources/SampleData``).

A real subject, small enough to ship: TCGA-DU-7294 (TCIA TCGA-LGG, CC BY 3.0) from ``../shared/data/real``,
cropped to the box holding brain in any of its four contrasts (plus a 16-voxel margin) and downsampled from
1 mm to 2 mm by averaging each 2×2×2 block, kept as int16 in scanner units. The geometry follows the
voxels: spacing doubled, the origin moved to the centre of the first block. Deterministic: the same input
files give the same bytes (``Testing/test_sample_data.py`` remakes them and compares the SHA256s registered
in ``MRSynthSlicerLib/InstallLogic.py``).

    .venv/bin/python Testing/make_sample_data.py [REAL_ROOT] [OUT_FOLDER]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SUBJECT = "TCGA-DU-7294"
SAMPLE_CONTRASTS = ("T1", "T1Gd", "T2", "FLAIR")  # what the shipped sample subject has (no PD)
FACTOR = 2  # 1 mm -> 2 mm
MARGIN = 16  # voxels of background kept around the brain (before downsampling: 8 at 2 mm)
OUT = ROOT / "MRSynth" / "Resources" / "SampleData"


def file_name(contrast: str) -> str:
    return f"{SUBJECT}_{contrast}_2mm.nii.gz"


def brain_box(arrays: list[np.ndarray]) -> tuple[slice, ...]:
    """Slices (k, j, i) of the box around every non-zero voxel of any array, with the margin (within the
    grid), each extent cut down to a multiple of FACTOR (what is cut is margin)."""
    nonzero = np.argwhere(np.any([a != 0 for a in arrays], axis=0))
    lo = np.maximum(nonzero.min(axis=0) - MARGIN, 0)
    hi = np.minimum(nonzero.max(axis=0) + 1 + MARGIN, arrays[0].shape)
    hi = lo + (hi - lo) // FACTOR * FACTOR
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))


def downsample(array: np.ndarray) -> np.ndarray:
    """Mean of each FACTOR³ block, rounded to int16 (the source's type)."""
    k, j, i = (n // FACTOR for n in array.shape)
    mean = array.astype(np.float64).reshape(k, FACTOR, j, FACTOR, i, FACTOR).mean(axis=(1, 3, 5))
    return np.rint(mean).astype(np.int16)


def make(real_root: Path, out: Path) -> dict[str, Path]:
    """Write the four sample files into ``out``; returns contrast → path."""
    from MRSynthLib.io import read_volume, write_volume
    from MRSynthLib.volume import Volume

    volumes = {c: read_volume(real_root / SUBJECT / f"{c}.nii.gz") for c in SAMPLE_CONTRASTS}
    box = brain_box([v.array for v in volumes.values()])
    start_ijk = np.array([box[2].start, box[1].start, box[0].start], dtype=float)
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    for contrast, vol in volumes.items():
        spacing = np.array(vol.spacing)
        first_block_centre = start_ijk + (FACTOR - 1) / 2  # in source voxel indices (i, j, k)
        origin = np.array(vol.origin) + vol.direction @ (spacing * first_block_centre)
        small = Volume(downsample(vol.array[box]), tuple(spacing * FACTOR), tuple(origin), vol.direction,
                       metadata={"descrip": f"{SUBJECT} {contrast} 2mm crop; TCIA TCGA-LGG, CC BY 3.0"})
        written[contrast] = write_volume(small, out / file_name(contrast), overwrite=True)
    return written


if __name__ == "__main__":
    real = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "data" / "real"
    folder = Path(sys.argv[2]) if len(sys.argv) > 2 else OUT
    for path in make(real, folder).values():
        print(f"{path} ({path.stat().st_size / 1024:.0f} KiB)")
