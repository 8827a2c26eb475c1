"""The "which contrast matters" study: Shapley arithmetic against its definition, and a real run of
``mrsynth importance`` (tiny exported model, two simulated subjects) that resumes and refuses bad input."""

from __future__ import annotations

import argparse
import csv
import itertools
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import write_nifti

from MRSynthLib.cli_importance import add_parser
from MRSynthLib.errors import MRSynthError
from MRSynthLib.importance import SCORE_FIELDS, discover, plan
from MRSynthLib.importance_report import shapley, subject_contributions
from MRSynthLib.io import read_volume

PLAYERS = ("T1", "T2", "FLAIR")


def subsets(players):
    return [frozenset(s) for k in range(len(players) + 1) for s in itertools.combinations(players, k)]


def by_permutations(v, players) -> dict[str, float]:
    """Shapley's definition: i's marginal gain over the players before it, averaged over all orders."""
    out = dict.fromkeys(players, 0.0)
    orders = list(itertools.permutations(players))
    for order in orders:
        for pos, i in enumerate(order):
            before = frozenset(order[:pos])
            out[i] += (v[before | {i}] - v[before]) / len(orders)
    return out


def test_additive_scores_give_each_input_its_own_gain():
    gain = {"T1": 1.5, "T2": -0.25, "FLAIR": 4.0}
    v = {s: 10.0 + sum(gain[c] for c in s) for s in subsets(PLAYERS)}
    assert shapley(v, PLAYERS) == pytest.approx(gain, abs=1e-12)
    assert shapley(v, PLAYERS, include_empty=False) == pytest.approx(gain, abs=1e-12)


def test_interaction_is_shared_as_the_definition_says():
    # only T1 and T2 together help (+6): split evenly between them, nothing to FLAIR
    v = {s: 6.0 * ({"T1", "T2"} <= s) for s in subsets(PLAYERS)}
    assert shapley(v, PLAYERS) == pytest.approx({"T1": 3.0, "T2": 3.0, "FLAIR": 0.0})
    rng = np.random.default_rng(0)
    for players in (PLAYERS, ("T1", "T1Gd", "T2", "FLAIR"), ("T1", "FLAIR"), ("T2",)):
        v = {s: float(rng.normal()) for s in subsets(players)}
        phi = shapley(v, players)
        assert phi == pytest.approx(by_permutations(v, players), abs=1e-12)
        assert sum(phi.values()) == pytest.approx(v[frozenset(players)] - v[frozenset()])  # efficiency


def test_empty_subset_shifts_shapley_evenly_and_added_not_at_all():
    rng = np.random.default_rng(1)
    v = {s: float(rng.normal()) for s in subsets(PLAYERS)}
    w = {**v, frozenset(): v[frozenset()] + 3.0}
    a, b = shapley(v, PLAYERS), shapley(w, PLAYERS)
    assert {c: a[c] - b[c] for c in PLAYERS} == pytest.approx(dict.fromkeys(PLAYERS, 1.0))
    added = shapley(v, PLAYERS, include_empty=False)
    assert added == shapley(w, PLAYERS, include_empty=False)
    # by hand for T1: S = {T2}, {FLAIR} weigh 1/6 each, {T2, FLAIR} 1/3; renormalized by 2/3
    f = frozenset
    hand = (v[f({"T1", "T2"})] - v[f({"T2"})] + v[f({"T1", "FLAIR"})] - v[f({"FLAIR"})]) / 6 + (
        v[f(PLAYERS)] - v[f({"T2", "FLAIR"})]) / 3
    assert added["T1"] == pytest.approx(hand / (2 / 3))


