"""Reader study, a reader's side: sessions (validation, pause and resume, named readers) and scoring against
hand-computed and scipy/sklearn values, end to end through the CLI with scripted readers. Building the study:
test_reader_study.py; the Slicer side: test_reader_study_panel.py."""

from __future__ import annotations

import csv
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
from scripted_readers import build_from as _build
from scripted_readers import no_leftovers as _no_leftovers
from scripted_readers import run_cli as _run

from MRSynthLib.errors import MRSynthError
from MRSynthLib.io import read_volume, write_volume
from MRSynthLib.reader_session import RATING_FIELDS, Rating, ReaderSession
from MRSynthLib.reader_study import (
    load_study,
)
from MRSynthLib.reader_study_score import reader_metrics, score_study, wilson

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cohort(reader_cohort) -> Path:
    return reader_cohort


@pytest.fixture()
def study(reader_study_built, tmp_path) -> Path:
    """A fresh copy of the built study for tests that rate."""
    return Path(shutil.copytree(reader_study_built, tmp_path / "study"))


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
