"""Analysis used in the README: a monotone intensity calibration fitted on the training subject
(prediction → truth, 100 quantile bins, made non-decreasing), applied to the held-out subject.
Usage: python Testing/bench/calibration_check.py RUN TRAINING_SUBJECT HELD_OUT_SUBJECT"""
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

run, train_s, test_s = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
model, cfg = load_run_model(run)
eng = TorchBackend(None, cfg['model'], run_settings(run, model.cfg.context, calibrate=False), device='cpu',
                  model=model)  # the run's raw output


def load(s):
    vols = {c: read_volume(f'../shared/data/real/{s}/{c}.nii.gz') for c in ('T1', 'T1Gd', 'T2', 'FLAIR')}
    return vols, derive_mask([v.array for v in vols.values()])


tv, tm = load(train_s)
hv, hm = load(test_s)
norm = {c: normalize(v.array, hm) for c, v in hv.items()}
gains = {'raw': [], 'calibrated': []}
for tgt in ('T1', 'T1Gd', 'T2', 'FLAIR'):
    x = synthesize({c: v for c, v in tv.items() if c != tgt}, tgt, engine=eng).array[tm]
    y = normalize(tv[tgt].array, tm)[tm]
    edges = np.quantile(x, np.linspace(0, 1, 101))
    idx = np.clip(np.searchsorted(edges, x) - 1, 0, 99)
    cx = np.array([x[idx == i].mean() for i in range(100)])
    cy = np.maximum.accumulate(np.array([y[idx == i].mean() for i in range(100)]))
    p = synthesize({c: v for c, v in hv.items() if c != tgt}, tgt, engine=eng).array
    pc = np.where(hm, np.interp(p, cx, cy), 0)
    base = max(evaluate_arrays(histogram_match(norm[s], norm[tgt], hm), hv[tgt].array, hm)['PSNR']
               for s in hv if s != tgt)
    a, b = (evaluate_arrays(v, hv[tgt].array, hm)['PSNR'] for v in (p, pc))
    print(f'{tgt:6s} raw {a:6.2f}  calibrated {b:6.2f}  baseline {base:6.2f}')
    gains['raw'].append(a - base)
    gains['calibrated'].append(b - base)
print({k: round(float(np.mean(v)), 2) for k, v in gains.items()})
