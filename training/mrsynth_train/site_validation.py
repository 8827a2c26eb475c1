"""Cross-validation grouped by site: how a model does on patients from a scanner it never saw.

For every site group (:mod:`mrsynth_train.sites`) a fold run trained without that site's subjects is
scored on each of them, on every task the subject supports: each available target from every non-empty
subset of its other contrasts (3→1, 2→1, 1→1), whole volumes, through the product's own pipeline
(prepare → slices → output mapping). Beside it, on the same tasks: models to compare (e.g. the shipped
v2), histogram matching to the TRUE target histogram (best input, with hindsight) and a voxel-wise linear
regression fitted on the fold's training subjects. Scores: the project's protocol
(:mod:`MRSynthLib.evaluation`) on every task, the BraSyn challenge's (:mod:`MRSynthLib.evaluation_brasyn`)
on the 3→1 tasks (BraSyn's setting: one contrast missing).

Rows are appended to ``rows.jsonl`` as they are computed, so a killed validation resumes where it
stopped and folds can be added as their runs finish; ``site_report`` turns the rows into tables."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from MRSynthLib.evaluation import evaluate_arrays, histogram_match
from MRSynthLib.evaluation_brasyn import brasyn_metrics
from MRSynthLib.io import read_volume
from MRSynthLib.preprocess import derive_mask, normalize
from MRSynthLib.volume import Volume

from .baselines import fit_linear, histogram_match_all, predict_linear
from .evaluate import task_list
from .site_report import PARTIAL
from .sites import site_of
from .subjects import read_subject_volumes, selected_units

PROTOCOL = ("site-grouped cross-validation: each fold run trained on every real subject outside one site group "
            "(+ simulated subjects), scored on that site's subjects; every task a subject supports (each available "
            "target from every non-empty subset of its other contrasts), whole volumes, the product's pipeline; "
            "MRSynthLib.evaluation protocol (p99.5 inside the brain, masked MAE/PSNR, 3D SSIM inside the brain); "
            "BraSyn protocol on the 3→1 tasks")
TUMOUR_FILE = "tumour.nii.gz"


@dataclass
class Subject:
    name: str
    site: str
    volumes: dict[str, Volume]
    mask: np.ndarray  # brain mask from all the subject's contrasts (the evaluation mask)
    normalized: dict[str, np.ndarray]
    tumour: np.ndarray | None


def load_subjects(root: Path) -> list[Subject]:
    """Every subject under ``root`` with ≥ 2 contrasts, normalized, with its tumour label when present."""
    out = []
    for name, folder in selected_units(root):
        vols = read_subject_volumes(folder)
        if len(vols) < 2:
            continue
        mask = derive_mask([v.array for v in vols.values()])
        tumour = read_volume(folder / TUMOUR_FILE).array > 0.5 if (folder / TUMOUR_FILE).exists() else None
        out.append(Subject(name, site_of(name), vols, mask, {c: normalize(v.array, mask) for c, v in vols.items()},
                           tumour))
    return out


def task_key(method: str, subject: str, inputs: tuple[str, ...], target: str) -> str:
    return f"{method}|{subject}|{'+'.join(inputs)}|{target}"


class RowStore:
    """``rows.jsonl``: one scored (method, subject, task) per line, appended as it is computed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: dict[str, dict] = {}
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    row = json.loads(line)
                    self.rows[row["key"]] = row

    def __contains__(self, key: str) -> bool:
        return key in self.rows

    def add(self, row: dict) -> None:
        self.rows[row["key"]] = row
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")


def score(pred: np.ndarray, subject: Subject, target: str, brasyn: bool) -> dict:
    """Our protocol (plus MAE inside the tumour label) and, for 3→1 tasks, BraSyn's."""
    truth = subject.volumes[target].array
    out = {k: v for k, v in evaluate_arrays(pred, truth, subject.mask).items() if k != "voxels"}
    if subject.tumour is not None and (subject.tumour & subject.mask).any():
        lesion = subject.tumour & subject.mask
        p, t = normalize(pred, subject.mask), subject.normalized[target]
        out["MAE_tumour"] = float(np.abs(p[lesion] - t[lesion]).mean())
        out["MAE_healthy"] = float(np.abs(p[subject.mask & ~lesion] - t[subject.mask & ~lesion]).mean())
    if brasyn:
        out.update({f"brasyn_{k}": v for k, v in brasyn_metrics(pred, truth, subject.mask, subject.tumour).items()})
    return out


