"""A synthetic image says so in DICOM too: the CLI's DICOM series and the MRML node's DICOM.* attributes."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from MRSynthLib import __version__
from MRSynthLib.cli import main
from MRSynthLib.contrasts import GADOLINIUM_NOTE
from MRSynthLib.dicom_output import TAGS, write_dicom_series
from MRSynthLib.errors import MRSynthError
from MRSynthLib.io import read_volume, write_volume
from MRSynthLib.volume import Volume

STUDY = "1.2.826.0.1.3680043.8.498.1001"
FRAME = "1.2.826.0.1.3680043.8.498.1002"
SERIES = {"T1": "1.2.826.0.1.3680043.8.498.2001", "T2": "1.2.826.0.1.3680043.8.498.2002"}
PATIENT = {"0010|0010": "Doe^Jane", "0010|0020": "MRS-0042", "0008|0020": "20240102", "0008|0030": "101500"}
UID = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))+$")


def _scanner_series(volume: Volume, folder: Path, series_uid: str) -> Path:
    """An acquired-looking MR series written by SimpleITK itself (not by MRSynth), with known UIDs."""
    folder.mkdir()
    image = sitk.GetImageFromArray(np.rint(volume.array * 10).astype(np.int16))
    image.SetSpacing(volume.spacing)
    image.SetOrigin(volume.origin)
    image.SetDirection(tuple(volume.direction.ravel()))
    d = volume.direction
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for k in range(image.GetDepth()):
        s = image[:, :, k]
        tags = {"0008|0060": "MR", "0008|0008": "ORIGINAL\\PRIMARY", "0020|000d": STUDY, "0020|000e": series_uid,
                "0020|0052": FRAME, "0008|0018": f"{series_uid}.{k + 1}", "0020|0013": str(k + 1),
                "0020|0037": "\\".join(repr(float(v)) for v in (*d[:, 0], *d[:, 1])),
                "0020|0032": "\\".join(repr(float(v)) for v in image.TransformIndexToPhysicalPoint((0, 0, k))),
                **PATIENT}
        for tag, value in tags.items():
            s.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"{k:03d}.dcm"))
        writer.Execute(s)
    return folder


@pytest.fixture(scope="module")
def series(tmp_path_factory, small_subject) -> dict[str, Path]:
    """T1 and T2 of the small subject as two DICOM series of one study, on an oblique grid."""
    from conftest import random_direction

    root = tmp_path_factory.mktemp("dicom_in")
    out = {}
    for c in ("T1", "T2"):
        v = small_subject.volumes[c]
        oblique = Volume(v.array, v.spacing, v.origin, random_direction(4))
        out[c] = _scanner_series(oblique, root / c, SERIES[c])
    return out


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def _synth(inputs: dict[str, Path], target: str, model: Path, out: Path, *extra: str) -> list[str]:
    args = ["synthesize", "--target", target, "--output", str(out), "--model", str(model), "--quiet", *extra]
    for c, p in inputs.items():
        args += ["--input", f"{c}={p}"]
    return args


def _headers(folder: Path) -> list[dict[str, str]]:
    """Every file's tags (keyword → value, padding stripped)."""
    out = []
    for f in sorted(folder.iterdir()):
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(f))
        reader.ReadImageInformation()
        out.append({k: reader.GetMetaData(t).strip() for k, t in TAGS.items() if reader.HasMetaDataKey(t)})
    return out


def _new_uid(uid: str) -> bool:
    return len(uid) <= 64 and bool(UID.match(uid)) and uid not in (STUDY, FRAME, *SERIES.values())


