"""``mrsynth synthesize-batch``: a cohort's missing contrasts, in its own layout (ours, BraTS, BIDS), with
resume, a manifest and per-subject failures. Real parts only: simulated subjects written as NIfTI, the tiny
exported model, the real ``mrsynth`` entry point."""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
from conftest import write_nifti

from MRSynthLib import cli


def mrsynth(*argv) -> int:
    return cli.main(["synthesize-batch", *map(str, argv), "--quiet"])


def tree(folder: Path) -> dict[str, str]:
    """Relative path → SHA256 of every file under ``folder``."""
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def manifest(out: Path) -> dict[tuple[str, str], dict[str, str]]:
    with (out / "manifest.csv").open(newline="") as fh:
        return {(r["case"], r["target"]): r for r in csv.DictReader(fh)}


def drop_row(out: Path, case: str, target: str) -> None:
    """What a kill leaves: the manifest without the row of the case in flight."""
    rows = [r for r in manifest(out).values() if (r["case"], r["target"]) != (case, target)]
    with (out / "manifest.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    doc = json.loads((out / "manifest.json").read_text())
    doc["rows"] = [r for r in doc["rows"] if (r["case"], r["target"]) != (case, target)]
    (out / "manifest.json").write_text(json.dumps(doc))


def assert_synthetic(path: Path, target: str, like: Path) -> None:
    """A synthetic ``target`` by the tiny model, on the grid of the input ``like``, with brain signal."""
    img, ref = nib.load(str(path)), nib.load(str(like))
    assert f"SYNTHETIC {target} by MRSynth (tiny-test)" in img.header["descrip"].tobytes().decode()
    assert img.shape == ref.shape and np.allclose(img.affine, ref.affine, atol=1e-4)
    assert np.asarray(img.dataobj).max() > 0


def write(volume, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_nifti(volume, path)


def test_brats_cohort_gets_its_missing_contrasts_and_resumes(small_subject, tiny_bundle, tmp_path, capsys):
    v = small_subject.volumes
    root, out = tmp_path / "brats", tmp_path / "out"
    a, b = "BraTS-GLI-00001-000", "BraTS-GLI-00002-000"
    write(v["T1"], root / a / f"{a}-t1n.nii.gz")
    write(v["FLAIR"], root / a / f"{a}-t2f.nii.gz")
    write(v["T1"], root / a / f"{a}-seg.nii.gz")  # a label file: not a contrast
    for mod, c in (("t1n", "T1"), ("t1c", "T1Gd"), ("t2w", "T2")):
        write(v[c], root / b / f"{b}-{mod}.nii.gz")
    before = tree(root)

    assert mrsynth(root, "--out", out, "--model", tiny_bundle) == 0
    err = capsys.readouterr().err
    assert "layout: brats" in err and "gadolinium" in err and "2 done" in err
    made = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.nii.gz"))
    assert made == [f"{a}/{a}-t2w.nii.gz", f"{b}/{b}-t2f.nii.gz"]  # no T1Gd unasked, no PD in BraTS naming
    assert_synthetic(out / a / f"{a}-t2w.nii.gz", "T2", root / a / f"{a}-t1n.nii.gz")
    assert_synthetic(out / b / f"{b}-t2f.nii.gz", "FLAIR", root / b / f"{b}-t1n.nii.gz")
    rows = manifest(out)
    assert {k: r["status"] for k, r in rows.items()} == {(a, "T2"): "done", (b, "FLAIR"): "done"}
    assert rows[(a, "T2")]["inputs"] == "T1+FLAIR" and rows[(b, "FLAIR")]["inputs"] == "T1+T1Gd+T2"
    assert tree(root) == before  # inputs untouched, nothing written in ROOT

    first = tree(out)
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.nii.gz")}
    assert mrsynth(root, "--out", out, "--model", tiny_bundle) == 0  # resume: nothing to do
    assert {r["status"] for r in manifest(out).values()} == {"skipped-exists"}
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items())

    (out / b / f"{b}-t2f.nii.gz").unlink()  # a kill during b: its output and its row are missing
    drop_row(out, b, "FLAIR")
    capsys.readouterr()
    assert mrsynth(root, "--out", out, "--model", tiny_bundle) == 0
    assert "1 done, 1 skipped" in capsys.readouterr().err
    assert {k: r["status"] for k, r in manifest(out).items()} == {(a, "T2"): "skipped-exists",
                                                                  (b, "FLAIR"): "done"}
    assert (out / a / f"{a}-t2w.nii.gz").stat().st_mtime_ns == stamps[out / a / f"{a}-t2w.nii.gz"]
    assert tree(out)[f"{b}/{b}-t2f.nii.gz"] == first[f"{b}/{b}-t2f.nii.gz"]  # same model, same input: same bytes

    assert mrsynth(root, "--out", out, "--model", tiny_bundle, "--force", "--jobs", "2") == 0
    assert {r["status"] for r in manifest(out).values()} == {"done"}
    assert all(p.stat().st_mtime_ns != t for p, t in stamps.items() if p.exists())
    assert tree(root) == before


def test_bids_cohort_becomes_a_derivatives_dataset(small_subject, tiny_bundle, tmp_path, capsys):
    v = small_subject.volumes
    root, out = tmp_path / "bids", tmp_path / "derivatives-mrsynth"
    s1 = root / "sub-01" / "ses-1" / "anat"
    write(v["T1"], s1 / "sub-01_ses-1_T1w.nii.gz")
    write(v["T1Gd"], s1 / "sub-01_ses-1_ce-gadolinium_T1w.nii.gz")
    write(v["FLAIR"], s1 / "sub-01_ses-1_FLAIR.nii.gz")
    s2 = root / "sub-02" / "anat"
    write(v["T1"], s2 / "sub-02_T1w.nii.gz")
    write(v["T2"], s2 / "sub-02_T2w.nii.gz")
    (s2 / "sub-02_T1w.json").write_text("{}")
    (root / "dataset_description.json").write_text(json.dumps({"Name": "raw", "BIDSVersion": "1.9.0"}))
    before = tree(root)

    assert mrsynth(root, "--out", out, "--model", tiny_bundle, "--device", "cpu") == 0
    assert "layout: bids" in capsys.readouterr().err
    made = {p.relative_to(out).as_posix() for p in out.rglob("*.nii.gz")}
    assert made == {"sub-01/ses-1/anat/sub-01_ses-1_desc-synthetic_T2w.nii.gz",
                    "sub-01/ses-1/anat/sub-01_ses-1_desc-synthetic_PDw.nii.gz",
                    "sub-02/anat/sub-02_desc-synthetic_FLAIR.nii.gz",
                    "sub-02/anat/sub-02_desc-synthetic_PDw.nii.gz"}
    for name in made:
        target = {"T2w": "T2", "PDw": "PD", "FLAIR": "FLAIR"}[name.split("_")[-1].split(".")[0]]
        like = s1 / "sub-01_ses-1_T1w.nii.gz" if name.startswith("sub-01") else s2 / "sub-02_T1w.nii.gz"
        assert_synthetic(out / name, target, like)
        side = json.loads((out / name.replace(".nii.gz", ".json")).read_text())
        assert side["Synthetic"] is True and side["Target"] == target and side["Model"] == "tiny-test"
        assert side["ModelVersion"] == "1.0.0" and "not an acquired image" in side["Description"]
        assert side["Device"].startswith("cpu")
        for path in side["Inputs"].values():
            assert (root / path).is_file()
    side = json.loads((out / "sub-01/ses-1/anat/sub-01_ses-1_desc-synthetic_T2w.json").read_text())
    assert side["Inputs"] == {"T1": "sub-01/ses-1/anat/sub-01_ses-1_T1w.nii.gz",
                              "T1Gd": "sub-01/ses-1/anat/sub-01_ses-1_ce-gadolinium_T1w.nii.gz",
                              "FLAIR": "sub-01/ses-1/anat/sub-01_ses-1_FLAIR.nii.gz"}
    desc = json.loads((out / "dataset_description.json").read_text())
    assert desc["DatasetType"] == "derivative" and desc["BIDSVersion"]
    from MRSynthLib import __version__

    assert desc["GeneratedBy"][0]["Name"] == "MRSynth" and desc["GeneratedBy"][0]["Version"] == __version__
    assert desc["GeneratedBy"][0]["CodeURL"].startswith("https://")
    assert set(manifest(out)) == {("sub-01/ses-1", "T2"), ("sub-01/ses-1", "PD"), ("sub-02", "FLAIR"),
                                  ("sub-02", "PD")}

    assert mrsynth(root, "--out", out, "--model", tiny_bundle, "--target", "t1c") == 0  # asked for by name
    assert "gadolinium enhancement cannot" in capsys.readouterr().err
    gd = out / "sub-02/anat/sub-02_ce-gadolinium_desc-synthetic_T1w.nii.gz"
    assert_synthetic(gd, "T1Gd", s2 / "sub-02_T1w.nii.gz")
    assert json.loads(gd.with_name(gd.name.replace(".nii.gz", ".json")).read_text())["Target"] == "T1Gd"
    assert set(manifest(out)) == {("sub-02", "T1Gd")}  # sub-01 has its T1Gd: nothing to do there
    assert tree(root) == before


def test_a_corrupt_file_fails_its_subject_only(small_subject, tiny_bundle, tmp_path, capsys):
    """Subject B's T1 is truncated: its rows fail naming the file, A is done, exit 1; a target the model's
    card does not list is 'not-synthesizable', not a failure."""
    v = small_subject.volumes
    root, out = tmp_path / "cohort", tmp_path / "out"
    write(v["T1"], root / "A" / "T1.nii.gz")
    write(v["T2"], root / "A" / "T2.nii.gz")
    write(v["T1"], root / "A" / "tumour.nii.gz")  # not a contrast
    write(v["FLAIR"], root / "B" / "FLAIR.nii.gz")
    good = gzip.compress(gzip.decompress(write(v["T1"], tmp_path / "t1.nii.gz").read_bytes()))
    (root / "B" / "T1.nii.gz").write_bytes(good[: len(good) // 2])
    model = tmp_path / "model"
    shutil.copytree(tiny_bundle.parent, model)
    card = json.loads((model / tiny_bundle.name).read_text())
    card["contrasts"] = ["T1", "T1Gd", "T2", "FLAIR"]  # this model makes no PD
    (model / tiny_bundle.name).write_text(json.dumps(card))
    before = tree(root)

    assert mrsynth(root, "--out", out, "--model", model / tiny_bundle.name, "--jobs", "2") == 1
    err = capsys.readouterr().err
    assert "layout: ours" in err and "1 done, 0 skipped (already there), 1 failed, 2 not synthesizable" in err
    assert f"failed: B T2: {root / 'B' / 'T1.nii.gz'}" in err
    rows = manifest(out)
    assert {k: r["status"] for k, r in rows.items()} == {("A", "PD"): "not-synthesizable", ("A", "FLAIR"): "done",
                                                         ("B", "T2"): "failed", ("B", "PD"): "not-synthesizable"}
    assert str(root / "B" / "T1.nii.gz") in rows[("B", "T2")]["message"]
    assert "cannot read image" in rows[("B", "T2")]["message"]
    assert "does not synthesize PD" in rows[("A", "PD")]["message"]
    assert_synthetic(out / "A" / "FLAIR.nii.gz", "FLAIR", root / "A" / "T1.nii.gz")
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.nii.gz")) == ["A/FLAIR.nii.gz"]
    doc = json.loads((out / "manifest.json").read_text())
    assert doc["layout"] == "ours" and len(doc["rows"]) == 4 and doc["model"] == "tiny-test"
    assert tree(root) == before


def test_the_manifest_is_saved_after_every_case(small_subject, tiny_bundle, tmp_path):
    """A kill loses at most the case in flight: each finished case is in the manifest before the next one."""
    from MRSynthLib.batch import run_batch

    root, out = tmp_path / "cohort", tmp_path / "out"
    for s in ("A", "B"):
        write(small_subject.volumes["T1"], root / s / "T1.nii.gz")
    seen = []
    result = run_batch(root, out, target="T2", model=str(tiny_bundle),
                       on_case=lambda case, rows: seen.append((case, sorted(manifest(out)))))
    assert seen == [("A", [("A", "T2")]), ("B", [("A", "T2"), ("B", "T2")])]
    assert result.exit_code == 0 and result.counts["done"] == 2 and result.layout == "ours"


def test_a_bids_dataset_may_keep_the_output_in_its_derivatives_folder(small_subject, tiny_bundle, tmp_path):
    """BIDS keeps derived data in ROOT/derivatives/<pipeline>: allowed there (and only for BIDS); the
    derivatives are never taken for subjects, so a rerun finds the same cases and skips them."""
    root = tmp_path / "bids"
    out = root / "derivatives" / "mrsynth"
    write(small_subject.volumes["T1"], root / "sub-01" / "anat" / "sub-01_T1w.nii.gz")
    before = tree(root)
    assert mrsynth(root, "--out", out, "--model", tiny_bundle, "--target", "FLAIR") == 0
    assert (out / "sub-01/anat/sub-01_desc-synthetic_FLAIR.nii.gz").is_file()
    assert {k: v for k, v in tree(root).items() if not k.startswith("derivatives/")} == before
    assert mrsynth(root, "--out", out, "--model", tiny_bundle, "--target", "FLAIR") == 0
    assert [r["status"] for r in manifest(out).values()] == ["skipped-exists"]


def test_bad_commands_are_refused_before_anything_is_written(small_subject, tiny_bundle, tmp_path, capsys):
    root = tmp_path / "cohort"
    write(small_subject.volumes["T1"], root / "A" / "T1.nii.gz")
    before = tree(root)
    for out in (root / "derived", root, root / "A" / "x", root / "derivatives" / "mrsynth"):
        assert mrsynth(root, "--out", out, "--model", tiny_bundle) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("mrsynth: error:") and "inside the data root" in err and len(err.splitlines()) == 1
    assert mrsynth(root, "--out", tmp_path, "--model", tiny_bundle) == 2  # OUT holding ROOT
    assert "holds the data root" in capsys.readouterr().err
    assert tree(root) == before and not (root / "derived").exists()

    assert mrsynth(tmp_path / "nowhere", "--out", tmp_path / "o1") == 2
    assert "data root not found" in capsys.readouterr().err
    (tmp_path / "empty" / "notes").mkdir(parents=True)
    assert mrsynth(tmp_path / "empty", "--out", tmp_path / "o2") == 2
    assert "no subjects found" in capsys.readouterr().err
    write(small_subject.volumes["T2"], root / "B" / "B-t2w.nii.gz")  # one ours subject, one BraTS subject
    assert mrsynth(root, "--out", tmp_path / "o3") == 2
    err = capsys.readouterr().err
    assert "ambiguous layout" in err and str(root) in err and "--layout" in err
    assert mrsynth(root, "--out", tmp_path / "o4", "--layout", "brats", "--target", "PD") == 2
    assert "no file name for PD" in capsys.readouterr().err
    assert mrsynth(root, "--out", tmp_path / "o5", "--layout", "ours", "--model", tmp_path / "none.json") == 2
    assert "unknown model" in capsys.readouterr().err
    assert not any((tmp_path / f"o{i}").exists() for i in range(1, 6))


def test_a_brats_2021_cohort_keeps_its_own_names(small_subject, tiny_bundle, tmp_path, capsys):
    """BraTS 2018-2021 naming (<ID>_t1|t1ce|t2|flair): found by auto, completed in the same naming."""
    v = small_subject.volumes
    root, out = tmp_path / "brats21", tmp_path / "out"
    a = "BraTS2021_00000"
    for mod, c in (("t1", "T1"), ("t1ce", "T1Gd"), ("flair", "FLAIR")):
        write(v[c], root / a / f"{a}_{mod}.nii.gz")
    write(v["T1"], root / a / f"{a}_seg.nii.gz")  # a label file: not a contrast
    assert mrsynth(root, "--out", out, "--model", tiny_bundle) == 0
    assert "layout: brats2021" in capsys.readouterr().err
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.nii.gz")) == [f"{a}/{a}_t2.nii.gz"]
    assert_synthetic(out / a / f"{a}_t2.nii.gz", "T2", root / a / f"{a}_t1.nii.gz")
    assert manifest(out)[(a, "T2")]["inputs"] == "T1+T1Gd+FLAIR"
