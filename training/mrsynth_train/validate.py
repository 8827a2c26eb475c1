"""Whole-volume validation on real subjects: every 3→1 task, against histogram matching given the
true target histogram (a deliberately strong baseline: it knows the answer's intensity distribution).

Reported per target: the model alone (no information about the target; calibrated to the inputs' tone
curve when the run has intensity templates, as the exported model is; also uncalibrated), the model given the *same*
information as the baseline (its output histogram-matched to the true target histogram), and the
baseline for each source, the best source (chosen with hindsight) and the mean over sources."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from MRSynthLib import orientation
from MRSynthLib.evaluation import evaluate_arrays, histogram_match
from MRSynthLib.io import read_volume, write_bytes_atomic
from MRSynthLib.montage import montage_png, stack_png
from MRSynthLib.preprocess import derive_mask, normalize
from MRSynthLib.synthesis import synthesize

from .subjects import find_subject_files


def validate_subject(engine, folder: Path, png: Path | None = None) -> dict:
    """Per target: model metrics, histogram-matching metrics per source, best baseline, PSNR gain."""
    vols = {c: read_volume(p) for c, p in find_subject_files(folder).items()}
    mask = derive_mask([v.array for v in vols.values()])
    norm = {c: normalize(v.array, mask) for c, v in vols.items()}
    results, rows = {}, []
    for target in vols:
        inputs = {c: v for c, v in vols.items() if c != target}
        pred = synthesize(inputs, target, engine=engine).array
        model = evaluate_arrays(pred, vols[target].array, mask)
        raw = (evaluate_arrays(synthesize(inputs, target, engine=engine, calibrate=False).array,
                               vols[target].array, mask) if engine.intensity_templates else model)
        model_hm = evaluate_arrays(histogram_match(pred, norm[target], mask), vols[target].array, mask)
        baselines = {src: evaluate_arrays(histogram_match(norm[src], norm[target], mask), vols[target].array, mask)
                     for src in inputs}
        best_src = max(baselines, key=lambda s: baselines[s]["PSNR"])
        mean_base = float(np.mean([b["PSNR"] for b in baselines.values()]))
        results[target] = {"model": model, "model_uncalibrated": raw, "model_histmatched": model_hm, "histmatch": baselines,
                           "best_baseline": best_src, "mean_baseline_psnr": mean_base,
                           "psnr_gain_db": model["PSNR"] - baselines[best_src]["PSNR"],
                           "psnr_gain_uncalibrated_db": raw["PSNR"] - baselines[best_src]["PSNR"],
                           "psnr_gain_equal_info_db": model_hm["PSNR"] - baselines[best_src]["PSNR"],
                           "psnr_gain_vs_mean_source_db": model["PSNR"] - mean_base}
        if png is not None:
            ref = vols[target]
            canon = lambda a, ref=ref: orientation.to_canonical(ref.with_array(a))  # noqa: E731
            cm = canon(mask)
            z = int(np.argmax(cm.reshape(cm.shape[0], -1).sum(1)))
            p_n, t_n = canon(normalize(pred, mask))[z], canon(norm[target])[z]
            panels = [(c, canon(norm[c])[z]) for c in inputs] + [(f"{target} synthetic", p_n), (f"{target} truth", t_n)]
            row = png.with_name(f".{png.stem}-{target}.png")
            rows.append(montage_png(panels, row, error=np.abs(p_n - t_n)))
    if png is not None and rows:
        stack_png(rows, png)
        for r in rows:
            r.unlink()
    avg = lambda key: float(np.mean([r[key] for r in results.values()]))  # noqa: E731
    return {"subject": folder.name, "targets": results, "mean_psnr_gain_db": avg("psnr_gain_db"),
            "mean_psnr_gain_uncalibrated_db": avg("psnr_gain_uncalibrated_db"),
            "mean_psnr_gain_equal_info_db": avg("psnr_gain_equal_info_db"),
            "mean_psnr_gain_vs_mean_source_db": avg("psnr_gain_vs_mean_source_db"),
            "mean_model_psnr": float(np.mean([r["model"]["PSNR"] for r in results.values()])),
            "mean_baseline_psnr": float(np.mean([r["histmatch"][r["best_baseline"]]["PSNR"] for r in results.values()]))}


def validate_run(run: Path, data: Path, subjects: list[str], out: Path | None = None) -> dict:
    from .templates import run_engine

    engine = run_engine(run)
    out = out or run
    out.mkdir(parents=True, exist_ok=True)
    report = {s: validate_subject(engine, data / s, out / f"validation-{s}.png") for s in subjects}
    (out / "validation.json").write_text(json.dumps(report, indent=1))
    return report


LOSO_PROTOCOL = ("leave-one-real-subject-out; each fold model trained on the other real subject + simulated "
                 "subjects; whole-volume 3→1 for each of the four targets; model output calibrated with the fold "
                 "run's own intensity templates (training subject only); MRSynthLib.evaluation protocol; "
                 "baseline = histogram matching of a source to the TRUE target histogram, best source chosen "
                 "with hindsight")


def combine_folds(folds: dict[str, dict]) -> dict:
    """One leave-one-subject-out report from per-subject fold reports (the model card's `validation`)."""
    if not folds:
        raise ValueError("no fold reports to combine")
    # reports made before calibration existed: their model output *was* uncalibrated
    mean = lambda key: float(np.mean([f.get(key, f.get("mean_psnr_gain_db")) for f in folds.values()]))  # noqa: E731
    targets = sorted({t for f in folds.values() for t in f["targets"]})
    per_target = {}
    for t in targets:
        rows = [f["targets"][t] for f in folds.values() if t in f["targets"]]
        per_target[t] = {m: float(np.mean([r["model"][m] for r in rows])) for m in ("PSNR", "SSIM", "MAE")}
        per_target[t]["baseline_best_PSNR"] = float(np.mean([r["histmatch"][r["best_baseline"]]["PSNR"] for r in rows]))
        per_target[t]["model_uncalibrated_PSNR"] = float(np.mean([r.get("model_uncalibrated", r["model"])["PSNR"]
                                                                 for r in rows]))
        per_target[t]["model_histmatched_PSNR"] = float(np.mean([r["model_histmatched"]["PSNR"] for r in rows]))
    keys = ("mean_psnr_gain_db", "mean_psnr_gain_uncalibrated_db", "mean_psnr_gain_equal_info_db", "mean_psnr_gain_vs_mean_source_db",
            "mean_model_psnr", "mean_baseline_psnr")
    return {"protocol": LOSO_PROTOCOL, **{k: mean(k) for k in keys},
            "per_target_mean_over_folds": per_target, "folds": folds}


def validate_loso(final_run: Path, data: Path, fold_runs: dict[str, Path]) -> dict:
    """Validate each fold run on the subject it held out; write the combined report into the final run,
    where `mrsynth-train export` puts it into the model card."""
    folds = {}
    for subject, run in fold_runs.items():
        folds[subject] = validate_run(run, data, [subject])[subject]
    report = combine_folds(folds)
    write_bytes_atomic(json.dumps(report, indent=1).encode("utf-8"), final_run / "validation.json")
    return report
