"""Side-by-side evaluation of trained runs on whole volumes with the project's evaluation protocol.

Every subject and every target (3→1: all other contrasts in) is synthesized through the same
pipeline as the product (:func:`MRSynthLib.synthesis.synthesize`), so preprocessing, slicing and
postprocessing are identical for every recipe. Writes a CSV, a Markdown table (mean ± sd per task and
overall), PNG montages with error maps, and a paired Wilcoxon test between two runs.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np

from MRSynthLib import orientation
from MRSynthLib.contrasts import CONTRASTS
from MRSynthLib.errors import MRSynthError
from MRSynthLib.evaluation import evaluate_arrays
from MRSynthLib.io import write_bytes_atomic
from MRSynthLib.montage import montage_png
from MRSynthLib.preprocess import derive_mask, normalize
from MRSynthLib.synthesis import synthesize

from .config import TrainConfig, from_dict
from .data import find_subject_files

METRICS = ("MAE", "PSNR", "SSIM")


class RecipeBackend:
    """Adapts a recipe's ``predict`` to the pipeline's backend interface (target set per task)."""

    name, device = "torch-recipe", "cpu"

    def __init__(self, recipe) -> None:
        self.recipe = recipe
        self.target = 0
        self.mean_styles = np.eye(len(CONTRASTS), dtype=np.float32)

    def generate(self, images, available, style):
        import torch  # noqa: PLC0415

        with torch.no_grad():
            out = self.recipe.predict(torch.from_numpy(images), torch.from_numpy(available), self.target)
        return out.numpy()

    def encode_style(self, images):
        raise MRSynthError("this recipe has no style encoder")


def load_run(run: Path):
    """Rebuild a run's recipe with its trained weights."""
    import torch  # noqa: PLC0415

    from .trainer import build_recipe  # noqa: PLC0415

    cfg_path = run / "config.json"
    if not cfg_path.exists():
        raise MRSynthError("not a run folder (no config.json)", str(run))
    cfg = from_dict(TrainConfig, json.loads(cfg_path.read_text(encoding="utf-8"))["config"])
    recipe = build_recipe(cfg)
    for name, module in recipe.modules().items():
        weights = run / f"{name}.pt"
        if not weights.exists():
            raise MRSynthError(f"run has no trained weights '{weights.name}' (unfinished?)", str(run))
        module.load_state_dict(torch.load(str(weights), map_location="cpu", weights_only=True))
        module.eval()
    return recipe, cfg


def evaluate_run(run: Path, subjects: dict[str, dict], montage_dir: Path | None = None,
                 calibrate: bool = True) -> list[dict]:
    """Rows (run, subject, target, metrics) for every 3→1 task of every subject; outputs calibrated
    with the run's intensity templates when it has them (as the exported model would be)."""
    from .templates import attach_templates  # noqa: PLC0415

    recipe, cfg = load_run(run)
    engine = attach_templates(RecipeBackend(recipe), run, calibrate)
    rows = []
    for subject, vols in subjects.items():
        mask = derive_mask([v.array for v in vols.values()])
        for target in vols:
            engine.target = CONTRASTS.index(target)
            inputs = {c: v for c, v in vols.items() if c != target}
            try:
                pred = synthesize(inputs, target, engine=engine).array
            except MRSynthError as exc:
                rows.append({"run": run.name, "recipe": cfg.recipe, "subject": subject, "target": target,
                             "error": str(exc)})
                continue
            m = evaluate_arrays(pred, vols[target].array, mask)
            rows.append({"run": run.name, "recipe": cfg.recipe, "subject": subject, "target": target,
                         **{k: m[k] for k in METRICS}})
            if montage_dir is not None:
                _montage(montage_dir / f"{run.name}_{subject}_{target}.png", inputs, vols[target], pred, mask, target)
    return rows


def _montage(path: Path, inputs, truth, pred, mask, target) -> None:
    canon = lambda a: orientation.to_canonical(truth.with_array(a))  # noqa: E731
    cm = canon(mask)
    z = int(np.argmax(cm.reshape(cm.shape[0], -1).sum(1)))
    t, p = canon(normalize(truth.array, mask))[z], canon(normalize(pred, mask))[z]
    panels = [(c, canon(normalize(v.array, mask))[z]) for c, v in inputs.items()]
    panels += [(f"{target} synthetic", p), (f"{target} truth", t)]
    path.parent.mkdir(parents=True, exist_ok=True)
    montage_png(panels, path, error=np.abs(p - t))


