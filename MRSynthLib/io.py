"""Read and write volumes (NIfTI, NRRD, MHA/MHD, DICOM series folders) with exact geometry.

Every read is validated (3D, finite, not empty) and every write is atomic: a temporary file
in the destination folder, then a rename, so a crash never leaves half an image. Header + data
formats (.mhd, .nhdr) are written under their final names in a temporary folder beside the destination,
then moved data file first, header last, so a header never names a missing or temp-named file.
A write that may not overwrite moves its file with a hard link, which fails when the name exists: of two
runs writing one output, the second is refused instead of silently replacing the first's result.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .errors import MRSynthError
from .volume import Volume

_EXTENSIONS = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")
_HEADER_ONLY = (".mhd", ".nhdr")  # ITK writes the voxels to <stem>.raw beside the header
_DATA_SUFFIXES = (".raw", ".zraw", ".raw.gz")


def _sitk():
    import SimpleITK as sitk  # heavy, imported on use

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
        if not key.startswith("DICOM."):  # a DICOM input's patient and study stay out of other formats' headers
            image.SetMetaData(key, str(value))
    if "descrip" in volume.metadata:  # ITK writes the NIfTI description from ITK_FileNotes
        image.SetMetaData("ITK_FileNotes", str(volume.metadata["descrip"])[:79])
    return image


def _read_dicom_folder(folder: Path):
    """The series image and its first file. ITK's GDCM scan prints WARNING blocks for folders without a
    series; the user gets our one line instead, so ITK's global warning display is off while it scans."""
    sitk = _sitk()
    reader = sitk.ImageSeriesReader()
    shown = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)
    try:
        series = reader.GetGDCMSeriesIDs(str(folder))
        if not series:
            raise MRSynthError("folder holds no DICOM series", str(folder))
        if len(series) > 1:
            raise MRSynthError(f"folder holds {len(series)} DICOM series; point to one series folder", str(folder))
        files = reader.GetGDCMSeriesFileNames(str(folder), series[0])
        reader.SetFileNames(files)
        return reader.Execute(), files[0]
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(shown)


def read_volume(path: str | os.PathLike, check_content: bool = True) -> Volume:
    """Read a 3D scalar image; raise :class:`MRSynthError` naming the file on any problem."""
    p = Path(path)
    if not p.exists():
        raise MRSynthError("file not found", str(p))
    if not os.access(p, os.R_OK | (os.X_OK if p.is_dir() else 0)):
        raise MRSynthError("permission denied (cannot read it)", str(p))
    sitk = _sitk()
    nifti, image, dicom_file = None, None, None
    try:
        if p.is_dir():
            image, dicom_file = _read_dicom_folder(p)
        elif p.name.lower().endswith((".nii", ".nii.gz")):
            (dim, size, comps), nifti = _read_nifti(p)
            if nifti is None and dim == 3 and comps == 1:  # a layout nibabel and ITK disagree on: ITK decides
                image = sitk.ReadImage(str(p))
        else:
            image = sitk.ReadImage(str(p))
    except MRSynthError:
        raise
    except Exception as exc:  # SimpleITK/nibabel raise with multi-line texts
        first = str(exc).strip().splitlines()[-1][:160] if str(exc).strip() else type(exc).__name__
        raise MRSynthError(f"cannot read image (corrupt, truncated or unsupported format): {first}", str(p)) from None
    if image is not None:
        dim, size, comps = image.GetDimension(), image.GetSize(), image.GetNumberOfComponentsPerPixel()
    if comps != 1:
        raise MRSynthError("is a multi-component (vector/RGB) image; a scalar 3D volume is needed", str(p))
    if dim != 3:
        raise MRSynthError(f"is {dim}D (size {size}); a 3D volume is needed", str(p))
    if max(size) < 2:
        raise MRSynthError(f"is a single voxel (size {size}); a 3D volume is needed", str(p))
    if min(size) < 2:
        raise MRSynthError(f"is a single slice (size {size}), i.e. 2D; a 3D volume is needed", str(p))
    if nifti is not None:
        array, (spacing, origin, direction) = nifti
        volume = Volume(array, spacing, origin, direction)
    else:
        volume = volume_from_sitk(image)
        # MRSynth's own header keys (NRRD/MHA keep them): a result read back keeps its labels
        volume.metadata.update({k: image.GetMetaData(k) for k in image.GetMetaDataKeys() if k.startswith("MRSynth.")})
    if dicom_file is not None:  # patient, study, frame of reference: what a synthetic series from it carries
        from .dicom_output import read_carried_tags

        volume.metadata.update(read_carried_tags(dicom_file))
    volume.metadata["source_path"] = str(p)
    if check_content:
        check_voxels(volume.array, str(p))
    return volume


