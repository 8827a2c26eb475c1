"""Tables and curves of the uncertainty-map validation (:mod:`mrsynth_train.confidence_validation`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from MRSynthLib import confidence_metrics as cm
from MRSynthLib.io import write_bytes_atomic

GOAL_RHO, GOAL_TOP = 0.3, 2.0
MAX_FLAGGED = 1 / 3  # the volume-level warning may fire on at most this share of the validation tasks
LEVEL_WEIGHTS = (0.03, 0.1, 0.3, 1.0, 3.0)  # candidate a of the combined maps SD + a·output
COMBINED = {"flip+level": "flip", "both+level": "both"}  # combined map → its variant SD
LEVEL_BINS = np.linspace(0.0, 1.0, 21)  # output-intensity bins of the fitted error model
# error model (+ a·variant SD, or + a·the scale head's b)
FITTED = {"levelfit": None, "levelfit+flip": "flip", "levelfit+both": "both", "levelfit+head": "head"}
# the scored maps: variant SDs, smoothed in-plane, two no-model baselines (edge strength, output level) and the
# network's own scale head (models with one)
METHODS = ("flip", "dropout", "both", "flip-smooth", "both-smooth", "edge", "level", "head")
# ceilings, not methods: each task's mean |error| per output-intensity bin (× edge-strength quintile) fitted on
# that task's OWN errors — the most an intensity-conditional map could rank if it knew this subject's tone
OWN = {"own-level": False, "own-level×edge": True}
EDGE_QUANTILES = (0.2, 0.4, 0.6, 0.8)


def _samples(out: Path, row: dict, method: str, weight: float | None = None) -> tuple[np.ndarray, np.ndarray] | None:
    """(SD, |error|) voxel samples of a task; a combined method's SD is its variant SD + weight·output."""
    z = _load(out, row)
    if "_sd" in row:
        return row["_sd"], z["err"]
    if method in COMBINED:
        base = COMBINED[method]
        return z[base] + (row.get("weight", 1.0) if weight is None else weight) * z["level"], z["err"]
    name = method.replace("-", "_")
    return (z[name], z["err"]) if name in z else None


def combined_rows(rows: list[dict], out: Path, method: str) -> list[dict]:
    """Rows of a combined method, scored on the voxel samples, its weight chosen on the OTHER folds (the
    weight with the best mean ρ there)."""
    def mean_rho(site: str | None, weight: float) -> float:
        return float(np.mean([cm.spearman(*_samples(out, r, method, weight)) for r in rows if r["site"] != site]))

    got = []
    for site in sorted({r["site"] for r in rows}):
        weight = max(LEVEL_WEIGHTS, key=lambda w, site=site: mean_rho(site, w))
        for r in rows:
            if r["site"] == site:
                sd, err = _samples(out, r, method, weight)
                row = {**r, "weight": weight, "methods": {method: score_samples(err, sd)}}
                got.append(row)
    return got


_LOADED: dict[str, dict] = {}


def _load(out: Path, row: dict) -> dict:
    path = out / "samples" / f"{row['key'].replace('|', '__')}.npz"
    if str(path) not in _LOADED:
        with np.load(path) as z:
            _LOADED[str(path)] = {k: z[k] for k in z.files}
    return _LOADED[str(path)]


def level_table(rows: list[dict], out: Path, target: str | None, held_out: str | None) -> np.ndarray:
    """Mean |error| per output-intensity bin of ``target`` (None: all), on the samples of the folds but
    ``held_out``."""
    lv, er = [], []
    for r in rows:
        if r["site"] != held_out and target in (None, r["target"]):
            z = _load(out, r)
            lv.append(z["level"])
            er.append(z["err"])
    lv, er = np.concatenate(lv), np.concatenate(er)
    idx = np.clip(np.digitize(lv, LEVEL_BINS) - 1, 0, LEVEL_BINS.size - 2)
    overall = float(er.mean())
    return np.array([er[idx == b].mean() if (idx == b).sum() >= 50 else overall for b in range(LEVEL_BINS.size - 1)])


