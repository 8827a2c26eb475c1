"""Reader study (visual Turing test) end to end: build (blinding, one intensity and window/level rule, seeded
shuffle, slices), a reader's session (validation, pause and resume), scoring against hand-computed and
scipy/sklearn values, and the CLI's exit codes and one-line errors. The Slicer side is test_reader_study_panel.py.

Real images: the sample brain's four acquired 2 mm volumes (TCGA-DU-7294, made from ../shared/data/real; their
NIfTI descriptions name the subject). Synthetic images: the shipped default model's FLAIR (NIfTI) and T2 (NRRD,
with MRSynth.* header keys), made from the other contrasts. The ratings are scripted (scripted_readers.py).
"""

from __future__ import annotations

import csv
import gzip
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scripted_readers import always, coin, perfect, rate, read_key

from MRSynthLib.cli import main
from MRSynthLib.errors import MRSynthError
from MRSynthLib.io import read_volume, write_volume
from MRSynthLib.orientation import canonical_volume
from MRSynthLib.reader_session import RATING_FIELDS, Rating, ReaderSession
from MRSynthLib.reader_study import (
    axial_slices,
    blind_array,
    brain_mask,
    build_study,
    load_study,
    read_case,
    window_level,
)
from MRSynthLib.reader_study_score import reader_metrics, score_study, wilson
from MRSynthLib.volume import Volume

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cohort(reader_cohort) -> Path:
    return reader_cohort


def _build(cohort: Path, out: Path, **kw):
    return build_study([cohort / "real"], [cohort / "synthetic"], out, **kw)


