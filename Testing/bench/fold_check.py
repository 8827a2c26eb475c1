"""Analysis used in the README: one run on one held-out real subject: raw, +histogram matching to the truth,
reference style; vs the true-histogram baseline. Usage: python Testing/bench/fold_check.py RUN [SUBJECT]"""
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

run = Path(sys.argv[1])
subj = sys.argv[2] if len(sys.argv) > 2 else 'TCGA-FG-6692'
model, cfg = load_run_model(run)
eng = TorchBackend(None, cfg['model'], run_settings(run, model.cfg.context, calibrate=False), device='cpu',
                  model=model)  # the run's raw output
vols = {c: read_volume(f'../shared/data/real/{subj}/{c}.nii.gz') for c in ('T1','T1Gd','T2','FLAIR')}
m = derive_mask([v.array for v in vols.values()])
norm = {c: normalize(v.array, m) for c, v in vols.items()}
g = {'raw': [], 'hm': [], 'refstyle': []}
for tgt in ('T1','T1Gd','T2','FLAIR'):
    inp = {c: v for c, v in vols.items() if c != tgt}
    p = synthesize(inp, tgt, engine=eng).array
    pr = synthesize(inp, tgt, engine=eng, style_reference=vols[tgt], style_alpha=1.0).array
    base = max(evaluate_arrays(histogram_match(norm[s], norm[tgt], m), vols[tgt].array, m)['PSNR'] for s in inp)
    a = evaluate_arrays(p, vols[tgt].array, m)['PSNR']
    b = evaluate_arrays(histogram_match(p, norm[tgt], m), vols[tgt].array, m)['PSNR']
    c = evaluate_arrays(histogram_match(pr, norm[tgt], m), vols[tgt].array, m)['PSNR']
    print(f'{tgt:6s} raw {a:6.2f}  +HM {b:6.2f}  refstyle+HM {c:6.2f}  baseline {base:6.2f}')
    g['raw'].append(a - base)
    g['hm'].append(b - base)
    g['refstyle'].append(c - base)
print({k: round(float(np.mean(v)), 2) for k, v in g.items()})
