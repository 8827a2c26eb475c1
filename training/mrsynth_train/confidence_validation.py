"""Validation of the uncertainty map (:mod:`MRSynthLib.confidence`) on real subjects, grouped by site.

For every site a fold run trained without that site's subjects synthesizes each target each held-out
subject has, from all its other contrasts (3→1 style tasks), through the product's pipeline (prepare →
slices → output mapping), once plainly and once per test-time variant (left-right mirror; each input left
out). Each candidate method's SD map is scored against the true |error| (both in the evaluation protocol's
units: each volume divided by its own 99.5th percentile inside the evaluation's brain mask) with
:mod:`MRSynthLib.confidence_metrics`. To fit the run time of a 2-core CPU, every ``stride``-th brain
slice is synthesized and scored (the crop is the whole brain's, so those slices are exactly what a full
run gives). The calibration scale of each target is fitted on the OTHER folds' voxels.

Rows go to ``rows.jsonl`` (resumable), voxel samples to ``samples/``; ``report.md`` + ``sparsification.png``."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from MRSynthLib import confidence_metrics as cm
from MRSynthLib import orientation

from .confidence_report import write_report
from .confidence_variants import spread, variant_passes
from .evaluate import task_list
from .site_validation import RowStore, Subject, load_subjects, task_key

SMOOTH_SIGMA = 1.0  # in-plane Gaussian on the SD map (voxels), the "-smooth" methods
N_SAMPLE = 20000


def smooth_in_plane(sd: np.ndarray, mask: np.ndarray, sigma: float = SMOOTH_SIGMA) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    out = gaussian_filter(sd, sigma=(0, sigma, sigma))  # canonical S, P, L: axial planes
    out[~mask] = 0.0
    return out


def edge_strength(image: np.ndarray, mask: np.ndarray, sigma: float = SMOOTH_SIGMA) -> np.ndarray:
    from scipy.ndimage import gaussian_gradient_magnitude

    out = np.stack([gaussian_gradient_magnitude(z, sigma) for z in image]).astype(np.float32)
    out[~mask] = 0.0
    return out


def task_maps(engine, subject: Subject, inputs: tuple[str, ...], target: str, stride: int
              ) -> tuple[np.ndarray, dict[str, np.ndarray], float]:
    """(|error| on the scored voxels, method → SD on them, seconds per generator pass)."""
    from MRSynthLib.postprocess import output_mapping
    from MRSynthLib.synthesis import prepare, run_slices, run_slices_with_scale, style_code

    prepared = prepare({c: subject.volumes[c] for c in inputs})
    style = style_code(engine, target)
    slices = np.flatnonzero(prepared.mask.any(axis=(1, 2)))[::stride]
    times = []

    def run(p) -> np.ndarray:
        t = time.perf_counter()
        out = run_slices(engine, p, style, indices=[int(i) for i in slices])
        times.append(time.perf_counter() - t)
        return out

    chosen = np.zeros(prepared.mask.shape, bool)
    chosen[slices] = True
    m = prepared.mask & chosen
    scale = None
    if getattr(engine, "has_scale_head", False):  # the network's own Laplace scale, from the same pass
        t = time.perf_counter()
        raw, scale = run_slices_with_scale(engine, prepared, style, indices=[int(i) for i in slices])
        times.append(time.perf_counter() - t)
    else:
        raw = run(prepared)
    flip = variant_passes("flip", prepared, run)
    drop = variant_passes("dropout", prepared, run)
    mapping = output_mapping(engine, prepared, target)
    q = np.quantile(raw[m], np.linspace(0.0, 1.0, 1001))
    out, flip, drop = (mapping.apply(raw, m, 0.0, src_q=q), [mapping.apply(v, m, 0.0, src_q=q) for v in flip],
                       [mapping.apply(v, m, 0.0, src_q=q) for v in drop])
    ref = prepared.reference
    ev = orientation.to_canonical(ref.with_array(subject.mask)) & chosen  # the evaluation's brain mask
    truth = orientation.to_canonical(subject.volumes[target])
    scale_p = float(np.percentile(out[ev], 99.5)) or 1.0
    scale_t = float(np.percentile(truth[ev], 99.5)) or 1.0
    err = np.abs(np.clip(out / scale_p, 0, 1) - np.clip(truth / scale_t, 0, 1))
    sds = {"flip": spread(out, flip, m), "both": spread(out, flip + drop, m)}
    if drop:
        sds["dropout"] = spread(out, drop, m)
    sds["flip-smooth"] = smooth_in_plane(sds["flip"], m)
    sds["both-smooth"] = smooth_in_plane(sds["both"], m)
    sds["edge"] = edge_strength(out, m)  # baseline: errors gather at edges (blur, misregistration)
    sds["level"] = out.copy()  # baseline: absolute errors grow with the intensity
    if scale is not None:
        sds["head"] = mapping.apply_scale(raw, scale, m, 0.0)
    return err[ev], {k: v[ev] / scale_p for k, v in sds.items()}, float(np.mean(times))


def score_task(err: np.ndarray, sd: np.ndarray) -> dict:
    curve, oracle = cm.sparsification(sd, err)
    return {"rho": cm.spearman(sd, err), "ause": cm.ause(curve, oracle),
            "ause_random": cm.ause(np.full_like(curve, curve[0]), oracle), "top10": cm.top_ratio(sd, err),
            "curve": (curve / curve[0]).round(5).tolist(), "oracle": (oracle / curve[0]).round(5).tolist(),
            "mae": float(err.mean())}


def interleaved(subjects: list[Subject]) -> list[tuple[Subject, tuple[str, ...], str]]:
    """Every 3→1 task, round-robin over sites (a partial run still covers every site)."""
    by_site: dict[str, list] = {}
    for s in subjects:
        by_site.setdefault(s.site, []).extend((s, i, t) for i, t in task_list(list(s.volumes), "3to1"))
    out, queues = [], list(by_site.values())
    while any(queues):
        for q in queues:
            if q:
                out.append(q.pop(0))
    return out


def run_confidence_validation(data: Path, out: Path, folds: dict[str, Path], stride: int = 3,
                              deadline: float | None = None) -> str:
    """Score what is missing (until ``deadline``, a ``time.time()``), then write the report; returns it."""
    import torch

    from .templates import run_engine

    torch.set_num_threads(2)
    subjects = [s for s in load_subjects(data) if s.site in folds]
    store = RowStore(out / "rows.jsonl")
    engines: dict[str, object] = {}
    for subject, inputs, target in interleaved(subjects):
        if deadline is not None and time.time() > deadline:
            break
        key = task_key("confidence", subject.name, inputs, target)
        if key in store:
            continue
        if subject.site not in engines:
            engines[subject.site] = run_engine(folds[subject.site])
        err, sds, seconds = task_maps(engines[subject.site], subject, inputs, target, stride)
        rng = np.random.default_rng(0)
        pick = rng.choice(err.size, size=min(N_SAMPLE, err.size), replace=False)
        (out / "samples").mkdir(parents=True, exist_ok=True)
        np.savez_compressed(out / "samples" / f"{key.replace('|', '__')}.npz", err=err[pick],
                            **{k.replace("-", "_"): v[pick] for k, v in sds.items()})
        store.add({"key": key, "site": subject.site, "subject": subject.name, "inputs": "+".join(inputs),
                   "target": target, "seconds_per_pass": seconds, "voxels": int(err.size),
                   "methods": {k: score_task(err, v) for k, v in sds.items()}})
        print(f"{key}: {seconds:.1f} s/pass, rho flip {store.rows[key]['methods']['flip']['rho']:.3f}", flush=True)
    fitted_on = "the site-fold runs " + ", ".join(str(run) for _, run in sorted(folds.items()))
    return write_report(list(RowStore(store.path).rows.values()), out, fitted_on=fitted_on)
