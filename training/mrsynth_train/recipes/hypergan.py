"""Hyper-GAN (Yang et al., MICCAI 2021): one hyper-encoder/hyper-decoder pair with contrast
modulators (CIN or filter scaling, option ``mode``) translates between every contrast pair,
trained unpaired with per-contrast 70×70 PatchGANs (LSGAN), cycle loss (λ 10) and the common-space
loss = identical (0.5: features of an image and of its translation agree) + reconstruction (10:
decoding an image's features with its own contrast gives it back) + contrast classification
through a gradient-reversal layer (0.2: the features must not reveal their contrast).
A weight of 0 switches a term off (it is then not computed), for ablations. Adam 2e-4, (0.5, 0.999).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from MRSynthLib.contrasts import CONTRASTS
from MRSynthLib.errors import MRSynthError

from .. import losses
from ..data import Batch
from ..nets.hypergan import ContrastClassifier, HyperGANGenerator
from ..schema import TrainConfig
from .common import (
    N_CONTRASTS,
    HistoryPools,
    ImagePool,
    OneHotGeneratorRecipe,
    adam,
    choose,
    linear_decay,
    one_hot,
    optimize,
    parse_options,
    patch_discriminators,
    set_requires_grad,
    shard_views,
    to_tensors,
    unpaired_sides,
    update_pair_discriminators,
)


@dataclass
class HyperGANOptions:
    mode: str = "cin"  # "cin" (conditional instance norm) or "fs" (filter scaling after the norm)
    ngf: int = 32
    ndf: int = 64
    enc_blocks: int = 5
    dec_blocks: int = 4
    modulator_hidden: int = 64
    lambda_cycle: float = 10.0
    lambda_identical: float = 0.5
    lambda_recon: float = 10.0
    lambda_class: float = 0.2
    grl: float = 1.0  # gradient-reversal factor
    pool_size: int = 50
    shuffle_pairs: bool = True  # roll one side of the batch so no row is a co-registered pair
    decay_from: float = 0.5

    def __post_init__(self) -> None:
        if self.mode not in ("cin", "fs"):
            raise MRSynthError(f"options.mode must be 'cin' or 'fs', got {self.mode!r}")
        for k in ("lambda_cycle", "lambda_identical", "lambda_recon", "lambda_class"):
            if getattr(self, k) < 0:
                raise MRSynthError(f"options.{k} must be ≥ 0")


class HyperGANRecipe(HistoryPools, OneHotGeneratorRecipe):
    name = "hypergan"
    Options = HyperGANOptions
    fp16_ready = True

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg
        o = self.opt = parse_options(HyperGANOptions, cfg)
        self.generator = HyperGANGenerator(o.ngf, o.enc_blocks, o.dec_blocks, N_CONTRASTS, o.mode, o.modulator_hidden)
        self.classifier = ContrastClassifier(4 * o.ngf, N_CONTRASTS, o.modulator_hidden, o.grl)
        self.discriminators = patch_discriminators(set(range(N_CONTRASTS)), o.ndf)
        # the classifier sits in the generator's optimizer: the reversal layer makes it adversarial
        self.opt_g = adam(list(self.generator.parameters()) + list(self.classifier.parameters()), cfg.lr)
        self.opt_d = adam(self.discriminators.parameters(), cfg.lr)
        self.sched = [linear_decay(self.opt_g, cfg.steps, o.decay_from), linear_decay(self.opt_d, cfg.steps, o.decay_from)]
        self.pools = {c: ImagePool(o.pool_size) for c in CONTRASTS}

    def modules(self) -> dict[str, nn.Module]:
        return {"generator": self.generator, "classifier": self.classifier, "discriminators": self.discriminators}

    def _pick(self, batch) -> tuple[int, int]:
        """An ordered (source, target) pair of contrasts that every shard holds; the batch's choice."""
        shards = shard_views(batch)
        present = [c for c in range(N_CONTRASTS) if all(bool((h[:, c] > 0).any()) for h in shards)]
        if len(present) < 2:
            raise MRSynthError("recipe 'hypergan' needs at least two contrasts in the batch (in every shard)")
        return choose([(a, b) for a in present for b in present if a != b], batch.choice)

    def _class_loss(self, feats: torch.Tensor, contrast: int) -> torch.Tensor:
        logits = self.classifier(feats)
        labels = torch.full((logits.shape[0],) + logits.shape[2:], contrast, dtype=torch.long)
        return nn.functional.cross_entropy(logits, labels)

    def train_step(self, batch: Batch) -> dict[str, float]:
        t, o = to_tensors(batch), self.opt
        for m in self.modules().values():
            m.train()
        a, b = self._pick(batch)
        ca, cb = CONTRASTS[a], CONTRASTS[b]
        real_a, real_b = unpaired_sides(t, a, b, o.shuffle_pairs)
        code_a, code_b = one_hot(a, batch=len(real_a)), one_hot(b, batch=len(real_b))
        code_ab, code_ba = one_hot(b, batch=len(real_a)), one_hot(a, batch=len(real_b))
        enc, dec = self.generator.encoder, self.generator.decoder
        d_a, d_b = self.discriminators[ca], self.discriminators[cb]

        set_requires_grad([d_a, d_b], False)
        f_a, f_b = enc(real_a, code_a), enc(real_b, code_b)
        fake_b, fake_a = dec(f_a, code_ab), dec(f_b, code_ba)
        terms = {"adv": losses.lsgan(d_b(fake_b), True) + losses.lsgan(d_a(fake_a), True)}
        weights = {"adv": 1.0, "cycle": o.lambda_cycle, "identical": o.lambda_identical,
                   "recon": o.lambda_recon, "class": o.lambda_class}
        if o.lambda_cycle or o.lambda_identical or o.lambda_class:
            f_fb, f_fa = enc(fake_b, code_ab), enc(fake_a, code_ba)
        if o.lambda_cycle:
            terms["cycle"] = losses.l1(dec(f_fb, code_a), real_a) + losses.l1(dec(f_fa, code_b), real_b)
        if o.lambda_identical:
            terms["identical"] = losses.l1(f_fb, f_a) + losses.l1(f_fa, f_b)
        if o.lambda_recon:
            terms["recon"] = losses.l1(dec(f_a, code_a), real_a) + losses.l1(dec(f_b, code_b), real_b)
        if o.lambda_class:
            terms["class"] = (self._class_loss(f_a, a) + self._class_loss(f_b, b)
                              + self._class_loss(f_fb, b) + self._class_loss(f_fa, a))
        loss_g = sum(weights[k] * v for k, v in terms.items())
        optimize(self.opt_g, loss_g, self.scaler)
        loss_d = update_pair_discriminators(self, d_a, d_b, real_a, real_b, fake_a, fake_b, ca, cb)
        return {"loss_g": float(loss_g.item()), **{k: v.item() for k, v in terms.items()}, "loss_d": loss_d.item()}
