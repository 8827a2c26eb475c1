"""CollaGAN-style imputer (Lee et al., CVPR 2019; MR version Lee et al. 2020): a multi-branch
generator with conditional channel attention imputes the target from any subset of the others.
Losses: direct L1 to the truth (paired data), multiple cycle consistency (λ 10: each input is
re-imputed from the other inputs plus the fake and must come back), the SSIM loss
−log((1 + SSIM)/2) on the fake and on every cycle, LSGAN, and a domain-classification head on the
discriminator (D learns the contrast of real images, G must make fakes classified as the target)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .. import losses
from ..data import Batch
from ..nets.collagan import CollaGANGenerator
from ..nets.common import PatchDiscriminator
from ..schema import TrainConfig
from .common import (
    N_CONTRASTS,
    OneHotGeneratorRecipe,
    adam,
    linear_decay,
    one_hot,
    optimize,
    parse_options,
    set_requires_grad,
    to_tensors,
)


@dataclass
class CollaGANOptions:
    ngf: int = 16
    n_blocks: int = 4
    ndf: int = 64
    lambda_l1: float = 10.0
    lambda_cycle: float = 10.0
    lambda_ssim: float = 1.0
    lambda_cls: float = 1.0
    lambda_adv: float = 1.0
    decay_from: float = 0.5


class CollaGANRecipe(OneHotGeneratorRecipe):
    name = "collagan"
    Options = CollaGANOptions
    fp16_ready = True

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg
        o = self.opt = parse_options(CollaGANOptions, cfg)
        self.generator = CollaGANGenerator(o.ngf, o.n_blocks, N_CONTRASTS)
        self.discriminator = PatchDiscriminator(1, o.ndf, n_classes=N_CONTRASTS)
        self.opt_g = adam(self.generator.parameters(), cfg.lr)
        self.opt_d = adam(self.discriminator.parameters(), cfg.lr)
        self.sched = [linear_decay(self.opt_g, cfg.steps, o.decay_from), linear_decay(self.opt_d, cfg.steps, o.decay_from)]

    def modules(self) -> dict[str, nn.Module]:
        return {"generator": self.generator, "discriminator": self.discriminator}

    def _cycles(self, images: torch.Tensor, available: torch.Tensor, target: torch.Tensor,
                fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Re-impute every available input k from (other inputs + the fake at the target)."""
        rows = torch.arange(images.shape[0])
        with_fake = images.clone()
        with_fake[rows, target] = fake[:, 0].to(with_fake.dtype)  # bfloat16 under autocast
        avail_fake = available.clone()
        avail_fake[rows, target] = 1.0
        l1, ssim = fake.new_zeros(()), fake.new_zeros(())
        for k in range(N_CONTRASTS):
            sel = (available[:, k] > 0).nonzero().flatten()
            if len(sel) == 0:
                continue
            avail_k = avail_fake[sel].clone()
            avail_k[:, k] = 0.0
            rec = self.generator(with_fake[sel], avail_k, one_hot(k, batch=len(sel)))
            real = images[sel, k:k + 1]
            l1 = l1 + losses.l1(rec, real)
            ssim = ssim + losses.ssim_loss(rec, real)
        return l1, ssim

    def train_step(self, batch: Batch) -> dict[str, float]:
        t, o = to_tensors(batch), self.opt
        self.generator.train()
        self.discriminator.train()
        images, available, target, truth = t["images"], t["available"], t["target"], t["truth"]
        code = one_hot(target)

        set_requires_grad([self.discriminator], False)
        fake = self.generator(images, available, code)
        patch, cls = self.discriminator(fake)
        terms = {"adv": losses.lsgan(patch, True), "cls": nn.functional.cross_entropy(cls, target),
                 "l1": losses.l1(fake, truth), "ssim": losses.ssim_loss(fake, truth)}
        terms["cycle"], cyc_ssim = self._cycles(images, available, target, fake)
        terms["ssim"] = terms["ssim"] + cyc_ssim
        w = {"adv": o.lambda_adv, "cls": o.lambda_cls, "l1": o.lambda_l1, "ssim": o.lambda_ssim,
             "cycle": o.lambda_cycle}
        loss_g = sum(w[k] * v for k, v in terms.items())
        optimize(self.opt_g, loss_g, self.scaler)

        set_requires_grad([self.discriminator], True)
        p_real, c_real = self.discriminator(truth)
        p_fake, _ = self.discriminator(fake.detach())
        loss_d = (0.5 * (losses.lsgan(p_real, True) + losses.lsgan(p_fake, False))
                  + o.lambda_cls * nn.functional.cross_entropy(c_real, target))
        optimize(self.opt_d, loss_d, self.scaler)
        for s in self.sched:
            s.step()
        return {"loss_g": loss_g.item(), **{k: v.item() for k, v in terms.items()}, "loss_d": loss_d.item()}
