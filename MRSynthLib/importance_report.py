"""From scores.csv rows to "which contrast matters": Shapley contributions and replaceability.

Contribution of input contrast i to target t, per subject: its Shapley value
φ_i = Σ_{S ⊆ N∖{i}} |S|!(n−|S|−1)!/n! · (v(S ∪ {i}) − v(S)), N the subject's other contrasts (n = |N|)
and v the masked PSNR or SSIM of the synthesis from S; v(∅) is the ``empty`` row (the brain mask
filled with a constant). The φ_i sum to v(N) − v(∅), and v(∅) shifts every φ_i of a subject by the
same −v(∅)/n, so rankings within a subject do not depend on that convention. Beside it, ``added``:
the same weights over non-empty S only (renormalized), i.e. the gain from adding i to at least one
other input; it needs n ≥ 2. Per-subject values are then averaged over subjects (mean ± sd, n).
A subject enters only when every subset of N was scored (``--max-inputs`` leaves gaps) and finite.
"""

from __future__ import annotations

import csv
import io
import itertools
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from math import factorial
from pathlib import Path

import numpy as np

from .contrasts import CONTRASTS
from .io import write_bytes_atomic

METRICS = ("psnr", "ssim")
CONTRIBUTIONS = ("shapley_psnr", "shapley_ssim", "added_psnr", "added_ssim")
REPLACEABILITY = ("best_psnr", "mean_psnr", "histmatch_psnr", "best_ssim", "mean_ssim", "histmatch_ssim")
IMPORTANCE_FIELDS = ("table", "target", "contrast", "measure", "mean", "sd", "n")


def shapley(values: Mapping[frozenset, float], players: Sequence[str], include_empty: bool = True) -> dict[str, float]:
    """Shapley value of each player for the set function ``values`` (every subset of ``players``).
    Without ``include_empty``, the marginal gains onto ∅ are left out and the weights renormalized."""
    n = len(players)
    out = {}
    for i in players:
        rest = [p for p in players if p != i]
        total, weights = 0.0, 0.0
        for k in range(0 if include_empty else 1, n):
            w = factorial(k) * factorial(n - k - 1) / factorial(n)
            for s in itertools.combinations(rest, k):
                total += w * (values[frozenset(s) | {i}] - values[frozenset(s)])
                weights += w
        out[i] = total / weights if weights else math.nan
    return out


def subject_games(rows: Sequence[Mapping[str, str]]) -> dict[tuple[str, str], tuple[list[str], dict]]:
    """(subject, target) → (its other contrasts, metric → {subset: value}) from model and empty rows."""
    games: dict[tuple[str, str], tuple[list[str], dict]] = {}
    for r in rows:
        players, values = games.setdefault((r["subject"], r["target"]), ([], {m: {} for m in METRICS}))
        inputs = frozenset(filter(None, r["inputs"].split("+")))
        players.extend(c for c in inputs if c not in players)
        if r["method"] in ("model", "empty"):
            for m in METRICS:
                values[m][inputs] = float(r[m])
    return {key: ([c for c in CONTRASTS if c in players], values) for key, (players, values) in games.items()}


def subject_contributions(rows: Sequence[Mapping[str, str]]) -> dict[tuple[str, str], dict[str, dict[str, float]]]:
    """(subject, target) → measure (``shapley_psnr`` …) → contrast → value, for complete games only."""
    out = {}
    for key, (players, values) in subject_games(rows).items():
        subsets = [frozenset(s) for k in range(len(players) + 1) for s in itertools.combinations(players, k)]
        measures = {}
        for m in METRICS:
            if not all(s in values[m] and math.isfinite(values[m][s]) for s in subsets):
                continue
            measures[f"shapley_{m}"] = shapley(values[m], players)
            if len(players) >= 2:
                measures[f"added_{m}"] = shapley(values[m], players, include_empty=False)
        out[key] = measures
    return out


