"""Round trips through every format keep voxels and geometry; the canonical reorientation is exact."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import random_direction

from MRSynthLib import orientation
from MRSynthLib.errors import MRSynthError
from MRSynthLib.io import read_volume, write_volume
from MRSynthLib.volume import Volume


def _volume(direction: np.ndarray, seed: int = 0) -> Volume:
    arr = np.random.default_rng(seed).random((6, 7, 8)).astype(np.float32) + 0.1
    return Volume(arr, spacing=(0.9, 1.1, 2.5), origin=(-10.0, 20.5, 3.25), direction=direction)


def _world_of(vol: Volume, ijk) -> np.ndarray:
    return (vol.affine_lps @ np.r_[ijk, 1.0])[:3]


@pytest.mark.parametrize("ext", [".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd"])
@pytest.mark.parametrize("kind", ["identity", "oblique", "left-handed", "permuted"])
def test_round_trip_keeps_voxels_and_world_positions(tmp_path, ext, kind):
    direction = {"identity": np.eye(3), "oblique": random_direction(1),
                 "left-handed": random_direction(2, left_handed=True),
                 "permuted": np.array([[0.0, 0, 1], [1, 0, 0], [0, 1, 0]])}[kind]
    vol = _volume(direction)
    back = read_volume(write_volume(vol, tmp_path / f"v{ext}"))
    # a format may store a left-handed grid K-flipped; what must hold is the value at each world point
    for ijk in [(0, 0, 0), (7, 6, 5), (3, 2, 1)]:
        world = _world_of(vol, ijk)
        ijk_back = np.linalg.solve(back.affine_lps, np.r_[world, 1.0])[:3]
        assert np.allclose(ijk_back, np.round(ijk_back), atol=1e-3)
        i, j, k = np.round(ijk_back).astype(int)
        assert back.array[k, j, i] == pytest.approx(vol.array[ijk[2], ijk[1], ijk[0]], abs=1e-6)
    assert np.allclose(back.affine_lps, vol.affine_lps, atol=1e-4)  # left-handed NIfTI included
    data_file = [f"v{ext.removesuffix('.mhd').removesuffix('.nhdr')}.raw"] if ext in (".mhd", ".nhdr") else []
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([f"v{ext}", *data_file])  # no temp files left


@pytest.mark.parametrize("ext", [".mhd", ".nhdr"])
def test_header_and_data_formats_name_the_final_data_file_and_overwrite_cleanly(tmp_path, ext):
    """ITK names the data file after the header it writes: a temp-named header used to leave the final
    header pointing at a temp-named .raw, and every --force rewrite an orphan file."""
    first, second = _volume(np.eye(3), seed=1), _volume(np.eye(3), seed=2)
    p = write_volume(first, tmp_path / f"out{ext}")
    write_volume(second, p, overwrite=True)
    assert sorted(x.name for x in tmp_path.iterdir()) == sorted([f"out{ext}", "out.raw"])
    header = p.read_bytes().decode("latin-1")
    assert ("ElementDataFile = out.raw" if ext == ".mhd" else "data file: out.raw") in header
    assert np.array_equal(read_volume(p).array, second.array)
    with pytest.raises(MRSynthError, match="exists"):  # a stray data file of that name is not clobbered
        (tmp_path / "other.raw").write_bytes(b"someone else's")
        write_volume(first, tmp_path / f"other{ext}")
    assert (tmp_path / "other.raw").read_bytes() == b"someone else's"


def test_nifti_with_a_trailing_size1_dimension_is_a_3d_volume(tmp_path):
    """(x, y, z, 1): ITK reads 3D, nibabel 4D; this used to end in an UnboundLocalError."""
    import nibabel as nib

    data = np.random.default_rng(0).random((8, 9, 10)).astype(np.float32) + 0.1
    affine = np.array([[0.0, 0, 2.5, 3], [-0.9, 0, 0, 4], [0, 1.1, 0, -5], [0, 0, 0, 1]])
    nib.save(nib.Nifti1Image(data[..., None], affine), str(tmp_path / "x4.nii.gz"))
    nib.save(nib.Nifti1Image(data, affine), str(tmp_path / "x3.nii.gz"))
    squeezed, plain = read_volume(tmp_path / "x4.nii.gz"), read_volume(tmp_path / "x3.nii.gz")
    assert np.array_equal(squeezed.array, data.transpose(2, 1, 0))
    assert np.allclose(squeezed.affine_ras, affine, atol=1e-5)
    assert np.array_equal(squeezed.affine_lps, plain.affine_lps)


def test_in_memory_volumes_get_the_file_checks():
    from MRSynthLib.io import check_volume

    vol = _volume(np.eye(3))
    check_volume(vol, "ok")
    for arr, message in ((np.ones((1, 7, 8), np.float32), "single slice"),
                         (np.full((6, 7, 8), np.inf, np.float32), "NaN/Inf"),
                         (np.zeros((6, 7, 8), np.float32), "all zero")):
        with pytest.raises(MRSynthError, match=message):
            check_volume(Volume(arr), "in memory")


def test_dicom_series_folder_is_read(tmp_path):
    import SimpleITK as sitk

    arr = (np.random.default_rng(0).random((5, 16, 16)) * 1000).astype(np.int16) + 1
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing((0.8, 0.8, 3.0))
    writer = sitk.ImageFileWriter()  # writing DICOM through GDCM switches this process's C locale to "C"
    writer.KeepOriginalImageUIDOn()
    for z in range(arr.shape[0]):
        s = img[:, :, z]
        for key, value in {"0020|000e": "1.2.826.0.1.3680043.2.1125.1", "0020|0013": str(z + 1),
                           "0020|0032": f"0\\0\\{3.0 * z}", "0020|0037": "1\\0\\0\\0\\1\\0",
                           "0008|0060": "MR", "0018|0050": "3.0"}.items():
            s.SetMetaData(key, value)
        writer.SetFileName(str(tmp_path / f"s{z:03d}.dcm"))
        writer.Execute(s)
    vol = read_volume(tmp_path)
    assert vol.array.shape == arr.shape
    assert np.array_equal(vol.array, arr)
    assert vol.spacing[2] == pytest.approx(3.0)


@pytest.mark.parametrize("seed", range(4))
def test_canonical_view_is_the_same_anatomy_whatever_the_storage_order(seed):
    rng = np.random.default_rng(seed)
    base = Volume(rng.random((6, 7, 8)), direction=np.eye(3))
    perm = rng.permutation(3)
    flips = rng.random(3) < 0.5
    # store the same anatomy with permuted, flipped index axes
    direction = np.eye(3)[:, perm] * np.where(flips, -1, 1)
    src = np.transpose(base.array, (2, 1, 0))  # [i, j, k] of the base
    stored = np.transpose(src, perm)  # new index n runs along old index perm[n]
    for n in range(3):
        if flips[n]:
            stored = np.flip(stored, axis=n)
    stored_vol = Volume(np.ascontiguousarray(np.transpose(stored, (2, 1, 0))), direction=direction)
    assert np.array_equal(orientation.to_canonical(stored_vol), orientation.to_canonical(base))
    assert np.array_equal(orientation.from_canonical(orientation.to_canonical(stored_vol), stored_vol), stored_vol.array)


def test_slices_follow_the_chosen_plane():
    canon = np.zeros((4, 5, 6))
    assert orientation.slices_first(canon, "axial").shape == (4, 5, 6)
    assert orientation.slices_first(canon, "coronal").shape == (5, 4, 6)
    assert orientation.slices_first(canon, "sagittal").shape == (6, 4, 5)
    with pytest.raises(MRSynthError, match="unknown slice plane"):
        orientation.plane_axis("oblique")


def test_ras_affine_round_trip():
    vol = _volume(random_direction(5, left_handed=True))
    again = Volume.from_affine_ras(vol.array, vol.affine_ras)
    assert np.allclose(again.affine_lps, vol.affine_lps)


def test_write_is_atomic_and_refuses_to_overwrite(tmp_path):
    vol = _volume(np.eye(3))
    p = write_volume(vol, tmp_path / "a.nii.gz")
    with pytest.raises(MRSynthError, match="exists"):
        write_volume(vol, p)
    assert sorted(x.name for x in tmp_path.iterdir()) == ["a.nii.gz"]  # no temp files left


def test_atomic_outputs_get_ordinary_permissions(tmp_path):
    """mkstemp makes owner-only files; outputs must be readable like any file the user writes."""
    import os
    import stat

    from MRSynthLib.io import write_bytes_atomic

    old = os.umask(0o022)
    try:
        vol_path = write_volume(_volume(np.eye(3)), tmp_path / "b.nii.gz")
        json_path = write_bytes_atomic(b"{}", tmp_path / "m.json")
    finally:
        os.umask(old)
    for p in (vol_path, json_path):
        assert stat.S_IMODE(p.stat().st_mode) == 0o644, p
