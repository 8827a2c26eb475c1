"""Re-evaluate the runs of ``bench_quality.py`` folders with intensity calibration (no retraining).

Usage: python Testing/bench/bench_quality_reevaluate.py runs/bench-quality-A runs/bench-quality-B
For every recipe run of each folder: writes its intensity templates when missing (``mrsynth-train
templates``: the real training subject, the held-out one excluded), evaluates it again on its held-out
subject through the product's pipeline with calibration on, and writes ``results-calibrated.json`` (the
format of ``results.json``). Runs trained after calibration existed already carry templates, and
``bench_quality.py`` then evaluates them calibrated itself. Print the table with
``bench_quality_folds.py --file results-calibrated.json FOLDERS``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("folders", nargs="+")
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "real"))
    args = p.parse_args(argv)

    from mrsynth_train.evaluate import evaluate_run, load_subjects
    from mrsynth_train.templates import read_templates, templates_for_run, write_templates

    for folder in map(Path, args.folders):
        results = json.loads((folder / "results.json").read_text(encoding="utf-8"))
        out = []
        for res in results:
            run = folder / res["recipe"]
            if read_templates(run) is None:
                write_templates(run, templates_for_run(run, Path(args.data)))
            held_out = sorted({r["subject"] for r in res["rows"]})
            rows = evaluate_run(run, load_subjects(Path(args.data), held_out), None, calibrate=True)
            out.append({**res, "rows": rows, "calibrated": True})
            (folder / "results-calibrated.json").write_text(json.dumps(out, indent=1))
            psnr = [r["PSNR"] for r in rows if "PSNR" in r]
            print(f"{folder.name}/{res['recipe']}: calibrated mean PSNR {sum(psnr) / len(psnr):.2f}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