def subject_replaceability(rows: Sequence[Mapping[str, str]]) -> dict[tuple[str, str], dict[str, float]]:
    """(subject, target) → best/mean model score over subsets and the histogram-matching baseline (the
    single input whose matched histogram gives the best PSNR, as the site validation picks it)."""
    model, hist = defaultdict(list), defaultdict(list)
    groups = {"model": model, "histmatch": hist}
    for r in rows:
        if r["method"] in groups:
            groups[r["method"]][(r["subject"], r["target"])].append({m: float(r[m]) for m in METRICS})
    out = {}
    for key, scores in model.items():
        out[key] = {f"{agg}_{m}": f([s[m] for s in scores]) for m in METRICS
                    for agg, f in (("best", max), ("mean", lambda v: float(np.mean(v))))}
        if hist.get(key):
            best = max(hist[key], key=lambda s: s["psnr"])
            out[key].update({f"histmatch_{m}": best[m] for m in METRICS})
    return out


def summary(per_subject: Mapping[tuple[str, str], Mapping], nested: bool) -> dict[tuple, tuple[float, float, int]]:
    """(target, [contrast,] measure) → (mean, sd, n) over subjects; non-finite values are left out."""
    pools: dict[tuple, list[float]] = defaultdict(list)
    for (_, target), measures in per_subject.items():
        for measure, value in measures.items():
            for contrast, v in (value.items() if nested else [("", value)]):
                if math.isfinite(v):
                    pools[(target, contrast, measure)].append(v)
    return {k: (float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else math.nan, len(v))
            for k, v in pools.items()}


def cell(stat: tuple[float, float, int] | None, digits: int, sign: bool = False) -> str:
    if stat is None:
        return "—"
    mean, sd, n = stat
    text = f"{mean:+.{digits}f}" if sign else f"{mean:.{digits}f}"
    return text + (f" ± {sd:.{digits}f}" if math.isfinite(sd) else "") + f" (n={n})"


def targets_and_inputs(contrib: Mapping, repl: Mapping) -> tuple[list[str], list[str]]:
    targets = {k[0] for k in (*contrib, *repl)}
    return [c for c in CONTRASTS if c in targets], [c for c in CONTRASTS if c in {k[1] for k in contrib}]


def markdown(contrib: Mapping, repl: Mapping, model_id: str, n_subjects: int, left_out: int = 0,
             groups: int = 0, trained_on: Sequence[str] = ()) -> str:
    targets, inputs = targets_and_inputs(contrib, repl)
    lines = [f"# Which contrast matters? (model `{model_id}`, {n_subjects} subject{'s' * (n_subjects != 1)})", "",
             "Scores: masked PSNR (dB) and SSIM under the project's protocol (`MRSynthLib.evaluation`, one brain "
             "mask per subject from all its contrasts). Each cell: mean ± sd over subjects (n = subjects).", ""]
    if trained_on:
        lines += [f"The model card lists {', '.join(trained_on)} among its training data: their scores flatter "
                  "the model (not held out).", ""]
    if left_out:
        lines += [f"**Partial study**: {left_out} of {groups} (subject, target) pairs are not fully scored yet and "
                  "are left out; rerun `mrsynth importance` with the same arguments to finish.", ""]
    titles = {"shapley": "Shapley contribution of each input (v(∅) = brain mask filled with a constant)",
              "added": "Mean gain when added to at least one other input (Shapley weights over non-empty subsets)"}
    for kind in ("shapley", "added"):
        for m, digits in (("psnr", 2), ("ssim", 3)):
            lines += [f"## {titles[kind]}: {m.upper()}", "", "| target \\ input | " + " | ".join(inputs) + " |",
                      "|---" * (len(inputs) + 1) + "|"]
            lines += [f"| {t} | " + " | ".join("—" if i == t else cell(contrib.get((t, i, f"{kind}_{m}")), digits, True)
                                               for i in inputs) + " |" for t in targets]
            lines.append("")
    heads = ["best PSNR", "mean PSNR", "histmatch PSNR", "best SSIM", "mean SSIM", "histmatch SSIM"]
    lines += ["## Replaceability of each target (best / mean over input subsets; baseline: best single input "
              "histogram-matched to the true target)", "", "| target | " + " | ".join(heads) + " |",
              "|---" * (len(heads) + 1) + "|"]
    lines += [f"| {t} | " + " | ".join(cell(repl.get((t, "", m)), 2 if m.endswith("psnr") else 3) for m in REPLACEABILITY)
              + " |" for t in targets]
    return "\n".join(lines) + "\n"


