"""Analysis used in the README: does the output's intensity distribution follow the style code?

For one run and one held-out real subject, per target (3→1): PSNR with the target's mean style and with
the style code of the *true* target scan, the true-histogram baseline (best source), and the median of
each prediction and of the truth after the protocol's own-p99.5 normalization.
Usage: python Testing/bench/distribution_check.py RUN SUBJECT"""
import sys
from pathlib import Path

import numpy as np

from mrsynth_train.runs import load_run_model
from mrsynth_train.templates import run_settings
from MRSynthLib.backends.torch_backend import TorchBackend
from MRSynthLib.evaluation import evaluate_arrays, histogram_match
from MRSynthLib.io import read_volume
from MRSynthLib.preprocess import derive_mask, normalize
from MRSynthLib.synthesis import synthesize

run, subj = Path(sys.argv[1]), sys.argv[2]
model, cfg = load_run_model(run)
eng = TorchBackend(None, cfg['model'], run_settings(run, model.cfg.context, calibrate=False), device='cpu',
                  model=model)  # the run's raw output
vols = {c: read_volume(f'../shared/data/real/{subj}/{c}.nii.gz') for c in ('T1', 'T1Gd', 'T2', 'FLAIR')}
m = derive_mask([v.array for v in vols.values()])
norm = {c: normalize(v.array, m) for c, v in vols.items()}
gains = []
for tgt in vols:
    inp = {c: v for c, v in vols.items() if c != tgt}
    base = max(evaluate_arrays(histogram_match(norm[s], norm[tgt], m), vols[tgt].array, m)['PSNR'] for s in inp)
    mean_style = synthesize(inp, tgt, engine=eng).array
    true_style = synthesize(inp, tgt, engine=eng, style_reference=vols[tgt], style_alpha=1.0).array
    a = evaluate_arrays(mean_style, vols[tgt].array, m)['PSNR']
    b = evaluate_arrays(true_style, vols[tgt].array, m)['PSNR']
    med = [float(np.median(normalize(x, m)[m])) for x in (mean_style, true_style)] + [float(np.median(norm[tgt][m]))]
    print(f'{tgt:6s} PSNR mean-style {a:6.2f}  true-style {b:6.2f}  baseline {base:6.2f}  '
          f'median mean-style/true-style/truth {med[0]:.2f} {med[1]:.2f} {med[2]:.2f}')
    gains.append((a - base, b - base))
g = np.mean(gains, axis=0)
print(f'mean gain vs baseline: mean-style {g[0]:.2f}, true-style {g[1]:.2f}')
