"""UNIT (Liu, Breuel & Kautz 2017, "Unsupervised image-to-image translation networks") per contrast
pair, as compared by Welander et al. 2018: two VAE-GANs whose encoders share their last and whose
decoders share their first residual block, so both contrasts map into one latent space; latent
z = μ + N(0, I); losses (UNIT's PyTorch release): GAN 1, reconstruction 10, KL 0.01, cycle
reconstruction 10, cycle KL 0.01; LSGAN with 70×70 PatchGANs; Adam (0.5, 0.999). Unpaired."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from MRSynthLib.contrasts import CONTRASTS

from .. import losses
from ..data import Batch
from ..nets.pairwise import Translator, UNITPair
from ..schema import TrainConfig
from .common import (
    PairwiseOptions,
    PairwiseRecipe,
    adam,
    direction_key,
    discriminator_loss,
    linear_decay,
    optimize,
    patch_discriminators,
    set_requires_grad,
    to_tensors,
    unpaired_sides,
)


@dataclass
class UNITOptions(PairwiseOptions):
    ngf: int = 64
    n_res: int = 4  # residual blocks per encoder and per decoder (one of them shared)
    ndf: int = 64
    gan_w: float = 1.0
    recon_w: float = 10.0
    kl_w: float = 0.01
    cycle_w: float = 10.0
    cycle_kl_w: float = 0.01
    shuffle_pairs: bool = True
    decay_from: float = 0.5


class UNITRecipe(PairwiseRecipe):
    name = "unit"
    Options = UNITOptions
    fp16_ready = True

    def __init__(self, cfg: TrainConfig) -> None:
        super().__init__(cfg)
        o = self.opt
        self.models = nn.ModuleDict({direction_key(a, b): UNITPair(o.ngf, o.n_res) for a, b in self.pairs})
        self.discriminators = patch_discriminators({c for p in self.pairs for c in p}, o.ndf)
        self.opt_g = adam(self.models.parameters(), cfg.lr)
        self.opt_d = adam(self.discriminators.parameters(), cfg.lr)
        self.sched = [linear_decay(self.opt_g, cfg.steps, o.decay_from), linear_decay(self.opt_d, cfg.steps, o.decay_from)]

    def translators(self) -> nn.ModuleDict:
        out = {}
        for a, b in self.pairs:
            m = self.models[direction_key(a, b)]
            out[direction_key(a, b)] = Translator(m.enc_a, m.dec_b)
            out[direction_key(b, a)] = Translator(m.enc_b, m.dec_a)
        return nn.ModuleDict(out)

    def modules(self) -> dict[str, nn.Module]:
        return {"models": self.models, "discriminators": self.discriminators}

    def optimizers(self) -> dict:
        return {"opt_g": self.opt_g, "opt_d": self.opt_d, "sched_g": self.sched[0], "sched_d": self.sched[1]}

    def train_step(self, batch: Batch) -> dict[str, float]:
        t, o = to_tensors(batch), self.opt
        self.models.train()
        self.discriminators.train()
        a, b = self.pick_pair(batch, paired=False)
        m = self.models[direction_key(a, b)]
        d_a, d_b = self.discriminators[CONTRASTS[a]], self.discriminators[CONTRASTS[b]]
        x_a, x_b = unpaired_sides(t, a, b, o.shuffle_pairs)

        def sample(mu: torch.Tensor) -> torch.Tensor:
            return mu + torch.randn_like(mu)

        set_requires_grad([d_a, d_b], False)
        h_a, h_b = m.enc_a(x_a), m.enc_b(x_b)
        z_a, z_b = sample(h_a), sample(h_b)
        x_aa, x_bb = m.dec_a(z_a), m.dec_b(z_b)
        x_ab, x_ba = m.dec_b(z_a), m.dec_a(z_b)
        h_ab, h_ba = m.enc_b(x_ab), m.enc_a(x_ba)
        x_aba, x_bab = m.dec_a(sample(h_ab)), m.dec_b(sample(h_ba))
        adv = losses.lsgan(d_b(x_ab), True) + losses.lsgan(d_a(x_ba), True)
        recon = losses.l1(x_aa, x_a) + losses.l1(x_bb, x_b)
        kl = losses.kl_unit_variance(h_a) + losses.kl_unit_variance(h_b)
        cyc = losses.l1(x_aba, x_a) + losses.l1(x_bab, x_b)
        cyc_kl = losses.kl_unit_variance(h_ab) + losses.kl_unit_variance(h_ba)
        loss_g = o.gan_w * adv + o.recon_w * recon + o.kl_w * kl + o.cycle_w * cyc + o.cycle_kl_w * cyc_kl
        optimize(self.opt_g, loss_g, self.scaler)

        set_requires_grad([d_a, d_b], True)
        loss_d = discriminator_loss(d_a, x_a, x_ba) + discriminator_loss(d_b, x_b, x_ab)
        optimize(self.opt_d, loss_d, self.scaler)
        for s in self.sched:
            s.step()
        return {"loss_g": loss_g.item(), "adv": adv.item(), "recon": recon.item(), "kl": kl.item(),
                "cycle": cyc.item(), "cycle_kl": cyc_kl.item(), "loss_d": loss_d.item()}
