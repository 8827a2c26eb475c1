"""Tables from site-validation rows: per target and per fold, against the baselines, with paired tests.

The product's calibration is decided here, per target, by the validation itself: a target is calibrated
when its calibrated outputs score a higher mean masked PSNR than the uncalibrated ones over all folds'
tasks (``calibrate_targets``); the ``product`` rows are the model's rows under that decision. (The choice
is made on the same rows it is reported on: two options per target, a small optimism.)

When the rows also hold calibration at part strength (``model-cal-<w>``, scored from the same generator
pass), one strength for every target is chosen instead (``calibrate_strength``, among 0, the w's and 1, by
mean masked PSNR over all tasks), and the ``product`` rows are honest about the choice: each held-out
site's rows are those of the strength chosen on the OTHER sites' tasks."""

from __future__ import annotations

import numpy as np

METRICS = ("PSNR", "SSIM", "MAE")
BRASYN = ("brasyn_SSIM", "brasyn_PSNR", "brasyn_SSIM_tumour", "brasyn_SSIM_healthy")
BASELINES = ("histmatch-best", "linear")
PARTIAL = "model-cal-"  # rows of the model calibrated at part strength w: "model-cal-<w>"


def _task(row: dict) -> tuple[str, str, str]:
    return row["subject"], row["inputs"], row["target"]


def by_method(rows: list[dict]) -> dict[str, dict[tuple, dict]]:
    out: dict[str, dict[tuple, dict]] = {}
    for r in rows:
        out.setdefault(r["method"], {})[_task(r)] = r
    return out


def calibration_decision(methods: dict[str, dict[tuple, dict]]) -> dict[str, dict]:
    """Per target: mean PSNR calibrated vs uncalibrated over the tasks both have, and the choice."""
    cal, raw = methods.get("model", {}), methods.get("model-uncalibrated", {})
    out = {}
    for target in sorted({k[2] for k in cal}):
        keys = [k for k in cal if k[2] == target and k in raw]
        if not keys:
            continue
        a, b = (float(np.mean([m[k]["PSNR"] for k in keys])) for m in (cal, raw))
        out[target] = {"calibrated_PSNR": a, "uncalibrated_PSNR": b, "calibrate": a > b, "n": len(keys)}
    return out


def product_rows(methods: dict[str, dict[tuple, dict]], decision: dict[str, dict]) -> dict[tuple, dict]:
    cal, raw = methods.get("model", {}), methods.get("model-uncalibrated", {})
    return {k: (cal if decision.get(k[2], {}).get("calibrate", True) else raw)[k] for k in cal if k in raw}


def strength_rows(methods: dict[str, dict[tuple, dict]]) -> dict[float, dict[tuple, dict]]:
    """Calibration strength → the model's rows at it (0: uncalibrated, 1: fully calibrated)."""
    out = {float(name.removeprefix(PARTIAL)): got for name, got in methods.items() if name.startswith(PARTIAL)}
    if "model-uncalibrated" in methods:
        out[0.0] = methods["model-uncalibrated"]
    if "model" in methods:
        out[1.0] = methods["model"]
    return dict(sorted(out.items()))


def strength_decision(methods: dict[str, dict[tuple, dict]]) -> dict | None:
    """The calibration strength by mean masked PSNR over the tasks every strength has: over all sites (the
    product's) and, per site, over the other sites' tasks (the product rows' honest choice); None when
    the rows hold only full and no calibration (then the per-target decision stands)."""
    by = strength_rows(methods)
    if len(by) < 3:
        return None
    keys = set.intersection(*(set(g) for g in by.values()))
    if not keys:
        return None

    def best(ks: list[tuple]) -> float:
        return max(by, key=lambda w: (np.mean([by[w][k]["PSNR"] for k in ks]), -abs(w - 1.0)))

    site = {k: by[1.0][k]["site"] for k in keys}
    per_site = {s: best([k for k in keys if site[k] != s]) for s in sorted(set(site.values()))}
    return {"strength": best(sorted(keys)), "per_site": per_site, "n": len(keys),
            "mean_PSNR": {str(w): float(np.mean([by[w][k]["PSNR"] for k in keys])) for w in by},
            "mean_SSIM": {str(w): float(np.mean([by[w][k]["SSIM"] for k in keys])) for w in by},
            "_rows": {k: by[per_site[site[k]]][k] for k in keys}}


def _stats(rows: list[dict], metric: str) -> dict:
    vals = [r[metric] for r in rows if metric in r and np.isfinite(r[metric])]
    return {"mean": float(np.mean(vals)), "sd": float(np.std(vals)), "n": len(vals)} if vals else {}


