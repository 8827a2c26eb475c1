"""The README's uncertainty-map figure: one real subject the default model never saw, its synthetic FLAIR,
the uncertainty map and the true |error| on the same colour scale (plus ρ on that subject, printed).

    python Testing/bench/confidence_figure.py [--subject BraTS18-CBICA-AAB] [--model ID]

The default model may have trained on every real subject (v4's final run did): then show a site-fold run
that never saw the subject's site, with the error model of the default's card (``--run`` + ``--error-model``,
e.g. ``--run runs/v4c/fold-BraTS18-CBICA --error-model runs/confidence-v4c/error_model.json``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "real"))
    ap.add_argument("--subject", default="BraTS18-CBICA-AAB")
    ap.add_argument("--target", default="FLAIR")
    ap.add_argument("--model", default=None)
    ap.add_argument("--run", default=None, help="a training run folder (e.g. a site fold) instead of --model")
    ap.add_argument("--error-model", default=None, help="the error model record to use with --run")
    ap.add_argument("--out", default=str(ROOT / "Resources" / "Screenshots" / "mrsynth-confidence.png"))
    args = ap.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy.stats import spearmanr

    from MRSynthLib import orientation
    from MRSynthLib.io import read_volume
    from MRSynthLib.synthesis import synthesize_with_confidence

    folder = Path(args.data) / args.subject
    volumes = {p.name.split(".")[0]: read_volume(p) for p in sorted(folder.glob("*.nii.gz"))
               if p.name.split(".")[0] in ("T1", "T1Gd", "T2", "PD", "FLAIR")}
    truth = volumes.pop(args.target)
    image, sd = synthesize_with_confidence(volumes, args.target, engine=run_engine(args), model=args.model, device="cpu")
    out, sig, ref = (orientation.to_canonical(v) for v in (image, sd, truth))
    brain = sig > 0
    scale_p, scale_t = np.percentile(out[brain], 99.5), np.percentile(ref[brain], 99.5)
    err = np.abs(np.clip(out / scale_p, 0, 1) - np.clip(ref / scale_t, 0, 1))
    unit = sig / scale_p  # the map in the same units as the error (fractions of the 99.5th percentile)
    rho = spearmanr(unit[brain], err[brain]).statistic
    z = int(np.argmax(brain.sum(axis=(1, 2))))  # the axial slice with the most brain
    vmax = float(np.percentile(err[brain], 99))
    fig, axes = plt.subplots(1, 5, figsize=(17, 3.8))
    synthetic = np.clip(out[z] / scale_p, 0, 1)
    panels = [(np.clip(ref[z] / scale_t, 0, 1), f"acquired {args.target}", "gray", 1.0),
              (synthetic, f"SYNTHETIC {args.target}", "gray", 1.0),
              (unit[z] * 1.96, "uncertainty map (1.96 σ)", "inferno", vmax), (err[z], "true |error|", "inferno", vmax)]
    for ax, (arr, title, cmap, top) in zip(axes, panels, strict=False):
        shown = ax.imshow(arr[::-1], cmap=cmap, vmin=0, vmax=top)
        ax.set_title(title)
        ax.axis("off")
    axes[4].imshow(synthetic[::-1], cmap="gray", vmin=0, vmax=1)  # as the panel shows it: the map over the result
    axes[4].imshow(np.ma.masked_where(~brain[z], unit[z] * 1.96)[::-1], cmap="inferno", vmin=0, vmax=vmax, alpha=0.4)
    axes[4].set_title("overlay, as in Slicer")
    axes[4].axis("off")
    fig.colorbar(shown, ax=list(axes[2:]), fraction=0.02, pad=0.02, label="σ · 1.96 and |error| (× 99.5th pct)")
    seen = ", trained without this subject's site" if args.run else ""
    fig.suptitle(f"{args.subject} ({' + '.join(volumes)} → {args.target}, model {image.metadata['MRSynth.Model']}{seen}): "
                 f"voxel ρ(σ, |error|) = {rho:.2f}", fontsize=10)
    fig.savefig(args.out, dpi=80, bbox_inches="tight")
    print(f"{args.out}: rho {rho:.3f}, mean sigma {float(unit[brain].mean()):.3f}, MAE {float(err[brain].mean()):.3f}, "
          f"coverage {float(np.mean(err[brain] <= 1.96 * unit[brain])):.3f}")


def run_engine(args: argparse.Namespace):
    """The ``--run`` folder's network with the ``--error-model`` record, or None (the registry's model)."""
    if args.run is None:
        return None
    import json
    import sys

    sys.path.insert(0, str(ROOT / "training"))
    from mrsynth_train.templates import run_engine as engine_of
    from MRSynthLib.confidence import parse_error_model

    engine = engine_of(Path(args.run))
    if args.error_model:
        raw = json.loads(Path(args.error_model).read_text())
        engine.error_model = parse_error_model(raw, args.error_model)
    return engine


if __name__ == "__main__":
    main()
