"""``mrsynth demo``: the whole job on a simulated subject with the embedded default model.

Two results: the target's mean style, calibrated to the tone the inputs imply (no information about the
missing scan; :mod:`MRSynthLib.calibration`), and the recommended
workflow when a scan of the missing contrast from *another* subject with the same protocol exists —
that scan as style reference with histogram matching (only its intensity distribution is used).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from . import orientation
from .evaluation import evaluate_arrays
from .io import write_bytes_atomic, write_volume
from .montage import montage_png, stack_png
from .phantom import simulate_subject
from .preprocess import normalize
from .synthesis import synthesize

DEMO_INPUTS = ("T1", "T1Gd", "T2")
DEMO_TARGET = "FLAIR"


def run_demo(out: Path, seed: int = 7, backend: str = "onnx", device: str = "auto", progress=None,
             shape: tuple[int, int, int] = (144, 176, 144)) -> dict:
    """Simulate → write inputs and truth → synthesize FLAIR → write synthetic, montage, metrics.
    ``progress(done, total, message) -> bool`` follows the mean-style synthesis (the CLI's bar)."""
    subject = simulate_subject(seed, shape=shape, lesion=True)  # first: a missing nilearn leaves no folder
    out.mkdir(parents=True, exist_ok=True)
    for name, vol in subject.volumes.items():
        tag = "truth" if name == DEMO_TARGET else ("input" if name in DEMO_INPUTS else "notused")
        write_volume(vol, out / f"sim_{name}_{tag}.nii.gz", overwrite=True)
    write_volume(subject.mask, out / "sim_brainmask.nii.gz", overwrite=True)
    inputs = {c: subject.volumes[c] for c in DEMO_INPUTS}
    reference = simulate_subject(seed + 1, shape=shape, lesion=True, contrasts=(DEMO_TARGET,)).volumes[DEMO_TARGET]
    write_volume(reference, out / f"other_subject_{DEMO_TARGET}_reference.nii.gz", overwrite=True)
    mean_style = synthesize(inputs, DEMO_TARGET, backend=backend, device=device, mask=subject.mask,
                            progress=progress)
    pred = synthesize(inputs, DEMO_TARGET, backend=backend, device=device, mask=subject.mask,
                      style_reference=reference, style_alpha=1.0, match_histogram=True)
    write_volume(mean_style, out / f"sim_{DEMO_TARGET}_SYNTHETIC_meanstyle.nii.gz", overwrite=True)
    write_volume(pred, out / f"sim_{DEMO_TARGET}_SYNTHETIC.nii.gz", overwrite=True)
    truth = subject.volumes[DEMO_TARGET]
    mask = subject.mask.array > 0
    metrics = evaluate_arrays(pred.array, truth.array, mask, mutual_information=True)
    metrics_mean = evaluate_arrays(mean_style.array, truth.array, mask, mutual_information=True)
    canon = lambda a: orientation.to_canonical(truth.with_array(a))  # noqa: E731
    cm = canon(mask)
    z = int(np.argmax(cm.reshape(cm.shape[0], -1).sum(1))) + 8
    t_n = canon(normalize(truth.array, mask))[z]
    rows = []
    for name, vol in (("ref. matched", pred), ("calibrated", mean_style)):
        p_n = canon(normalize(vol.array, mask))[z]
        panels = [(c, canon(normalize(subject.volumes[c].array, mask))[z]) for c in DEMO_INPUTS]
        panels += [(f"SYNTH. {name}", p_n), (f"{DEMO_TARGET} truth", t_n)]
        rows.append(montage_png(panels, out / f".montage-{len(rows)}.png", error=np.abs(p_n - t_n)))
    stack_png(rows, out / "montage.png")
    for r in rows:
        r.unlink()
    report = {"inputs": list(DEMO_INPUTS), "target": DEMO_TARGET, "model": pred.metadata.get("MRSynth.Model"),
              "metrics": metrics, "metrics_mean_style": metrics_mean,
              "style_reference": f"{DEMO_TARGET} of another simulated subject (seed {seed + 1}), histogram only",
              "protocol": subject.protocol,
              "files": sorted(p.name for p in out.iterdir() if not p.name.startswith("."))}
    write_bytes_atomic(json.dumps(report, indent=2).encode(), out / "metrics.json")
    return report
