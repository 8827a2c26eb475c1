"""Reader study (visual Turing test) end to end: build (blinding, one intensity and window/level rule, seeded
shuffle, slices) and the CLI's exit codes and one-line errors when building. Sessions and scoring:
test_reader_study_sessions.py; the Slicer side: test_reader_study_panel.py.

Real images: the sample brain's four acquired 2 mm volumes (TCGA-DU-7294, made from ../shared/data/real; their
NIfTI descriptions name the subject). Synthetic images: the shipped default model's FLAIR (NIfTI) and T2 (NRRD,
with MRSynth.* header keys), made from the other contrasts. The ratings are scripted (scripted_readers.py).
"""

from __future__ import annotations

import csv
import gzip
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from scripted_readers import build_from as _build
from scripted_readers import no_leftovers as _no_leftovers
from scripted_readers import run_cli as _run

from MRSynthLib.errors import MRSynthError
from MRSynthLib.io import read_volume
from MRSynthLib.orientation import canonical_volume
from MRSynthLib.reader_study import (
    axial_slices,
    blind_array,
    brain_mask,
    load_study,
    read_case,
    window_level,
)
from MRSynthLib.volume import Volume

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cohort(reader_cohort) -> Path:
    return reader_cohort


@pytest.fixture(scope="module")
def built(reader_study_built) -> Path:
    return reader_study_built


# --- build -------------------------------------------------------------------------------------------
HEADER_GEOMETRY = {"dim", "pixdim", "quatern_b", "quatern_c", "quatern_d", "qoffset_x", "qoffset_y", "qoffset_z",
                   "srow_x", "srow_y", "srow_z", "cal_max", "cal_min", "glmax", "glmin"}


def test_cases_are_blinded_and_neutrally_named(cohort, built):
    import nibabel as nib

    # the sources do carry what must not leak: the subject, the synthetic labels (NIfTI description, NRRD keys)
    assert b"TCGA-DU-7294" in nib.load(cohort / "real" / "TCGA-DU-7294_T1.nii.gz").header["descrip"].tobytes()
    assert b"SYNTHETIC" in nib.load(cohort / "synthetic" / "TCGA-DU-7294_FLAIR_synthetic.nii.gz").header["descrip"].tobytes()
    assert b"MRSynth.Synthetic" in (cohort / "synthetic" / "TCGA-DU-7294_T2_synthetic.nrrd").read_bytes()[:4000]

    assert sorted(p.name for p in built.iterdir()) == ["cases", "cases.json", "key", "ratings"]
    files = sorted((built / "cases").iterdir())
    assert [f.name for f in files] == [f"case-{i:03d}.nii.gz" for i in range(1, 7)]
    headers = []
    for f in files:
        raw = gzip.decompress(f.read_bytes()).lower()
        for word in (b"synth", b"mrsynth", b"tcga", b"flair", b"t1gd", b"real"):
            assert word not in raw, (f.name, word)
        img = nib.load(f)
        h = img.header
        assert h.get_data_dtype() == np.int16 and not img.header.extensions
        assert h["descrip"].tobytes().strip(b"\0") == b"" and h["intent_name"].tobytes().strip(b"\0") == b""
        assert h["aux_file"].tobytes().strip(b"\0") == b"" and int(h["intent_code"]) == 0
        headers.append({k: h[k].tobytes() for k in h.keys() if k not in HEADER_GEOMETRY})
    assert all(hd == headers[0] for hd in headers), "header fields other than geometry differ between cases"

    doc = json.loads((built / "cases.json").read_text())
    text = json.dumps(doc["cases"]) + json.dumps(doc["orders"])
    assert not any(w in text for w in ("TCGA", "synthetic", "nrrd", "FLAIR", "truth", "source"))
    assert [c["case"] for c in doc["cases"]] == [f"case-{i:03d}" for i in range(1, 7)]
    key = list(csv.DictReader(open(built / "key" / "key.csv", encoding="utf-8")))
    assert sorted(r["truth"] for r in key) == ["real"] * 4 + ["synthetic"] * 2
    assert {Path(r["source"]).name for r in key} == {p.name for p in (*cohort.glob("real/*"), *cohort.glob("synthetic/*"))}
    assert {r["study_id"] for r in key} == {doc["study_id"]}