def engine_predictions(engine, subject: Subject, inputs: tuple[str, ...], target: str,
                       calibrations: dict[str, bool], partial: list[str] = ()) -> dict[str, np.ndarray]:
    """One generator pass through the product's pipeline, then each requested output mapping
    (name → calibrate on/off): the calibrated and uncalibrated outputs share the generator's work.
    ``partial``: names ``model-cal-<w>``, calibration at strength w."""
    from MRSynthLib.orientation import from_canonical
    from MRSynthLib.postprocess import output_mapping
    from MRSynthLib.synthesis import prepare, run_slices, style_code

    named = {c: subject.volumes[c] for c in inputs}
    prepared = prepare(named)
    raw = run_slices(engine, prepared, style_code(engine, target))
    out = {}
    for name, calibrate in calibrations.items():
        mapped = output_mapping(engine, prepared, target, calibrate=calibrate).apply(raw, prepared.mask, 0.0)
        out[name] = from_canonical(mapped, prepared.reference)
    if partial:
        from MRSynthLib.postprocess import quantile_map

        cal = output_mapping(engine, prepared, target, calibrate=True).calibrated
        for name in partial:
            w = float(name.removeprefix(PARTIAL))
            mapped = raw if cal is None else quantile_map(raw, prepared.mask, cal, w)
            out[name] = from_canonical(mapped, prepared.reference)
    return out


# a diagnostic, scored only when named in ``only`` (``--only model-oracle-tone``): the fold model's uncalibrated
# output mapped onto the TRUE target histogram, as the histmatch-best baseline is. Beside that baseline it
# separates anatomy from tone: how much a perfect tone (intensity histogram) would give the model.
ORACLE_TONE = "model-oracle-tone"
# calibration at part strength w (the output's quantiles moved a fraction w of the way to the calibrated ones),
# a blend of the network's own tone and the templates': the report chooses the product's strength among them
PARTIAL_STRENGTHS = (0.25, 0.5, 0.75)  # rows named PARTIAL + w (site_report.PARTIAL)


def validate_sites(subjects: list[Subject], store: RowStore, fold_engines: dict[str, object],
                   compare: dict[str, object], progress: bool = True, only: set[str] | None = None) -> None:
    """Score every missing (method, subject, task) row into ``store`` (see the module docstring).

    ``fold_engines``: site → engine of the run trained without that site (methods ``model`` and
    ``model-uncalibrated``); ``compare``: name → engine used as shipped (calibrated as its card says);
    ``only``: score just these methods (e.g. a second process adding the fold rows beside a running one)."""
    from tqdm import tqdm

    jobs = [(s, inputs, target) for s in subjects for inputs, target in task_list(list(s.volumes), "all-subsets")]
    linear_fits: dict[tuple, np.ndarray | None] = {}
    bar = tqdm(jobs, desc="validate-sites", unit="task", disable=not progress)
    for subject, inputs, target in bar:
        bar.set_postfix_str(f"{subject.name} {'+'.join(inputs)}→{target}")
        brasyn = len(inputs) == len(subject.volumes) - 1
        base = {"site": subject.site, "subject": subject.name, "inputs": "+".join(inputs), "target": target,
                "n_inputs": len(inputs), "three_to_one": brasyn}

        def add(method: str, pred: np.ndarray, extra: dict | None = None,
                subject=subject, inputs=inputs, target=target, base=base, brasyn=brasyn) -> None:
            key = task_key(method, subject.name, inputs, target)
            store.add({"key": key, "method": method, **base, **(extra or {}), **score(pred, subject, target, brasyn)})

        def todo(method: str, subject=subject, inputs=inputs, target=target) -> bool:
            return (only is None or method in only) and task_key(method, subject.name, inputs, target) not in store

        if todo("histmatch-best"):
            matched = histogram_match_all({c: subject.normalized[c] for c in (*inputs, target)}, target, subject.mask)
            scored = {c: evaluate_arrays(matched[c], subject.volumes[target].array, subject.mask)["PSNR"] for c in inputs}
            best = max(scored, key=scored.get)
            add("histmatch-best", matched[best], {"source": best})
        if todo("linear"):
            fit_key = (subject.site, inputs, target)
            if fit_key not in linear_fits:
                train = [(s.normalized, s.mask) for s in subjects if s.site != subject.site]
                linear_fits[fit_key] = fit_linear(train, inputs, target)
            coef = linear_fits[fit_key]
            if coef is not None:
                add("linear", predict_linear(coef, subject.normalized, inputs, subject.mask))
        engine = fold_engines.get(subject.site)
        # one generator pass: calibrated, uncalibrated and at part strength (the report chooses the strength)
        partial = [f"{PARTIAL}{w}" for w in PARTIAL_STRENGTHS if todo(f"{PARTIAL}{w}")]
        calibrations = {n: c for n, c in (("model", True), ("model-uncalibrated", False)) if todo(n)}
        if engine is not None and (calibrations or partial):
            for name, pred in engine_predictions(engine, subject, inputs, target, calibrations, partial).items():
                add(name, pred)
        if engine is not None and only is not None and todo(ORACLE_TONE):
            raw = engine_predictions(engine, subject, inputs, target, {"raw": False})["raw"]
            add(ORACLE_TONE, histogram_match(raw, subject.normalized[target], subject.mask))
        for name, eng in compare.items():
            if todo(name):
                add(name, engine_predictions(eng, subject, inputs, target, {name: True})[name])


