"""The papers' specifics, checked one by one: CollaGAN's SSIM loss by hand, MIST's slow mapping network,
Hyper-GAN's default weights and Adam settings, the PatchGAN's 70×70 receptive field, brain-only slice
sampling, and that each augmentation really changes what the network sees."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_RECIPE_OPTIONS as TINY

from mrsynth_train.config import TrainConfig, load_config
from mrsynth_train.data import Augment, SliceSampler
from mrsynth_train.recipes import build_recipe
from mrsynth_train.subjects import SubjectArrays, simulated_subjects
from MRSynthLib.contrasts import CONTRASTS

CONFIGS = Path(__file__).resolve().parents[1] / "training" / "configs"


def test_collagan_ssim_loss_hand_computed():
    """Constant images a = 0.2, b = 0.6: no variance, so SSIM = (2ab + C1) / (a² + b² + C1) with
    C1 = (0.01)²; the loss is −log((1 + SSIM) / 2)."""
    from mrsynth_train.losses import ssim_loss

    a, b = (torch.full((1, 1, 16, 16), v, dtype=torch.float64) for v in (0.2, 0.6))  # no float32 rounding
    s = (2 * 0.2 * 0.6 + 1e-4) / (0.2 ** 2 + 0.6 ** 2 + 1e-4)
    assert float(ssim_loss(a, b)) == pytest.approx(-math.log((1 + s) / 2), rel=1e-9)
    assert float(ssim_loss(a, a)) == pytest.approx(0.0, abs=1e-6)


def test_ssim_loss_is_float32_under_bfloat16_autocast():
    """Under bf16 autocast (CPUs with AMX, GPUs with amp: bf16) the SSIM terms must stay float32: in bf16
    the variances (differences of blurred squares) lose their digits and the log loss went to −inf."""
    from mrsynth_train.losses import ssim, ssim_loss

    g = torch.Generator().manual_seed(0)
    a = torch.rand((2, 1, 32, 32), generator=g) * 0.8 + 0.1
    b = (a + 0.05 * torch.randn(a.shape, generator=g)).clamp(0, 1)
    ref_s, ref_loss = ssim(a, b), ssim_loss(a, b)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        s, loss = ssim(a, b), ssim_loss(a, b)
    assert s.dtype == torch.float32 and loss.dtype == torch.float32
    assert torch.allclose(s, ref_s, atol=1e-6) and float(loss) == pytest.approx(float(ref_loss), abs=1e-6)


def test_mist_mapping_network_learns_at_its_scaled_rate():
    lr = lambda opt: opt.param_groups[0]["lr"]  # noqa: E731
    default = build_recipe(TrainConfig(recipe="mist", lr=1e-3, options=TINY["mist"]))
    assert lr(default.opt_map) / lr(default.opt_g) == pytest.approx(0.01)  # StarGAN v2's 0.01×
    scaled = build_recipe(TrainConfig(recipe="mist", lr=1e-3, options={**TINY["mist"], "mapping_lr_scale": 0.1}))
    assert lr(scaled.opt_map) / lr(scaled.opt_g) == pytest.approx(0.1)
    assert load_config(CONFIGS / "mist.yaml").options["mapping_lr_scale"] == 0.01


def test_mist_generates_reference_guided_and_latent_guided():
    """MIST's two ways to pick a style: a reference scan through the style encoder, or a latent through the
    mapping network. Different references give different images; the reference path is not the latent one."""
    torch.manual_seed(0)
    recipe = build_recipe(TrainConfig(recipe="mist", options=TINY["mist"]))
    with torch.no_grad():  # the style modulation starts at zero (no effect): give it weights, as training would
        for p in recipe.generator.parameters():
            if not p.any():
                p.normal_(0.0, 0.2)
    images, available = torch.rand(2, len(CONTRASTS), 32, 32), torch.tensor([[1.0, 0, 1, 0, 0]] * 2)
    target = CONTRASTS.index("FLAIR")
    flat, textured = torch.full((2, 1, 32, 32), 0.3), torch.rand(2, 1, 32, 32)
    a = recipe.predict_reference(images, available, target, flat)
    b = recipe.predict_reference(images, available, target, textured)
    latent = recipe.predict(images, available, target)
    assert a.shape == b.shape == latent.shape == (2, 1, 32, 32)
    assert float((a - b).abs().max()) > 1e-4 and float((a - latent).abs().max()) > 1e-4
    assert float(a.min()) >= 0.0 and float(a.max()) <= 1.0


def test_hypergan_defaults_are_the_papers():
    """Cycle 10, identical 0.5, reconstruction 10, classification 0.2; Adam 2e-4, β (0.5, 0.999)."""
    cfg = load_config(CONFIGS / "hypergan.yaml")
    assert cfg.lr == pytest.approx(2e-4)
    recipe = build_recipe(TrainConfig(recipe="hypergan", lr=cfg.lr, options=TINY["hypergan"]))
    o = recipe.opt
    assert (o.lambda_cycle, o.lambda_identical, o.lambda_recon, o.lambda_class) == (10.0, 0.5, 10.0, 0.2)
    for opt in (recipe.opt_g, recipe.opt_d):
        assert opt.param_groups[0]["betas"] == (0.5, 0.999) and opt.param_groups[0]["lr"] == pytest.approx(2e-4)
    assert isinstance(recipe.opt_g, torch.optim.Adam)


def test_patchgan_sees_70_by_70_patches():
    """Receptive field of one output logit, from the convolutions' kernels and strides."""
    from mrsynth_train.nets.common import PatchDiscriminator

    d = PatchDiscriminator(1, 4)
    field, jump = 1, 1
    for conv in [m for m in d.modules() if isinstance(m, torch.nn.Conv2d)]:
        field += (conv.kernel_size[0] - 1) * jump
        jump *= conv.stride[0]
    assert field == 70


