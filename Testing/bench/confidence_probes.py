"""Probes for the uncertainty map beyond ``validate-confidence``'s candidates (docs/confidence.md, "Tried"):
on each site-fold run's held-out subjects (every 3→1 task, every 3rd brain slice, the product's pipeline),
how well do these rank the true |error| (Spearman ρ per task, mean per target; top-10 % / median)?

- ``cycle``: each input re-synthesized from the synthetic target and the other inputs; mean |difference|
  from the acquired input (where the model cannot reproduce what it was given);
- ``style-spread`` / ``style-dev``: the generator run with the style codes of 4 subjects from the other
  sites (α 1); SD of those outputs after mapping each onto the output's histogram (their disagreement
  beyond tone) / mean |difference| from the output (tone included);
- ``gbm``: a gradient-boosted model of log |error| on level, edge strength, distance to the brain's edge,
  local SD, cycle, style spread and the inputs' intensities, fitted on the OTHER sites' voxels;
- ``levelfit``: the shipped error model (mean |error| per output level on the other sites), for reference.

    python Testing/bench/confidence_probes.py --fold SITE=runs/v4c/fold-SITE ... --out runs/confidence-probes
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "training"))
TARGETS = ("T1", "T1Gd", "T2", "FLAIR")
FEATURES = ("level", "edge", "dist", "lstd", "cycle", "style-spread", "style-dev")


def task_features(engine, subject, inputs, target, refs, codes) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    from scipy.ndimage import distance_transform_edt, gaussian_filter

    from mrsynth_train.confidence_validation import edge_strength
    from mrsynth_train.confidence_variants import without
    from MRSynthLib import orientation
    from MRSynthLib.contrasts import CONTRASTS
    from MRSynthLib.postprocess import output_mapping, quantile_map
    from MRSynthLib.synthesis import encode_reference_style, prepare, run_slices, style_code

    p = prepare({c: subject.volumes[c] for c in inputs})
    sl = [int(i) for i in np.flatnonzero(p.mask.any(axis=(1, 2)))[::3]]
    raw = run_slices(engine, p, style_code(engine, target), indices=sl)
    chosen = np.zeros(p.mask.shape, bool)
    chosen[sl] = True
    m = p.mask & chosen
    q = np.quantile(raw[m], np.linspace(0, 1, 1001))
    out = output_mapping(engine, p, target).apply(raw, m, 0.0, src_q=q)
    ev = orientation.to_canonical(p.reference.with_array(subject.mask)) & chosen
    truth = orientation.to_canonical(subject.volumes[target])
    level = out / (np.percentile(out[ev], 99.5) or 1.0)
    err = np.abs(np.clip(level, 0, 1) - np.clip(truth / (np.percentile(truth[ev], 99.5) or 1.0), 0, 1))
    in_plane = (0, 2, 2)
    f = {"level": level, "edge": edge_strength(level, m),  # as validate-confidence's "edge"
         "dist": -np.stack([distance_transform_edt(z) for z in p.mask]),
         "lstd": np.sqrt(np.maximum(gaussian_filter(level ** 2, in_plane) - gaussian_filter(level, in_plane) ** 2, 0))}
    cycle = np.zeros_like(level)
    for c in inputs:  # c again, from the synthetic target and the other inputs
        q2 = without(p, c)
        stack, available = q2.stack.copy(), q2.available.copy()
        stack[CONTRASTS.index(target)], available[CONTRASTS.index(target)] = raw, 1.0
        again = run_slices(engine, replace(q2, stack=stack, available=available, inputs=(*q2.inputs, target)),
                           style_code(engine, c), indices=sl)
        cycle += np.abs(again - p.stack[CONTRASTS.index(c)]) / len(inputs)
    f["cycle"] = cycle
    styled = []
    for ref in refs:
        if (id(engine), ref.name) not in codes:
            codes[id(engine), ref.name] = encode_reference_style(engine, ref.volumes[target])
        s = run_slices(engine, p, style_code(engine, target, codes[id(engine), ref.name], alpha=1.0), indices=sl)
        styled.append(s / (np.percentile(s[ev], 99.5) or 1.0))
    ref_q = np.quantile(level[ev], np.linspace(0, 1, 1001))
    f["style-spread"] = np.stack([level, *(quantile_map(s, ev, ref_q) for s in styled)]).std(axis=0)
    f["style-dev"] = np.mean([np.abs(s - level) for s in styled], axis=0)
    for c in ("T1", "T1Gd", "T2", "FLAIR"):
        f[f"input-{c}"] = p.stack[CONTRASTS.index(c)] if c in inputs else np.full(level.shape, -1.0, np.float32)
    return err[ev], {k: v[ev].astype(np.float32) for k, v in f.items()}


def other_site_refs(subjects, subject, target, n=4):
    """Up to ``n`` subjects with ``target`` from sites other than the subject's, round-robin over sites."""
    by_site: dict[str, list] = {}
    for s in subjects:
        if s.site != subject.site and target in s.volumes:
            by_site.setdefault(s.site, []).append(s)
    got = []
    while len(got) < n and any(by_site.values()):
        for queue in by_site.values():
            if queue and len(got) < n:
                got.append(queue.pop(0))
    return got