def summarize(rows: list[dict], seen: dict[str, list[str]] | None = None) -> dict:
    """The report: per method overall / per target / per fold, the product's gaps, Wilcoxon tests.

    ``seen``: compared model → the real subjects it trained on. Its rows on them are no cross-site result
    for it, so it is also tested on the other subjects alone (``NAME@unseen``), which is what shipping
    decisions read (:func:`mrsynth_train.export.beats`)."""
    from scipy.stats import wilcoxon

    methods = by_method(rows)
    decision = calibration_decision(methods)
    strength = strength_decision(methods)
    if strength:
        methods["product"] = strength.pop("_rows")
    elif decision:
        methods["product"] = product_rows(methods, decision)
    targets = sorted({k[2] for m in methods.values() for k in m})
    sites = sorted({r["site"] for r in rows})
    table: dict[str, dict] = {}
    for name, got in methods.items():
        rs = list(got.values())
        table[name] = {
            "overall": {m: _stats(rs, m) for m in METRICS},
            "per_target": {t: {m: _stats([r for r in rs if r["target"] == t], m) for m in (*METRICS, "MAE_tumour", "MAE_healthy")}
                           for t in targets},
            "per_fold": {s: {m: _stats([r for r in rs if r["site"] == s], m) for m in METRICS} for s in sites},
            "brasyn_3to1": {t: {m: _stats([r for r in rs if r["target"] == t and r.get("three_to_one")], m)
                                for m in BRASYN} for t in targets},
        }
    tests = {}
    if "product" in methods:
        prod = methods["product"]
        for other in [m for m in (*BASELINES, *sorted(methods)) if m in methods and m not in
                      ("product", "model", "model-uncalibrated") and not m.startswith(PARTIAL)]:
            keys = sorted(set(prod) & set(methods[other]))
            variants = [(other, keys)]
            if (seen or {}).get(other):
                variants.append((f"{other}@unseen", [k for k in keys if k[0] not in set(seen[other])]))
            for label, ks in variants:
                for metric in ("PSNR", "SSIM"):
                    a = np.array([prod[k][metric] for k in ks])
                    b = np.array([methods[other][k][metric] for k in ks])
                    if len(ks) >= 2 and np.any(a != b):
                        tests[f"{label}:{metric}"] = {"n": len(ks), "mean_difference": float((a - b).mean()),
                                                     "p_value": float(wilcoxon(a, b).pvalue)}
    calibrated = list(decision) if strength else [t for t, d in decision.items() if d["calibrate"]]
    return {"methods": table, "calibration": decision, "calibrate_targets": calibrated,
            "calibrate_strength": strength["strength"] if strength else None, "strength": strength,
            "wilcoxon_product_vs": tests, "targets_check": targets_check(table, tests), "sites": sites,
            "compared_models_trained_on": seen or {}}


def targets_check(table: dict, tests: dict | None = None) -> dict:
    """The issue's targets, measured (each a number and whether it is met)."""
    if "product" not in table or "histmatch-best" not in table:
        return {}
    prod, hm = table["product"], table["histmatch-best"]
    out = {"psnr_gain_vs_histmatch_db": prod["overall"]["PSNR"]["mean"] - hm["overall"]["PSNR"]["mean"],
           "ssim_gain_vs_histmatch": prod["overall"]["SSIM"]["mean"] - hm["overall"]["SSIM"]["mean"]}
    out["psnr_goal_met"] = out["psnr_gain_vs_histmatch_db"] >= 1.5
    out["ssim_goal_met"] = out["ssim_gain_vs_histmatch"] >= 0.10
    per_target = {t: prod["per_target"][t]["PSNR"]["mean"] - hm["per_target"][t]["PSNR"]["mean"]
                  for t in prod["per_target"] if prod["per_target"][t]["PSNR"] and hm["per_target"][t]["PSNR"]}
    out["per_target_psnr_gain_db"] = per_target
    out["no_target_below_1db_met"] = all(v >= -1.0 for v in per_target.values())
    for name in table:
        if name.startswith("v2") or name.startswith("mrsynth"):
            out[f"psnr_gain_vs_{name}_db"] = prod["overall"]["PSNR"]["mean"] - table[name]["overall"]["PSNR"]["mean"]
            out[f"psnr_goal_vs_{name}_met"] = out[f"psnr_gain_vs_{name}_db"] >= 1.5
    for key, t in (tests or {}).items():
        if "@unseen:" in key:
            out[f"{key.replace(':', '_')}_gain"] = t["mean_difference"]
    return out


def _cell(s: dict, digits: int) -> str:
    return f"{s['mean']:.{digits}f} ± {s['sd']:.{digits}f}" if s else "–"