def load_subjects(data: Path, names: list[str] | None = None, simulated: int = 0,
                  simulated_shape=(144, 176, 144)) -> dict[str, dict]:
    """Real subject folders under ``data`` (all, or ``names``) plus held-out simulated subjects."""
    from MRSynthLib.io import read_volume  # noqa: PLC0415
    from MRSynthLib.phantom import simulate_subject  # noqa: PLC0415

    out: dict[str, dict] = {}
    folders = [data / n for n in names] if names else sorted(p for p in data.iterdir() if p.is_dir())
    for folder in folders:
        files = find_subject_files(folder)
        if files:
            out[folder.name] = {c: read_volume(p) for c, p in files.items()}
    for i in range(simulated):  # seeds far from the training simulator's
        s = simulate_subject(90000 + i, shape=tuple(simulated_shape))
        out[f"sim-test-{i}"] = {c: s.volumes[c] for c in ("T1", "T1Gd", "T2", "FLAIR")}
    if not out:
        raise MRSynthError("no evaluation subjects found", str(data))
    return out


def summarize(rows: list[dict]) -> str:
    """Markdown: mean ± sd of each metric per (run, target) and overall."""
    ok = [r for r in rows if "error" not in r]
    runs = list(dict.fromkeys(r["run"] for r in ok))
    targets = list(dict.fromkeys(r["target"] for r in ok))
    lines = ["| run | target | n | MAE | PSNR (dB) | SSIM |", "|---|---|---|---|---|---|"]
    for run in runs:
        for target in [*targets, "overall"]:
            sel = [r for r in ok if r["run"] == run and (target == "overall" or r["target"] == target)]
            if not sel:
                continue
            cells = [f"{np.mean([r[k] for r in sel]):.3f} ± {np.std([r[k] for r in sel]):.3f}" for k in METRICS]
            name = f"**{target}**" if target == "overall" else target
            lines.append(f"| {run} | {name} | {len(sel)} | " + " | ".join(cells) + " |")
    failed = [r for r in rows if "error" in r]
    if failed:
        lines.append("")
        lines += [f"- {r['run']} {r['subject']} {r['target']}: not evaluated ({r['error']})" for r in failed]
    return "\n".join(lines) + "\n"


def wilcoxon(rows: list[dict], run_a: str, run_b: str, metric: str = "PSNR") -> dict:
    """Paired two-sided Wilcoxon signed-rank test over the (subject, target) tasks both runs completed."""
    from scipy.stats import wilcoxon as _wilcoxon  # noqa: PLC0415

    a = {(r["subject"], r["target"]): r[metric] for r in rows if r["run"] == run_a and "error" not in r}
    b = {(r["subject"], r["target"]): r[metric] for r in rows if r["run"] == run_b and "error" not in r}
    keys = sorted(set(a) & set(b))
    if len(keys) < 2:
        raise MRSynthError(f"too few paired tasks ({len(keys)}) for a Wilcoxon test")
    diff = np.array([a[k] - b[k] for k in keys])
    res = _wilcoxon([a[k] for k in keys], [b[k] for k in keys])
    return {"metric": metric, "a": run_a, "b": run_b, "n": len(keys), "mean_difference": float(diff.mean()),
            "statistic": float(res.statistic), "p_value": float(res.pvalue)}


def write_report(rows: list[dict], out: Path, test: dict | None = None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    fields = ["run", "recipe", "subject", "target", *METRICS, "error"]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    write_bytes_atomic(buf.getvalue().encode(), out / "metrics.csv")
    md = summarize(rows)
    if test is not None:
        md += (f"\nPaired Wilcoxon ({test['metric']}, n = {test['n']}): {test['a']} − {test['b']} = "
               f"{test['mean_difference']:+.3f} on average, p = {test['p_value']:.3g}\n")
    write_bytes_atomic(md.encode(), out / "summary.md")