def fold_engine(run: Path):
    """A fold run's network as the product runs it (torch, CPU, the run's intensity templates)."""
    from .templates import run_engine

    return run_engine(run)


def trained_on(spec: str) -> list[str]:
    """The real subjects a registered model or card says it trained on (its card's training data)."""
    from MRSynthLib.registry import resolve_model

    return list(((resolve_model(spec).card.get("training") or {}).get("data") or {}).get("real") or [])


def compare_engine(spec: str):
    """A registered model id or card path, loaded as the product loads it (ONNX Runtime, card settings)."""
    from MRSynthLib.registry import load_backend, resolve_model

    return load_backend(resolve_model(spec), backend="onnx", device="cpu")


def run_site_validation(data: Path, out: Path, folds: dict[str, Path], compare: dict[str, str],
                        final: Path | None = None, progress: bool = True, only: set[str] | None = None) -> dict:
    """Score what is missing, write ``report.json`` and ``report.md`` into ``out``; with ``final``, the
    report also becomes the final run's ``validation.json`` (→ the model card) and the calibration decision
    goes into its intensity templates (``calibrate_targets``), which the engine honours."""
    from MRSynthLib.errors import MRSynthError
    from MRSynthLib.io import write_bytes_atomic

    from .site_report import markdown, summarize
    from .templates import read_templates, write_templates

    subjects = load_subjects(data)
    known = {s.site for s in subjects}
    unknown = sorted(set(folds) - known)
    if unknown:
        raise MRSynthError(f"--fold for unknown site(s) {', '.join(unknown)} (sites here: {', '.join(sorted(known))})",
                           str(data))
    store = RowStore(out / "rows.jsonl")
    validate_sites(subjects, store, {site: fold_engine(run) for site, run in folds.items()},
                   {name: compare_engine(spec) for name, spec in compare.items()}, progress, only)
    store = RowStore(store.path)  # re-read: another process may have added rows (see ``only``)
    report = {"protocol": PROTOCOL, "folds": {site: {"run": str(run), "subjects": sorted(s.name for s in subjects
                                                                                           if s.site == site)}
                                              for site, run in folds.items()},
              **summarize(list(store.rows.values()), {name: trained_on(spec) for name, spec in compare.items()})}
    write_bytes_atomic(json.dumps(report, indent=1).encode("utf-8"), out / "report.json")
    write_bytes_atomic(markdown(report).encode("utf-8"), out / "report.md")
    if final is not None:
        write_bytes_atomic(json.dumps(report, indent=1).encode("utf-8"), final / "validation.json")
        record = read_templates(final)
        if record is not None:
            record["calibrate_targets"] = report["calibrate_targets"]
            if report.get("calibrate_strength") is not None:
                record["calibrate_strength"] = report["calibrate_strength"]
            write_templates(final, record)
    return report
