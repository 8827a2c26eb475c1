"""The uncertainty validation's report on toy voxel samples with known answers: the error model is fitted on
the OTHER sites (so a site whose errors run against the others' is ranked badly), while the ceilings
(own-level, own-level×edge) are fitted on the task's own errors and say how far any such map could go."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mrsynth_train import confidence_report as cr
from MRSynthLib import confidence_metrics as cm


def _save(tmp_path, key: str, level: np.ndarray, err: np.ndarray, edge: np.ndarray) -> None:
    (tmp_path / "samples").mkdir(exist_ok=True)
    flat = np.zeros_like(level)
    np.savez(tmp_path / "samples" / f"{key.replace('|', '__')}.npz", err=err, level=level, edge=edge, flip=flat,
             both=flat, flip_smooth=flat, both_smooth=flat)


@pytest.fixture
def rows(tmp_path):
    """Three sites whose FLAIR errors grow with the output level, one whose errors shrink with it (its tone
    runs against the others'); every task's error also doubles at strong edges."""
    rng = np.random.default_rng(0)
    got = []
    for i, site in enumerate(("A", "B", "C", "D")):
        level, edge = rng.uniform(0, 1, 4000), rng.uniform(0, 1, 4000)
        tone = (1.0 - level) if site == "D" else level
        err = (0.05 + 0.3 * tone) * np.where(edge > 0.8, 2.0, 1.0) * rng.uniform(0.9, 1.1, level.size)
        key = f"confidence|s{i}|T1|FLAIR"
        _save(tmp_path, key, level, err, edge)
        curve = {"rho": 0.0, "ause": 0.0, "ause_random": 0.0, "top10": 1.0, "curve": [1.0] * cm.FRACTIONS.size,
                 "oracle": [1.0] * cm.FRACTIONS.size, "mae": float(err.mean())}
        got.append({"key": key, "site": site, "subject": f"s{i}", "inputs": "T1", "target": "FLAIR",
                    "seconds_per_pass": 1.0, "voxels": level.size,
                    "methods": {m: dict(curve) for m in ("flip", "both", "flip-smooth", "both-smooth")}})
    return got


def test_the_ceiling_knows_the_tasks_own_tone_the_error_model_only_the_other_sites(rows, tmp_path):
    fitted = {r["site"]: r["methods"]["levelfit"]["rho"] for r in cr.fitted_rows(rows, tmp_path, "levelfit")}
    own = {r["site"]: r["methods"]["own-level"]["rho"] for r in cr.own_rows(rows, tmp_path, "own-level")}
    both = {r["site"]: r["methods"]["own-level×edge"]["rho"] for r in cr.own_rows(rows, tmp_path, "own-level×edge")}
    assert fitted["A"] > 0.7 and fitted["D"] < -0.5  # D's tone runs against the sites the table came from
    assert own["D"] > 0.7 and own["A"] >= fitted["A"] - 0.02  # its own table ranks it whatever its tone
    assert all(both[s] > own[s] for s in "ABCD")  # the edge quintile explains the doubled errors


def test_the_report_shows_the_ceilings_apart_and_keeps_them_out_of_the_products_error_model(rows, tmp_path):
    text = cr.write_report(rows, tmp_path, methods=("flip",), fitted_on="toy")
    assert "| own-level | FLAIR | 4 |" in text and "| own-level×edge | FLAIR | 4 |" in text
    assert "ceilings, not methods" in text
    record = json.loads((tmp_path / "error_model.json").read_text())
    table = cr.level_table(rows, tmp_path, "FLAIR", None).round(4).tolist()
    assert record["error_model"]["FLAIR"] == table  # the card's model: every site's errors pooled, no ceiling
    assert set(record["scale_levelfit"]) == {"FLAIR"}
