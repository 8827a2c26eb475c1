"""Scoring a reader study: can readers tell synthetic images from real ones, and do they rate them alike?

Synthetic is the positive class ("detecting synthetic"): sensitivity = synthetic cases called synthetic,
specificity = real cases called real. Proportions come with Wilson score 95% intervals (good at 0 and 1,
where the normal approximation fails on small studies); accuracy is also tested against chance (0.5) with
an exact two-sided binomial test — a visual Turing test is passed when that is *not* rejected and the
interval is narrow. Quality scores of real and synthetic cases are compared by the two-sided Mann–Whitney U
test (ordinal scores: no normality assumed). Per reader, and pooled over readers (every rating counted as
independent, which ratings by one reader, or of slices of one volume, are not: read the pooled p-values
as descriptive).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .errors import MRSynthError
from .reader_session import Rating, read_ratings
from .reader_study import CLASSES, KEY_FIELDS, Study, load_study

Z95 = 1.959963984540054  # the 97.5th percentile of the standard normal distribution


def load_key(path: str | os.PathLike, study: Study) -> dict[str, str]:
    """case → truth, checked against the study: same study id, every case exactly once."""
    p = Path(path)
    if not p.is_file():
        raise MRSynthError("key file not found (the study's key/key.csv, or give --key KEY)", str(p))
    with open(p, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if tuple(reader.fieldnames or ()) != KEY_FIELDS:
            raise MRSynthError(f"not a reader-study key (columns {reader.fieldnames})", str(p))
        rows = list(reader)
    if {r["study_id"] for r in rows} != {study.study_id}:
        raise MRSynthError(f"key belongs to another study (study id {rows[0]['study_id'] if rows else 'none'}, "
                           f"the study's is {study.study_id})", str(p))
    truth = {r["case"]: r["truth"] for r in rows}
    if len(truth) != len(rows) or set(truth) != set(study.cases) or not set(truth.values()) <= set(CLASSES):
        raise MRSynthError("key does not list each of the study's cases once with a truth of real or synthetic", str(p))
    return truth


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of the proportion k/n."""
    if n == 0:
        return math.nan, math.nan
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def proportion(k: int, n: int) -> dict:
    lo, hi = wilson(k, n)
    return {"k": k, "n": n, "value": k / n if n else None, "ci95": [lo, hi] if n else None}


def describe(values: Sequence[float]) -> dict:
    v = np.asarray(values, dtype=float)
    return {"n": int(v.size), "mean": float(v.mean()) if v.size else None,
            "sd": float(v.std(ddof=1)) if v.size > 1 else None}


def _finite(x: float) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


def mann_whitney(real: Sequence[int], synthetic: Sequence[int]) -> dict:
    """Two-sided Mann–Whitney U (scipy; asymptotic with tie correction when there are ties). U counts the
    (real, synthetic) pairs where the real case scored higher (ties count one half)."""
    if not real or not synthetic:
        return {"U": None, "p": None}
    from scipy.stats import mannwhitneyu

    res = mannwhitneyu(real, synthetic, alternative="two-sided")
    return {"U": _finite(res.statistic), "p": _finite(res.pvalue)}


def reader_metrics(pairs: Sequence[tuple[str, Rating]]) -> dict:
    """Confusion counts, accuracy/sensitivity/specificity with Wilson intervals, the binomial test of accuracy
    against chance, and quality/confidence by true class, for (truth, rating) pairs."""
    from scipy.stats import binomtest

    count = {(t, c): sum(1 for truth, r in pairs if truth == t and r.call == c) for t in CLASSES for c in CLASSES}
    tp, fn = count["synthetic", "synthetic"], count["synthetic", "real"]
    fp, tn = count["real", "synthetic"], count["real", "real"]
    n = len(pairs)
    by = {t: [r for truth, r in pairs if truth == t] for t in CLASSES}
    return {
        "n": n, "confusion": {"tp": tp, "fn": fn, "fp": fp, "tn": tn},
        "accuracy": proportion(tp + tn, n), "sensitivity": proportion(tp, tp + fn),
        "specificity": proportion(tn, tn + fp),
        "accuracy_vs_chance_p": _finite(binomtest(tp + tn, n, 0.5).pvalue) if n else None,
        "quality": {**{t: describe([r.quality for r in by[t]]) for t in CLASSES},
                    "mann_whitney": mann_whitney([r.quality for r in by["real"]], [r.quality for r in by["synthetic"]])},
        "confidence": {t: describe([r.confidence for r in by[t]]) for t in CLASSES},
    }


def score_study(study_root: str | os.PathLike, key: str | os.PathLike | None = None) -> dict:
    """Every reader's ratings (``ratings/*.csv``) against the key; per reader and pooled."""
    study = load_study(study_root)
    truth = load_key(key if key is not None else study.root / "key" / "key.csv", study)
    files = sorted((study.root / "ratings").glob("*.csv"))
    per_reader = {f.stem: read_ratings(f, study.cases) for f in files}
    per_reader = {name: r for name, r in per_reader.items() if r}
    if not per_reader:
        raise MRSynthError("no ratings yet (ratings/<reader>.csv): nothing to score", str(study.root))
    readers = {name: {"rated": len(r), "of": len(study.cases), **reader_metrics([(truth[c], x) for c, x in r.items()])}
               for name, r in per_reader.items()}
    pooled = reader_metrics([(truth[c], x) for r in per_reader.values() for c, x in r.items()])
    return {"study_id": study.study_id, "mode": study.mode, "cases": len(study.cases),
            "truth_counts": {t: sum(v == t for v in truth.values()) for t in CLASSES},
            "readers": readers, "pooled": pooled}


