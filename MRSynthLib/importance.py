"""Which contrast matters? CollaGAN's question asked of the product: every target a subject has is
synthesized from every non-empty subset of its other contrasts and scored against the real target.

Scores follow the project's validation protocol (:mod:`MRSynthLib.evaluation`, with one brain mask per
subject derived from all its contrasts, as ``mrsynth_train.site_validation`` does), so numbers here and in
the site report can be compared. Beside the model, two reference rows per subject and target:

- ``empty``: the empty input subset, needed by Shapley values (v(∅)); the prediction is the brain mask
  filled with a constant, i.e. what is known with no input at all but the brain's outline;
- ``histmatch``: each single input histogram-matched to the TRUE target histogram (a trivial baseline
  chosen with hindsight; :func:`MRSynthLib.evaluation.histogram_match`).

``scores.csv`` is rewritten whole (temp file, then ``os.replace``) after every task, so a killed study
loses at most the task in flight and a rerun scores only what is missing. The contributions and the
report are :mod:`MRSynthLib.importance_report`.
"""

from __future__ import annotations

import csv
import io
import itertools
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .contrasts import CONTRASTS, canonical
from .errors import MRSynthError
from .io import read_volume, write_bytes_atomic

SCORE_FIELDS = ("subject", "target", "inputs", "method", "psnr", "ssim", "mae")
MODEL, EMPTY, HISTMATCH = "model", "empty", "histmatch"
EXTENSIONS = (".nii.gz", ".nii")


@dataclass(frozen=True)
class Task:
    """One row of scores.csv: ``inputs`` in CONTRASTS order (so the first input, whose grid the output
    takes, is always the same contrast for the same subset)."""

    subject: str
    target: str
    inputs: tuple[str, ...]
    method: str

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.subject, self.target, "+".join(self.inputs), self.method)


def subject_files(folder: Path) -> dict[str, Path]:
    """Contrast → file of one subject folder: files named exactly ``<CONTRAST>.nii.gz`` (or ``.nii``);
    anything else (``tumour.nii.gz``, notes) is not a contrast and is ignored."""
    found: dict[str, Path] = {}
    for c in CONTRASTS:
        hits = [folder / f"{c}{ext}" for ext in EXTENSIONS if (folder / f"{c}{ext}").exists()]
        if len(hits) > 1:
            raise MRSynthError(f"{c} is given twice ({hits[0].name} and {hits[1].name}); keep one", str(folder))
        if hits:
            found[c] = hits[0]
    return found


def discover(root: Path, subjects: Iterable[str] | None = None) -> tuple[dict[str, dict[str, Path]], list[str]]:
    """(subject → contrast → file for subjects with ≥ 2 contrasts, names skipped for having fewer).
    Checks only names: nothing is read, so a bad request fails in a moment."""
    if not root.is_dir():
        raise MRSynthError("data root not found (a folder holding one folder per subject)", str(root))
    folders = {p.name: p for p in sorted(root.iterdir()) if p.is_dir() and not p.name.startswith(".")}
    if subjects is not None:
        wanted = list(dict.fromkeys(subjects))
        for name in wanted:
            if name not in folders:
                raise MRSynthError("no such subject folder", str(root / name))
        folders = {name: folders[name] for name in wanted}
    found, skipped = {}, []
    for name, folder in folders.items():
        files = subject_files(folder)
        if len(files) >= 2:
            found[name] = files
        else:
            skipped.append(name)
    if not found:
        raise MRSynthError(f"no subject folder holds two or more contrast files ({', '.join(CONTRASTS)} as "
                           "<CONTRAST>.nii.gz)", str(root))
    return found, skipped


def read_subject(files: dict[str, Path]) -> dict[str, object]:
    """Contrast → Volume; one line naming the file that is unreadable or off the first file's grid
    (voxel-wise scores compare points of the head only on one grid)."""
    vols = {c: read_volume(p) for c, p in files.items()}
    first = next(iter(vols))
    for c, v in vols.items():
        if not v.same_grid(vols[first]):
            raise MRSynthError(f"not on the grid of {files[first].name} (the contrasts of a subject must be "
                               "co-registered on one grid)", str(files[c]))
    return vols


def plan(found: dict[str, dict[str, Path]], target: str | None = None, max_inputs: int | None = None) -> list[Task]:
    """Every task, subject by subject: per target the empty subset, the single-input baselines, then the
    model on every non-empty subset of the other contrasts (at most ``max_inputs`` of them)."""
    tasks = []
    for subject, files in found.items():
        have = [c for c in CONTRASTS if c in files]
        for tgt in have:
            if target is not None and tgt != target:
                continue
            others = [c for c in have if c != tgt]
            top = len(others) if max_inputs is None else min(max_inputs, len(others))
            tasks.append(Task(subject, tgt, (), EMPTY))
            tasks += [Task(subject, tgt, (c,), HISTMATCH) for c in others]
            tasks += [Task(subject, tgt, combo, MODEL) for n in range(1, top + 1)
                      for combo in itertools.combinations(others, n)]
    return tasks


