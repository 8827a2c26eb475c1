"""A synthetic image says so in DICOM too: the tags it carries, and the DICOM series the CLI writes.

Every synthetic series is a NEW series (new SeriesInstanceUID and SOPInstanceUIDs, never an input's) with
Modality MR, ImageType DERIVED\\SECONDARY, a short ``SYNTHETIC <contrast> (MRSynth <model> <version>)``
SeriesDescription, a DerivationDescription naming the inputs and the model, ImageComments with the full
warning (and, for a T1Gd, that gadolinium enhancement cannot be synthesized) and BurnedInAnnotation NO.
It joins the study of its first input when that came from DICOM (StudyInstanceUID, patient, study date,
FrameOfReferenceUID: the output lies on that input's grid), else a new study.

Files are Secondary Capture Image Storage (SOP class 1.2.840.10008.5.1.4.1.1.7, what SimpleITK/GDCM
writes; GDCM turns MR Image Storage with a rescale slope into a partial Enhanced MR object, and MR Image
Storage without one cannot hold float intensities), one file per slice, with ImagePositionPatient,
ImageOrientationPatient, PixelSpacing and SliceThickness: every reader finds the volume's grid. Voxels are
16-bit unsigned integers with RescaleSlope/RescaleIntercept (error at most half a slope step).

Metadata keys are ``DICOM.<keyword>`` (MRML node attributes, Volume metadata), with the names Slicer's
DICOM exporter uses where it has one (``Model`` is ManufacturerModelName). SimpleITK is imported on use.
"""

from __future__ import annotations

import datetime
import os
import shutil
import tempfile
import uuid
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from . import __version__
from .contrasts import GADOLINIUM_NOTE, synthetic_description
from .errors import MRSynthError
from .volume import Volume

PREFIX = "DICOM."
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
LO_MAX = 64  # characters of a DICOM LO value (SeriesDescription, Manufacturer, ManufacturerModelName)
TAGS = {  # keyword → DICOM tag as ITK names it
    "SpecificCharacterSet": "0008|0005", "ImageType": "0008|0008", "SOPClassUID": "0008|0016",
    "SOPInstanceUID": "0008|0018", "StudyDate": "0008|0020", "SeriesDate": "0008|0021", "ContentDate": "0008|0023",
    "StudyTime": "0008|0030", "SeriesTime": "0008|0031", "ContentTime": "0008|0033", "AccessionNumber": "0008|0050",
    "Modality": "0008|0060", "Manufacturer": "0008|0070", "ReferringPhysicianName": "0008|0090",
    "StudyDescription": "0008|1030", "SeriesDescription": "0008|103e", "Model": "0008|1090",
    "DerivationDescription": "0008|2111", "PatientName": "0010|0010", "PatientID": "0010|0020",
    "PatientBirthDate": "0010|0030", "PatientSex": "0010|0040", "SliceThickness": "0018|0050",
    "SpacingBetweenSlices": "0018|0088", "SoftwareVersions": "0018|1020", "StudyInstanceUID": "0020|000d",
    "SeriesInstanceUID": "0020|000e", "StudyID": "0020|0010", "InstanceNumber": "0020|0013",
    "ImagePositionPatient": "0020|0032", "ImageOrientationPatient": "0020|0037", "FrameOfReferenceUID": "0020|0052",
    "ImageComments": "0020|4000", "PixelSpacing": "0028|0030", "BitsAllocated": "0028|0100",
    "BitsStored": "0028|0101", "HighBit": "0028|0102", "PixelRepresentation": "0028|0103",
    "BurnedInAnnotation": "0028|0301", "RescaleIntercept": "0028|1052", "RescaleSlope": "0028|1053",
}
CARRIED = ("SpecificCharacterSet", "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID",
           "StudyID", "StudyDate", "StudyTime", "StudyDescription", "AccessionNumber", "ReferringPhysicianName",
           "FrameOfReferenceUID")
"""What a synthetic series takes from its first input: patient, study, and the frame of reference (same grid)."""
NEVER_CARRIED = ("SeriesInstanceUID", "SOPInstanceUID", "instanceUIDs")
"""An input's series and instances: a synthetic image is a new series, never one of them."""


def new_uid() -> str:
    """A globally unique DICOM UID without a registered root: ``2.25.<UUID as an integer>`` (≤ 44 chars)."""
    return f"2.25.{uuid.uuid4().int}"


