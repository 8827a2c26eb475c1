"""The README's quality table from site-validation folders (``mrsynth-train validate-sites`` rows):
masked PSNR / SSIM means over all tasks and over the tasks on subjects a compared model never saw.

    python Testing/bench/site_table.py v4=runs/v4/sites v3=runs/v3/sites [--compare v2]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from mrsynth_train.site_report import PARTIAL, by_method, strength_rows

LABELS = {"v2": "v2 (trained on the 2 TCGA subjects)",
          "histmatch-best": "histogram matching to the TRUE target histogram, best input (oracle)",
          "linear": "voxel-wise linear regression fitted on the training folds",
          "model-oracle-tone": "diagnostic: {first}'s output mapped onto the TRUE target histogram (oracle tone)",
          "model-uncalibrated": "{first} without calibration (the network's own tone)",
          "model": "{first} fully calibrated (strength 1)"}

def rows(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "rows.jsonl").read_text(encoding="utf-8").splitlines() if line]


def product_rows(folder: Path) -> list[dict]:
    """The model as the product runs it: with a calibration strength chosen by the report (``strength``),
    each held-out site's rows at the strength chosen on the other sites; else the calibrated rows."""
    got = rows(folder)
    chosen = (json.loads((folder / "report.json").read_text(encoding="utf-8")).get("strength") or {}).get("per_site")
    if not chosen:
        return [r for r in got if r["method"] == "model"]
    by_strength = strength_rows(by_method(got))
    return [r for w, tasks in by_strength.items() for r in tasks.values() if chosen.get(r["site"]) == w]


def mean(rs: list[dict]) -> str:
    return f"{np.mean([r['PSNR'] for r in rs]):.2f} / {np.mean([r['SSIM'] for r in rs]):.3f}" if rs else "—"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", metavar="NAME=SITES_DIR", help="a validate-sites --out folder per model")
    ap.add_argument("--compare", default="v2", help="the compared model whose unseen subjects make the 2nd column")
    args = ap.parse_args()
    named = [tuple(a.split("=", 1)) for a in args.runs]
    first = Path(named[0][1])
    seen = set(json.loads((first / "report.json").read_text(encoding="utf-8"))["compared_models_trained_on"]
               .get(args.compare, []))
    base = rows(first)
    n_all = len({r["key"].split("|", 1)[1] for r in base})
    n_unseen = len({r["key"].split("|", 1)[1] for r in base if r["subject"] not in seen})
    print(f"| method | all {n_all} tasks | {n_unseen} tasks on subjects {args.compare} never saw |")
    print("|---|---|---|")
    for name, folder in named:
        product = product_rows(Path(folder))
        print(f"| {name} (site folds; as the product runs it) | {mean(product)} | "
              f"{mean([r for r in product if r['subject'] not in seen])} |")
    for method in (args.compare, "histmatch-best", "linear"):
        got = [r for r in base if r["method"] == method]
        unseen = mean([r for r in got if r["subject"] not in seen]) if method != "linear" else "—"
        print(f"| {LABELS.get(method, method)} | {mean(got)} | {unseen} |")
    # what the first folder also holds: the uncalibrated output, calibration at part strength, the oracle tone
    extra = sorted({r["method"] for r in base if r["method"] == "model-uncalibrated" or r["method"].startswith(PARTIAL)})
    for method in (*extra, *(["model"] if extra else []), "model-oracle-tone"):
        got = [r for r in base if r["method"] == method]
        if got:
            label = (f"{{first}} with calibration at strength {method.removeprefix(PARTIAL)}"
                     if method.startswith(PARTIAL) else LABELS[method])
            print(f"| {label.format(first=named[0][0])} | {mean(got)} | "
                  f"{mean([r for r in got if r['subject'] not in seen])} |")


if __name__ == "__main__":
    main()
