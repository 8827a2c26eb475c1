"""Site-grouped validation end to end: tiny fold runs, a compare model, baselines, tables, resumable rows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from MRSynthLib.io import write_volume
from MRSynthLib.volume import Volume


def _write(folder: Path, volumes: dict[str, Volume], tumour: np.ndarray | None = None) -> None:
    folder.mkdir(parents=True)
    for c, v in volumes.items():
        write_volume(v, folder / f"{c}.nii.gz")
    if tumour is not None:
        ref = next(iter(volumes.values()))
        write_volume(ref.with_array(tumour.astype(np.float32)), folder / "tumour.nii.gz")


@pytest.fixture(scope="module")
def site_root(tmp_path_factory, small_subject):
    """Two sites: SiteA with a 3-contrast and a 2-contrast subject, SiteB with all four and a tumour label."""
    root = tmp_path_factory.mktemp("sites")
    v = small_subject.volumes
    _write(root / "SiteA-1", {c: v[c] for c in ("T1", "T2", "FLAIR")})
    _write(root / "SiteA-2", {c: v[c].with_array(v[c].array ** 1.3) for c in ("T1", "FLAIR")})
    tumour = np.zeros(v["T1"].array.shape, bool)
    k, j, i = (s // 2 for s in tumour.shape)
    tumour[k - 3:k + 3, j - 4:j + 4, i - 4:i + 4] = True
    _write(root / "SiteB-1", {c: v[c].with_array(v[c].array * 3.0) for c in ("T1", "T1Gd", "T2", "FLAIR")}, tumour)
    return root


def _fold_run(root: Path, out: Path, exclude: list[str]) -> Path:
    from mrsynth_train.config import TrainConfig, from_dict
    from mrsynth_train.trainer import train

    cfg = from_dict(TrainConfig, {"recipe": "unified", "steps": 2, "batch_size": 2, "checkpoint_every": 2, "threads": 2,
                                  "data": {"real_root": str(root), "real_exclude": exclude, "real_weight": 1.0,
                                           "simulated": 0, "patch": 16},
                                  "model": {"ngf": 4, "n_blocks": 1, "style_dim": 4, "pointwise": 0}})
    train(cfg, out, progress=False)
    return out


@pytest.mark.slow  # ~2 min: three tiny training runs and 39 whole-volume tasks × 5 methods
def test_validate_sites_scores_every_task_against_baselines_and_resumes(site_root, tiny_bundle, tmp_path):
    from mrsynth_train.cli import main

    fold_a = _fold_run(site_root, tmp_path / "foldA", ["SiteA-1", "SiteA-2"])
    fold_b = _fold_run(site_root, tmp_path / "foldB", ["SiteB-1"])
    final = _fold_run(site_root, tmp_path / "final", [])
    out = tmp_path / "report"
    args = ["validate-sites", "--data", str(site_root), "--out", str(out), "--fold", f"SiteA={fold_a}",
            "--fold", f"SiteB={fold_b}", "--compare", f"tiny={tiny_bundle}", "--final", str(final)]
    assert main(args) == 0
    rows = [json.loads(x) for x in (out / "rows.jsonl").read_text().splitlines()]
    tasks = {(r["subject"], r["inputs"], r["target"]) for r in rows}
    # every task each subject supports: 3 contrasts → 3 targets × 3 subsets; 2 → 2 × 1; 4 → 4 × 7
    assert len(tasks) == 9 + 2 + 28
    by_method = {}
    for r in rows:
        by_method.setdefault(r["method"], set()).add((r["subject"], r["inputs"], r["target"]))
    for method in ("model", "model-uncalibrated", "tiny", "histmatch-best"):
        assert by_method[method] == tasks, method
    # the linear baseline needs a training-fold subject with the task's contrasts: SiteB's T1Gd tasks have none
    assert by_method["linear"] < tasks and not any("T1Gd" in t[1] + t[2] for t in by_method["linear"] if t[0] == "SiteB-1")
    three = [r for r in rows if r["three_to_one"]]
    assert three and all("brasyn_SSIM" in r for r in three) and not any("brasyn_SSIM" in r for r in rows
                                                                        if not r["three_to_one"])
    assert all("brasyn_SSIM_tumour" in r and "MAE_tumour" in r for r in three if r["subject"] == "SiteB-1")
    report = json.loads((out / "report.json").read_text())
    assert set(report["methods"]) >= {"product", "model", "histmatch-best", "linear", "tiny"}
    assert set(report["methods"]["product"]["per_fold"]) == {"SiteA", "SiteB"}
    assert report["folds"]["SiteA"]["subjects"] == ["SiteA-1", "SiteA-2"]
    assert "histmatch-best:PSNR" in report["wilcoxon_product_vs"]
    md = (out / "report.md").read_text()
    assert "### Per target" in md and "BraSyn" in md and "| product |" in md
    # the calibration decision reaches the final run's templates (and from there the card)
    templates = json.loads((final / "intensity_templates.json").read_text())
    assert templates["calibrate_targets"] == report["calibrate_targets"]
    # one calibration strength for every target, chosen among 0, 0.25 … 1 (all scored from the same pass)
    for method in ("model-cal-0.25", "model-cal-0.5", "model-cal-0.75"):
        assert by_method[method] == tasks, method
    strength = report["strength"]
    assert templates["calibrate_strength"] == report["calibrate_strength"] == strength["strength"]
    assert strength["mean_PSNR"][str(strength["strength"])] == max(strength["mean_PSNR"].values())
    # the product rows: each held-out site at the strength chosen on the OTHER site's tasks
    name = {0.0: "model-uncalibrated", 1.0: "model"}
    by_key = {(r["method"], r["subject"], r["inputs"], r["target"]): r for r in rows}
    for site, w in strength["per_site"].items():
        other = [r for r in rows if r["method"] == "model" and r["site"] != site]
        means = {x: np.mean([by_key[name.get(x, f"model-cal-{x}"), r["subject"], r["inputs"], r["target"]]["PSNR"]
                             for r in other]) for x in (0.0, 0.25, 0.5, 0.75, 1.0)}
        assert means[w] == max(means.values())
        mine = [r for r in rows if r["method"] == "model" and r["site"] == site]
        got = report["methods"]["product"]["per_fold"][site]["PSNR"]["mean"]
        assert got == pytest.approx(np.mean([by_key[name.get(w, f"model-cal-{w}"), r["subject"], r["inputs"],
                                                     r["target"]]["PSNR"] for r in mine]))
    assert json.loads((final / "validation.json").read_text())["protocol"].startswith("site-grouped")
    # the exported card carries the decision, the report, and where each training subject comes from
    from mrsynth_train.export import export_run

    card = export_run(final, tmp_path / "bundle", model_id="site-validated")
    assert card["intensity_templates"]["calibrate_targets"] == report["calibrate_targets"]
    assert card["intensity_templates"]["calibrate_strength"] == report["calibrate_strength"]
    assert card["validation"]["protocol"].startswith("site-grouped")
    assert [s["name"] for s in card["training"]["real_subjects"]] == ["SiteA-1", "SiteA-2", "SiteB-1"]
    assert card["training"]["cpu"] and card["training"]["cpu_s"] > 0
    from mrsynth_train.export import beats

    ok, why = beats(card["validation"], "tiny")
    t = report["wilcoxon_product_vs"]
    assert ok == all(t[f"tiny:{m}"]["mean_difference"] > 0 and t[f"tiny:{m}"]["p_value"] < 0.05 for m in ("PSNR", "SSIM"))
    assert ok or "tiny" in why
    assert beats(card["validation"], "absent") == (False, "the run's validation has no paired PSNR test against 'absent'")
    # resumable: a second call scores nothing new
    before = (out / "rows.jsonl").read_text()
    assert main(args) == 0
    assert (out / "rows.jsonl").read_text() == before
    # --only: a second process can add some methods' rows beside a running validation
    assert main(["validate-sites", "--data", str(site_root), "--out", str(tmp_path / "only"), "--only", "linear"]) == 0
    only = {json.loads(x)["method"] for x in (tmp_path / "only" / "rows.jsonl").read_text().splitlines()}
    assert only == {"linear"}
    # the oracle-tone diagnostic: never in a full run, scored for the folds' subjects when named
    assert "model-oracle-tone" not in by_method
    plain = {(r["subject"], r["inputs"], r["target"]): r["PSNR"] for r in rows if r["method"] == "model-uncalibrated"}
    assert main(["validate-sites", "--data", str(site_root), "--out", str(tmp_path / "tone"), "--fold", f"SiteA={fold_a}",
                 "--only", "model-oracle-tone", "--only", "model-cal-0.5"]) == 0
    scored = [json.loads(x) for x in (tmp_path / "tone" / "rows.jsonl").read_text().splitlines()]
    tone = [r for r in scored if r["method"] == "model-oracle-tone"]
    # calibration at half strength: between the network's tone and the templates', neither of the two
    half = {(r["subject"], r["inputs"], r["target"]): r["PSNR"] for r in scored if r["method"] == "model-cal-0.5"}
    full = {(r["subject"], r["inputs"], r["target"]): r["PSNR"] for r in rows if r["method"] == "model"}
    assert set(half) == {t for t in tasks if t[0].startswith("SiteA")}
    assert any(half[k] != full[k] for k in half) and any(half[k] != plain[k] for k in half)
    assert {(r["subject"], r["inputs"], r["target"]) for r in tone} == {t for t in tasks if t[0].startswith("SiteA")}
    assert np.mean([r["PSNR"] for r in tone]) > np.mean([plain[r["subject"], r["inputs"], r["target"]] for r in tone])


def test_validate_sites_refuses_a_fold_for_an_unknown_site(site_root, tmp_path, capsys):
    from mrsynth_train.cli import main

    assert main(["validate-sites", "--data", str(site_root), "--out", str(tmp_path / "r"),
                 "--fold", f"Nowhere={tmp_path}"]) == 2
    assert "unknown site" in capsys.readouterr().err and not (tmp_path / "r").exists()


def test_brasyn_protocol_on_toy_volumes():
    """Clipping to each volume's own percentiles, tumour/healthy split, and the whole-volume SSIM computed on a
    box around the data equal to scikit-image's on the whole volume."""
    from MRSynthLib.evaluation_brasyn import brasyn_metrics, brasyn_normalize

    v = np.zeros((30, 30, 30))
    v[5:25, 5:25, 5:25] = np.linspace(-1, 10, 20)[None, None, :]
    n = brasyn_normalize(v)
    assert n.min() == 0 and n.max() == pytest.approx(1.0)
    same = brasyn_metrics(v, v)
    assert same["SSIM"] == pytest.approx(1.0) and same["PSNR"] == float("inf")
    noisy = v + np.where(v != 0, np.random.default_rng(0).normal(0, 1, v.shape), 0)
    tumour = np.zeros(v.shape, bool)
    tumour[10:15, 10:15, 10:15] = True
    m = brasyn_metrics(noisy, v, v != 0, tumour)
    assert 0 < m["SSIM_tumour"] < 1 and 0 < m["SSIM_healthy"] < 1
    from skimage.metrics import structural_similarity  # the box shortcut gives the whole-volume SSIM

    full = structural_similarity(brasyn_normalize(v), brasyn_normalize(noisy), data_range=1.0, gaussian_weights=True,
                                 sigma=1.5, use_sample_covariance=False)
    assert m["SSIM"] == pytest.approx(full, abs=1e-9)


