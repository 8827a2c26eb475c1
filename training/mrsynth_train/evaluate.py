"""Side-by-side evaluation of trained runs on whole volumes with the project's evaluation protocol.

Every subject and every task — by default each target from all other contrasts (3→1), with
``tasks="all-subsets"`` each target from every non-empty subset of the others — is synthesized through
the same pipeline as the product (:func:`MRSynthLib.synthesis.synthesize`), so preprocessing, slicing and
postprocessing are identical for every recipe. Writes a CSV, a Markdown table (mean ± sd per task and
overall), PNG montages with relative absolute error maps, and a paired Wilcoxon test between two runs.
Subjects are discovered as for training (``subjects.selected_units``: BIDS sessions apart, no derivatives).
"""

from __future__ import annotations

import csv
import io
import itertools
import logging
import re
from pathlib import Path

import numpy as np

from MRSynthLib import orientation
from MRSynthLib.backends import ModelSettings, SettingsFromCard
from MRSynthLib.contrasts import CONTRASTS
from MRSynthLib.errors import MRSynthError
from MRSynthLib.evaluation import evaluate_arrays
from MRSynthLib.io import write_bytes_atomic
from MRSynthLib.montage import montage_png
from MRSynthLib.preprocess import derive_mask, normalize
from MRSynthLib.synthesis import synthesize

from .runs import load_run
from .subjects import read_subject_volumes, selected_units

METRICS = ("MAE", "PSNR", "SSIM")
TASKS = ("3to1", "all-subsets")
log = logging.getLogger("mrsynth_train")


class RecipeBackend(SettingsFromCard):
    """Adapts a recipe's ``predict`` to the pipeline's backend interface (target set per task)."""

    name, device = "torch-recipe", "cpu"
    has_style_encoder = False

    def __init__(self, recipe, settings: ModelSettings) -> None:
        self._take(settings)
        self.recipe = recipe
        self.target = 0
        self.mean_styles = np.eye(len(CONTRASTS), dtype=np.float32)

    def generate(self, images, available, style):
        import torch

        with torch.no_grad():
            out = self.recipe.predict(torch.from_numpy(images), torch.from_numpy(available), self.target)
        return out.numpy()

    def encode_style(self, images):
        raise MRSynthError("this recipe has no style encoder")


def recipe_context(recipe) -> int:
    """Neighbouring slices per side a recipe's network takes (the unified recipe's 2.5D option; else 0)."""
    model = getattr(recipe, "model", None)  # only the unified recipe has one network with a config
    return int(model.cfg.context) if model is not None and hasattr(model, "cfg") else 0


def task_list(contrasts: list[str], mode: str = "3to1") -> list[tuple[tuple[str, ...], str]]:
    """(inputs, target) of every task on a subject holding ``contrasts``: each target from all the others
    (``3to1``), or from every non-empty subset of them (``all-subsets``, largest subsets first)."""
    if mode not in TASKS:
        raise MRSynthError(f"--tasks must be one of {', '.join(TASKS)}, got '{mode}'")
    out = []
    for target in contrasts:
        others = [c for c in contrasts if c != target]
        sizes = range(len(others), 0, -1) if mode == "all-subsets" else [len(others)]
        out += [(combo, target) for n in sizes for combo in itertools.combinations(others, n)]
    return out


def run_labels(runs: list[Path]) -> list[str]:
    """One unique label per run for the tables and the Wilcoxon test: the folder name, or, where names
    collide (``A/unified`` and ``B/unified``), the path relative to the working directory."""
    names = [r.name for r in runs]
    labels = []
    for run, name in zip(runs, names, strict=True):
        if names.count(name) == 1:
            labels.append(name)
            continue
        path = run.resolve()
        labels.append(str(path.relative_to(Path.cwd().resolve())) if path.is_relative_to(Path.cwd().resolve())
                      else str(path))
    return [f"{x}#{i + 1}" if labels.count(x) > 1 else x for i, x in enumerate(labels)]


def evaluate_run(run: Path, subjects: dict[str, dict], montage_dir: Path | None = None,
                 calibrate: bool = True, label: str | None = None, tasks: str = "3to1") -> list[dict]:
    """Rows (run label, subject, task, metrics) for every task of every subject (see ``task_list``);
    outputs calibrated with the run's intensity templates when it has them (as the exported model is)."""
    from .templates import run_settings

    recipe, cfg = load_run(run)
    engine = RecipeBackend(recipe, run_settings(run, recipe_context(recipe), calibrate))
    label = label or run.name
    rows = []
    for subject, vols in subjects.items():
        mask = derive_mask([v.array for v in vols.values()])
        for sources, target in task_list(list(vols), tasks):
            engine.target = CONTRASTS.index(target)
            inputs = {c: vols[c] for c in sources}
            row = {"run": label, "recipe": cfg.recipe, "subject": subject, "target": target,
                   "inputs": "+".join(sources), "task": target if tasks == "3to1" else f"{'+'.join(sources)}→{target}"}
            try:
                pred = synthesize(inputs, target, engine=engine).array
            except MRSynthError as exc:
                rows.append({**row, "error": str(exc)})
                continue
            m = evaluate_arrays(pred, vols[target].array, mask)
            rows.append({**row, **{k: m[k] for k in METRICS}})
            if montage_dir is not None:
                stem = f"{subject}_{target}" if tasks == "3to1" else f"{subject}_{'+'.join(sources)}_to_{target}"
                name = re.sub(r"[^A-Za-z0-9.+_-]+", "_", f"{label}_{stem}")
                _montage(montage_dir / f"{name}.png", inputs, vols[target], pred, mask, target)
    return rows


