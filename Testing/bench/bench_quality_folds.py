"""Both leave-one-subject-out folds of ``make bench-quality`` in one table (the README's).

Usage: python Testing/bench/bench_quality_folds.py [--file results-calibrated.json] runs/bench-quality-A runs/bench-quality-B [RERUN …]
Each folder is one ``bench_quality.py`` run (``results.json``, or the file named by ``--file``, e.g. the
re-evaluation with intensity calibration written by ``bench_quality_reevaluate.py``); a path to a JSON file
is read as it is; later entries override earlier ones of the same recipe and held-out subject. Steps per fold are listed in subject order. Per recipe:
mean PSNR per target over the held-out subjects, mean PSNR/MAE/SSIM over every task, steps per fold,
training steps per CPU-second, and the paired Wilcoxon signed-rank test (scipy) of each recipe against the unified model over the
8 tasks (4 targets × 2 held-out subjects) — with 8 pairs the smallest two-sided p is 2/256 ≈ 0.008.
A second table gives MAE and SSIM per target."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from scipy.stats import wilcoxon

TARGETS = ("T1", "T1Gd", "T2", "FLAIR")


def load(folders: list[Path], filename: str = "results.json") -> dict[str, dict]:
    """recipe → {'steps': {subject: n}, 'rows': {(subject, target): metrics}, 'params_M', 'gmac'}.

    A later folder's entry for the same recipe and held-out subject replaces an earlier one (a recipe
    re-run alone, e.g. ``bench_quality.py --only unified``, after the machine was busy during its run)."""
    out: dict[str, dict] = {}
    for folder in folders:
        path = folder if folder.is_file() else folder / filename
        for res in json.loads(path.read_text(encoding="utf-8")):
            entry = out.setdefault(res["recipe"], {"steps": {}, "speed": {}, "rows": {}, "params_M": res["params_M"],
                                                   "gmac": res["gmac"]})
            rows = [r for r in res["rows"] if "PSNR" in r]
            for subject in {r["subject"] for r in rows}:
                entry["steps"][subject] = res["steps"]
                entry["speed"][subject] = res.get("steps_per_cpu_s", np.nan)
            for r in rows:
                entry["rows"][(r["subject"], r["target"])] = r
    return out


def _per_target(rows: dict, metric: str) -> list[float]:
    return [np.mean([r[metric] for (_, t), r in rows.items() if t == tt]) if any(t == tt for _, t in rows)
            else np.nan for tt in TARGETS]


def metrics_table(results: dict[str, dict]) -> str:
    """MAE and SSIM per target (mean over the held-out subjects)."""
    lines = ["| recipe | " + " | ".join(f"MAE {t}" for t in TARGETS) + " | " + " | ".join(f"SSIM {t}" for t in TARGETS)
             + " |", "|---" * (1 + 2 * len(TARGETS)) + "|"]
    for name, res in results.items():
        lines.append(f"| {name} | " + " | ".join(f"{v:.3f}" for v in _per_target(res["rows"], "MAE")) + " | "
                     + " | ".join(f"{v:.3f}" for v in _per_target(res["rows"], "SSIM")) + " |")
    return "\n".join(lines) + "\n"


def table(results: dict[str, dict], reference: str = "unified") -> str:
    ref = results[reference]["rows"]
    lines = ["| recipe | params (M) | GMAC / 256² | steps per held-out subject (A–Z) | steps / CPU-s | "
             + " | ".join(f"PSNR {t}" for t in TARGETS)
             + " | mean PSNR | mean MAE | mean SSIM | Δ PSNR vs unified | Wilcoxon p |",
             "|---" * (10 + len(TARGETS)) + "|"]
    for name, res in results.items():
        rows = res["rows"]
        per_t = _per_target(rows, "PSNR")
        keys = sorted(set(rows) & set(ref))
        delta = np.mean([rows[k]["PSNR"] - ref[k]["PSNR"] for k in keys]) if keys else np.nan
        p = "—"
        if name != reference and len(keys) >= 6:
            diffs = [rows[k]["PSNR"] - ref[k]["PSNR"] for k in keys]
            p = f"{wilcoxon(diffs).pvalue:.3f}"
        mean = lambda m, rows=rows: np.mean([r[m] for r in rows.values()])  # noqa: E731
        lines.append(f"| {name} | {res['params_M']:.2f} | {res['gmac']:.2f} | {'/'.join(str(res['steps'][k]) for k in sorted(res['steps']))} | "
                     + f"{np.mean(list(res['speed'].values())):.2f} | "
                     + " | ".join(f"{v:.2f}" for v in per_t)
                     + f" | {mean('PSNR'):.2f} | {mean('MAE'):.3f} | {mean('SSIM'):.3f} | {delta:+.2f} | {p} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    filename = "results.json"
    if len(argv) >= 2 and argv[0] == "--file":
        filename, argv = argv[1], argv[2:]
    if len(argv) < 1:
        print(__doc__, file=sys.stderr)
        return 2
    results = load([Path(a) for a in argv], filename)
    print(table(results))
    print(metrics_table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