def level_model(table: np.ndarray, level: np.ndarray) -> np.ndarray:
    return table[np.clip(np.digitize(level, LEVEL_BINS) - 1, 0, LEVEL_BINS.size - 2)]


def fitted_rows(rows: list[dict], out: Path, method: str) -> list[dict]:
    """Rows of the intensity-conditional error model (+ a·variant SD), table and a fitted on the OTHER folds;
    each target needs another fold holding it (else the task is left out)."""
    got, tables, weights = [], {}, {}
    if FITTED[method] is not None and not all(FITTED[method] in _load(out, r) for r in rows):
        return []  # a map this run's model has not got (e.g. no scale head)

    def table(target: str, site: str) -> np.ndarray:
        if (target, site) not in tables:
            tables[target, site] = level_table(rows, out, target, site)
        return tables[target, site]

    for r in rows:
        others = [x for x in rows if x["site"] != r["site"]]
        if not any(x["target"] == r["target"] for x in others):
            continue
        z = _load(out, r)
        base = level_model(table(r["target"], r["site"]), z["level"])
        weight = 0.0
        if FITTED[method] is not None:
            def rho(w: float, others=others, r=r) -> float:  # the tables left out r's site too
                return float(np.mean([cm.spearman(level_model(table(x["target"], r["site"]), _load(out, x)["level"])
                                                  + w * _load(out, x)[FITTED[method]], _load(out, x)["err"])
                                      for x in others if any(y["target"] == x["target"] and y["site"] != x["site"]
                                                             and y["site"] != r["site"] for y in rows)] or [0.0]))
            if r["site"] not in weights:
                weights[r["site"]] = max((0.0, *LEVEL_WEIGHTS), key=rho)
            weight = weights[r["site"]]
            base = base + weight * z[FITTED[method]]
        got.append({**r, "weight": weight, "methods": {method: score_samples(z["err"], base)}, "_sd": base})
    return got


def own_table_map(z: dict, with_edge: bool) -> np.ndarray:
    """The task's own mean |error| per cell (intensity bin, × edge quintile), read back at each voxel."""
    cell = np.clip(np.digitize(z["level"], LEVEL_BINS) - 1, 0, LEVEL_BINS.size - 2)
    if with_edge:
        cell = cell * (len(EDGE_QUANTILES) + 1) + np.searchsorted(np.quantile(z["edge"], EDGE_QUANTILES), z["edge"])
    sums, counts = np.bincount(cell, weights=z["err"]), np.bincount(cell)
    return (sums / np.maximum(counts, 1))[cell]


def own_rows(rows: list[dict], out: Path, method: str) -> list[dict]:
    """Rows of a ceiling of :data:`OWN` (in-sample by construction: never a candidate for the product)."""
    got = []
    for r in rows:
        z = _load(out, r)
        sd = own_table_map(z, OWN[method])
        got.append({**r, "weight": 0.0, "methods": {method: score_samples(z["err"], sd)}, "_sd": sd})
    return got


def score_samples(err: np.ndarray, sd: np.ndarray) -> dict:
    curve, oracle = cm.sparsification(sd, err)
    return {"rho": cm.spearman(sd, err), "ause": cm.ause(curve, oracle),
            "ause_random": cm.ause(np.full_like(curve, curve[0]), oracle), "top10": cm.top_ratio(sd, err),
            "curve": (curve / curve[0]).tolist(), "oracle": (oracle / curve[0]).tolist(), "mae": float(err.mean())}


def fitted_scales(rows: list[dict], out: Path, method: str, held_out: str | None = None) -> dict[str, float]:
    """Per target: the scale k with |error| ≤ 1.96·k·SD on 95 % of the pooled voxel samples of the folds
    other than ``held_out`` (None: all folds — the product's constants)."""
    pooled: dict[str, list] = {}
    for r in rows:
        s = _samples(out, r, method)
        if r["site"] != held_out and s is not None:
            pooled.setdefault(r["target"], []).append(s)
    return {t: cm.scale_for_coverage(np.concatenate([a for a, _ in v]), np.concatenate([b for _, b in v]))
            for t, v in pooled.items()}