def test_only_brain_slices_are_sampled():
    """Slices 0-2 and 9-11 hold no brain, slice 2 only a speck (under a quarter of the largest area):
    no sample may come from them, and every sampled crop holds brain."""
    mask = np.zeros((12, 40, 40), bool)
    mask[3:9, 8:32, 8:32] = True
    mask[2, 20, 20] = True
    ramp = np.arange(1, 13, dtype=np.float32)[:, None, None] / 20 * np.ones((12, 40, 40), np.float32)
    sub = SubjectArrays("ramp", {c: np.where(mask, ramp, 0).astype(np.float32) for c in ("T1", "T2")}, mask)
    b = SliceSampler([sub], patch=16, seed=0, augment=False).sample(64)
    assert (b.mask.reshape(64, -1).sum(axis=1) > 0).all()
    slices = {round(float(x) * 20) - 1 for x in b.truth.reshape(64, -1).max(axis=1)}
    assert slices and slices <= set(range(3, 9))


@pytest.fixture(scope="module")
def subject():
    return simulated_subjects(1, (40, 48, 40))


OFF = {"flip": 0.0, "gamma": 0.0, "scale": 0.0, "bias": 0.0, "noise": 0.0, "subject_gamma": 0.0, "curve": 0.0}


@pytest.mark.parametrize("switch", ["flip", "gamma", "scale", "bias", "noise", "subject_gamma", "curve"])
def test_each_augmentation_changes_the_sample(switch, subject):
    """The same draw with one augmentation switched on for sure vs all off: the sample must change
    (inputs for the per-channel intensity ones, whose geometric ``contrasts`` stay as they were)."""
    base = SliceSampler(subject, patch=32, seed=4, augment=Augment(**OFF)).sample(1)
    aug = SliceSampler(subject, patch=32, seed=4, augment=Augment(**{**OFF, switch: 1.0})).sample(1)
    assert not np.allclose(aug.images, base.images, atol=1e-3)
    if switch == "flip":
        assert np.array_equal(aug.images, base.images[..., ::-1]) and np.array_equal(aug.mask, base.mask[..., ::-1])
    if switch in ("gamma", "bias", "noise", "curve"):
        assert np.array_equal(aug.contrasts, base.contrasts) and np.array_equal(aug.truth, base.truth)
    if switch == "subject_gamma":  # truth too: the whole sample looks like another subject
        assert not np.allclose(aug.truth, base.truth, atol=1e-3)
    assert aug.images.min() >= 0 and aug.images.max() <= 1
    assert base.available.sum() > 0 and len(CONTRASTS) == base.images.shape[1]