@pytest.fixture(scope="module")
def built(cohort, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("built") / "study"
    _build(cohort, out, seed=3)
    return out


@pytest.fixture()
def study(built, tmp_path) -> Path:
    """A fresh copy of the built study for tests that rate."""
    return Path(shutil.copytree(built, tmp_path / "study"))


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


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
def _no_leftovers(folder: Path) -> bool:
    return not [p for p in folder.iterdir() if p.name.startswith(".")]


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


# --- a reader's session ----------------------------------------------------------------------------------
def test_session_validates_records_pauses_and_resumes(study):
    s = ReaderSession(study, "alice")
    cases = load_study(study).cases
    assert s.cases == cases and s.progress == (0, 6) and s.next_case() == cases[0]
    image = s.load(cases[0])
    assert image.metadata == {} and s.window_level(cases[0]) == load_study(study).window_level[cases[0]]
    s.record(cases[0], "synthetic", 4, 2, "edges\ttoo\nsmooth")
    s.record(cases[1], "real", 5, 5)
    path = study / "ratings" / "alice.csv"
    rows = list(csv.DictReader(open(path, encoding="utf-8")))
    assert tuple(rows[0]) == RATING_FIELDS and len(rows) == 2
    assert (rows[0]["case"], rows[0]["call"], rows[0]["quality"], rows[0]["confidence"], rows[0]["comment"]) == (
        cases[0], "synthetic", "4", "2", "edges too smooth")
    before = path.read_bytes()
    bad = [((cases[2], "maybe", 3, 3), "call must be 'real' or 'synthetic'"),
           ((cases[2], "", 3, 3), "(choose one)"),
           ((cases[2], "real", 0, 3), "quality must be a whole number from 1 to 5, got 0"),
           ((cases[2], "real", 6, 3), "quality must be"), ((cases[2], "real", 3.5, 3), "quality must be"),
           ((cases[2], "real", True, 3), "quality must be"), ((cases[2], "real", 3, 9), "confidence must be"),
           (("case-999", "real", 3, 3), "no case 'case-999'"), ((cases[0], "real", 3, 3), "already rated by alice")]
    for args, message in bad:
        with pytest.raises(MRSynthError) as err:
            s.record(*args)
        assert message in str(err.value) and "\n" not in str(err.value)
    assert path.read_bytes() == before and _no_leftovers(study / "ratings")
    # pause = stop; resume = a new session, which skips what is rated
    again = ReaderSession(study, "alice")
    assert again.progress == (2, 6) and again.next_case() == cases[2]
    assert again.ratings[cases[0]] == Rating(cases[0], "synthetic", 4, 2, "edges too smooth", rows[0]["rated_at"])
    rate(study, "alice", always("real"))
    assert ReaderSession(study, "alice").done and ReaderSession(study, "bob").progress == (0, 6)
    with pytest.raises(MRSynthError, match="reader name 'a b' is not allowed"):
        ReaderSession(study, "a b")


def test_a_damaged_ratings_file_is_refused_naming_file_and_line(study):
    path = study / "ratings" / "carol.csv"
    path.write_text(",".join(RATING_FIELDS) + "\ncase-001,real,3,3,,\ncase-002,real,7,3,,\n", encoding="utf-8")
    with pytest.raises(MRSynthError) as err:
        ReaderSession(study, "carol")
    assert str(err.value) == f"{path}: line 3: quality must be a whole number from 1 to 5, got 7"


def test_named_readers_get_their_own_orders_and_others_are_refused(cohort, tmp_path):
    out = tmp_path / "study"
    _build(cohort, out, seed=5, readers=["alice", "bob"])
    study = load_study(out)
    a, b = ReaderSession(out, "alice").cases, ReaderSession(out, "bob").cases
    assert sorted(a) == sorted(b) == sorted(study.cases) and a != b
    with pytest.raises(MRSynthError, match=r"reader 'carol' is not one of this study's readers \(alice, bob\)"):
        ReaderSession(out, "carol")


# --- scoring -------------------------------------------------------------------------------------------
def _pairs(truths: list[str], calls: list[str], quality: list[int], confidence: list[int] | None = None):
    confidence = confidence or [3] * len(truths)
    return [(t, Rating(f"case-{i:03d}", c, q, k)) for i, (t, c, q, k) in
            enumerate(zip(truths, calls, quality, confidence, strict=True))]


def test_metrics_match_hand_computed_scipy_and_sklearn_values():
    from scipy.stats import binomtest, mannwhitneyu
    from sklearn.metrics import accuracy_score, confusion_matrix, recall_score

    truths = ["synthetic"] * 4 + ["real"] * 6
    calls = ["synthetic", "synthetic", "synthetic", "real", "synthetic", "synthetic", "real", "real", "real", "real"]
    quality = [2, 3, 2, 4, 3, 5, 4, 5, 4, 3]
    m = reader_metrics(_pairs(truths, calls, quality))
    assert m["confusion"] == {"tp": 3, "fn": 1, "fp": 2, "tn": 4}
    (tn, fp), (fn, tp) = confusion_matrix(truths, calls, labels=["real", "synthetic"])
    assert (tp, fn, fp, tn) == (3, 1, 2, 4)
    assert m["accuracy"]["value"] == 0.7 == accuracy_score(truths, calls)
    assert m["sensitivity"]["value"] == 0.75 == recall_score(truths, calls, pos_label="synthetic")
    assert m["specificity"]["value"] == pytest.approx(4 / 6) == recall_score(truths, calls, pos_label="real")
    # Wilson 95% for 7/10 by hand: centre (0.7 + z²/20) / (1 + z²/10), half-width z/(1 + z²/10)·√(0.021 + z²/400)
    assert m["accuracy"]["ci95"] == pytest.approx([0.3968, 0.8922], abs=1e-4)
    for key, (k, n) in (("accuracy", (7, 10)), ("sensitivity", (3, 4)), ("specificity", (4, 6))):
        ci = binomtest(k, n).proportion_ci(method="wilson")
        assert m[key]["ci95"] == pytest.approx([ci.low, ci.high], abs=1e-12)
    assert m["accuracy_vs_chance_p"] == pytest.approx(2 * (120 + 45 + 10 + 1) / 1024)  # 2·P(X ≥ 7), X ~ B(10, ½)
    real_q, synth_q = quality[4:], quality[:4]
    u = sum((r > s) + 0.5 * (r == s) for r in real_q for s in synth_q)
    assert m["quality"]["mann_whitney"]["U"] == u == 20.0
    assert m["quality"]["mann_whitney"]["p"] == pytest.approx(mannwhitneyu(real_q, synth_q).pvalue)
    assert m["quality"]["real"]["mean"] == pytest.approx(4.0) and m["quality"]["synthetic"]["mean"] == pytest.approx(2.75)
    assert m["quality"]["real"]["sd"] == pytest.approx(np.std(real_q, ddof=1))


def test_wilson_interval_edges():
    z = 1.959963984540054
    assert wilson(6, 6) == pytest.approx((6 / (6 + z * z), 1.0))  # k = n: the lower end is n/(n + z²)
    assert wilson(0, 6) == pytest.approx((0.0, z * z / (6 + z * z)))
    assert all(math.isnan(v) for v in wilson(0, 0))


def test_cli_end_to_end_with_scripted_readers_and_an_outside_key(cohort, tmp_path, capsys):
    out, key = tmp_path / "study", tmp_path / "kept-apart" / "key.csv"
    key.parent.mkdir()
    rc, stdout, err = _run(capsys, "reader-study", "build", "--real", str(cohort / "real"), "--synthetic",
                           str(cohort / "synthetic"), "--out", str(out), "--key", str(key), "--seed", "1", "--quiet")
    assert rc == 0 and stdout.strip() == str(out) and not (out / "key").exists() and key.is_file()
    truth = read_key(key)
    rate(out, "perfect", perfect(truth))
    rate(out, "always-synthetic", always("synthetic", quality=3, confidence=1))
    rate(out, "coin", coin(0), limit=3)  # paused half-way: scored on what it rated
    rc, _, err = _run(capsys, "reader-study", "score", str(out))
    assert rc == 2 and "key file not found" in err and err.count("\n") == 1
    rc, stdout, err = _run(capsys, "reader-study", "score", str(out), "--key", str(key), "--out", str(tmp_path / "r"))
    assert rc == 0, err
    assert stdout.split() == [str(tmp_path / "r" / f"reader-study.{e}") for e in ("json", "md", "png")]
    result = json.loads((tmp_path / "r" / "reader-study.json").read_text())
    p, a, c = (result["readers"][n] for n in ("perfect", "always-synthetic", "coin"))
    z2 = 1.959963984540054**2
    assert p["accuracy"]["value"] == p["sensitivity"]["value"] == p["specificity"]["value"] == 1.0
    assert p["accuracy"]["ci95"] == pytest.approx([6 / (6 + z2), 1.0])
    assert p["quality"]["real"]["mean"] == 5 and p["quality"]["synthetic"]["mean"] == 2
    assert (a["sensitivity"]["value"], a["specificity"]["value"], a["accuracy"]["value"]) == (1.0, 0.0, pytest.approx(2 / 6))
    assert a["quality"]["mann_whitney"]["p"] == pytest.approx(1.0)
    assert (c["rated"], c["of"], c["n"]) == (3, 6, 3) and result["pooled"]["n"] == 15
    from sklearn.metrics import accuracy_score

    coin_rows = list(csv.DictReader(open(out / "ratings" / "coin.csv", encoding="utf-8")))
    assert c["accuracy"]["value"] == pytest.approx(accuracy_score([truth[r["case"]] for r in coin_rows],
                                                                  [r["call"] for r in coin_rows]))
    text = (tmp_path / "r" / "reader-study.md").read_text()
    assert "| perfect | 6/6 | 1.000 (0.610–1.000; 6/6) |" in text and "| coin | 3/6 |" in text
    assert (tmp_path / "r" / "reader-study.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # a key of another study is refused
    other = tmp_path / "other"
    _build(cohort, other, seed=2)
    rc, _, err = _run(capsys, "reader-study", "score", str(out), "--key", str(other / "key" / "key.csv"))
    assert rc == 2 and "key belongs to another study" in err


def test_scoring_without_ratings_is_refused(study):
    with pytest.raises(MRSynthError, match="no ratings yet"):
        score_study(study)


@pytest.mark.slow
def test_full_size_real_subjects_through_the_console_script(real_root, tmp_path):
    """The installed entry point on full-size real FLAIRs and the default model's synthetic FLAIRs, in slices."""
    from MRSynthLib.synthesis import synthesize

    real, synth = tmp_path / "real", tmp_path / "synthetic"
    real.mkdir()
    synth.mkdir()
    for subject in ("TCGA-DU-7294", "BraTS18-CBICA-AAB"):
        shutil.copy(real_root / subject / "FLAIR.nii.gz", real / f"{subject}_FLAIR.nii.gz")
        inputs = {c: read_volume(real_root / subject / f"{c}.nii.gz") for c in ("T1", "T2")}
        write_volume(synthesize(inputs, "FLAIR", device="cpu"), synth / f"{subject}_FLAIR_synthetic.nii.gz")
    exe = [str(Path(sys.executable).parent / "mrsynth"), "reader-study"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "training")])}
    out = tmp_path / "study"
    done = subprocess.run([*exe, "build", "--real", str(real), "--synthetic", str(synth), "--out", str(out),
                           "--slices", "2", "--quiet"], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    assert len(load_study(out).cases) == 8
    rate(out, "perfect", perfect(read_key(out / "key" / "key.csv")))
    done = subprocess.run([*exe, "score", str(out)], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads((out / "report" / "reader-study.json").read_text())["pooled"]["accuracy"]["value"] == 1.0