def markdown(report: dict) -> str:
    """The README's tables (per target, per fold, BraSyn, tests, targets) from one report."""
    t = report["methods"]
    order = [m for m in ("product", "model", "model-uncalibrated", "histmatch-best", "linear") if m in t]
    order += [m for m in t if m not in order]
    targets = sorted({x for m in t.values() for x in m["per_target"]})
    lines = ["### Per target (our protocol: masked PSNR dB / SSIM, mean ± sd over tasks)", "",
             "| method | " + " | ".join(targets) + " | all |", "|---" * (len(targets) + 2) + "|"]
    for m in order:
        cells = [f"{_cell(t[m]['per_target'][x]['PSNR'], 2)} / {_cell(t[m]['per_target'][x]['SSIM'], 3)}"
                 for x in targets]
        lines.append(f"| {m} | " + " | ".join(cells) + f" | {_cell(t[m]['overall']['PSNR'], 2)} / "
                     f"{_cell(t[m]['overall']['SSIM'], 3)} |")
    sites = report["sites"]
    lines += ["", "### Per fold (held-out site; masked PSNR dB / SSIM)", "",
              "| method | " + " | ".join(sites) + " |", "|---" * (len(sites) + 1) + "|"]
    for m in order:
        cells = [f"{_cell(t[m]['per_fold'][s]['PSNR'], 2)} / {_cell(t[m]['per_fold'][s]['SSIM'], 3)}" for s in sites]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    for name, subjects in report.get("compared_models_trained_on", {}).items():
        if subjects:
            lines += ["", f"{name} trained on {', '.join(subjects)}: its rows there are no unseen-site result; the "
                      f"tests below also compare on the other subjects alone ({name}@unseen)."]
    lines += ["", "### BraSyn protocol, 3→1 tasks (SSIM whole volume / tumour / healthy; PSNR dB)", "",
              "| method | target | SSIM | SSIM tumour | SSIM healthy | PSNR |", "|---|---|---|---|---|---|"]
    for m in order:
        for x in targets:
            b = t[m]["brasyn_3to1"][x]
            if b.get("brasyn_SSIM"):
                lines.append(f"| {m} | {x} | {_cell(b['brasyn_SSIM'], 3)} | {_cell(b['brasyn_SSIM_tumour'], 3)} | "
                             f"{_cell(b['brasyn_SSIM_healthy'], 3)} | {_cell(b['brasyn_PSNR'], 2)} |")
    lines += ["", "### Calibration, decided per target by this validation" if not report.get("strength") else
              "### Calibrated vs uncalibrated per target (for information: one strength, below, decides)", "",
              "| target | calibrated PSNR | uncalibrated PSNR | shipped |", "|---|---|---|---|"]
    for x, d in report["calibration"].items():
        lines.append(f"| {x} | {d['calibrated_PSNR']:.2f} | {d['uncalibrated_PSNR']:.2f} | "
                     f"{'calibrated' if d['calibrate'] else 'uncalibrated'} |")
    if report.get("strength"):
        s = report["strength"]
        lines += ["", f"### Calibration strength, decided by this validation ({s['n']} tasks; every target)", "",
                  "| strength | " + " | ".join(s["mean_PSNR"]) + " |", "|---" * (len(s["mean_PSNR"]) + 1) + "|",
                  "| mean PSNR | " + " | ".join(f"{v:.2f}" for v in s["mean_PSNR"].values()) + " |",
                  "| mean SSIM | " + " | ".join(f"{v:.3f}" for v in s["mean_SSIM"].values()) + " |", "",
                  f"Shipped: **{s['strength']:g}** (above: over all sites). The product rows use, for each held-out "
                  "site, the strength chosen on the other sites: " + ", ".join(f"{k} {v:g}" for k, v in
                                                                                s["per_site"].items()) + "."]
    lines += ["", "### Paired Wilcoxon tests, product vs each", "", "| vs | metric | n | mean difference | p |",
              "|---|---|---|---|---|"]
    for k, v in report["wilcoxon_product_vs"].items():
        other, metric = k.rsplit(":", 1)
        lines.append(f"| {other} | {metric} | {v['n']} | {v['mean_difference']:+.3f} | {v['p_value']:.3g} |")
    if report["targets_check"]:
        lines += ["", "### The issue's targets", ""]
        lines += [f"- {k}: {v if isinstance(v, bool) else _fmt(v)}" for k, v in report["targets_check"].items()]
    return "\n".join(lines) + "\n"


def _fmt(v) -> str:
    if isinstance(v, dict):
        return ", ".join(f"{k} {x:+.2f}" for k, x in v.items())
    return f"{v:+.3f}"