def score(tasks: list[dict]) -> dict[str, dict[str, tuple[float, float]]]:
    from sklearn.ensemble import HistGradientBoostingRegressor

    from mrsynth_train.confidence_report import LEVEL_BINS
    from MRSynthLib import confidence_metrics as cm

    maps: dict[str, list[np.ndarray]] = {k: [t["f"][k] for t in tasks] for k in FEATURES}
    cell = [np.clip(np.digitize(t["f"]["level"], LEVEL_BINS) - 1, 0, LEVEL_BINS.size - 2) for t in tasks]
    maps["levelfit"], maps["gbm"] = [None] * len(tasks), [None] * len(tasks)
    names = [*FEATURES, "input-T1", "input-T1Gd", "input-T2", "input-FLAIR"]
    design = [np.stack([t["f"][k] for k in names], axis=1) for t in tasks]
    for site in sorted({t["site"] for t in tasks}):
        train = [i for i, t in enumerate(tasks) if t["site"] != site]
        model = HistGradientBoostingRegressor(max_iter=200, learning_rate=0.05, min_samples_leaf=200, random_state=0)
        model.fit(np.concatenate([design[i][::4] for i in train]),
                  np.concatenate([np.log(tasks[i]["err"][::4] + 0.01) for i in train]))
        for i, t in enumerate(tasks):
            if t["site"] != site:
                continue
            maps["gbm"][i] = model.predict(design[i])
            same = [j for j in train if tasks[j]["target"] == t["target"]] or train
            cells, errs = np.concatenate([cell[j] for j in same]), np.concatenate([tasks[j]["err"] for j in same])
            table = np.bincount(cells, errs, LEVEL_BINS.size - 1) / np.maximum(np.bincount(cells, None, LEVEL_BINS.size - 1), 1)
            maps["levelfit"][i] = table[cell[i]]
    got: dict[str, dict[str, tuple[float, float]]] = {}
    for name, per_task in maps.items():
        for target in TARGETS:
            idx = [i for i, t in enumerate(tasks) if t["target"] == target]
            if idx:
                got.setdefault(name, {})[target] = (
                    float(np.mean([cm.spearman(per_task[i], tasks[i]["err"]) for i in idx])),
                    float(np.mean([cm.top_ratio(per_task[i], tasks[i]["err"]) for i in idx])))
    return got


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "real"))
    ap.add_argument("--fold", action="append", required=True, help="SITE=RUN (a run trained without SITE)")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    import torch

    from mrsynth_train.confidence_validation import interleaved
    from mrsynth_train.site_validation import load_subjects
    from mrsynth_train.templates import run_engine

    torch.set_num_threads(2)
    folds = dict(f.split("=", 1) for f in args.fold)
    subjects = [s for s in load_subjects(Path(args.data)) if s.site in folds]
    engines, codes, tasks = {}, {}, []
    rng = np.random.default_rng(0)
    for subject, inputs, target in interleaved(subjects):
        engine = engines.setdefault(subject.site, run_engine(Path(folds[subject.site])))
        err, f = task_features(engine, subject, inputs, target, other_site_refs(subjects, subject, target), codes)
        pick = rng.choice(err.size, size=min(20000, err.size), replace=False)
        tasks.append({"site": subject.site, "target": target, "err": err[pick], "f": {k: v[pick] for k, v in f.items()}})
        print(f"{subject.name} {'+'.join(inputs)} → {target}", flush=True)
    result = score(tasks)
    lines = ["| map | " + " | ".join(f"{t} ρ (top-10 % / median)" for t in TARGETS) + " |", "|---" * 5 + "|"]
    lines += [f"| {name} | " + " | ".join(f"{v[t][0]:.2f} ({v[t][1]:.2f})" if t in v else "–" for t in TARGETS) + " |"
              for name, v in result.items()]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "probes.md").write_text("\n".join(lines) + "\n")
    (out / "probes.json").write_text(json.dumps(result, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
