"""Welander et al.'s "simple" baseline: a two-layer 1×1-conv network (a learned voxel-wise intensity
mapping) per direction, trained with L1 on paired slices — what a model without spatial context
achieves, so every spatial model has a floor to beat."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from ..nets.pairwise import SimpleNet
from .common import default_pairs
from .supervised import SupervisedRecipe


@dataclass
class SimpleOptions:
    pairs: list[list[str]] = field(default_factory=default_pairs)
    hidden: int = 256
    decay_from: float = 0.5  # linear decay to 0 after this fraction of the steps (the budget's clock under a budget)


class SimpleRecipe(SupervisedRecipe):
    name = "simple"
    Options = SimpleOptions

    def make_translator(self) -> nn.Module:
        return SimpleNet(self.opt.hidden)