def carried_tags(metadata: Mapping[str, str]) -> dict[str, str]:
    """The :data:`CARRIED` ``DICOM.*`` entries of ``metadata`` (keyword → value), empty ones left out."""
    return {k: str(metadata[PREFIX + k]) for k in CARRIED if str(metadata.get(PREFIX + k) or "").strip()}


def series_description(target: str, model: str) -> str:
    """``SYNTHETIC FLAIR (MRSynth <model> <version>)``, shortened in the model id to fit DICOM's 64 characters."""
    head, tail = f"SYNTHETIC {target} (MRSynth ", f" {__version__})"
    room = LO_MAX - len(head) - len(tail)
    return head + (model if len(model) <= room else model[: room - 2] + "..") + tail


def synthetic_series_tags(metadata: Mapping[str, str]) -> dict[str, str]:
    """The series-level tags (keyword → value) that mark a result synthetic, from its ``MRSynth.*`` metadata."""
    target = metadata.get("MRSynth.Contrast", "?")
    model = metadata.get("MRSynth.Model", "?")
    inputs = metadata.get("MRSynth.Inputs", "?")
    comments = synthetic_description(target, model, inputs) + (" " + GADOLINIUM_NOTE if target == "T1Gd" else "")
    return {
        "Modality": "MR", "SeriesDescription": series_description(target, model), "ImageType": "DERIVED\\SECONDARY",
        "DerivationDescription": (f"SYNTHETIC {target} computed by MRSynth {__version__} (model {model}) from "
                                  f"{inputs.replace(',', ', ')}; not an acquired image")[:1024],
        "ImageComments": comments, "BurnedInAnnotation": "NO", "Manufacturer": "MRSynth", "Model": model[:LO_MAX],
        "SoftwareVersions": f"MRSynth {__version__}",
    }


def read_carried_tags(dicom_file: str | os.PathLike) -> dict[str, str]:
    """``DICOM.<keyword>`` → value of the :data:`CARRIED` tags one file of an input series holds (any file:
    they are the same in every file of a series). A tag that cannot be read as text (a name in a legacy
    character set) is left out: the synthetic series then lacks it, the input still reads."""
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(dicom_file))
    found = {}
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        return {}
    for k in CARRIED:
        try:
            value = reader.GetMetaData(TAGS[k]).strip() if reader.HasMetaDataKey(TAGS[k]) else ""
        except (RuntimeError, UnicodeDecodeError):
            continue
        if value:
            found[PREFIX + k] = value
    return found


def _ds(x: float) -> str:
    """A DICOM decimal string (at most 16 characters), as precise as that allows."""
    for digits in range(15, 4, -1):
        text = f"{x:.{digits}g}"
        if len(text) <= 16:
            return text
    raise ValueError(x)


