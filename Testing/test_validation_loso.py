"""The leave-one-subject-out report that goes into the model card: combined from per-fold reports."""

from __future__ import annotations

import pytest


def _target(model_psnr: float, hm_psnr: float, baselines: dict[str, float]) -> dict:
    best = max(baselines, key=baselines.get)
    return {"model": {"PSNR": model_psnr, "SSIM": 0.5, "MAE": 0.1},
            "model_histmatched": {"PSNR": hm_psnr},
            "histmatch": {s: {"PSNR": p} for s, p in baselines.items()}, "best_baseline": best}


def _fold(subject: str, targets: dict) -> dict:
    gains = [t["model"]["PSNR"] - t["histmatch"][t["best_baseline"]]["PSNR"] for t in targets.values()]
    return {"subject": subject, "targets": targets, "mean_psnr_gain_db": sum(gains) / len(gains),
            "mean_psnr_gain_equal_info_db": 0.0, "mean_psnr_gain_vs_mean_source_db": 0.0,
            "mean_model_psnr": sum(t["model"]["PSNR"] for t in targets.values()) / len(targets),
            "mean_baseline_psnr": 0.0}


def test_combine_folds_averages_over_folds_by_hand():
    from mrsynth_train.validate import combine_folds

    a = _fold("A", {"T1": _target(10.0, 12.0, {"T2": 14.0, "FLAIR": 11.0}),
                    "T2": _target(16.0, 17.0, {"T1": 13.0, "FLAIR": 15.0})})
    b = _fold("B", {"T1": _target(8.0, 9.0, {"T2": 12.0, "FLAIR": 13.0})})
    report = combine_folds({"A": a, "B": b})
    # fold A gains: 10-14 = -4, 16-15 = +1 → -1.5; fold B: 8-13 = -5 → mean over folds -3.25
    assert report["mean_psnr_gain_db"] == pytest.approx(-3.25)
    assert report["mean_model_psnr"] == pytest.approx((13.0 + 8.0) / 2)
    t1 = report["per_target_mean_over_folds"]["T1"]
    assert t1["PSNR"] == pytest.approx(9.0)
    assert t1["baseline_best_PSNR"] == pytest.approx((14.0 + 13.0) / 2)
    assert t1["model_histmatched_PSNR"] == pytest.approx(10.5)
    assert report["per_target_mean_over_folds"]["T2"]["PSNR"] == pytest.approx(16.0)  # only fold A has it
    assert set(report["folds"]) == {"A", "B"} and "leave-one-real-subject-out" in report["protocol"]


def test_combine_folds_refuses_nothing():
    from mrsynth_train.validate import combine_folds

    with pytest.raises(ValueError):
        combine_folds({})


def test_validate_loso_cli_refuses_a_bad_fold_argument(tmp_path, capsys):
    from mrsynth_train.cli import main

    assert main(["validate-loso", str(tmp_path), "--data", str(tmp_path), "--fold", "no-equals-sign"]) == 2
    assert "expected SUBJECT=RUN" in capsys.readouterr().err
    assert main(["validate-loso", str(tmp_path), "--data", str(tmp_path), "--fold", f"S={tmp_path}"]) == 2
    assert "not a finished run folder" in capsys.readouterr().err
    assert not (tmp_path / "validation.json").exists()


def test_combine_folds_carries_uncalibrated_gains_and_reads_older_reports():
    """A calibrated fold report has the uncalibrated gain beside it; a report made before calibration
    existed has none, and its (uncalibrated) gain stands in for it."""
    from mrsynth_train.validate import combine_folds

    a = _fold("A", {"T1": _target(10.0, 12.0, {"T2": 14.0})})  # gain -4
    a["mean_psnr_gain_uncalibrated_db"] = -7.0
    a["targets"]["T1"]["model_uncalibrated"] = {"PSNR": 7.0}
    b = _fold("B", {"T1": _target(8.0, 9.0, {"T2": 12.0})})  # gain -4, older report
    report = combine_folds({"A": a, "B": b})
    assert report["mean_psnr_gain_db"] == pytest.approx(-4.0)
    assert report["mean_psnr_gain_uncalibrated_db"] == pytest.approx((-7.0 - 4.0) / 2)
    assert report["per_target_mean_over_folds"]["T1"]["model_uncalibrated_PSNR"] == pytest.approx((7.0 + 8.0) / 2)