def test_a_compared_model_is_also_judged_on_the_subjects_it_never_saw():
    """v2 trained on S1: the report tests product vs v2 on all tasks and on S2's alone (v2@unseen), and the
    shipping check reads the unseen comparison (here the product wins on S2 although v2 wins overall)."""
    from mrsynth_train.export import beats
    from mrsynth_train.site_report import markdown, summarize

    rows = []
    for subject, site in (("S1", "A"), ("S2", "B")):
        for i in range(8):
            task = {"site": site, "subject": subject, "inputs": f"X{i}", "target": "T1", "three_to_one": False}
            good = 20.0 + 0.1 * i
            scores = {"model": (good, 0.5 + 0.01 * i), "model-uncalibrated": (good - 1, 0.4),
                      "v2": ((30.0, 0.9) if subject == "S1" else (good - 2 - 0.05 * i, 0.3 + 0.005 * i)),
                      "histmatch-best": (good, 0.5)}
            for method, (psnr, ssim) in scores.items():
                rows.append({**task, "method": method, "key": f"{method}|{subject}|{i}", "PSNR": psnr, "SSIM": ssim,
                             "MAE": 0.1})
    report = summarize(rows, {"v2": ["S1"]})
    tests = report["wilcoxon_product_vs"]
    assert tests["v2:PSNR"]["n"] == 16 and tests["v2@unseen:PSNR"]["n"] == 8
    assert tests["v2:PSNR"]["mean_difference"] < 0 < tests["v2@unseen:PSNR"]["mean_difference"]
    assert beats(report, "v2") == (True, "")
    assert "v2@unseen" in markdown(report)