def quantize(array: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Unsigned 16-bit values ``q`` and (intercept, slope), both exact as written, with intercept + slope·q
    within half a slope of ``array``: the intensities come back as floats from any DICOM reader."""
    lo, hi = float(array.min()), float(array.max())
    intercept = 0.0 if lo >= 0 else float(_ds(lo))
    slope = float(_ds((hi - intercept) / 65000)) if hi > intercept else 1.0  # headroom for the rounding
    q = np.clip(np.rint((array.astype(np.float64) - intercept) / slope), 0, 65535)
    return q, intercept, slope


def right_handed(volume: Volume) -> Volume:
    """The same points indexed so that slices run along row × column, as every DICOM reader orders them."""
    if np.linalg.det(volume.direction) > 0:
        return volume
    direction = volume.direction.copy()
    direction[:, 2] *= -1
    last = volume.affine_lps @ np.array([0.0, 0.0, volume.array.shape[0] - 1, 1.0])
    return Volume(volume.array[::-1], volume.spacing, tuple(last[:3]), direction, dict(volume.metadata))


def series_tags(volume: Volume) -> dict[str, str]:
    """Every tag shared by the series' files (keyword → value): synthetic marking, carried patient/study,
    new series (and, without a DICOM first input, new study and frame of reference)."""
    now = datetime.datetime.now()
    date, time = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    tags = {"StudyInstanceUID": new_uid(), "FrameOfReferenceUID": new_uid(), "StudyDate": date, "StudyTime": time}
    tags.update(carried_tags(volume.metadata))
    tags.update(synthetic_series_tags(volume.metadata))
    tags.update({"SOPClassUID": SECONDARY_CAPTURE, "SeriesInstanceUID": new_uid(), "SeriesDate": date,
                 "SeriesTime": time, "ContentDate": date, "ContentTime": time})
    return tags


def is_dicom_file(path: Path) -> bool:
    """A DICOM Part 10 file: 'DICM' after the 128-byte preamble."""
    try:
        with open(path, "rb") as f:
            f.seek(128)
            return path.is_file() and f.read(4) == b"DICM"
    except OSError:
        return False


def check_dicom_folder(out: Path, overwrite: bool) -> None:
    """An output series folder must be new or empty; with ``overwrite``, it may hold a DICOM series (DICOM
    files only: --force never deletes a folder of other files, such as a mistyped home folder)."""
    if out.exists() and not out.is_dir():
        raise MRSynthError("output exists and is a file; a DICOM series is written into a folder", str(out))
    entries = sorted(out.iterdir()) if out.is_dir() else []
    if entries and not overwrite:
        raise MRSynthError("output folder is not empty; pass --force to replace the DICOM series in it", str(out))
    foreign = [e for e in entries if not is_dicom_file(e)]
    if foreign:
        raise MRSynthError(f"output folder holds '{foreign[0].name}', which is not a DICOM file; not replacing it "
                           "(--force replaces a folder of DICOM files only)", str(out))
    if not out.parent.is_dir():
        raise MRSynthError("output folder's parent does not exist", str(out.parent))


def _write_slices(volume: Volume, folder: Path) -> None:
    import SimpleITK as sitk

    vol = right_handed(volume)
    q, intercept, slope = quantize(vol.array)
    values = intercept + slope * q  # exactly what GDCM's inverse rescale turns back into q
    d, (si, sj, sk) = vol.direction, vol.spacing
    common = {**series_tags(vol), "ImageOrientationPatient": "\\".join(_ds(v) for v in (*d[:, 0], *d[:, 1])),
              "PixelSpacing": f"{_ds(sj)}\\{_ds(si)}", "SliceThickness": _ds(sk), "SpacingBetweenSlices": _ds(sk),
              "RescaleIntercept": _ds(intercept), "RescaleSlope": _ds(slope), "BitsAllocated": "16",
              "BitsStored": "16", "HighBit": "15", "PixelRepresentation": "0"}
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()  # our UIDs, not GDCM's
    for k in range(values.shape[0]):
        image = sitk.GetImageFromArray(values[k])
        image.SetSpacing((si, sj))
        position = np.asarray(vol.origin) + d[:, 2] * sk * k
        tags = {**common, "SOPInstanceUID": new_uid(), "InstanceNumber": str(k + 1),
                "ImagePositionPatient": "\\".join(_ds(v) for v in position)}
        for keyword, value in tags.items():
            image.SetMetaData(TAGS[keyword], value)
        writer.SetFileName(str(folder / f"IMG{k + 1:04d}.dcm"))
        try:
            writer.Execute(image)
        except RuntimeError as exc:
            last = str(exc).strip().splitlines()[-1][:160] if str(exc).strip() else type(exc).__name__
            raise MRSynthError(f"cannot write the DICOM series: {last}", str(folder)) from None


def _move_into_place(tmp: Path, out: Path, overwrite: bool) -> None:
    """The finished temp folder becomes ``out``; a replaced series is moved aside first and deleted last,
    and put back if the move fails."""
    if not overwrite or not out.exists():
        try:
            os.rename(tmp, out)  # onto nothing or an empty folder; fails on a folder that was filled meanwhile
        except OSError:
            raise MRSynthError("output appeared while this run worked (another run?); not overwriting it",
                               str(out)) from None
        return
    check_dicom_folder(out, overwrite)  # still a DICOM series folder (another run may have changed it)
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
    os.rename(out, old / out.name)
    try:
        os.rename(tmp, out)
    except BaseException:
        os.rename(old / out.name, out)
        raise
    finally:
        shutil.rmtree(old, ignore_errors=True)


def write_dicom_series(volume: Volume, folder: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write ``volume`` as a synthetic DICOM series into ``folder`` (see the module's docstring), atomically:
    into a hidden temp folder beside it, renamed when complete; nothing is left on error or interrupt."""
    out = Path(os.path.abspath(folder))
    check_dicom_folder(out, overwrite)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    except OSError as exc:
        raise MRSynthError(f"cannot write a folder beside it ({exc.strerror or exc})", str(out)) from None
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it owner-only
        _write_slices(volume, tmp)
        _move_into_place(tmp, out, overwrite)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out