def _read_nifti(p: Path):
    """NIfTI: geometry from ITK's header reader (Slicer-consistent), voxels from nibabel, which
    reports truncation and keeps NaN (ITK zero-fills a short file and turns NaN into 0)."""
    import nibabel as nib

    sitk = _sitk()
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(p))
    reader.ReadImageInformation()
    info = (reader.GetDimension(), reader.GetSize(), reader.GetNumberOfComponents())
    img = nib.load(str(p))
    data = np.asanyarray(img.dataobj)
    if data.ndim > 3 and info[0] == 3 and all(n == 1 for n in data.shape[3:]):
        data = data.reshape(data.shape[:3])  # (x, y, z, 1): ITK already reads it as 3D, geometry included
    if info[0] != 3 or info[2] != 1 or data.ndim != 3:
        return info, None
    array = np.ascontiguousarray(data.transpose(2, 1, 0))
    geometry = (reader.GetSpacing(), reader.GetOrigin(), np.array(reader.GetDirection()).reshape(3, 3))
    return info, (array, geometry)


def check_voxels(array: np.ndarray, name: str, allow_empty: bool = False) -> None:
    """Refuse NaN/Inf and all-zero volumes with one line naming the file."""
    if not np.issubdtype(array.dtype, np.number):
        raise MRSynthError(f"has non-numeric voxels ({array.dtype})", name)
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        bad = int((~np.isfinite(array)).sum())
        raise MRSynthError(f"contains {bad} NaN/Inf voxels", name)
    if not allow_empty and not np.any(array):
        raise MRSynthError("is all zero (empty image)", name)


def check_volume(volume: Volume, name: str, allow_empty: bool = False) -> None:
    """The checks :func:`read_volume` makes, for volumes built in memory (Python API, Slicer nodes):
    without them NaN voxels come out as NaN and a single slice is reported as 'does not overlap'."""
    shape = volume.array.shape
    if volume.array.ndim != 3:
        raise MRSynthError(f"is {volume.array.ndim}D (shape {shape}); a 3D volume is needed", name)
    if min(shape) < 2:
        raise MRSynthError(f"is a single slice (shape {shape}), i.e. 2D; a 3D volume is needed", name)
    check_voxels(volume.array, name, allow_empty)


def _suffix(path: Path) -> str:
    name = path.name.lower()
    for ext in _EXTENSIONS:
        if name.endswith(ext):
            return ext
    raise MRSynthError(f"unsupported output extension (use one of {', '.join(_EXTENSIONS)})", str(path))


Stamp = tuple[int, int, int, int]
"""What identifies one version of a file: device, inode, size, modification time (ns)."""


def file_stamp(path: str | os.PathLike) -> Stamp | None:
    """The file's :data:`Stamp`, or None when there is no file: taken when a run begins, so the final write
    can tell whether someone else replaced the file meanwhile."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _check_unchanged(path: Path, replaces: Stamp | None) -> None:
    if replaces is not None and file_stamp(path) != replaces:
        raise MRSynthError("output was replaced while this run worked (another run?); not overwriting it",
                           str(path))


def _commit(tmp: str, path: Path, replace: bool, replaces: Stamp | None = None) -> None:
    """Move a finished temp file onto ``path``. Without ``replace`` the move fails when ``path`` exists (a
    hard link is atomic; where there are none, FAT or some network shares, the best is to look first);
    with ``replaces``, ``path`` must still be that version of the file."""
    if replace:
        _check_unchanged(path, replaces)
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise MRSynthError("output appeared while this run worked (another run?); not overwriting it",
                           str(path)) from None
    except OSError:  # no hard links on this file system
        if os.path.lexists(path):
            raise MRSynthError("output appeared while this run worked (another run?); not overwriting it",
                               str(path)) from None
        os.replace(tmp, path)
        return
    os.unlink(tmp)


@contextmanager
def _atomic_target(path: Path, suffix: str = ".tmp", replace: bool = True,
                   replaces: Stamp | None = None) -> Iterator[str]:
    """A temp file beside ``path`` to write into; moved onto ``path`` on success (see :func:`_commit`),
    removed on any failure (Ctrl-C included; the CLI turns SIGTERM into an exception for this). It gets the
    permissions a plain ``open`` would give: mkstemp makes files owner-only, which would leave every output
    unreadable to colleagues. A temp file that cannot be made is reported under the output's name."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    except OSError as exc:
        raise MRSynthError(f"cannot write a file in its folder ({exc.strerror or exc})", str(path)) from None
    try:
        os.close(fd)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        yield tmp
        _commit(tmp, path, replace, replaces)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def check_writable(path: str | os.PathLike) -> None:
    """Make (and remove) a file beside ``path``: permission bits do not tell everything (root, read-only
    mounts, /proc), and a run should fail before its work, under the output's name, not its temp file's."""
    p = Path(path)
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    except OSError as exc:
        raise MRSynthError(f"cannot write the output there (creating a file in {p.parent} failed: "
                           f"{exc.strerror or exc})", str(p)) from None
    os.close(fd)
    os.unlink(probe)