def summary(rows: list[dict], out: Path, method: str) -> dict[str, dict]:
    """Target → mean/min ρ, AUSE (relative), random AUSE, top-10 % ratio, held-out-fold coverage, n."""
    coverages: dict[str, list[float]] = {}
    for site in sorted({r["site"] for r in rows}):
        scales = fitted_scales(rows, out, method, held_out=site)
        for r in rows:
            s = _samples(out, r, method)
            if r["site"] == site and s is not None and r["target"] in scales:
                coverages.setdefault(r["target"], []).append(cm.coverage(*s, scale=scales[r["target"]]))
    table = {}
    for target in ("T1", "T1Gd", "T2", "FLAIR"):
        got = [r["methods"][method] for r in rows if r["target"] == target and method in r["methods"]]
        if not got:
            continue
        table[target] = {"n": len(got), "rho": np.mean([g["rho"] for g in got]), "rho_min": min(g["rho"] for g in got),
                         "ause": np.mean([g["ause"] for g in got]), "ause_random": np.mean([g["ause_random"] for g in got]),
                         "top10": np.mean([g["top10"] for g in got]), "top10_min": min(g["top10"] for g in got),
                         "coverage": np.mean(coverages[target]) if coverages.get(target) else float("nan")}
    return table


def warning_threshold(fitted: list[dict], scales: dict[str, float]) -> dict:
    """The volume-level warning (issue #15 item 2): each task's mean σ (the levelfit map, its table fitted on
    the other folds, times the target's scale) against its MAE; the threshold on mean σ that best flags the
    tasks in the worst quarter of MAE (Youden's J = sensitivity + specificity - 1), among thresholds that
    flag at most MAX_FLAGGED of the tasks. Chosen in-sample on these tasks: the report says so."""
    mean_sd = np.array([float(np.mean(r["_sd"])) * scales.get(r["target"], 1.0) for r in fitted])
    mae = np.array([r["methods"]["levelfit"]["mae"] for r in fitted])
    bad = mae >= np.quantile(mae, 0.75)
    best = {"threshold": float("inf"), "j": -1.0}
    for t in np.unique(mean_sd):
        flag = mean_sd >= t
        if flag.mean() > MAX_FLAGGED:  # a warning on most results would be ignored
            continue
        sens, spec = flag[bad].mean(), (~flag[~bad]).mean()
        if sens + spec - 1 > best["j"]:
            best = {"threshold": round(float(t), 4), "j": float(sens + spec - 1), "sensitivity": float(sens),
                    "specificity": float(spec), "flagged": int(flag.sum())}
    from scipy.stats import spearmanr

    return {**best, "tasks": len(fitted), "bad_mae_from": float(np.quantile(mae, 0.75)),
            "rho_mean_sd_mae": float(spearmanr(mean_sd, mae).statistic)}