def test_every_case_follows_the_same_intensity_and_window_level_rule(built):
    study = load_study(built)
    key = {r["case"]: r for r in csv.DictReader(open(built / "key" / "key.csv", encoding="utf-8"))}
    for case in study.cases:
        source = read_volume(key[case]["source"])
        mask = brain_mask(source.array)
        image = read_case(study.case_file(case))
        assert np.array_equal(image.array, blind_array(source.array, mask, case))
        assert image.same_grid(source)  # a volume case keeps its source's grid
        assert not image.array[~mask].any()
        assert np.percentile(image.array[mask], 99.5) == pytest.approx(1000, abs=2), key[case]["truth"]
        w, lv = window_level(image.array, mask)
        assert study.window_level[case] == (round(w, 3), round(lv, 3))
        lo, hi = np.percentile(image.array[mask], (1, 99))
        assert (w, lv) == pytest.approx((hi - lo, (hi + lo) / 2))


def test_shuffle_is_seeded_and_reproducible(cohort, built, tmp_path):
    again = tmp_path / "again"
    _build(cohort, again, seed=3)
    for rel in ("cases.json", "key/key.csv", *(f"cases/case-{i:03d}.nii.gz" for i in range(1, 7))):
        assert (again / rel).read_bytes() == (built / rel).read_bytes(), rel
    other = tmp_path / "other"
    _build(cohort, other, seed=4)
    order = [(r["truth"], r["source"]) for r in csv.DictReader(open(built / "key" / "key.csv", encoding="utf-8"))]
    order4 = [(r["truth"], r["source"]) for r in csv.DictReader(open(other / "key" / "key.csv", encoding="utf-8"))]
    assert sorted(order) == sorted(order4) and order != order4


def test_axial_slices_are_spread_evenly_through_the_brain():
    mask = np.zeros((60, 8, 8), bool)
    mask[10:50] = True  # the brain: axial slices 10…49
    mask[2:10, 0, 0] = True  # a few voxels below: under 10% of the largest area, not counted
    assert axial_slices(mask, 3) == [20, 30, 39]  # 10 + 39 * (1/4, 2/4, 3/4), rounded
    assert axial_slices(mask, 1) == [30]


def test_canonical_volume_keeps_every_voxel_where_it_was():
    from conftest import random_direction

    rng = np.random.default_rng(0)
    for left_handed in (False, True):
        vol = Volume(rng.normal(size=(5, 6, 7)), (1.1, 1.7, 2.3), (3, -4, 5), random_direction(3, left_handed))
        can = canonical_volume(vol)
        for k, j, i in rng.integers(0, can.array.shape, size=(40, 3)):
            idx = np.linalg.solve(vol.affine_lps, can.affine_lps @ [i, j, k, 1])[:3]
            assert np.allclose(idx, np.round(idx), atol=1e-6)
            a, b, c = np.round(idx).astype(int)
            assert vol.array[c, b, a] == can.array[k, j, i]


def test_slices_mode_cuts_the_same_axial_slices_by_one_rule(cohort, tmp_path):
    out = tmp_path / "slices"
    result = _build(cohort, out, slices=3, seed=1)
    assert result.cases == 18 and result.counts == {"real": 12, "synthetic": 6}
    study = load_study(out)
    assert study.mode == "slice"
    rows = list(csv.DictReader(open(out / "key" / "key.csv", encoding="utf-8")))
    by_source: dict[str, list[int]] = {}
    for r in rows:
        by_source.setdefault(r["source"], []).append(int(r["slice"]))
    for source, picked in by_source.items():
        vol = read_volume(source)
        mask = brain_mask(vol.array)
        blinded = canonical_volume(Volume(blind_array(vol.array, mask, source), vol.spacing, vol.origin, vol.direction))
        canon_mask = canonical_volume(Volume(mask.astype(np.uint8), vol.spacing, vol.origin, vol.direction)).array
        assert sorted(picked) == axial_slices(canon_mask, 3)
        for r in (r for r in rows if r["source"] == source):
            k = int(r["slice"])
            image = read_case(study.case_file(r["case"]))
            assert image.array.shape == (1, *blinded.array.shape[1:])
            assert np.array_equal(image.array[0], blinded.array[k]) and image.array.any()
            # the slice lies where it lay in the volume
            assert np.allclose(image.affine_lps @ [3, 5, 0, 1], blinded.affine_lps @ [3, 5, k, 1], atol=1e-4)
        # one window/level per volume, by the volume-wide rule, for each of its slices
        assert len({study.window_level[r["case"]] for r in rows if r["source"] == source}) == 1


