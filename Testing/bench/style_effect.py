"""Analysis used in the README: how much the style walk (style_target, alpha = 1) changes a run's FLAIR
on the demo subject. Usage: python Testing/bench/style_effect.py RUN_FOLDER"""
import sys
from pathlib import Path

import numpy as np

from mrsynth_train.runs import load_run_model
from mrsynth_train.templates import run_settings
from MRSynthLib.backends.torch_backend import TorchBackend
from MRSynthLib.phantom import simulate_subject
from MRSynthLib.synthesis import synthesize

model, cfg = load_run_model(Path(sys.argv[1]))
eng = TorchBackend(None, cfg['model'], run_settings(Path(sys.argv[1]), model.cfg.context, calibrate=False), device='cpu',
                  model=model)  # the run's raw output
s = simulate_subject(7, shape=(96, 112, 96))
inp = {c: s.volumes[c] for c in ('T1', 'T1Gd', 'T2')}
m = s.mask.array > 0
a0 = synthesize(inp, 'FLAIR', engine=eng, mask=s.mask).array
for other in ('T1', 'T2', 'PD'):
    a1 = synthesize(inp, 'FLAIR', engine=eng, mask=s.mask, style_target=other, style_alpha=1.0).array
    print(sys.argv[1], 'FLAIR->', other, 'mean |change| in brain', round(float(np.abs(a1 - a0)[m].mean()), 4))
