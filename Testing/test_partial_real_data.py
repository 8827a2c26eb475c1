"""Training on every real subject: partial-contrast subjects, other grids, site groups, tone curves."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from MRSynthLib.contrasts import CONTRASTS
from MRSynthLib.io import write_volume
from MRSynthLib.volume import Volume


def test_every_real_subject_has_a_site_and_the_sites_are_the_documented_four():
    from mrsynth_train.sites import group_by_site, site_of

    names = ["TCGA-DU-7294", "TCGA-FG-6692", "BraTS18-CBICA-AAB", "BraTS18-CBICA-AOO", "BraTS18-TCIA02-471",
             "BraTS18-TCIA08-105", "Kirby21-113"]
    groups = group_by_site(names)
    assert list(groups) == ["BraTS18-CBICA", "BraTS18-TCIA", "Kirby21", "TCGA"]
    assert groups["BraTS18-TCIA"] == ["BraTS18-TCIA02-471", "BraTS18-TCIA08-105"]
    assert site_of("sub-01") == "sub-01" and site_of("Oasis-0001") == "Oasis"


def test_the_card_names_each_real_subjects_source_licence_and_citation():
    from mrsynth_train.sites import subject_sources

    rows = {r["name"]: r for r in subject_sources(["Kirby21-113", "BraTS18-TCIA02-471", "TCGA-DU-7294", "Other-1"])}
    assert "Landman" in rows["Kirby21-113"]["cite"] and "Bakas" in rows["BraTS18-TCIA02-471"]["cite"]
    assert rows["TCGA-DU-7294"]["license"] == "CC BY 3.0" and rows["Other-1"]["license"] == "unknown"


def test_random_tone_curves_are_monotone_keep_0_and_1_and_vary():
    from mrsynth_train.intensity_aug import apply_curve, random_monotone_curve

    rng = np.random.default_rng(0)
    x = np.linspace(0, 1, 201, dtype=np.float32)
    curves = [apply_curve(x, random_monotone_curve(rng, 6, 2.0)) for _ in range(20)]
    for y in curves:
        assert np.all(np.diff(y) >= 0) and y[0] == 0 and y[-1] == pytest.approx(1.0)
    spread = np.std(np.stack(curves), axis=0)
    assert spread[100] > 0.03  # mid-grey lands at different places: the tone is randomized


def _volume(array: np.ndarray, spacing, direction) -> Volume:
    return Volume(array.astype(np.float32), spacing=spacing, direction=np.asarray(direction, float))


def test_a_subject_on_an_anisotropic_sagittal_grid_is_trained_at_1mm_in_canonical_axes():
    """Kirby21's layout: voxel axes toward R, P, S (i runs right→left in LPS is −x), 1.2 mm along i.
    Canonical axes are (S, P, L): the L axis must come out 1.2× longer, the others unchanged."""
    from mrsynth_train.training_grid import canonical_spacing, to_training_grid

    arr = np.zeros((30, 32, 20), np.float32)  # numpy [k, j, i] = S, P, R-L
    arr[5:25, 6:26, 4:16] = 1.0
    direction = np.diag([-1.0, 1.0, 1.0])  # i toward R (LPS −x), j toward P, k toward S
    vol = _volume(arr, (1.2, 1.0, 1.0), direction)
    assert canonical_spacing(vol) == (1.0, 1.0, 1.2)
    canon = np.ascontiguousarray(arr[:, :, ::-1])
    images, mask = to_training_grid({"T1": canon}, canon > 0, vol)
    assert images["T1"].shape == (30, 32, 24) and mask.shape == (30, 32, 24)
    assert mask.sum() == pytest.approx((canon > 0).sum() * 1.2, rel=0.1)
    iso = _volume(arr, (1.0, 1.0, 1.02), np.eye(3))
    same, _ = to_training_grid({"T1": canon}, canon > 0, iso)
    assert same["T1"] is canon  # within tolerance: untouched, bit-exact


def _write_subject(folder: Path, contrasts: tuple[str, ...], seed: int) -> None:
    rng = np.random.default_rng(seed)
    base = np.zeros((24, 28, 24), np.float32)
    base[4:20, 4:24, 4:20] = 1.0
    folder.mkdir(parents=True)
    for i, c in enumerate(contrasts):
        arr = base * (0.3 + 0.1 * i + 0.5 * rng.random(base.shape, dtype=np.float32))
        write_volume(Volume(arr * 100), folder / f"{c}.nii.gz")


def _tiny_config(tmp_path: Path, root: str) -> Path:
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(json.dumps({"recipe": "unified", "steps": 2, "batch_size": 4, "checkpoint_every": 2, "threads": 2,
                               "data": {"real_root": root, "real_weight": 1.0, "simulated": 0, "patch": 16},
                               "model": {"ngf": 4, "n_blocks": 1, "style_dim": 4}}), encoding="utf-8")
    return cfg


def test_train_data_option_and_site_hold_out_with_partial_subjects(tmp_path):
    """`--data ROOT` replaces the config's root (here the config points nowhere); `--exclude-site` holds
    out a whole site; subjects with two of the contrasts train, targets drawn among those they have."""
    from mrsynth_train.cli import main
    from mrsynth_train.trainer import build_sampler

    root = tmp_path / "data"
    _write_subject(root / "SiteA-1", ("T1", "FLAIR"), 0)
    _write_subject(root / "SiteA-2", ("T1", "T2", "FLAIR"), 1)
    _write_subject(root / "SiteB-1", ("T1", "T1Gd"), 2)
    cfg = _tiny_config(tmp_path, "does/not/exist")
    assert main(["train", "--config", str(cfg), "--out", str(tmp_path / "run"), "--data", str(root),
                 "--exclude-site", "SiteB"]) == 0
    record = json.loads((tmp_path / "run" / "config.json").read_text(encoding="utf-8"))
    assert record["data"]["real"] == ["SiteA-1", "SiteA-2"]
    assert record["config"]["data"]["real_root"] == str(root.resolve())
    assert main(["train", "--config", str(cfg), "--out", str(tmp_path / "run2"), "--data", str(root),
                 "--exclude-site", "SiteC"]) == 2

    from mrsynth_train.config import load_config
    c = load_config(cfg)
    c.data.real_root = str(root)
    sampler, info = build_sampler(c)
    assert info["real"] == ["SiteA-1", "SiteA-2", "SiteB-1"]
    b = sampler.sample(64)
    for row in range(64):
        has = {CONTRASTS[i] for i in np.flatnonzero(b.has[row])}
        assert CONTRASTS[int(b.target[row])] in has  # truth exists for every target
        assert {CONTRASTS[i] for i in np.flatnonzero(b.available[row])} <= has - {CONTRASTS[int(b.target[row])]}
    assert {CONTRASTS[int(t)] for t in b.target} == {"T1", "T2", "FLAIR", "T1Gd"}


@pytest.mark.slow  # eight recipes, a few seconds each
@pytest.mark.parametrize("recipe", ["unified", "hypergan", "collagan", "mist", "cyclegan", "unit", "supervised", "simple"])
def test_every_recipe_trains_on_subjects_holding_only_some_contrasts(recipe, tmp_path):
    """No subject here has all four contrasts: every recipe must still train (pairwise ones on the pairs
    some subject holds: T1↔T1Gd from SiteB-1, T2↔FLAIR from SiteA-2) with finite losses."""
    from conftest import TINY_RECIPE_OPTIONS

    from mrsynth_train.config import TrainConfig, from_dict
    from mrsynth_train.trainer import train

    root = tmp_path / "data"
    _write_subject(root / "SiteA-1", ("T1", "FLAIR"), 0)
    _write_subject(root / "SiteA-2", ("T1", "T2", "FLAIR"), 1)
    _write_subject(root / "SiteB-1", ("T1", "T1Gd"), 2)
    cfg = {"recipe": recipe, "steps": 3, "batch_size": 4, "checkpoint_every": 3, "threads": 2,
           "data": {"real_root": str(root), "real_weight": 1.0, "simulated": 0, "patch": 64}}
    if recipe == "unified":
        cfg["model"] = {"ngf": 4, "n_blocks": 1, "style_dim": 4}
    else:
        cfg["options"] = TINY_RECIPE_OPTIONS[recipe]
    summary = train(from_dict(TrainConfig, cfg), tmp_path / "run", progress=False)
    assert summary["steps"] == 3 and summary["data"]["real"] == ["SiteA-1", "SiteA-2", "SiteB-1"]
    assert all(np.isfinite(v) for v in summary["losses"].values())
