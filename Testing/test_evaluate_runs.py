"""``mrsynth-train evaluate``: tables and the Wilcoxon test against hand-computed values, and a real run."""

from __future__ import annotations

import numpy as np
import pytest

from mrsynth_train.evaluate import summarize, wilcoxon, write_report


def _rows():
    rows = []
    for i, (a, b) in enumerate([(30.0, 29.0), (31.0, 29.5), (28.0, 27.0), (33.0, 30.0), (29.0, 28.5), (30.5, 30.0)]):
        for run, psnr in (("A", a), ("B", b)):
            rows.append({"run": run, "recipe": "x", "subject": f"s{i // 2}", "target": ("T1", "T2")[i % 2],
                         "MAE": 0.1, "PSNR": psnr, "SSIM": 0.9})
    return rows


def test_summary_mean_and_sd_hand_computed():
    md = summarize(_rows())
    # run A, target T1 rows: 30, 28, 29 → mean 29.000, population sd sqrt(2/3) = 0.816
    assert "| A | T1 | 3 | 0.100 ± 0.000 | 29.000 ± 0.816 | 0.900 ± 0.000 |" in md
    assert "| A | **overall** | 6 |" in md


def test_wilcoxon_hand_computed():
    # all six differences positive → W = 0; exact two-sided p = 2 / 2**6 = 0.03125
    res = wilcoxon(_rows(), "A", "B")
    assert res["n"] == 6 and res["statistic"] == 0.0
    assert res["p_value"] == pytest.approx(2 / 64)
    assert res["mean_difference"] == pytest.approx(np.mean([1, 1.5, 1, 3, 0.5, 0.5]))


def test_report_files(tmp_path):
    write_report(_rows(), tmp_path, wilcoxon(_rows(), "A", "B"))
    csv_text = (tmp_path / "metrics.csv").read_text(encoding="utf-8").splitlines()
    assert csv_text[0].startswith("run,recipe,subject,target,MAE,PSNR,SSIM") and len(csv_text) == 13
    assert "Wilcoxon" in (tmp_path / "summary.md").read_text(encoding="utf-8")


def test_evaluate_a_trained_run_end_to_end(tmp_path, small_subject):
    from mrsynth_train.cli import main
    from mrsynth_train.config import TrainConfig, from_dict
    from mrsynth_train.trainer import train
    from MRSynthLib.io import write_volume

    cfg = from_dict(TrainConfig, {"steps": 2, "batch_size": 2, "threads": 2,
                                  "data": {"real_weight": 0.0, "simulated": 1, "simulated_shape": [40, 48, 40],
                                           "patch": 32},
                                  "model": {"ngf": 4, "n_blocks": 1, "style_dim": 4}})
    train(cfg, tmp_path / "run", progress=False)
    data = tmp_path / "data" / "subj"
    data.mkdir(parents=True)
    for c in ("T1", "T2", "FLAIR"):
        write_volume(small_subject.volumes[c], data / f"{c}.nii.gz")
    assert main(["evaluate", str(tmp_path / "run"), "--data", str(tmp_path / "data"), "--out", str(tmp_path / "ev")]) == 0
    lines = (tmp_path / "ev" / "metrics.csv").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 4  # header + 3 targets (3→1 becomes 2→1 with three contrasts)
    assert len(list((tmp_path / "ev" / "montages").glob("*.png"))) == 3
    assert main(["evaluate", str(tmp_path / "run"), "--data", str(tmp_path / "data"), "--out", str(tmp_path / "all"),
                 "--tasks", "all-subsets", "--no-montage"]) == 0
    lines = (tmp_path / "all" / "metrics.csv").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1 + 3 * 3  # each target from both others, and from each one alone
    assert "| T2→FLAIR |" in (tmp_path / "all" / "summary.md").read_text(encoding="utf-8")


def test_relative_error_map_hand_computed():
    from mrsynth_train.evaluate import relative_error

    truth = np.array([[0.2, 0.6], [1.0, 5.0]])
    pred = np.array([[0.3, 0.2], [1.0, 0.0]])
    mask = np.array([[1, 1], [1, 0]])  # the 5.0 voxel is outside: it sets neither the range nor the map
    # range inside the mask 1.0 − 0.2 = 0.8: |0.1| / 0.8, |−0.4| / 0.8, 0, outside 0
    assert np.allclose(relative_error(pred, truth, mask), [[0.125, 0.5], [0.0, 0.0]])


def test_runs_with_the_same_folder_name_get_distinct_labels(tmp_path, monkeypatch):
    from pathlib import Path

    from mrsynth_train.evaluate import run_labels, wilcoxon

    monkeypatch.chdir(tmp_path)
    assert run_labels([Path("A/unified"), Path("B/unified")]) == ["A/unified", "B/unified"]
    assert run_labels([Path("A/unified"), Path("B/cyclegan")]) == ["unified", "cyclegan"]
    assert run_labels([Path("A/unified"), Path("A/unified")]) == ["A/unified#1", "A/unified#2"]
    rows = [dict(r, run={"A": "A/unified", "B": "B/unified"}[r["run"]]) for r in _rows()]
    assert wilcoxon(rows, "A/unified", "B/unified")["n"] == 6


def test_task_lists():
    from mrsynth_train.evaluate import task_list

    three = task_list(["T1", "T2", "FLAIR"])
    assert three == [(("T2", "FLAIR"), "T1"), (("T1", "FLAIR"), "T2"), (("T1", "T2"), "FLAIR")]
    every = task_list(["T1", "T1Gd", "T2", "FLAIR"], "all-subsets")
    assert len(every) == 4 * 7 and (("T1",), "FLAIR") in every and (("T1Gd", "T2", "FLAIR"), "T1") in every


def test_evaluation_subjects_are_discovered_like_training_data(tmp_path, small_subject):
    """BIDS sessions are separate subjects, derivatives/ is not a subject, names select units or subjects."""
    from mrsynth_train.evaluate import load_subjects
    from MRSynthLib.errors import MRSynthError
    from MRSynthLib.io import write_volume

    for folder, stem in [("sub-01/ses-1/anat", "sub-01_ses-1"), ("sub-01/ses-2/anat", "sub-01_ses-2"),
                         ("derivatives/sub-09/anat", "sub-09"), ("plain", None)]:
        (tmp_path / folder).mkdir(parents=True)
        for c, suffix in (("T1", "T1w"), ("T2", "T2w")):
            name = f"{stem}_{suffix}.nii.gz" if stem else f"{c}.nii.gz"
            write_volume(small_subject.volumes[c], tmp_path / folder / name)
    subjects = load_subjects(tmp_path)
    assert sorted(subjects) == ["plain", "sub-01_ses-1", "sub-01_ses-2"]
    assert set(subjects["sub-01_ses-2"]) == {"T1", "T2"}
    assert sorted(load_subjects(tmp_path, ["sub-01"])) == ["sub-01_ses-1", "sub-01_ses-2"]
    with pytest.raises(MRSynthError, match="sub-07"):
        load_subjects(tmp_path, ["sub-07"])