class ScoreFile:
    """``scores.csv``: the rows scored so far, keyed by :attr:`Task.key`; saved whole after each row."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: dict[tuple[str, str, str, str], dict[str, str]] = {}
        if path.exists():
            with path.open(newline="", encoding="utf-8") as fh:
                reader = csv.DictReader(fh)
                if tuple(reader.fieldnames or ()) != SCORE_FIELDS:
                    raise MRSynthError(f"not a scores file of this study (columns {reader.fieldnames}, expected "
                                       f"{', '.join(SCORE_FIELDS)}); move it away or choose another --out", str(path))
                for row in reader:
                    self.rows[(row["subject"], row["target"], row["inputs"], row["method"])] = row

    def __contains__(self, task: Task) -> bool:
        return task.key in self.rows

    def add(self, task: Task, metrics: dict[str, float]) -> None:
        subject, target, inputs, method = task.key
        self.rows[task.key] = {"subject": subject, "target": target, "inputs": inputs, "method": method,
                               **{k: format(metrics[k.upper()], ".8g") for k in ("psnr", "ssim", "mae")}}
        buf = io.StringIO()
        writer = csv.DictWriter(buf, SCORE_FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows.values())
        write_bytes_atomic(buf.getvalue().encode("utf-8"), self.path)


class Scorer:
    """Scores the tasks of one subject: its volumes, evaluation mask and normalized arrays are made once."""

    def __init__(self, volumes: dict, engine_factory) -> None:
        from .preprocess import derive_mask, normalize

        self.volumes = volumes
        self.mask = derive_mask([v.array for v in volumes.values()])  # site validation's evaluation mask
        self.normalized = {c: normalize(v.array, self.mask) for c, v in volumes.items()}
        self.engine_factory = engine_factory

    def prediction(self, task: Task) -> np.ndarray:
        if task.method == EMPTY:
            return self.mask.astype(np.float32)
        if task.method == HISTMATCH:
            from .evaluation import histogram_match

            (source,) = task.inputs
            return histogram_match(self.normalized[source], self.normalized[task.target], self.mask)
        from .synthesis import synthesize

        inputs = {c: self.volumes[c] for c in task.inputs}
        return synthesize(inputs, task.target, engine=self.engine_factory(), progress=None).array

    def score(self, task: Task) -> dict[str, float]:
        from .evaluation import evaluate_arrays

        return evaluate_arrays(self.prediction(task), self.volumes[task.target].array, self.mask)


def run_study(root: Path, out: Path, model: str | None = None, device: str = "auto", target: str | None = None,
              subjects: Iterable[str] | None = None, max_inputs: int | None = None,
              progress: bool = True, report_only: bool = False) -> dict:
    """Score what scores.csv lacks, then write the report; returns a summary (counts, seconds, files).

    Everything that can be refused is refused before anything is written: the root, the subjects, every
    contrast file (read in full, so a truncated file is named now, not an hour in), the model and ``out``.
    ``report_only``: score nothing (and read no image), report the rows already there (a stopped study).
    The report covers the (subject, target) pairs whose every task is scored: a half-done pair would bias
    both the Shapley values and the best/mean over subsets."""
    from tqdm import tqdm

    from .importance_report import write_report
    from .registry import load_backend, resolve_model

    start = time.monotonic()
    tgt = canonical(target) if target else None
    if max_inputs is not None and max_inputs < 1:
        raise MRSynthError(f"--max-inputs must be at least 1, got {max_inputs}")
    found, skipped = discover(root, subjects)
    for files in () if report_only else found.values():
        read_subject(files)
    tasks = plan(found, tgt, max_inputs)
    if not tasks:
        raise MRSynthError(f"no subject has {tgt} and another contrast", str(root))
    bundle = resolve_model(model)
    if out.exists() and not out.is_dir():
        raise MRSynthError("output path is a file; give a folder", str(out))
    store_path = out / "scores.csv"
    store = ScoreFile(store_path)  # reads only: a foreign scores.csv is refused before anything is written
    if report_only and not store.rows:
        raise MRSynthError("no scores to report yet", str(store_path))
    out.mkdir(parents=True, exist_ok=True)
    pending = [] if report_only else [t for t in tasks if t not in store]
    engines: list = []

    def engine():  # loaded once, and only when a model task is pending
        if not engines:
            engines.append(load_backend(bundle, "onnx", device))
        return engines[0]

    bar = tqdm(total=len(tasks), initial=len([t for t in tasks if t in store]), desc="importance", unit="task",
               disable=not progress or not pending, dynamic_ncols=True)
    try:
        for subject in dict.fromkeys(t.subject for t in pending):
            scorer = Scorer(read_subject(found[subject]), engine)
            for task in (t for t in pending if t.subject == subject):
                bar.set_postfix_str(f"{subject} {'+'.join(task.inputs) or '∅'}→{task.target} ({task.method})")
                store.add(task, scorer.score(task))
                bar.update(1)
    finally:
        bar.close()
    groups = {(t.subject, t.target) for t in tasks}
    incomplete = {(t.subject, t.target) for t in tasks if t not in store}
    rows = [store.rows[t.key] for t in tasks if (t.subject, t.target) not in incomplete]
    trained_on = ((bundle.card.get("training") or {}).get("data") or {}).get("real") or []
    files = write_report(rows, out, model_id=bundle.id, left_out=len(incomplete), groups=len(groups),
                         trained_on=[str(s) for s in trained_on])
    done = len([t for t in tasks if t in store])
    return {"tasks": len(tasks), "scored": len(pending), "already": done - len(pending), "missing": len(tasks) - done,
            "subjects": sorted(found), "skipped": skipped, "model": bundle.id,
            "seconds": time.monotonic() - start, "files": [str(store_path), *map(str, files)]}
