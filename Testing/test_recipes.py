"""Training recipes (Hyper-GAN, CollaGAN, MIST, CycleGAN, UNIT, supervised, simple) and the data
sampler's new modes: tiny networks, a few steps each on a tiny simulated subject, hand checks of the
gradient-reversal layer and of modulation after instance norm, BIDS discovery on a fake tree."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import TINY_RECIPE_OPTIONS as TINY

from mrsynth_train.config import DataConfig, TrainConfig
from mrsynth_train.data import Augment, SliceSampler, mixture_weights
from mrsynth_train.recipes import RECIPES, build_recipe
from mrsynth_train.subjects import (
    SubjectArrays,
    bids_contrast,
    find_subject_files,
    load_root,
    simulated_subjects,
)
from MRSynthLib.contrasts import CONTRASTS
from MRSynthLib.errors import MRSynthError

PATCH = 32
PAIRWISE = {"cyclegan", "unit", "supervised", "simple"}


@pytest.fixture(scope="module", autouse=True)
def _threads():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def subjects():
    return simulated_subjects(1, (40, 48, 40))


def make(name: str, **options) -> object:
    torch.manual_seed(0)
    return build_recipe(TrainConfig(recipe=name, steps=20, lr=1e-3, options={**TINY[name], **options}))


def test_every_recipe_is_registered():
    assert set(TINY) | {"unified"} == set(RECIPES)


@pytest.mark.parametrize("name", sorted(TINY))
def test_recipe_trains_and_predicts(name, subjects):
    recipe = make(name)
    sampler = SliceSampler(subjects, patch=PATCH, seed=1)
    inference = recipe.inference_module()
    assert isinstance(inference, torch.nn.Module)
    before = [p.detach().clone() for p in inference.parameters()]
    history = [recipe.train_step(sampler.sample(2)) for _ in range(3)]
    for losses in history:
        assert losses and all(math.isfinite(v) for v in losses.values()), losses
    assert any(history[0][k] != history[-1][k] for k in history[0]), "losses did not move"
    assert any(not torch.equal(a, p) for a, p in zip(before, inference.parameters(), strict=True)), "no update"
    for opt in recipe.optimizers().values():  # checkpointable
        assert isinstance(opt.state_dict(), dict)
    for module in recipe.modules().values():
        assert isinstance(module.state_dict(), dict)

    images = torch.from_numpy(sampler.sample(3).contrasts)
    available = torch.ones(3, len(CONTRASTS))
    available[:, 1] = 0.0  # T1Gd is the target: every recipe, pairwise ones included (from T1)
    out = recipe.predict(images, available, 1)
    assert out.shape == (3, 1, PATCH, PATCH)
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


@pytest.mark.parametrize("name", sorted(TINY))
def test_unknown_and_badly_typed_options_name_the_key(name):
    with pytest.raises(MRSynthError, match=r"options\.bogus"):
        make(name, bogus=1)
    key = "hidden" if name == "simple" else "ngf"
    with pytest.raises(MRSynthError, match=rf"options\.{key}"):
        make(name, **{key: "wide"})


def test_option_values_are_checked():
    with pytest.raises(MRSynthError, match=r"options\.mode"):
        make("hypergan", mode="film")
    with pytest.raises(MRSynthError, match=r"options\.pairs\[0\]"):
        make("cyclegan", pairs=[["T1"]])
    with pytest.raises(MRSynthError, match="unknown contrast"):
        make("supervised", pairs=[["T1", "DWI"]])


def test_pairwise_predict_needs_the_paired_source():
    recipe = make("cyclegan")
    images, available = torch.zeros(1, 5, PATCH, PATCH), torch.zeros(1, 5)
    available[0, CONTRASTS.index("T1")] = 1.0
    with pytest.raises(MRSynthError, match="FLAIR from T2"):
        recipe.predict(images, available, CONTRASTS.index("FLAIR"))
    with pytest.raises(MRSynthError, match="cannot synthesize PD"):
        recipe.predict(images, available, CONTRASTS.index("PD"))
    assert recipe.predict(images, available, CONTRASTS.index("T1Gd")).shape == (1, 1, PATCH, PATCH)


@pytest.mark.parametrize("mode", ["cin", "fs"])
def test_hypergan_ablations_switch_terms_off(mode, subjects):
    recipe = make("hypergan", mode=mode, lambda_class=0.0, lambda_identical=0.0)
    losses = recipe.train_step(SliceSampler(subjects, patch=PATCH, seed=2).sample(2))
    assert "class" not in losses and "identical" not in losses and {"cycle", "recon", "adv"} <= set(losses)


def test_hypergan_default_architecture():
    from mrsynth_train.nets.hypergan import HyperGANGenerator, ModResBlock

    g = HyperGANGenerator()
    count = lambda m: sum(isinstance(x, ModResBlock) for x in m.layers)  # noqa: E731
    assert (count(g.encoder), count(g.decoder)) == (5, 4)


def test_gradient_reversal_by_hand():
    from mrsynth_train.nets.common import grad_reverse

    x = torch.tensor([1.0, -2.0, 3.0], requires_grad=True)
    w = torch.tensor([0.5, 4.0, -1.0])
    y = grad_reverse(x, 0.5)
    assert torch.equal(y, x)  # identity forward
    (y * w).sum().backward()
    assert torch.allclose(x.grad, -0.5 * w)  # d/dx of sum(w·x) is w, reversed and scaled


def test_filter_scaling_survives_only_after_the_norm():
    from mrsynth_train.nets.common import ModulatedNorm

    torch.manual_seed(0)
    x = torch.randn(2, 3, 8, 8)
    norm = torch.nn.InstanceNorm2d(3)
    s = torch.tensor([3.0, 0.5, 2.0]).view(1, 3, 1, 1)
    assert torch.allclose(norm(s * x), norm(x), atol=1e-4)  # before the norm: cancelled
    assert torch.allclose(norm(-x), -norm(x), atol=1e-4)  # only the sign survives
    fs = ModulatedNorm(3, "fs")
    params = (s.view(1, 3) - 1).expand(2, 3)  # the layer applies 1 + params
    out = fs(x, params)
    assert torch.allclose(out, s * norm(x), atol=1e-4) and not torch.allclose(out, norm(x), atol=1e-2)
    cin = ModulatedNorm(3, "cin")
    shift = torch.tensor([[0.0, 1.0, -1.0]]).expand(2, 3)
    assert torch.allclose(cin(x, torch.cat([params, shift], 1)), s * norm(x) + shift[:, :, None, None], atol=1e-4)


def _labelled_subjects(n: int, missing: dict[int, str] | None = None) -> list[SubjectArrays]:
    """Subjects whose every voxel holds (subject + 1) / 10, so a patch tells where it came from."""
    out = []
    for i in range(n):
        mask = np.zeros((12, 40, 40), bool)
        mask[:, 4:36, 4:36] = True
        images = {c: np.where(mask, (i + 1) / 10, 0).astype(np.float32) for c in CONTRASTS
                  if (missing or {}).get(i) != c}
        out.append(SubjectArrays(f"s{i}", images, mask))
    return out


def test_unpaired_sampler_draws_each_contrast_from_its_own_subject():
    subs = _labelled_subjects(3, missing={2: "PD"})
    paired = SliceSampler(subs, patch=16, seed=0, augment=False).sample(16)
    for row in paired.contrasts:
        present = {round(float(ch.max()), 2) for ch in row if ch.max() > 0}
        assert len(present) == 1
    unpaired = SliceSampler(subs, patch=16, seed=0, augment=False, paired=False).sample(16)
    assert (unpaired.has == 1).all()  # every contrast of the union, drawn from a holder
    mixed = [len({round(float(ch.max()), 2) for ch in row}) for row in unpaired.contrasts]
    assert max(mixed) > 1
    pd = unpaired.contrasts[:, CONTRASTS.index("PD")]
    assert not np.isclose(pd.max(axis=(1, 2)), 0.3).any()  # subject 2 has no PD
    t = unpaired.truth[:, 0].max(axis=(1, 2))
    picked = unpaired.contrasts[np.arange(16), unpaired.target].max(axis=(1, 2))
    assert np.allclose(t, picked)


def test_context_returns_neighbouring_slices():
    mask = np.ones((6, 20, 20), bool)
    ramp = (np.arange(1, 7, dtype=np.float32)[:, None, None] / 10 * np.ones((6, 20, 20), np.float32))
    sub = SubjectArrays("ramp", {"T1": ramp, "T2": ramp.copy()}, mask)  # slice z holds (z + 1) / 10
    b = SliceSampler([sub], patch=16, seed=0, augment=False, context=2).sample(8)
    assert b.neighbours.shape == (8, 5, 4, 16, 16)
    for i in range(8):
        for c in np.flatnonzero(b.available[i]):
            z = round(float(b.images[i, c].max()) * 10) - 1
            want = [(min(max(z + o, 0), 5) + 1) / 10 for o in (-2, -1, 1, 2)]
            assert np.allclose(b.neighbours[i, c].max(axis=(1, 2)), want)


def test_augmentation_switches_keep_the_convention(subjects):
    aug = Augment(flip=0.5, gamma=1.0, scale=0.2, bias=1.0, noise=1.0)
    b = SliceSampler(subjects, patch=PATCH, seed=3, augment=aug, axis="coronal").sample(4)
    for arr in (b.images, b.truth, b.contrasts):
        assert arr.dtype == np.float32 and arr.min() >= 0 and arr.max() <= 1
    assert set(np.unique(b.mask)) <= {0.0, 1.0}
    with pytest.raises(MRSynthError, match="axis"):
        SliceSampler(subjects, patch=PATCH, axis="oblique")


def test_mixture_weights():
    assert mixture_weights([["a", "b"], ["c"], []], [0.5, 0.5, 1.0]) == [0.25, 0.25, 0.5]
    with pytest.raises(MRSynthError, match="weights"):
        mixture_weights([["a"]], [1.0, 2.0])


def _nifti(path, value: float = 1.0):
    from MRSynthLib.io import write_volume
    from MRSynthLib.volume import Volume

    zz, yy, xx = np.mgrid[:16, :16, :16]
    ball = ((zz - 8) ** 2 + (yy - 8) ** 2 + (xx - 8) ** 2 < 36).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_volume(Volume(ball * value * (1 + 0.1 * xx)), path, overwrite=True)


def test_bids_names():
    assert bids_contrast("sub-01_ce-gadolinium_T1w.nii.gz") == "T1Gd"
    assert bids_contrast("sub-01_ses-2_acq-fast_run-1_T1w.nii") == "T1"
    assert bids_contrast("sub-01_T2w.nii.gz") == "T2"
    assert bids_contrast("sub-01_FLAIR.nii.gz") == "FLAIR"
    assert bids_contrast("sub-01_PDw.nii.gz") == "PD"
    assert bids_contrast("sub-01_T2starw.nii.gz") is None and bids_contrast("sub-01_T1w.json") is None


def test_bids_discovery_and_loading(tmp_path):
    root = tmp_path / "bids"
    (root / "derivatives" / "sub-01" / "anat").mkdir(parents=True)
    (root / "dataset_description.json").parent.mkdir(parents=True, exist_ok=True)
    (root / "dataset_description.json").write_text('{"Name": "toy", "BIDSVersion": "1.8.0"}')
    a1 = root / "sub-01" / "anat"
    for name, v in [("sub-01_T1w", 1.0), ("sub-01_ce-gadolinium_T1w", 2.0), ("sub-01_T2w", 3.0),
                    ("sub-01_FLAIR", 4.0)]:
        _nifti(a1 / f"{name}.nii.gz", v)
    (a1 / "sub-01_T1w.json").write_text("{}")
    _nifti(root / "sub-01" / "dwi" / "sub-01_dwi.nii.gz")
    for ses in ("ses-1", "ses-2"):
        _nifti(root / "sub-02" / ses / "anat" / f"sub-02_{ses}_T1w.nii.gz")
        _nifti(root / "sub-02" / ses / "anat" / f"sub-02_{ses}_PDw.nii.gz")
    bad = root / "sub-03" / "anat" / "sub-03_T1w.nii.gz"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"not a nifti")

    files = find_subject_files(root / "sub-01")
    assert {c: p.name for c, p in files.items()} == {
        "T1": "sub-01_T1w.nii.gz", "T1Gd": "sub-01_ce-gadolinium_T1w.nii.gz",
        "T2": "sub-01_T2w.nii.gz", "FLAIR": "sub-01_FLAIR.nii.gz"}
    subjects, skipped = load_root(root)
    assert sorted(s.name for s in subjects) == ["sub-01", "sub-02_ses-1", "sub-02_ses-2"]
    assert len(skipped) == 1 and skipped[0].startswith("sub-03: ")  # its corrupt file; derivatives/ is no subject
    assert set(subjects[1].images) == {"T1", "PD"}
    only, _ = load_root(root, include=["sub-02"])
    assert [s.name for s in only] == ["sub-02_ses-1", "sub-02_ses-2"]


@pytest.mark.parametrize("name", ["hypergan", "cyclegan"])
def test_trainer_runs_a_recipe_end_to_end(name, tmp_path):
    from mrsynth_train.trainer import train

    cfg = TrainConfig(recipe=name, steps=2, batch_size=2, lr=2e-4, checkpoint_every=1, log_every=1, threads=1,
                      options=TINY[name],
                      data=DataConfig(real_weight=0.0, simulated=1, simulated_shape=[40, 48, 40], patch=PATCH))
    summary = train(cfg, tmp_path / "run", progress=False)
    assert summary["steps"] == 2 and all(math.isfinite(v) for v in summary["losses"].values())
    resumed = train(TrainConfig(**{**vars(cfg), "steps": 3}), tmp_path / "run", resume=True, progress=False)
    assert resumed["steps"] == 3


def test_shards_share_the_batch_level_choice(subjects):
    """Under torchrun each rank keeps its rows but sees every shard's ``has`` and the same choice."""
    from mrsynth_train.distributed import DistInfo, shard

    two = [subjects[0], SubjectArrays("t1-only", {"T1": subjects[0].images["T1"],
                                                   "T1Gd": subjects[0].images["T1Gd"]}, subjects[0].mask)]
    batch = SliceSampler(two, patch=PATCH, seed=3).sample(4)
    parts = [shard(batch, DistInfo(rank=r, world=2)) for r in (0, 1)]
    for r, part in enumerate(parts):
        assert part.choice == batch.choice and len(part.target) == 2
        assert np.array_equal(part.has, batch.has[2 * r:2 * r + 2])
        assert np.array_equal(part.shard_has, batch.has.reshape(2, 2, -1))
    recipe = make("cyclegan")
    # a pair is usable only if every shard can train it: T2+FLAIR is missing from a shard of T1/T1Gd rows
    only_t1 = np.zeros((2, 5), np.float32)
    only_t1[:, [0, 1]] = 1
    full = np.ones((2, 5), np.float32)
    assert recipe.usable_pairs([full, only_t1], paired=True) == [(0, 1)]
    assert recipe.usable_pairs([full, full], paired=True) == [(0, 1), (2, 4)]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["cyclegan", "hypergan"])
