"""The README figure: inputs | synthetic FLAIR at several style-slider positions | truth | error map.

Uses the shipped default model on a simulated subject it never saw (seed 7, the demo subject). The slider
walks from FLAIR's mean style (α = 0) to PD's (α = 1; PD is not among the inputs), the MIST-GAN-style
contrast transition.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]


def main() -> int:
    from MRSynthLib import orientation
    from MRSynthLib.montage import montage_png, stack_png
    from MRSynthLib.phantom import simulate_subject
    from MRSynthLib.preprocess import normalize
    from MRSynthLib.registry import load_backend, resolve_model
    from MRSynthLib.synthesis import synthesize

    out = ROOT / "Resources" / "Screenshots"
    out.mkdir(parents=True, exist_ok=True)
    subject = simulate_subject(7, shape=(144, 176, 144), lesion=True)
    engine = load_backend(resolve_model(None), "onnx", "cpu")
    mask = subject.mask.array > 0
    inputs = {c: subject.volumes[c] for c in ("T1", "T1Gd", "T2")}
    truth = subject.volumes["FLAIR"]
    canon = lambda a: orientation.to_canonical(truth.with_array(a))  # noqa: E731
    cm = canon(mask)
    z = int(np.argmax(cm.reshape(cm.shape[0], -1).sum(1))) + 8
    panels_in = [(c, canon(normalize(v.array, mask))[z]) for c, v in inputs.items()]
    walk = []
    for alpha in (0.0, 0.5, 1.0):
        pred = synthesize(inputs, "FLAIR", engine=engine, mask=subject.mask, style_target="PD", style_alpha=alpha)
        walk.append((f"SYNTHETIC a={alpha:g}", canon(normalize(pred.array, mask))[z]))
    t = canon(normalize(truth.array, mask))[z]
    row1 = montage_png([*panels_in, ("FLAIR truth", t)], out / ".row1.png")
    row2 = montage_png([*walk], out / ".row2.png", error=np.abs(walk[0][1] - t))
    stack_png([row1, row2], out / "mrsynth-montage.png")
    row1.unlink()
    row2.unlink()
    print(out / "mrsynth-montage.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
