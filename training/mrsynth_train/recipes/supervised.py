"""Supervised baseline (Welander et al. 2018): the CycleGAN ResNet generator trained with L1 only on
co-registered (paired) slices, one generator per direction of each configured contrast pair. Learning
rate constant, then linear decay to 0 (CycleGAN's schedule, which their supervised model shared), so a
budget-stopped run ends annealed too."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from .. import losses
from ..data import Batch
from ..nets.resnet_generator import ResnetGenerator
from ..schema import TrainConfig
from .common import (
    PairwiseOptions,
    PairwiseRecipe,
    adam,
    direction_key,
    linear_decay,
    optimize,
    paired_sides,
    to_tensors,
)


@dataclass
class SupervisedOptions(PairwiseOptions):
    ngf: int = 64
    n_blocks: int = 9
    decay_from: float = 0.5  # fraction of the steps after which the learning rate decays linearly to 0


class SupervisedRecipe(PairwiseRecipe):
    """Both directions of the sampled pair are trained on the same paired rows each step."""

    name = "supervised"
    Options = SupervisedOptions
    fp16_ready = True  # every update goes through optimize() with the trainer's GradScaler

    def __init__(self, cfg: TrainConfig) -> None:
        super().__init__(cfg)
        self.generators = nn.ModuleDict({direction_key(s, t): self.make_translator() for s, t in self.directions})
        self.optimizer = adam(self.generators.parameters(), cfg.lr, (0.5, 0.999))
        self.scheduler = linear_decay(self.optimizer, cfg.steps, self.opt.decay_from)

    def make_translator(self) -> nn.Module:
        return ResnetGenerator(1, 1, self.opt.ngf, self.opt.n_blocks)

    def translators(self) -> nn.ModuleDict:
        return self.generators

    def modules(self) -> dict[str, nn.Module]:
        return {"generators": self.generators}

    def optimizers(self) -> dict:
        return {"optimizer": self.optimizer, "scheduler": self.scheduler}

    def train_step(self, batch: Batch) -> dict[str, float]:
        t = to_tensors(batch)
        self.generators.train()
        a, b = self.pick_pair(batch, paired=True)
        xa, xb = paired_sides(t, a, b)
        l_ab = losses.l1(self.generators[direction_key(a, b)](xa), xb)
        l_ba = losses.l1(self.generators[direction_key(b, a)](xb), xa)
        loss = l_ab + l_ba
        optimize(self.optimizer, loss, self.scaler)
        self.scheduler.step()
        return {"loss": loss.item(), "l1_ab": l_ab.item(), "l1_ba": l_ba.item()}