def plot_png(contrib: Mapping, repl: Mapping, model_id: str) -> bytes | None:
    """Heatmaps of the Shapley contributions and bars of replaceability; None without matplotlib."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return None
    targets, inputs = targets_and_inputs(contrib, repl)
    fig = Figure(figsize=(13, 9), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, 2)
    for ax, m, digits in ((axes[0, 0], "psnr", 2), (axes[0, 1], "ssim", 3)):
        grid = np.array([[contrib.get((t, i, f"shapley_{m}"), (math.nan,))[0] for i in inputs] for t in targets])
        if grid.size == 0:
            ax.text(0.5, 0.5, "no subject with every subset scored", ha="center", transform=ax.transAxes)
            continue
        lim = float(np.nanmax(np.abs(grid))) if np.isfinite(grid).any() else 1.0
        image = ax.imshow(np.ma.masked_invalid(grid), cmap="RdBu", vmin=-lim, vmax=lim)
        ax.set_facecolor("0.85")
        for (r, c), v in np.ndenumerate(grid):
            n = contrib.get((targets[r], inputs[c], f"shapley_{m}"), (0, 0, 0))[2]
            ax.text(c, r, f"{v:+.{digits}f}\nn={n}" if math.isfinite(v) else "—", ha="center", va="center", fontsize=9,
                    color="white" if math.isfinite(v) and abs(v) > 0.6 * lim else "black")
        ax.set_xticks(range(len(inputs)), inputs)
        ax.set_yticks(range(len(targets)), targets)
        ax.set_xlabel("input contrast")
        ax.set_ylabel("target")
        ax.set_title(f"Shapley contribution to masked {m.upper()}")
        fig.colorbar(image, ax=ax, shrink=0.8)
    for ax, m in ((axes[1, 0], "psnr"), (axes[1, 1], "ssim")):
        x = np.arange(len(targets))
        for k, (what, label) in enumerate((("best", "model, best subset"), ("mean", "model, mean over subsets"),
                                           ("histmatch", "histogram-matched best input"))):
            stats = [repl.get((t, "", f"{what}_{m}"), (math.nan, math.nan, 0)) for t in targets]
            ax.bar(x + (k - 1) * 0.27, [s[0] for s in stats], 0.27, yerr=[0 if math.isnan(s[1]) else s[1] for s in stats],
                   label=label, capsize=3)
        ax.set_xticks(x, [f"{t}\n(n={repl.get((t, '', f'mean_{m}'), (0, 0, 0))[2]})" for t in targets])
        ax.set_ylabel(f"masked {m.upper()}")
        ax.set_title(f"Replaceability as a target: {m.upper()}")
        ax.legend(fontsize=8)
    fig.suptitle(f"Which contrast matters? model {model_id}")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def write_report(rows: Sequence[Mapping[str, str]], out: Path, model_id: str, left_out: int = 0,
                 groups: int = 0, trained_on: Sequence[str] = ()) -> list[Path]:
    """importance.csv (long format), importance.md and importance.png (when matplotlib is installed),
    each written atomically; returns the files written. ``left_out`` of ``groups`` (subject, target) pairs
    were not fully scored (a stopped study), which the Markdown says, as it names the subjects here that the
    model card lists as ``trained_on``."""
    contrib = summary(subject_contributions(rows), nested=True)
    repl = summary(subject_replaceability(rows), nested=False)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(IMPORTANCE_FIELDS)
    for table, stats in (("contribution", contrib), ("replaceability", repl)):
        for (target, contrast, measure), (mean, sd, n) in sorted(stats.items()):
            writer.writerow([table, target, contrast, measure, format(mean, ".6g"),
                             "" if math.isnan(sd) else format(sd, ".6g"), n])
    n_subjects = len({r["subject"] for r in rows})
    files = [write_bytes_atomic(buf.getvalue().encode("utf-8"), out / "importance.csv")]
    seen = [s for s in trained_on if s in {r["subject"] for r in rows}]
    text = markdown(contrib, repl, model_id, n_subjects, left_out, groups, seen)
    png = plot_png(contrib, repl, model_id)
    if png is None:
        text += "\n(importance.png not written: matplotlib is not installed)\n"
    files.append(write_bytes_atomic(text.encode("utf-8"), out / "importance.md"))
    if png is not None:
        files.append(write_bytes_atomic(png, out / "importance.png"))
    return files
