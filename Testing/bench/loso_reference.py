"""Analysis used in the README: the validation-fold model with the *other* real subject's scan of the target
contrast as style reference + histogram matching (no leak), vs the baselines; "model alone" is calibrated with
the fold run's intensity templates when it has them (as the shipped pipeline). Run from the repository root:
python Testing/bench/loso_reference.py [FOLD_RUN_HOLDING_OUT_FG-6692 FOLD_RUN_HOLDING_OUT_DU-7294]"""
import json
import sys
from pathlib import Path

import numpy as np

from mrsynth_train.templates import run_engine
from MRSynthLib.evaluation import evaluate_arrays, histogram_match
from MRSynthLib.io import read_volume
from MRSynthLib.preprocess import derive_mask, normalize
from MRSynthLib.synthesis import synthesize

fold_a, fold_b = sys.argv[1:3] if len(sys.argv) > 2 else ('runs/model/foldA', 'runs/model/foldB')
res = {}
for run, test, other in ((fold_a, 'TCGA-FG-6692', 'TCGA-DU-7294'), (fold_b, 'TCGA-DU-7294', 'TCGA-FG-6692')):
    eng = run_engine(Path(run))  # calibrated with the run's templates, as shipped
    vols = {c: read_volume(f'../shared/data/real/{test}/{c}.nii.gz') for c in ('T1','T1Gd','T2','FLAIR')}
    refs = {c: read_volume(f'../shared/data/real/{other}/{c}.nii.gz') for c in ('T1','T1Gd','T2','FLAIR')}
    m = derive_mask([v.array for v in vols.values()])
    norm = {c: normalize(v.array, m) for c, v in vols.items()}
    for tgt in vols:
        inp = {c: v for c, v in vols.items() if c != tgt}
        p = synthesize(inp, tgt, engine=eng, style_reference=refs[tgt], style_alpha=1.0, match_histogram=True).array
        mm = evaluate_arrays(p, vols[tgt].array, m)
        plain = evaluate_arrays(synthesize(inp, tgt, engine=eng).array, vols[tgt].array, m)  # no reference at all
        base = {s: evaluate_arrays(histogram_match(norm[s], norm[tgt], m), vols[tgt].array, m)['PSNR'] for s in inp}
        # the same information for the baseline: a source matched to the OTHER subject's target histogram
        rm = derive_mask([refs[tgt].array])
        other_hist = {s: evaluate_arrays(np.where(m, np.interp(norm[s], np.quantile(norm[s][m], np.linspace(0,1,1001)) + np.arange(1001)*1e-9, np.quantile(normalize(refs[tgt].array, rm)[rm], np.linspace(0,1,1001))), 0), vols[tgt].array, m)['PSNR'] for s in inp}
        res[f'{test}/{tgt}'] = {'model_ref': mm, 'model_plain': plain, 'baseline_true_best': max(base.values()), 'baseline_other_best': max(other_hist.values())}
        print(test, tgt, round(mm['PSNR'],2), 'SSIM', round(mm['SSIM'],3), 'base(true hist)', round(max(base.values()),2), 'base(other subj hist)', round(max(other_hist.values()),2))
json.dump(res, open(Path(fold_a).parent / 'loso_reference.json', 'w'), indent=1)
g1 = np.mean([r['model_ref']['PSNR'] - r['baseline_true_best'] for r in res.values()])
g2 = np.mean([r['model_ref']['PSNR'] - r['baseline_other_best'] for r in res.values()])
g3 = np.mean([r['model_plain']['PSNR'] - r['baseline_other_best'] for r in res.values()])
print('model + reference histogram: gain vs true-hist baseline', round(g1,2), 'gain vs same-info baseline', round(g2,2))
print('model alone (no reference): gain vs a source matched to the other subject\'s histogram', round(g3,2))
