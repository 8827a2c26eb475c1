"""Does test-time adaptation (``mrsynth_train.adapt``) help on sites the model never saw? Each held-out
subject's multi-input tasks through the product's pipeline with its site's fold run, plain and adapted to
the patient's own inputs first; the project's protocol, paired Wilcoxon test. Rows are resumable.

    python Testing/bench/adapt_experiment.py --fold Kirby21=runs/v4/fold-Kirby21 ... --out runs/adapt
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "real"))
    ap.add_argument("--fold", action="append", required=True, metavar="SITE=RUN")
    ap.add_argument("--out", default="runs/adapt")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--layers", default=None, help="comma list of parameter-name prefixes to adapt (enc0: input side)")
    ap.add_argument("--tasks", choices=("3to1", "multi"), default="3to1", help="3→1 only, or every task with ≥ 2 inputs")
    args = ap.parse_args()

    import torch
    from scipy.stats import wilcoxon

    from mrsynth_train.adapt import adapted_predictions
    from mrsynth_train.evaluate import task_list
    from mrsynth_train.site_validation import load_subjects, score
    from mrsynth_train.templates import run_engine
    from MRSynthLib.orientation import from_canonical
    from MRSynthLib.postprocess import output_mapping
    from MRSynthLib.synthesis import prepare, run_slices, style_code

    torch.set_num_threads(2)
    folds = dict(f.split("=", 1) for f in args.fold)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    layers = tuple(args.layers.split(",")) if args.layers else None
    path = out / f"rows-{args.steps}-{args.lr:g}{'-' + '+'.join(layers) if layers else ''}.jsonl"
    done = {json.loads(x)["key"] for x in path.read_text().splitlines()} if path.exists() else set()
    engines: dict[str, object] = {}
    for subject in (s for s in load_subjects(Path(args.data)) if s.site in folds):
        tasks = task_list(list(subject.volumes), "3to1" if args.tasks == "3to1" else "all-subsets")
        for inputs, target in tasks:
            key = f"{subject.name}|{'+'.join(inputs)}|{target}"
            if len(inputs) < 2 or key in done:
                continue
            if subject.site not in engines:
                engines[subject.site] = run_engine(Path(folds[subject.site]))
            engine = engines[subject.site]
            prepared = prepare({c: subject.volumes[c] for c in inputs})
            t = time.perf_counter()
            raw = run_slices(engine, prepared, style_code(engine, target))
            plain = output_mapping(engine, prepared, target).apply(raw, prepared.mask, 0.0)
            t_plain = time.perf_counter() - t
            t = time.perf_counter()
            adapted, trace = adapted_predictions(engine, prepared, target, steps=args.steps, lr=args.lr, layers=layers)
            t_adapt = time.perf_counter() - t
            row = {"key": key, "site": subject.site, "target": target, "n_inputs": len(inputs),
                   "seconds_plain": t_plain, "seconds_adapted": t_adapt,
                   "loss_first": trace["loss"][0], "loss_last": float(np.mean(trace["loss"][-5:]))}
            for name, canon in (("plain", plain), ("adapted", adapted)):
                s = score(from_canonical(canon, prepared.reference), subject, target, False)
                row[name] = {k: s[k] for k in ("PSNR", "SSIM", "MAE")}
            with path.open("a") as f:
                f.write(json.dumps(row) + "\n")
            print(f"{key}: PSNR {row['plain']['PSNR']:.2f} -> {row['adapted']['PSNR']:.2f}, SSIM "
                  f"{row['plain']['SSIM']:.3f} -> {row['adapted']['SSIM']:.3f} ({t_adapt:.0f} s)", flush=True)
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    print(f"\n{len(rows)} tasks, {args.steps} steps at lr {args.lr:g}, layers {args.layers or 'all'}")
    for metric in ("PSNR", "SSIM"):
        a = np.array([r["adapted"][metric] for r in rows])
        p = np.array([r["plain"][metric] for r in rows])
        test = wilcoxon(a, p) if len(rows) > 5 and np.any(a != p) else None
        print(f"{metric}: plain {p.mean():.3f}, adapted {a.mean():.3f}, diff {np.mean(a - p):+.3f}"
              + (f", p = {test.pvalue:.3g}" if test else ""))
    for target in sorted({r["target"] for r in rows}):
        rs = [r for r in rows if r["target"] == target]
        print(f"  {target} (n={len(rs)}): PSNR {np.mean([r['adapted']['PSNR'] - r['plain']['PSNR'] for r in rs]):+.2f} dB, "
              f"SSIM {np.mean([r['adapted']['SSIM'] - r['plain']['SSIM'] for r in rs]):+.3f}")


if __name__ == "__main__":
    main()
