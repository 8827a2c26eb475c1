"""CycleGAN (Zhu et al. 2017) per contrast pair, as compared by Welander et al. 2018: ResNet-9
generators, 70×70 PatchGAN discriminators, LSGAN, cycle loss λ = 10, optional identity loss, an
image pool of 50, Adam (0.5, 0.999), constant then linearly decaying learning rate. Unpaired."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from MRSynthLib.contrasts import CONTRASTS

from .. import losses
from ..data import Batch
from ..nets.resnet_generator import ResnetGenerator
from ..schema import TrainConfig
from .common import (
    HistoryPools,
    ImagePool,
    PairwiseOptions,
    PairwiseRecipe,
    adam,
    direction_key,
    linear_decay,
    optimize,
    patch_discriminators,
    set_requires_grad,
    to_tensors,
    unpaired_sides,
    update_pair_discriminators,
)


@dataclass
class CycleGANOptions(PairwiseOptions):
    ngf: int = 64
    n_blocks: int = 9
    ndf: int = 64
    lambda_cycle: float = 10.0
    lambda_identity: float = 0.0  # × lambda_cycle, as in CycleGAN (0.5 there for photos; off for MR)
    pool_size: int = 50
    shuffle_pairs: bool = True  # roll one side of the batch so no row is a co-registered pair
    decay_from: float = 0.5  # fraction of the steps after which the learning rate decays linearly to 0


class CycleGANRecipe(HistoryPools, PairwiseRecipe):
    name = "cyclegan"
    Options = CycleGANOptions
    fp16_ready = True

    def __init__(self, cfg: TrainConfig) -> None:
        super().__init__(cfg)
        o = self.opt
        self.generators = nn.ModuleDict({direction_key(s, t): ResnetGenerator(1, 1, o.ngf, o.n_blocks)
                                         for s, t in self.directions})
        self.discriminators = patch_discriminators({c for p in self.pairs for c in p}, o.ndf)
        self.opt_g = adam(self.generators.parameters(), cfg.lr)
        self.opt_d = adam(self.discriminators.parameters(), cfg.lr)
        self.sched = [linear_decay(self.opt_g, cfg.steps, o.decay_from), linear_decay(self.opt_d, cfg.steps, o.decay_from)]
        self.pools = {c: ImagePool(o.pool_size) for c in self.discriminators}

    def translators(self) -> nn.ModuleDict:
        return self.generators

    def modules(self) -> dict[str, nn.Module]:
        return {"generators": self.generators, "discriminators": self.discriminators}

    def optimizers(self) -> dict:
        return {"opt_g": self.opt_g, "opt_d": self.opt_d, "sched_g": self.sched[0], "sched_d": self.sched[1]}

    def train_step(self, batch: Batch) -> dict[str, float]:
        t, o = to_tensors(batch), self.opt
        self.generators.train()
        self.discriminators.train()
        a, b = self.pick_pair(batch, paired=False)
        ca, cb = CONTRASTS[a], CONTRASTS[b]
        g_ab, g_ba = self.generators[direction_key(a, b)], self.generators[direction_key(b, a)]
        d_a, d_b = self.discriminators[ca], self.discriminators[cb]
        real_a, real_b = unpaired_sides(t, a, b, o.shuffle_pairs)

        set_requires_grad([d_a, d_b], False)
        fake_b, fake_a = g_ab(real_a), g_ba(real_b)
        adv = losses.lsgan(d_b(fake_b), True) + losses.lsgan(d_a(fake_a), True)
        cyc = losses.l1(g_ba(fake_b), real_a) + losses.l1(g_ab(fake_a), real_b)
        loss_g = adv + o.lambda_cycle * cyc
        idt = fake_a.new_zeros(())
        if o.lambda_identity > 0:
            idt = losses.l1(g_ab(real_b), real_b) + losses.l1(g_ba(real_a), real_a)
            loss_g = loss_g + o.lambda_identity * o.lambda_cycle * idt
        optimize(self.opt_g, loss_g, self.scaler)
        loss_d = update_pair_discriminators(self, d_a, d_b, real_a, real_b, fake_a, fake_b, ca, cb)
        return {"loss_g": loss_g.item(), "adv": adv.item(), "cycle": cyc.item(), "identity": idt.item(),
                "loss_d": loss_d.item()}