# --- report -------------------------------------------------------------------------------------------
def _prop(p: dict) -> str:
    if p["value"] is None:
        return "—"
    lo, hi = p["ci95"]
    return f"{p['value']:.3f} ({lo:.3f}–{hi:.3f}; {p['k']}/{p['n']})"


def _pval(p: float | None) -> str:
    return "—" if p is None else "< 0.001" if p < 0.001 else f"{p:.3f}"


def _mean(d: dict) -> str:
    if d["mean"] is None:
        return "—"
    return f"{d['mean']:.2f}" + (f" ± {d['sd']:.2f}" if d["sd"] is not None else "") + f" (n={d['n']})"


def markdown(result: dict) -> str:
    tc = result["truth_counts"]
    unit = "axial slices" if result["mode"] == "slice" else "volumes"
    lines = [f"# Reader study report (study `{result['study_id']}`)", "",
             f"{result['cases']} cases ({unit}): {tc['real']} real, {tc['synthetic']} synthetic; "
             f"{len(result['readers'])} reader{'s' * (len(result['readers']) != 1)}. Synthetic is the positive "
             "class: sensitivity = synthetic cases called synthetic, specificity = real cases called real.", "",
             "| reader | rated | accuracy (95% CI) | sensitivity (95% CI) | specificity (95% CI) | accuracy vs chance, p |"
             " quality real | quality synthetic | Mann–Whitney U, p | confidence real | confidence synthetic |",
             "|---" * 11 + "|"]
    rows = [(name, f"{m['rated']}/{m['of']}", m) for name, m in result["readers"].items()]
    rows.append(("**all readers (pooled)**", str(result["pooled"]["n"]), result["pooled"]))
    for name, rated, m in rows:
        q, mw = m["quality"], m["quality"]["mann_whitney"]
        u = "—" if mw["U"] is None else f"{mw['U']:g}, {_pval(mw['p'])}"
        lines.append(f"| {name} | {rated} | {_prop(m['accuracy'])} | {_prop(m['sensitivity'])} | "
                     f"{_prop(m['specificity'])} | {_pval(m['accuracy_vs_chance_p'])} | {_mean(q['real'])} | "
                     f"{_mean(q['synthetic'])} | {u} | {_mean(m['confidence']['real'])} | "
                     f"{_mean(m['confidence']['synthetic'])} |")
    c = result["pooled"]["confusion"]
    lines += ["", "Pooled confusion matrix (rows: truth, columns: the readers' call):", "",
              "| truth \\ call | real | synthetic |", "|---|---|---|",
              f"| real | {c['tn']} | {c['fp']} |", f"| synthetic | {c['fn']} | {c['tp']} |", "",
              "Intervals: Wilson score, 95%. Accuracy vs chance: exact two-sided binomial test against 0.5. "
              "Quality (1 = worst … 5 = best) of real vs synthetic cases: two-sided Mann–Whitney U test (U counts "
              "the pairs where the real case scored higher; ties one half). Pooled rows count every rating as "
              "independent (one reader's ratings, or slices of one volume, are not): descriptive only.", ""]
    return "\n".join(lines)


def plot_png(result: dict) -> bytes | None:
    """Quality by class per reader (mean ± sd) and the pooled confusion matrix; None without matplotlib."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return None
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    FigureCanvasAgg(fig)
    ax, cm_ax = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.6, 1]})
    groups = [*result["readers"].items(), ("pooled", result["pooled"])]
    x = np.arange(len(groups))
    for k, (t, colour) in enumerate((("real", "tab:blue"), ("synthetic", "tab:orange"))):
        stats = [m["quality"][t] for _, m in groups]
        ax.bar(x + (k - 0.5) * 0.38, [s["mean"] or 0 for s in stats], 0.38, color=colour, label=t, capsize=3,
               yerr=[s["sd"] or 0 for s in stats])
    ax.set_xticks(x, [f"{name}\nacc. {m['accuracy']['value']:.2f}" for name, m in groups])
    ax.set_ylim(0, 5.5)
    ax.set_ylabel("quality score (mean ± sd; 1–5)")
    ax.set_title("Quality by true class")
    ax.legend(loc="upper right", fontsize=8)
    c = result["pooled"]["confusion"]
    grid = np.array([[c["tn"], c["fp"]], [c["fn"], c["tp"]]])
    cm_ax.imshow(grid, cmap="Blues", vmin=0, vmax=max(1, int(grid.max())))
    for (r, col), v in np.ndenumerate(grid):
        share = v / max(1, grid[r].sum())
        cm_ax.text(col, r, f"{v}\n({share:.0%} of row)", ha="center", va="center",
                   color="white" if v > 0.6 * grid.max() else "black")
    cm_ax.set_xticks([0, 1], ["real", "synthetic"])
    cm_ax.set_yticks([0, 1], ["real", "synthetic"])
    cm_ax.set_xlabel("call")
    cm_ax.set_ylabel("truth")
    cm_ax.set_title("Pooled confusion matrix")
    fig.suptitle(f"Reader study {result['study_id']}: {result['cases']} cases")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def write_report(result: dict, out: str | os.PathLike) -> list[Path]:
    """reader-study.md, reader-study.json and reader-study.png (with matplotlib) in ``out``, atomically."""
    from .io import write_bytes_atomic

    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    text = markdown(result)
    png = plot_png(result)
    if png is None:
        text += "\n(reader-study.png not written: matplotlib is not installed)\n"
    files = [write_bytes_atomic((json.dumps(result, indent=2, allow_nan=False) + "\n").encode("utf-8"),
                                folder / "reader-study.json"),
             write_bytes_atomic(text.encode("utf-8"), folder / "reader-study.md")]
    if png is not None:
        files.append(write_bytes_atomic(png, folder / "reader-study.png"))
    return files