def test_dicom_inputs_give_a_new_synthetic_series_in_their_study(series, tiny_bundle, tmp_path, capsys):
    out, nifti = tmp_path / "FLAIR_synthetic", tmp_path / "FLAIR_synthetic.nii.gz"
    rc, stdout, err = _run(capsys, *_synth(series, "FLAIR", tiny_bundle, out, "--output-format", "dicom"))
    assert rc == 0, err
    assert stdout.strip() == str(out) and sorted(p.name for p in tmp_path.iterdir()) == [out.name]  # no temp left
    assert _run(capsys, *_synth(series, "FLAIR", tiny_bundle, nifti))[0] == 0
    headers = _headers(out)
    first = headers[0]
    assert len(headers) == read_volume(nifti).array.shape[0]  # one file per slice
    assert first["Modality"] == "MR" and first["ImageType"] == "DERIVED\\SECONDARY"
    assert first["SOPClassUID"] == "1.2.840.10008.5.1.4.1.1.7" and first["BurnedInAnnotation"] == "NO"
    assert first["SeriesDescription"] == f"SYNTHETIC FLAIR (MRSynth tiny-test {__version__})"
    assert "tiny-test" in first["DerivationDescription"] and "T1, T2" in first["DerivationDescription"]
    assert "not an acquired image" in first["DerivationDescription"]
    # the inputs' study, patient and frame of reference; a new series of new instances
    assert (first["StudyInstanceUID"], first["FrameOfReferenceUID"]) == (STUDY, FRAME)
    assert (first["PatientName"], first["PatientID"], first["StudyDate"]) == ("Doe^Jane", "MRS-0042", "20240102")
    assert len({h["SeriesInstanceUID"] for h in headers}) == 1 and _new_uid(first["SeriesInstanceUID"])
    sops = [h["SOPInstanceUID"] for h in headers]
    assert len(set(sops)) == len(sops) and all(_new_uid(u) for u in sops)
    # the NIfTI output's grid and values (within half a rescale step)
    dcm, nii = read_volume(out), read_volume(nifti)
    assert dcm.array.shape == nii.array.shape
    np.testing.assert_allclose(dcm.affine_lps, nii.affine_lps, atol=1e-3)
    step = float(first["RescaleSlope"])
    assert np.abs(dcm.array - nii.array).max() <= step / 2 + 1e-6 and step < 1e-4 * nii.array.max()


def test_nifti_inputs_give_a_new_study_and_a_t1gd_says_enhancement_is_not_synthesized(
        small_subject, tiny_bundle, tmp_path, capsys):
    inputs = {c: write_volume(small_subject.volumes[c], tmp_path / f"{c}.nii.gz") for c in ("T1", "T2")}
    out = tmp_path / "t1gd"
    out.mkdir()  # an existing empty folder is used
    rc, _, err = _run(capsys, *_synth(inputs, "T1Gd", tiny_bundle, out, "--output-format", "dicom"))
    assert rc == 0, err
    first = _headers(out)[0]
    assert _new_uid(first["StudyInstanceUID"]) and _new_uid(first["FrameOfReferenceUID"])
    assert not first.get("PatientID") and first["SeriesDescription"].startswith("SYNTHETIC T1Gd (MRSynth ")
    assert "gadolinium enhancement cannot truly be synthesized" in first["ImageComments"]
    assert GADOLINIUM_NOTE not in first["SeriesDescription"] and len(first["SeriesDescription"]) <= 64


