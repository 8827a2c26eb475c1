"""Make the README's reader-study example: a real study, rated by SCRIPTED readers (not radiologists).

Real: the acquired FLAIR of four real subjects of ``../shared/data/real`` (two TCGA-LGG, one BraTS 2018 CBICA,
one Kirby21). Synthetic: the shipped default model's FLAIR of the same subjects, from all their other
contrasts. ``mrsynth reader-study build`` with 3 axial slices per volume (24 cases), two scripted readers —
``scripted-coin`` (coin-flip calls, random scores) and ``scripted-sharpness`` (an automatic observer that calls
the smoother half of the cases synthetic; see ``scripted_readers.sharpness``) — then ``mrsynth reader-study
score``. The report goes to ``docs/reader-study-example.md`` and its plot to
``Resources/Screenshots/reader-study-example.png``; the study itself stays in WORK.

    .venv/bin/python Testing/make_reader_study_example.py [REAL_ROOT] [WORK] [--folds runs/v4c]

``--folds DIR``: synthesize each subject with ``DIR/fold-<its site>`` (a site-fold run that never saw the
subject's site, as the product runs it) instead of the default model, which may have trained on them.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # scripted_readers beside this file

from scripted_readers import coin, edge_energy, rate, sharpness  # noqa: E402

from MRSynthLib.cli import main  # noqa: E402
from MRSynthLib.io import read_volume, write_volume  # noqa: E402
from MRSynthLib.reader_session import ReaderSession  # noqa: E402
from MRSynthLib.synthesis import synthesize  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SUBJECTS = ("TCGA-DU-7294", "TCGA-FG-6692", "BraTS18-CBICA-AAB", "Kirby21-113")
TARGET = "FLAIR"
SEED = 0
SLICES = 3


def run(argv: list[str]) -> None:
    print("$ mrsynth " + " ".join(argv), flush=True)
    if main(argv) != 0:
        raise SystemExit(f"mrsynth {argv[0]} {argv[1]} failed")


def fold_engine(folds: Path | None, subject: str):
    """The site-fold run for ``subject`` (None without ``--folds``: the default model)."""
    if folds is None:
        return None
    sys.path.insert(0, str(ROOT / "training"))
    from mrsynth_train.sites import site_of
    from mrsynth_train.templates import run_engine

    return run_engine(folds / f"fold-{site_of(subject)}")


def make(real_root: Path, work: Path, folds: Path | None = None) -> Path:
    real, synth = work / "real", work / "synthetic"
    for folder in (real, synth):
        folder.mkdir(parents=True, exist_ok=True)
    for subject in SUBJECTS:
        shutil.copy(real_root / subject / f"{TARGET}.nii.gz", real / f"{subject}_{TARGET}.nii.gz")
        out = synth / f"{subject}_{TARGET}_synthetic.nii.gz"
        if not out.exists():
            inputs = {}
            for f in sorted((real_root / subject).glob("*.nii.gz")):
                contrast = f.name.split(".")[0]
                if contrast not in (TARGET, "tumour"):  # tumour.nii.gz is a label, not a contrast
                    inputs[contrast] = read_volume(f)
            t = time.monotonic()
            engine = fold_engine(folds, subject)
            write_volume(synthesize(inputs, TARGET, engine=engine, device="cpu"), out)
            print(f"synthesized {subject} {TARGET} from {'+'.join(inputs)} ({time.monotonic() - t:.0f} s)", flush=True)
    study = work / "study"
    run(["reader-study", "build", "--real", str(real), "--synthetic", str(synth), "--out", str(study),
         "--slices", str(SLICES), "--seed", str(SEED), "--force", "--quiet"])
    rate(study, "scripted-coin", coin(seed=1))
    observer = ReaderSession(study, "scripted-sharpness")
    rate(study, "scripted-sharpness", sharpness({c: edge_energy(observer, c) for c in observer.cases}))
    run(["reader-study", "score", str(study), "--out", str(work / "report")])
    return work / "report"


def publish(report: Path, folds: Path | None = None) -> None:
    text = (report / "reader-study.md").read_text(encoding="utf-8")
    made_by = (f"the site-fold runs `{folds}/fold-<SITE>` (each trained without that subject's site, run as the "
               "product runs the default)" if folds else "the shipped default model")
    seen = "" if folds else " The default model may have trained on these subjects (`docs/models.md`)."
    intro = ("> **Scripted ratings, not radiologists.** Made by `Testing/make_reader_study_example.py`: the acquired "
             f"{TARGET} of {len(SUBJECTS)} real subjects ({', '.join(SUBJECTS)}) and the synthetic "
             f"{TARGET} of the same subjects (from their other contrasts) made by {made_by}, {SLICES} axial slices of each "
             f"(`--slices {SLICES} --seed {SEED}`). `scripted-coin` flips a coin and draws its scores at random; "
             "`scripted-sharpness` is an automatic observer that sees only the blinded images and calls the smoother "
             "half synthetic (edge energy below the study's median). The numbers show what the report holds, not how "
             f"well radiologists tell MRSynth's images from acquired ones.{seen}\n\n![reader study example](../Resources/Screenshots/reader-study-example.png)\n\n")
    title, _, body = text.partition("\n\n")
    (ROOT / "docs" / "reader-study-example.md").write_text(f"{title}\n\n{intro}{body}", encoding="utf-8")
    shutil.copy(report / "reader-study.png", ROOT / "Resources" / "Screenshots" / "reader-study-example.png")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("real_root", nargs="?", default=str(ROOT.parent / "shared" / "data" / "real"))
    ap.add_argument("work", nargs="?", default=str(ROOT / "runs" / "reader-study-example"))
    ap.add_argument("--folds", default=None, help="a folder of site-fold runs fold-<SITE>")
    args = ap.parse_args()
    folds = Path(args.folds) if args.folds else None
    publish(make(Path(args.real_root), Path(args.work), folds), folds)