def write_report(rows: list[dict], out: Path, methods: tuple[str, ...] | None = None, fitted_on: str = "") -> str:
    methods = methods or METHODS
    combined = {**{m: combined_rows(rows, out, m) for m in COMBINED}, **{m: fitted_rows(rows, out, m) for m in FITTED},
                **{m: own_rows(rows, out, m) for m in OWN}}
    combined = {m: r for m, r in combined.items() if r}
    lines = ["| method | target | tasks | ρ mean (min) | AUSE / MAE (random) | top-10 % / median (min) | "
             "coverage of 1.96σ |", "|---|---|---|---|---|---|---|"]
    tables = {**{m: summary(rows, out, m) for m in methods}, **{m: summary(r, out, m) for m, r in combined.items()}}
    for m, table in tables.items():
        for t, v in table.items():
            lines.append(f"| {m} | {t} | {v['n']} | {v['rho']:.3f} ({v['rho_min']:.3f}) | {v['ause']:.3f} "
                         f"({v['ause_random']:.3f}) | {v['top10']:.2f} ({v['top10_min']:.2f}) | "
                         f"{100 * v['coverage']:.1f} % |")
    sites = sorted({r["site"] for r in rows})
    per_pass = np.mean([r["seconds_per_pass"] for r in rows]) if rows else float("nan")
    head = [f"Tasks scored: {len(rows)} (sites: {', '.join(sites)}); mean generator pass on the scored slices "
            f"{per_pass:.1f} s.", ""]
    scales = {**{m: fitted_scales(rows, out, m) for m in methods},
              **{m: fitted_scales(r, out, m) for m, r in combined.items()}}
    tail = ["", "own-level, own-level×edge: ceilings, not methods — each task's mean |error| per output-intensity "
            "bin (× edge-strength quintile) fitted on its OWN errors: the most a map of those features could rank "
            "if it knew this subject's tone.", "",
            "Weights a of the combined maps (SD + a·output), chosen on the other folds, per held-out site: "]
    tail += [f"- {m}: " + ", ".join(f"{site} {next(x['weight'] for x in r if x['site'] == site)}" for site in sites)
             for m, r in combined.items() if m not in OWN]
    tail += ["", "Per-target scales fitted on all folds (|error| ≤ 1.96·k·SD on 95 % of the voxels):", ""]
    tail += [f"- {m}: " + ", ".join(f"{t} {k:.2f}" for t, k in sorted(s.items())) for m, s in scales.items()]
    model = {t: level_table(rows, out, t, None).round(4).tolist() for t in sorted({r["target"] for r in rows})}
    model["*"] = level_table(rows, out, None, None).round(4).tolist()
    warn = warning_threshold(combined["levelfit"], scales.get("levelfit", {}))
    tail += ["", f"Volume-level warning: across the {warn['tasks']} tasks the mean σ ranks the task's MAE with "
             f"Spearman ρ {warn['rho_mean_sd_mae']:.2f}; a result is flagged when its mean σ ≥ {warn['threshold']:.3f} "
             f"(chosen in-sample to flag the worst quarter of tasks, at most a third of all, MAE ≥ {warn['bad_mae_from']:.3f}: sensitivity "
             f"{100 * warn['sensitivity']:.0f} %, specificity {100 * warn['specificity']:.0f} %, "
             f"{warn['flagged']} of {warn['tasks']} flagged)."]
    record = {"bins": LEVEL_BINS.tolist(), "error_model": model, "scale_levelfit": scales.get("levelfit", {}),
              "warn_mean_sd": warn["threshold"], "warning": warn, "fitted_on": fitted_on or str(out)}
    write_bytes_atomic(json.dumps(record, indent=1).encode("utf-8"), out / "error_model.json")
    text = "\n".join(head + lines + tail) + "\n"
    write_bytes_atomic(text.encode("utf-8"), out / "report.md")
    merged = {r["key"]: {**r, "methods": dict(r["methods"])} for r in rows}
    for r in (x for rs in combined.values() for x in rs):
        merged[r["key"]]["methods"].update(r["methods"])
    shown = tuple(m for m in (*methods, *combined) if "smooth" not in m and not m.endswith("+level"))
    plot_curves(list(merged.values()), out / "sparsification.png", shown)
    return text


def plot_curves(rows: list[dict], path: Path, methods: tuple[str, ...]) -> None:
    """Mean sparsification curve per target (relative to the MAE), each method against the oracle."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    targets = [t for t in ("T1", "T1Gd", "T2", "FLAIR") if any(r["target"] == t for r in rows)]
    if not targets:
        return
    fig, axes = plt.subplots(1, len(targets), figsize=(4 * len(targets), 3.4), squeeze=False)
    x = 100 * cm.FRACTIONS
    for ax, target in zip(axes[0], targets, strict=True):
        mine = [r for r in rows if r["target"] == target]
        for m in methods:
            curves = [r["methods"][m]["curve"] for r in mine if m in r["methods"]]
            if curves:
                ax.plot(x, np.mean(curves, axis=0), label=m)
        ax.plot(x, np.mean([r["methods"]["flip"]["oracle"] for r in mine], axis=0), "k--", label="oracle")
        ax.axhline(1.0, color="grey", lw=0.8, ls=":", label="random")
        ax.set(title=f"{target} ({len(mine)} tasks)", xlabel="% most uncertain voxels removed",
               ylabel="mean |error| left / MAE")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