# --- CLI: refusals -------------------------------------------------------------------------------------
@pytest.mark.parametrize("problem", ["unreadable", "no-synthetic", "both", "slices", "reader", "key-inside"])
def test_bad_build_is_one_line_exit_2_and_nothing_written(problem, cohort, tmp_path, capsys):
    real, synth = [str(cohort / "real")], [str(cohort / "synthetic")]
    out, extra, named = tmp_path / "study", [], None
    if problem == "unreadable":
        bad = tmp_path / "in" / "broken.nii.gz"
        bad.parent.mkdir()
        bad.write_bytes(b"not a NIfTI file")
        synth.append(str(bad.parent))
        named = str(bad)
    elif problem == "no-synthetic":
        (tmp_path / "empty").mkdir()
        (tmp_path / "empty" / "notes.txt").write_text("no images here")
        synth, named = [str(tmp_path / "empty")], "no synthetic images"
    elif problem == "both":
        synth.append(str(cohort / "real" / "TCGA-DU-7294_T2.nii.gz"))
        named = "TCGA-DU-7294_T2.nii.gz: given as both real and synthetic"
    elif problem == "slices":
        extra, named = ["--slices", "0"], "--slices must be at least 1"
    elif problem == "reader":
        extra, named = ["--readers", "alice,../bob"], "reader name '../bob' is not allowed"
    else:
        extra, named = ["--key", str(out / "mine.csv")], "--key must lie outside the study"
    rc, stdout, err = _run(capsys, "reader-study", "build", "--real", *real, "--synthetic", *synth, "--out", str(out),
                           "--quiet", *extra)
    assert rc == 2 and stdout == ""
    assert err.count("\n") == 1 and err.startswith("mrsynth: error: ") and named in err, err
    assert not out.exists() and _no_leftovers(tmp_path)


def test_an_existing_study_is_replaced_only_with_force_and_only_if_it_is_one(cohort, built, tmp_path, capsys):
    args = ["reader-study", "build", "--real", str(cohort / "real"), "--synthetic", str(cohort / "synthetic"), "--quiet"]
    other = tmp_path / "not-a-study"
    other.mkdir()
    (other / "precious.txt").write_text("keep me")
    rc, _, err = _run(capsys, *args, "--out", str(other), "--force")
    assert rc == 2 and "not a reader study; --force only replaces a study" in err
    assert (other / "precious.txt").read_text() == "keep me"
    study = Path(shutil.copytree(built, tmp_path / "study"))
    before = (study / "cases.json").read_bytes()
    rc, _, err = _run(capsys, *args, "--out", str(study))
    assert rc == 2 and f"{study}: study folder exists and is not empty; pass --force" in err
    assert (study / "cases.json").read_bytes() == before
    rc, stdout, err = _run(capsys, *args, "--out", str(study), "--force", "--seed", "9")
    assert rc == 0 and stdout.strip() == str(study) and "6 cases: 4 real" in err
    assert (study / "cases.json").read_bytes() != before and _no_leftovers(tmp_path)


def test_a_build_failing_while_writing_leaves_the_old_study_and_no_trace(cohort, built, tmp_path, monkeypatch):
    import MRSynthLib.io

    study = Path(shutil.copytree(built, tmp_path / "study"))
    key = tmp_path / "key.csv"
    before = {p.relative_to(study): p.read_bytes() for p in study.rglob("*") if p.is_file()}
    written = []

    def disk_full(volume, path, *a, **k):
        if len(written) == 3:
            raise MRSynthError("cannot write the output: No space left on device", str(path))
        written.append(path)
        return real_write(volume, path, *a, **k)

    real_write = MRSynthLib.io.write_volume
    monkeypatch.setattr(MRSynthLib.io, "write_volume", disk_full)
    for out, extra in ((tmp_path / "new", {}), (study, {"force": True, "key": key})):
        written.clear()
        with pytest.raises(MRSynthError, match="No space left"):
            _build(cohort, out, seed=8, **extra)
    assert not (tmp_path / "new").exists() and not key.exists() and _no_leftovers(tmp_path)
    assert {p.relative_to(study): p.read_bytes() for p in study.rglob("*") if p.is_file()} == before
    # the last step failing (the outside key, after the new study took the old one's place): the old one is back
    monkeypatch.setattr(MRSynthLib.io, "write_volume", real_write)
    real_replace = os.replace

    def replace(src, dst):
        if Path(dst) == key:
            raise OSError(28, "No space left on device", str(key))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OSError, match="No space left"):
        _build(cohort, study, seed=8, force=True, key=key)
    monkeypatch.undo()
    assert not key.exists() and _no_leftovers(tmp_path)
    assert {p.relative_to(study): p.read_bytes() for p in study.rglob("*") if p.is_file()} == before
