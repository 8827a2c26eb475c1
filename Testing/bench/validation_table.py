"""Print the README's leave-one-subject-out tables from a run's validation.json
(written by `mrsynth-train validate-loso`, and copied into the model card by `mrsynth-train export`).

    python Testing/bench/validation_table.py runs/model/final
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(run: str) -> int:
    report = json.loads((Path(run) / "validation.json").read_text(encoding="utf-8"))
    print("| held-out subject | target | MAE | PSNR (dB) | SSIM | PSNR uncalibrated | PSNR model + HM "
          "| PSNR baseline (best source) | PSNR baseline (mean of sources) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for subject, fold in report["folds"].items():
        for target in ("T1", "T1Gd", "T2", "PD", "FLAIR"):
            if target not in fold["targets"]:
                continue
            r = fold["targets"][target]
            m, best = r["model"], r["best_baseline"]
            raw = r.get("model_uncalibrated", m)  # reports made before calibration existed
            print(f"| {subject} | {target} | {m['MAE']:.3f} | {m['PSNR']:.2f} | {m['SSIM']:.3f} | {raw['PSNR']:.2f} "
                  f"| {r['model_histmatched']['PSNR']:.2f} | {r['histmatch'][best]['PSNR']:.2f} ({best}) "
                  f"| {r['mean_baseline_psnr']:.2f} |")
    folds = list(report["folds"].values())
    per = lambda key: " / ".join(f"{f.get(key, f['mean_psnr_gain_db']):+.2f}" for f in folds)  # noqa: E731
    raw_key = "mean_psnr_gain_uncalibrated_db"
    print()
    print("| mean over both folds | model alone (calibrated) | model alone, uncalibrated | model + HM (equal information) |")
    print("|---|---|---|---|")
    print(f"| PSNR gain over the best-source baseline | **{report['mean_psnr_gain_db']:+.2f} dB** "
          f"({per('mean_psnr_gain_db')}) | {report.get(raw_key, report['mean_psnr_gain_db']):+.2f} dB "
          f"({per(raw_key)}) | {report['mean_psnr_gain_equal_info_db']:+.2f} dB "
          f"({per('mean_psnr_gain_equal_info_db')}) |")
    print(f"| PSNR gain over the mean-source baseline | {report['mean_psnr_gain_vs_mean_source_db']:+.2f} dB "
          f"({per('mean_psnr_gain_vs_mean_source_db')}) | | |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "runs/model/final"))
