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
