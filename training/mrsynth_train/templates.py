"""Intensity templates of a run (``intensity_templates.json``): per-contrast quantiles of the subjects it
trained on, which :mod:`MRSynthLib.calibration` uses to give outputs the look the inputs imply.

Real subjects (the real and extra roots) when the run has any, else the simulated ones: the simulator's
protocols are drawn at random, so they are no template for a scanner. Written by the trainer at the
start of a run; ``mrsynth-train templates RUN --data ROOT`` writes it for a run made before."""

from __future__ import annotations

import json
from pathlib import Path

from MRSynthLib.calibration import (
    N_QUANTILES,
    parse_calibrate_strength,
    parse_calibrate_targets,
    parse_templates,
    templates_from_subjects,
)
from MRSynthLib.errors import MRSynthError
from MRSynthLib.io import write_bytes_atomic

from .runs import run_config
from .subjects import SubjectArrays, load_root, simulated_subjects

FILENAME = "intensity_templates.json"
METHOD = (f"{N_QUANTILES} quantiles inside the brain mask per contrast, geometric mean over the training "
          "subjects; outputs are mapped onto template[target] ** g, g measured on the inputs")


def templates_record(subjects: list[SubjectArrays], real_names: list[str]) -> dict:
    """The card/run record: which subjects, how, and the per-contrast quantiles."""
    real = [s for s in subjects if s.name in set(real_names)]
    chosen = real or subjects
    return {"method": METHOD, "subjects": [s.name for s in chosen],
            "contrasts": templates_from_subjects([(s.images, s.mask) for s in chosen])}


def write_templates(run: Path, record: dict) -> Path:
    path = run / FILENAME
    write_bytes_atomic(json.dumps(record, indent=1).encode("utf-8"), path)
    return path


def read_templates(run: Path) -> dict | None:
    """The run's record, or None for a run without one (its outputs stay uncalibrated)."""
    path = run / FILENAME
    if not path.exists():
        return None
    record = json.loads(path.read_text(encoding="utf-8"))
    parse_templates(record.get("contrasts"))  # refuse a malformed file here, not at inference
    return record


def templates_for_run(run: Path, data: Path) -> dict:
    """Rebuild a finished run's record from its resolved config: the real subjects under ``data`` that
    the run's include/exclude lists admit, else its simulated subjects (a run's extra roots are not
    re-read: the trainer's own record, written at the start of every run, includes them)."""
    d = run_config(run)["data"]
    real = []
    if d.get("real_weight", 0) > 0:
        real, _ = load_root(data, d.get("real_include") or None, d.get("real_exclude") or None)
    subjects = real or simulated_subjects(d["simulated"], tuple(d["simulated_shape"]), d.get("simulated_seed", 1000))
    if not subjects:
        raise MRSynthError("the run used no subjects to build templates from", str(run))
    return templates_record(subjects, [s.name for s in real])


def run_settings(run: Path, context: int = 0, calibrate: bool = True):
    """A run's settings for a backend, as ``load_backend`` reads them from a card (id: the run's folder
    name; its templates), so validation and evaluation run the product's pipeline; ``calibrate=False``
    or no templates file: uncalibrated."""
    from MRSynthLib.backends import ModelSettings

    record = read_templates(run) if calibrate else None
    return ModelSettings(model_id=f"run {run.name}", context=int(context),
                         intensity_templates=parse_templates(record["contrasts"]) if record else None,
                         calibrate_targets=parse_calibrate_targets(record) if record else None,
                         calibrate_strength=parse_calibrate_strength(record) if record else 1.0)


def run_engine(run: Path):
    """A unified run's network as the product runs it (torch backend, CPU, the run's templates)."""
    from MRSynthLib.backends.torch_backend import TorchBackend

    from .runs import load_run_model

    model, cfg = load_run_model(run)
    return TorchBackend(None, cfg["model"], run_settings(run, context=model.cfg.context), device="cpu", model=model)
