"""Comparison at equal budget (``make bench-quality``): every recipe trains for the same CPU-time
budget (CPU seconds of the training process, all threads; run it on an otherwise idle machine, because
OpenMP threads spinning under contention count too) on the same data (real subjects but the held-out one,
plus the same simulated subjects), then the held-out real subject is synthesized 3→1 for every target
with the same pipeline and protocol. Each recipe's learning-rate schedule runs on the budget's clock, so
every run ends annealed, as it would at its last step.

Prints (and writes to ``--out``/summary.md) a table of MAE/PSNR/SSIM per target, params, GMAC per
256² slice and training steps/s. The table is the truth, not an advertisement.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "training" / "configs"
ENTRIES = {  # name: (config file, option overrides)
    "unified": ("unified.yaml", {}),
    "hypergan-cin": ("hypergan.yaml", {"mode": "cin"}),
    "hypergan-fs": ("hypergan.yaml", {"mode": "fs"}),
    "collagan": ("collagan.yaml", {}),
    "mist": ("mist.yaml", {}),
    "cyclegan": ("cyclegan.yaml", {}),
    "unit": ("unit.yaml", {}),
    "supervised": ("supervised.yaml", {}),
    "simple": ("simple.yaml", {}),
}


def gmac_per_slice(recipe, n_contrasts: int = 5) -> float:
    """MACs of one 256² synthesis (FLAIR from T1, T1Gd, T2) through the recipe's own predict."""
    import torch
    from torch import nn

    from mrsynth_train.nets.cost import count_macs

    class Wrapper(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.parts = nn.ModuleDict(recipe.modules())

        def forward(self, images, available):
            return recipe.predict(images, available, 4)

    avail = torch.tensor([[1.0, 1.0, 1.0, 0.0, 0.0]])
    return count_macs(Wrapper(), 256, 256, lambda h, w: (torch.rand(1, n_contrasts, h, w), avail)) / 1e9


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--budget-s", type=float, default=150.0, help="training CPU seconds (all threads) per recipe")
    p.add_argument("--holdout", default="TCGA-FG-6692")
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "real"))
    p.add_argument("--out", default=str(ROOT / "runs" / "bench-quality"))
    p.add_argument("--only", default=",".join(ENTRIES), help="comma-separated subset of: " + ", ".join(ENTRIES))
    args = p.parse_args(argv)

    from mrsynth_train.config import load_config
    from mrsynth_train.evaluate import evaluate_run, load_subjects
    from mrsynth_train.trainer import train

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    subjects = load_subjects(Path(args.data), [args.holdout])
    base = load_config(CONFIGS / "unified.yaml")
    results = []
    for name in args.only.split(","):
        cfg_file, overrides = ENTRIES[name]
        cfg = load_config(CONFIGS / cfg_file)
        paired = cfg.data.paired
        cfg.data = base.data  # identical data for every recipe …
        cfg.data.paired = paired  # … in the pairing the method assumes
        cfg.data.real_root = args.data
        cfg.data.real_exclude = [args.holdout]
        cfg.options = {**cfg.options, **overrides}
        cfg.steps, cfg.cpu_budget_s, cfg.checkpoint_every = 10**7, args.budget_s, 10**6
        run = out / name
        t = time.perf_counter()
        summary = train(cfg, run, progress=False)
        from mrsynth_train.runs import load_run

        recipe, _ = load_run(run)
        rows = evaluate_run(run, subjects, out / "montages")
        params = sum(p.numel() for p in recipe.inference_module().parameters())
        res = {"recipe": name, "steps": summary["steps"], "steps_per_cpu_s": summary["steps"] / max(summary["cpu_s"], 1e-9),
               "params_M": params / 1e6, "gmac": gmac_per_slice(recipe), "rows": rows,
               "total_s": time.perf_counter() - t}
        results.append(res)
        (out / "results.json").write_text(json.dumps(results, indent=1))
        print(f"{name}: {summary['steps']} steps, PSNR "
              f"{np.mean([r['PSNR'] for r in rows if 'PSNR' in r]):.2f}", file=sys.stderr)
    targets = ("T1", "T1Gd", "T2", "FLAIR")
    lines = [f"Held-out real subject {args.holdout}; {args.budget_s:.0f} CPU-seconds of training per recipe (2 threads); "
             f"{time.strftime('%Y-%m-%d')}.", "",
             "| recipe | params (M) | GMAC / 256² | steps | steps per CPU-s | " + " | ".join(f"PSNR {t}" for t in targets)
             + " | mean PSNR | mean MAE | mean SSIM |",
             "|---" * (8 + len(targets)) + "|"]
    for res in results:
        by_t = {r["target"]: r for r in res["rows"] if "PSNR" in r}
        cells = [f"{by_t[t]['PSNR']:.2f}" if t in by_t else "—" for t in targets]
        ok = list(by_t.values())
        mean = lambda k, ok=ok: f"{np.mean([r[k] for r in ok]):.3f}" if ok else "—"  # noqa: E731
        lines.append(f"| {res['recipe']} | {res['params_M']:.2f} | {res['gmac']:.2f} | {res['steps']} | "
                     f"{res['steps_per_cpu_s']:.2f} | " + " | ".join(cells) + f" | {mean('PSNR')} | {mean('MAE')} | "
                     f"{mean('SSIM')} |")
    table = "\n".join(lines) + "\n"
    (out / "summary.md").write_text(table, encoding="utf-8")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