def data_file_candidates(path: str | os.PathLike) -> list[Path]:
    """Files an image at ``path`` may consist of (a .mhd/.nhdr header names one of these beside it)."""
    p = Path(path)
    low = p.name.lower()
    ext = next((e for e in _HEADER_ONLY if low.endswith(e)), None)
    if ext is None:
        return [p]
    return [p] + [p.with_name(p.name[: -len(ext)] + d) for d in _DATA_SUFFIXES]


def written_files(path: str | os.PathLike) -> list[Path]:
    """Every file a write to ``path`` creates or replaces: the image, and for .mhd/.nhdr its ``.raw`` data
    file (ITK writes uncompressed data there). Refuses an unsupported extension."""
    _suffix(Path(path))
    return data_file_candidates(path)[:2]


def _itk_write(volume: Volume, target: str, path: Path, compress: bool) -> None:
    """ITK raises RuntimeError with many lines (disk full, say): one line, under the output's name."""
    try:
        _sitk().WriteImage(volume_to_sitk(volume), target, useCompression=compress)
    except RuntimeError as exc:
        last = str(exc).strip().splitlines()[-1][:160] if str(exc).strip() else type(exc).__name__
        raise MRSynthError(f"cannot write the output: {last}", str(path)) from None


def _write_header_and_data(volume: Volume, p: Path, overwrite: bool, replaces: Stamp | None) -> None:
    """.mhd/.nhdr: ITK names the data file after the header it writes, so both are written under their
    final names in a temp folder beside ``p``; the data file moves first, the header last (a data file
    moved before a refused header is taken back)."""
    try:
        folder = Path(tempfile.mkdtemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent))
    except OSError as exc:
        raise MRSynthError(f"cannot write a file in its folder ({exc.strerror or exc})", str(p)) from None
    moved: list[Path] = []
    try:
        header = folder / p.name
        _itk_write(volume, str(header), p, compress=False)
        _check_unchanged(p, replaces)  # before the data file moves
        for f in sorted(folder.iterdir()):
            if f != header:
                _commit(str(f), p.parent / f.name, overwrite)
                moved.append(p.parent / f.name)
        _commit(str(header), p, overwrite)
    except BaseException:
        if not overwrite:  # those names were free when the run began: the files are this run's
            for f in moved:
                f.unlink(missing_ok=True)
        raise
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def write_volume(volume: Volume, path: str | os.PathLike, overwrite: bool = False, compress: bool = True,
                 replaces: Stamp | None = None) -> Path:
    """Write atomically (temp file + rename) next to the destination. Without ``overwrite`` the final move
    refuses a file that appeared meanwhile; with ``replaces`` (:func:`file_stamp` taken when the run began)
    it refuses one replaced meanwhile. ``compress=False`` skips gzip for .nrrd/.mha (~20× faster; the
    module's work files, written on Slicer's main thread)."""
    p = Path(path)
    ext = _suffix(p)
    if p.is_dir():
        raise MRSynthError("output path is a folder; give a file name", str(p))
    if not overwrite:
        for f in written_files(p):
            if f.exists():
                raise MRSynthError("output exists; pass --force to overwrite", str(f))
    if not p.parent.exists():
        raise MRSynthError("output folder does not exist", str(p.parent))
    if ext in _HEADER_ONLY:
        _write_header_and_data(volume, p, overwrite, replaces)
        return p
    with _atomic_target(p, f".tmp{ext}", replace=overwrite, replaces=replaces) as tmp:
        _itk_write(volume, tmp, p, compress=ext == ".nii.gz" or (compress and ext in (".nrrd", ".mha")))
    return p


def write_bytes_atomic(data: bytes, path: str | os.PathLike) -> Path:
    """Atomic write for sidecars (JSON, PNG) and weights files."""
    p = Path(path)
    with _atomic_target(p) as tmp:
        Path(tmp).write_bytes(data)
    return p


def leftover_temps(path: str | os.PathLike) -> list[Path]:
    """Temp files (and .mhd/.nhdr temp folders) the atomic writers above leave beside ``path`` when their
    process is killed outright (SIGKILL, a lost cluster worker: no cleanup can run): ``.<name>.<random>.tmp…``."""
    p = Path(path)
    prefix = f".{p.name}."
    try:
        names = os.listdir(p.parent)
    except OSError:
        return []
    return sorted(p.parent / n for n in names if n.startswith(prefix) and ".tmp" in n[len(prefix):])


def remove_leftover_temps(path: str | os.PathLike) -> list[Path]:
    """Remove :func:`leftover_temps` of ``path`` (only while no writer of ``path`` runs); returns them."""
    found = leftover_temps(path)
    for f in found:
        if f.is_dir() and not f.is_symlink():
            shutil.rmtree(f, ignore_errors=True)
        else:
            f.unlink(missing_ok=True)
    return found