def test_two_process_gan_run_with_uneven_shards(name, tmp_path):
    """torchrun, 2 ranks, gloo: subjects with different contrast sets make the shards differ; the ranks
    must still train the same pair each step (else the gradient all-reduces would hang or mismatch)."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    import yaml
    from conftest import write_nifti

    from MRSynthLib.phantom import simulate_subject

    sim = simulate_subject(seed=5, shape=(40, 48, 40))
    (tmp_path / "real" / "partial").mkdir(parents=True)
    for c in ("T1", "T1Gd"):  # a subject holding only the T1 pair
        write_nifti(sim.volumes[c], tmp_path / "real" / "partial" / f"{c}.nii.gz")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"recipe": name, "steps": 4, "batch_size": 4, "lr": 2e-4, "checkpoint_every": 4,
                                   "log_every": 1, "threads": 1, "options": TINY[name],
                                   "data": {"real_root": str(tmp_path / "real"), "real_weight": 0.5,
                                            "simulated": 1, "simulated_shape": [40, 48, 40], "patch": PATCH}}))
    torchrun = Path(sys.executable).parent / "torchrun"
    proc = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node=2", "-m", "mrsynth_train.cli", "train",
                           "--config", str(cfg), "--out", str(tmp_path / "run")],
                          capture_output=True, text=True, encoding="utf-8", env=dict(os.environ, OMP_NUM_THREADS="1"), timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    log = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4]
    assert all(math.isfinite(v) for r in log for k, v in r.items() if isinstance(v, float))
