"""Slow end-to-end checks: real-subject validation report and the demo command."""

from __future__ import annotations

import json

import numpy as np
import pytest


@pytest.mark.slow
def test_validation_report_is_consistent(calibrated_bundle, real_root, tmp_path):
    """With a calibrating card: the report's model numbers are the calibrated pipeline, and the network's
    own look is reported beside them."""
    from mrsynth_train.validate import validate_subject
    from MRSynthLib.registry import load_backend, resolve_model

    engine = load_backend(resolve_model(str(calibrated_bundle)), "onnx", "cpu")
    report = validate_subject(engine, real_root / "TCGA-FG-6692", tmp_path / "v.png")
    assert set(report["targets"]) == {"T1", "T1Gd", "T2", "FLAIR"}
    for target, r in report["targets"].items():
        best = r["histmatch"][r["best_baseline"]]["PSNR"]
        assert best == max(b["PSNR"] for b in r["histmatch"].values())
        assert r["psnr_gain_db"] == pytest.approx(r["model"]["PSNR"] - best)
        assert r["psnr_gain_uncalibrated_db"] == pytest.approx(r["model_uncalibrated"]["PSNR"] - best)
        assert r["model"]["PSNR"] != r["model_uncalibrated"]["PSNR"]
        assert target not in r["histmatch"]  # 3→1: the target is never a source
    gains = [r["psnr_gain_db"] for r in report["targets"].values()]
    assert report["mean_psnr_gain_db"] == pytest.approx(np.mean(gains))
    assert (tmp_path / "v.png").stat().st_size > 10_000


@pytest.mark.slow
def test_demo_writes_every_promised_file(tmp_path):
    from MRSynthLib.cli import main

    assert main(["demo", "--out", str(tmp_path), "--quiet"]) == 0
    names = {p.name for p in tmp_path.iterdir()}
    assert {"sim_FLAIR_SYNTHETIC.nii.gz", "sim_FLAIR_truth.nii.gz", "montage.png", "metrics.json",
            "sim_T1_input.nii.gz", "sim_T1Gd_input.nii.gz", "sim_T2_input.nii.gz"} <= names
    report = json.loads((tmp_path / "metrics.json").read_text(encoding="utf-8"))
    assert report["target"] == "FLAIR" and 0 < report["metrics"]["SSIM"] <= 1
    assert report["metrics"]["PSNR"] > 15  # the trained default model, not noise
