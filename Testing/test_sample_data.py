"""The sample brain shipped with the Slicer extension: a real subject, small, reproducible, attributed."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_DIR = ROOT / "MRSynth" / "Resources" / "SampleData"


def _registered() -> dict[str, tuple[str, str]]:
    sys.path.insert(0, str(ROOT / "MRSynth" / "MRSynthSlicerLib"))  # SampleBrain.py needs no slicer
    try:
        import SampleBrain
    finally:
        sys.path.pop(0)
    return SampleBrain.SAMPLE_FILES


def test_shipped_sample_matches_its_checksums_and_is_small():
    files = _registered()
    assert set(files) == {"T1", "T1Gd", "T2", "FLAIR"}
    for name, checksum in files.values():
        algo, digest = checksum.split(":")
        assert hashlib.new(algo.lower(), (SAMPLE_DIR / name).read_bytes()).hexdigest() == digest, name
    assert sum((SAMPLE_DIR / n).stat().st_size for n, _ in files.values()) < 3 * 1024 * 1024
    readme = (SAMPLE_DIR / "README.md").read_text(encoding="utf-8")
    for must in ("TCGA-DU-7294", "CC BY 3.0", "Clark", "J Digit Imaging", "Testing/make_sample_data.py"):
        assert must in readme, must


def test_sample_files_are_remade_byte_for_byte_from_the_real_subject(real_root, tmp_path):
    """Testing/make_sample_data.py remakes exactly the shipped files (cropped, 2 mm, int16, geometry kept)."""
    sys.path.insert(0, str(ROOT / "Testing"))
    try:
        import make_sample_data
    finally:
        sys.path.pop(0)
    from MRSynthLib.io import read_volume

    made = make_sample_data.make(real_root, tmp_path)
    files = _registered()
    for contrast, path in made.items():
        name, checksum = files[contrast]
        assert path.name == name
        assert "SHA256:" + hashlib.sha256(path.read_bytes()).hexdigest() == checksum, name
    small, full = read_volume(made["T1"]), read_volume(real_root / "TCGA-DU-7294" / "T1.nii.gz")
    assert small.spacing == (2.0, 2.0, 2.0) and small.array.dtype.name == "int16"
    # a 2 mm voxel's centre lies between 1 mm voxels: its value is their block's mean
    import numpy as np

    i, j, k = 40, 48, 38
    centre = np.linalg.inv(full.affine_lps) @ small.affine_lps @ np.array([i, j, k, 1.0])
    lo = np.floor(centre[:3]).astype(int)
    block = full.array[lo[2]:lo[2] + 2, lo[1]:lo[1] + 2, lo[0]:lo[0] + 2]
    assert np.allclose(centre[:3] - lo, 0.5) and abs(small.array[k, j, i] - block.mean()) <= 0.5