def test_dicom_output_folder_rules(series, tiny_bundle, tmp_path, capsys):
    """One line and exit 2, before any work, for an output that cannot be a new series folder."""
    full = tmp_path / "full"
    full.mkdir()
    (full / "notes.txt").write_text("mine")
    cases = [(tmp_path / "flair.nii.gz", [], "give a folder name, not an image file name"),
             (full, [], "output folder is not empty; pass --force"),
             (full, ["--force"], "holds 'notes.txt', which is not a DICOM file; not replacing it"),
             (series["T1"].parent, ["--force"], "output folder is (or holds) an input")]
    for out, extra, expect in cases:
        rc, stdout, err = _run(capsys, *_synth(series, "FLAIR", tiny_bundle, out, "--output-format", "dicom", *extra))
        assert rc == 2 and expect in err and err.count("\n") == 1 and not stdout, err
    assert not (tmp_path / "flair.nii.gz").exists() and (full / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full"]


def test_force_replaces_a_series_and_a_failed_write_leaves_nothing(small_subject, tmp_path, monkeypatch):
    meta = {"MRSynth.Contrast": "FLAIR", "MRSynth.Model": "m", "MRSynth.Inputs": "T1"}
    vol = small_subject.volumes["FLAIR"].with_array(small_subject.volumes["FLAIR"].array, **meta)
    out = write_dicom_series(vol, tmp_path / "s")
    before = sorted(out.iterdir())
    with pytest.raises(MRSynthError, match="not empty; pass --force"):
        write_dicom_series(vol, out)
    calls = []

    def failing(self, image):
        calls.append(1)
        if len(calls) >= 3:
            raise RuntimeError("disk full\nITK detail")
        return real(self, image)

    real = sitk.ImageFileWriter.Execute
    monkeypatch.setattr(sitk.ImageFileWriter, "Execute", failing)
    with pytest.raises(MRSynthError, match="cannot write the DICOM series: ITK detail"):
        write_dicom_series(vol, out, overwrite=True)
    with pytest.raises(MRSynthError):
        write_dicom_series(vol, tmp_path / "new", overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s"] and sorted(out.iterdir()) == before  # untouched
    monkeypatch.undo()
    old_series = _headers(out)[0]["SeriesInstanceUID"]
    write_dicom_series(vol, out, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s"]
    assert _headers(out)[0]["SeriesInstanceUID"] != old_series


def test_output_node_carries_the_dicom_attributes_slicers_exporter_reads(small_subject):
    pytest.importorskip("slicer")
    import slicer
    import slicer.util

    from MRSynthLib.mrml import volume_from_node, write_output_node

    scene = slicer.vtkMRMLScene()
    t1 = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "sub T1")
    slicer.util.updateVolumeFromArray(t1, small_subject.volumes["T1"].array)
    sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    patient = sh.CreateSubjectItem(sh.GetSceneItemID(), "Doe^Jane")
    study = sh.CreateStudyItem(patient, "MR brain")
    sh.SetItemAttribute(patient, "DICOM.PatientName", "Doe^Jane")
    sh.SetItemAttribute(patient, "DICOM.PatientID", "MRS-0042")
    sh.SetItemUID(study, "DICOM", STUDY)  # what Slicer's DICOM loader does
    sh.SetItemAttribute(study, "DICOM.StudyDate", "20240102")
    item = sh.CreateItem(study, t1)
    sh.SetItemUID(item, "DICOM", SERIES["T1"])
    sh.SetItemAttribute(item, "DICOM.FrameOfReferenceUID", FRAME)
    t1.SetAttribute("DICOM.instanceUIDs", f"{SERIES['T1']}.1 {SERIES['T1']}.2")
    result = volume_from_node(t1).with_array(small_subject.volumes["T1"].array, **{
        "MRSynth.Contrast": "T1Gd", "MRSynth.Model": "tiny-test", "MRSynth.Inputs": "T1,T2"})
    reused = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "old")
    reused.SetAttribute("DICOM.SeriesInstanceUID", SERIES["T2"])
    for output in (None, reused):
        out = write_output_node(result, t1, output=output, scene=scene)
        out_item = sh.GetItemByDataNode(out)
        assert sh.GetItemParent(out_item) == study
        attrs = {n: out.GetAttribute(n) for n in out.GetAttributeNames() if n.startswith("DICOM.")}
        assert attrs["DICOM.Modality"] == "MR" and attrs["DICOM.ImageType"] == "DERIVED\\SECONDARY"
        assert attrs["DICOM.SeriesDescription"] == f"SYNTHETIC T1Gd (MRSynth tiny-test {__version__})"
        assert "T1, T2" in attrs["DICOM.DerivationDescription"] and "tiny-test" in attrs["DICOM.DerivationDescription"]
        assert "gadolinium enhancement cannot truly be synthesized" in attrs["DICOM.ImageComments"]
        assert (attrs["DICOM.StudyInstanceUID"], attrs["DICOM.PatientID"], attrs["DICOM.PatientName"],
                attrs["DICOM.StudyDate"], attrs["DICOM.FrameOfReferenceUID"]) == (
                    STUDY, "MRS-0042", "Doe^Jane", "20240102", FRAME)
        assert not any(uid in v for v in attrs.values() for uid in SERIES.values())  # a new series
        assert "DICOM.SeriesInstanceUID" not in attrs and "DICOM.instanceUIDs" not in attrs
        # the series item: where Slicer's DICOM export dialog reads a series' tags
        for name in ("Modality", "SeriesDescription", "Manufacturer", "Model", "FrameOfReferenceUID"):
            assert sh.GetItemAttribute(out_item, f"DICOM.{name}") == attrs[f"DICOM.{name}"], name


def test_output_format_is_checked_with_the_request():
    """A format the output contradicts is refused when the request is made (before any file is read)."""
    from MRSynthLib.request import SynthesisRequest

    assert SynthesisRequest({"T1": "a.nii.gz"}, "T2", output="o.nrrd", output_format="nrrd").output_format == "nrrd"
    for fmt, out, expect in (("dicom", "o.nii.gz", "give a folder name"), ("dicom", "o/x.dcm", "give a folder name"),
                             ("nifti", "o.nrrd", r"needs an output named \*.nii.gz or \*.nii"),
                             ("png", "o", "unknown output format 'png'"), ("dicom", object(), "is for file outputs")):
        with pytest.raises(MRSynthError, match=expect):
            SynthesisRequest({"T1": "a.nii.gz"}, "T2", output=out, output_format=fmt)
