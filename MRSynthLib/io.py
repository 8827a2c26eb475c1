"""Read and write volumes (NIfTI, NRRD, MHA/MHD, DICOM series folders) with exact geometry.

Every read is validated (3D, finite, not empty) and every write is atomic: a temporary file
in the destination folder, then ``os.replace``, so a crash never leaves half an image.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .errors import MRSynthError
from .volume import Volume

_EXTENSIONS = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")


def _sitk():
    import SimpleITK as sitk  # noqa: PLC0415 - heavy, imported on use

    return sitk


def volume_from_sitk(image) -> Volume:
    sitk = _sitk()
    return Volume(
        array=sitk.GetArrayFromImage(image),
        spacing=image.GetSpacing(),
        origin=image.GetOrigin(),
        direction=np.array(image.GetDirection()).reshape(3, 3),
    )


def volume_to_sitk(volume: Volume):
    sitk = _sitk()
    image = sitk.GetImageFromArray(np.ascontiguousarray(volume.array))
    image.SetSpacing(volume.spacing)
    image.SetOrigin(volume.origin)
    image.SetDirection(tuple(float(x) for x in volume.direction.ravel()))
    for key, value in volume.metadata.items():
        image.SetMetaData(key, str(value))
    if "descrip" in volume.metadata:  # ITK writes the NIfTI description from ITK_FileNotes
        image.SetMetaData("ITK_FileNotes", str(volume.metadata["descrip"])[:79])
    return image


def _read_dicom_folder(folder: Path):
    sitk = _sitk()
    reader = sitk.ImageSeriesReader()
    series = reader.GetGDCMSeriesIDs(str(folder))
    if not series:
        raise MRSynthError("folder holds no DICOM series", str(folder))
    if len(series) > 1:
        raise MRSynthError(f"folder holds {len(series)} DICOM series; point to one series folder", str(folder))
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder), series[0]))
    return reader.Execute()


def read_volume(path: str | os.PathLike, check_content: bool = True) -> Volume:
    """Read a 3D scalar image; raise :class:`MRSynthError` naming the file on any problem."""
    p = Path(path)
    if not p.exists():
        raise MRSynthError("file not found", str(p))
    sitk = _sitk()
    nifti = None
    try:
        if p.is_dir():
            image = _read_dicom_folder(p)
        elif p.name.lower().endswith((".nii", ".nii.gz")):
            (dim, size, comps), nifti = _read_nifti(p)
        else:
            image = sitk.ReadImage(str(p))
    except MRSynthError:
        raise
    except Exception as exc:  # SimpleITK/nibabel raise with multi-line texts
        first = str(exc).strip().splitlines()[-1][:160] if str(exc).strip() else type(exc).__name__
        raise MRSynthError(f"cannot read image (corrupt, truncated or unsupported format): {first}", str(p)) from None
    if nifti is None and not p.name.lower().endswith((".nii", ".nii.gz")):
        dim, size, comps = image.GetDimension(), image.GetSize(), image.GetNumberOfComponentsPerPixel()
    if comps != 1:
        raise MRSynthError("is a multi-component (vector/RGB) image; a scalar 3D volume is needed", str(p))
    if dim != 3:
        raise MRSynthError(f"is {dim}D (size {size}); a 3D volume is needed", str(p))
    if min(size) < 2:
        raise MRSynthError(f"is a single slice (size {size}), i.e. 2D; a 3D volume is needed", str(p))
    if nifti is not None:
        array, (spacing, origin, direction) = nifti
        volume = Volume(array, spacing, origin, direction)
    else:
        volume = volume_from_sitk(image)
        # MRSynth's own header keys (NRRD/MHA keep them): a result read back keeps its labels
        volume.metadata.update({k: image.GetMetaData(k) for k in image.GetMetaDataKeys() if k.startswith("MRSynth.")})
    volume.metadata["source_path"] = str(p)
    if check_content:
        check_voxels(volume.array, str(p))
    return volume


def _read_nifti(p: Path):
    """NIfTI: geometry from ITK's header reader (Slicer-consistent), voxels from nibabel, which
    reports truncation and keeps NaN (ITK zero-fills a short file and turns NaN into 0)."""
    import nibabel as nib  # noqa: PLC0415

    sitk = _sitk()
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(p))
    reader.ReadImageInformation()
    info = (reader.GetDimension(), reader.GetSize(), reader.GetNumberOfComponents())
    img = nib.load(str(p))
    data = np.asanyarray(img.dataobj)
    if info[0] != 3 or info[2] != 1 or data.ndim != 3:
        return info, None
    array = np.ascontiguousarray(data.transpose(2, 1, 0))
    geometry = (reader.GetSpacing(), reader.GetOrigin(), np.array(reader.GetDirection()).reshape(3, 3))
    return info, (array, geometry)


def check_voxels(array: np.ndarray, name: str) -> None:
    """Refuse NaN/Inf and all-zero volumes with one line naming the file."""
    if not np.issubdtype(array.dtype, np.number):
        raise MRSynthError(f"has non-numeric voxels ({array.dtype})", name)
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        bad = int((~np.isfinite(array)).sum())
        raise MRSynthError(f"contains {bad} NaN/Inf voxels", name)
    if not np.any(array):
        raise MRSynthError("is all zero (empty image)", name)


def _suffix(path: Path) -> str:
    name = path.name.lower()
    for ext in _EXTENSIONS:
        if name.endswith(ext):
            return ext
    raise MRSynthError(f"unsupported output extension (use one of {', '.join(_EXTENSIONS)})", str(path))


@contextmanager
def _atomic_target(path: Path, suffix: str = ".tmp") -> Iterator[str]:
    """A temp file beside ``path`` to write into; renamed onto ``path`` on success, removed on any failure
    (Ctrl-C included). It gets the permissions a plain ``open`` would give: mkstemp makes files owner-only,
    which would leave every output unreadable to colleagues."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_volume(volume: Volume, path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write atomically (temp file + rename) next to the destination."""
    p = Path(path)
    ext = _suffix(p)
    if p.exists() and not overwrite:
        raise MRSynthError("output exists; pass --force to overwrite", str(p))
    if not p.parent.exists():
        raise MRSynthError("output folder does not exist", str(p.parent))
    sitk = _sitk()
    with _atomic_target(p, f".tmp{ext}") as tmp:
        sitk.WriteImage(volume_to_sitk(volume), tmp, useCompression=ext in (".nii.gz", ".nrrd", ".mha"))
    return p


def write_bytes_atomic(data: bytes, path: str | os.PathLike) -> Path:
    """Atomic write for sidecars (JSON, PNG) and weights files."""
    p = Path(path)
    with _atomic_target(p) as tmp:
        Path(tmp).write_bytes(data)
    return p