@pytest.fixture(scope="module")
def study_root(tmp_path_factory, small_subject) -> Path:
    """Subject A: T1, T2, FLAIR (+ a tumour label and a note, which are not contrasts); B: T1, FLAIR;
    C: T1 only (left out)."""
    from MRSynthLib.phantom import simulate_subject

    root = tmp_path_factory.mktemp("importance-root")
    b = simulate_subject(seed=5, shape=(32, 36, 32), lesion=False, contrasts=("T1", "FLAIR"))
    for name, subject, contrasts in (("A", small_subject, PLAYERS), ("B", b, ("T1", "FLAIR")), ("C", b, ("T1",))):
        (root / name).mkdir()
        for c in contrasts:
            write_nifti(subject.volumes[c], root / name / f"{c}.nii.gz")
    write_nifti(small_subject.mask, root / "A" / "tumour.nii.gz")
    (root / "A" / "notes.txt").write_text("not an image")
    return root


def run(root: Path, out: Path, model: Path, *extra: str) -> int:
    parser = argparse.ArgumentParser(prog="mrsynth")
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["importance", str(root), "--out", str(out), "--model", str(model),
                              "--device", "cpu", "--quiet", *extra])
    return args.func(args)


def read_scores(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_plan_orders_inputs_and_limits_subset_size(study_root):
    found, skipped = discover(study_root)
    assert sorted(found) == ["A", "B"] and skipped == ["C"] and set(found["A"]) == set(PLAYERS)
    tasks = plan(found)
    model = [t for t in tasks if t.method == "model"]
    assert len(model) == 3 * 3 + 2 * 1  # A: 3 targets × 3 subsets; B: 2 targets × 1
    assert ("T1", "T2") in [t.inputs for t in model] and ("T2", "T1") not in [t.inputs for t in model]
    assert len([t for t in plan(found, max_inputs=1) if t.method == "model"]) == 3 * 2 + 2
    assert {t.target for t in plan(found, target="FLAIR")} == {"FLAIR"}


def test_study_scores_every_task_reports_and_resumes(study_root, tiny_bundle, tmp_path, capsys):
    out = tmp_path / "study"
    assert run(study_root, out, tiny_bundle) == 0
    assert {p.name for p in out.iterdir()} == {"scores.csv", "importance.csv", "importance.md", "importance.png"}
    rows = read_scores(out / "scores.csv")
    tasks = plan(discover(study_root)[0])
    assert list(rows[0]) == list(SCORE_FIELDS) and len(rows) == len(tasks) == 24
    assert {tuple(r[k] for k in ("subject", "target", "inputs", "method")) for r in rows} == {t.key for t in tasks}
    model = [r for r in rows if r["method"] == "model"]
    assert all(math.isfinite(float(r["psnr"])) and 0 < float(r["ssim"]) <= 1 for r in model)
    assert len({r["psnr"] for r in model}) == len(model)  # each subset really synthesized and scored

    # the validation protocol: one brain mask per subject from ALL its contrasts, the truth's own p99.5
    from MRSynthLib.evaluation import evaluate_arrays, histogram_match
    from MRSynthLib.preprocess import derive_mask, normalize

    vols = {c: read_volume(study_root / "A" / f"{c}.nii.gz").array for c in PLAYERS}
    mask = derive_mask(list(vols.values()))
    row = {(r["subject"], r["target"], r["inputs"], r["method"]): r for r in rows}
    empty = evaluate_arrays(mask.astype(np.float32), vols["T2"], mask)
    assert float(row[("A", "T2", "", "empty")]["psnr"]) == pytest.approx(empty["PSNR"], rel=1e-6)
    matched = histogram_match(normalize(vols["T1"], mask), normalize(vols["FLAIR"], mask), mask)
    assert float(row[("A", "FLAIR", "T1", "histmatch")]["ssim"]) == pytest.approx(
        evaluate_arrays(matched, vols["FLAIR"], mask)["SSIM"], rel=1e-6)

    # per subject, contributions add up to v(all inputs) − v(∅) (efficiency), read from the scores
    per_subject = subject_contributions(rows)
    for (subject, target), measures in per_subject.items():
        mine = {r["inputs"]: float(r["psnr"]) for r in rows if (r["subject"], r["target"]) == (subject, target)
                and r["method"] in ("model", "empty")}
        full = max(mine, key=lambda k: len(k))
        assert sum(measures["shapley_psnr"].values()) == pytest.approx(mine[full] - mine[""], abs=1e-5)
    assert "added_psnr" in per_subject[("A", "FLAIR")] and "added_psnr" not in per_subject[("B", "FLAIR")]
    summary = {(r["table"], r["target"], r["contrast"], r["measure"]): r
               for r in csv.DictReader((out / "importance.csv").open(encoding="utf-8"))}
    t1_for_flair = summary[("contribution", "FLAIR", "T1", "shapley_psnr")]
    expected = np.mean([per_subject[(s, "FLAIR")]["shapley_psnr"]["T1"] for s in ("A", "B")])
    assert int(t1_for_flair["n"]) == 2 and float(t1_for_flair["mean"]) == pytest.approx(expected, rel=1e-5)
    assert int(summary[("contribution", "FLAIR", "T2", "shapley_psnr")]["n"]) == 1
    assert int(summary[("replaceability", "FLAIR", "", "histmatch_psnr")]["n"]) == 2
    md = (out / "importance.md").read_text(encoding="utf-8")
    assert "| FLAIR |" in md and "| T2 |" in md and "(n=2)" in md
    assert (out / "importance.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "C" in capsys.readouterr().err  # the one-contrast subject is said to be left out

    # killed mid-study: the rows it had not written are scored, nothing else
    kept = [r for r in rows if not (r["subject"] == "A" and r["target"] == "T2")]
    with (out / "scores.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, SCORE_FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(kept)
    from MRSynthLib.importance import run_study

    partial = run_study(study_root, out, model=str(tiny_bundle), device="cpu", progress=False, report_only=True)
    assert partial["scored"] == 0 and partial["missing"] == 6 and read_scores(out / "scores.csv") == kept
    assert "Partial study**: 1 of 5" in (out / "importance.md").read_text(encoding="utf-8")
    assert ",T2,,best_psnr," not in (out / "importance.csv").read_text(encoding="utf-8")  # half-done pair left out
    assert run(study_root, out, tiny_bundle) == 0
    assert "scored now" not in capsys.readouterr().err  # --quiet
    again = read_scores(out / "scores.csv")
    assert again[: len(kept)] == kept and len(again) == len(rows)
    assert sorted(map(str, again)) == sorted(map(str, rows))  # the same scores, recomputed identically
    before = (out / "scores.csv").read_bytes()
    assert "Partial" not in (out / "importance.md").read_text(encoding="utf-8")
    assert ",T2,,best_psnr," in (out / "importance.csv").read_text(encoding="utf-8")
    done = run_study(study_root, out, model=str(tiny_bundle), device="cpu", progress=False)
    assert done["scored"] == 0 and done["already"] == 24 and done["missing"] == 0 and (out / "scores.csv").read_bytes() == before


def test_unreadable_file_is_one_line_naming_it_and_nothing_is_written(study_root, tiny_bundle, tmp_path):
    root = tmp_path / "root"
    shutil.copytree(study_root, root)
    bad = root / "B" / "FLAIR.nii.gz"
    bad.write_bytes(b"not a NIfTI file")
    out = tmp_path / "study"
    with pytest.raises(MRSynthError) as err:
        run(root, out, tiny_bundle)
    assert str(bad) in str(err.value) and "\n" not in str(err.value)
    assert not out.exists()


def test_bad_root_is_refused_naming_it(study_root, tiny_bundle, tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(MRSynthError, match="data root not found") as err:
        run(missing, tmp_path / "out", tiny_bundle)
    assert str(missing) in str(err.value)
    with pytest.raises(MRSynthError, match="two or more contrast files") as err:
        run(study_root, tmp_path / "out", tiny_bundle, "--subjects", "C")
    assert str(study_root) in str(err.value)
    with pytest.raises(MRSynthError, match="no such subject") as err:
        run(study_root, tmp_path / "out", tiny_bundle, "--subjects", "A,Z")
    assert str(study_root / "Z") in str(err.value)
    assert not (tmp_path / "out").exists()