def relative_error(pred: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """|pred − truth| / (max − min of truth inside the mask), 0 outside the mask: an error map that reads
    the same on every subject and contrast whatever their intensity scale."""
    inside = mask > 0
    if not inside.any():
        return np.zeros(truth.shape, np.float32)
    value_range = float(truth[inside].max() - truth[inside].min())
    err = np.abs(pred.astype(np.float64) - truth) / max(value_range, 1e-12)
    return np.where(inside, err, 0.0).astype(np.float32)


def _montage(path: Path, inputs, truth, pred, mask, target) -> None:
    canon = lambda a: orientation.to_canonical(truth.with_array(a))  # noqa: E731
    cm = canon(mask)
    z = int(np.argmax(cm.reshape(cm.shape[0], -1).sum(1)))
    t, p = canon(normalize(truth.array, mask)), canon(normalize(pred, mask))
    panels = [(c, canon(normalize(v.array, mask))[z]) for c, v in inputs.items()]
    panels += [(f"{target} synthetic", p[z]), (f"{target} truth", t[z])]
    path.parent.mkdir(parents=True, exist_ok=True)
    montage_png(panels, path, error=relative_error(p, t, cm)[z])


def load_subjects(data: Path, names: list[str] | None = None, simulated: int = 0,
                  simulated_shape=(144, 176, 144)) -> dict[str, dict]:
    """Subjects under ``data`` found as for training (subject folders, BIDS subjects, each BIDS session
    apart, no ``derivatives/``; ``names`` match a unit or its subject) plus held-out simulated subjects.
    An unreadable subject is skipped with a warning."""
    from MRSynthLib.phantom import simulate_subject

    out: dict[str, dict] = {}
    units = selected_units(data, names or None)
    missing = [n for n in names or [] if not any(n in (u, u.split("_ses-")[0]) for u, _ in units)]
    if missing:
        raise MRSynthError(f"subject(s) {', '.join(missing)} not found", str(data))
    for name, folder in units:
        try:
            out[name] = read_subject_volumes(folder)
        except (MRSynthError, OSError) as exc:
            log.warning("skipping subject %s: %s", name, exc)
    for i in range(simulated):  # seeds far from the training simulator's
        s = simulate_subject(90000 + i, shape=tuple(simulated_shape))
        out[f"sim-test-{i}"] = {c: s.volumes[c] for c in ("T1", "T1Gd", "T2", "FLAIR")}
    if not out:
        raise MRSynthError("no evaluation subjects found", str(data))
    return out


def summarize(rows: list[dict]) -> str:
    """Markdown: mean ± sd of each metric per (run, task) and overall; a task is a target (3→1) or
    ``inputs→target`` (all subsets)."""
    ok = [r for r in rows if "error" not in r]
    runs = list(dict.fromkeys(r["run"] for r in ok))
    targets = list(dict.fromkeys(_task(r) for r in ok))
    lines = ["| run | task | n | MAE | PSNR (dB) | SSIM |", "|---|---|---|---|---|---|"]
    for run in runs:
        for target in [*targets, "overall"]:
            sel = [r for r in ok if r["run"] == run and (target == "overall" or _task(r) == target)]
            if not sel:
                continue
            cells = [f"{np.mean([r[k] for r in sel]):.3f} ± {np.std([r[k] for r in sel]):.3f}" for k in METRICS]
            name = f"**{target}**" if target == "overall" else target
            lines.append(f"| {run} | {name} | {len(sel)} | " + " | ".join(cells) + " |")
    failed = [r for r in rows if "error" in r]
    if failed:
        lines.append("")
        lines += [f"- {r['run']} {r['subject']} {_task(r)}: not evaluated ({r['error']})" for r in failed]
    return "\n".join(lines) + "\n"


def _task(row: dict) -> str:
    return row.get("task", row["target"])


def wilcoxon(rows: list[dict], run_a: str, run_b: str, metric: str = "PSNR") -> dict:
    """Paired two-sided Wilcoxon signed-rank test over the (subject, target) tasks both runs completed."""
    from scipy.stats import wilcoxon as _wilcoxon

    a = {(r["subject"], _task(r)): r[metric] for r in rows if r["run"] == run_a and "error" not in r}
    b = {(r["subject"], _task(r)): r[metric] for r in rows if r["run"] == run_b and "error" not in r}
    keys = sorted(set(a) & set(b))
    if len(keys) < 2:
        raise MRSynthError(f"too few paired tasks ({len(keys)}) for a Wilcoxon test")
    diff = np.array([a[k] - b[k] for k in keys])
    res = _wilcoxon([a[k] for k in keys], [b[k] for k in keys])
    return {"metric": metric, "a": run_a, "b": run_b, "n": len(keys), "mean_difference": float(diff.mean()),
            "statistic": float(res.statistic), "p_value": float(res.pvalue)}


def write_report(rows: list[dict], out: Path, test: dict | None = None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    fields = ["run", "recipe", "subject", "target", *METRICS, "inputs", "error"]
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
