"""CollaGAN-style imputer (Lee et al., CVPR 2019, "CollaGAN: collaborative GAN for missing image data
imputation"; multi-branch encoder and conditional channel attention as in its MR follow-up, Lee et
al. 2020, MRM "Assessing the importance of magnetic resonance contrasts using collaborative
generative adversarial networks"): one generator imputes any missing contrast from the others."""

from __future__ import annotations

import torch
from torch import nn

from MRSynthLib.nets.blocks import ConvNormAct

from .common import Head, ResBlock, UpConv


class CCAM(nn.Module):
    """Conditional channel attention: pooled features + target one-hot → MLP → sigmoid per channel,
    so the decoder re-weights its channels for the contrast it must produce."""

    def __init__(self, channels: int, n_contrasts: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(channels + n_contrasts, max(channels // 2, 4)), nn.ReLU(inplace=True),
                                 nn.Linear(max(channels // 2, 4), channels), nn.Sigmoid())

    def forward(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        w = self.mlp(torch.cat([x.mean(dim=(2, 3)), target], dim=1))
        return x * w[:, :, None, None]


class Branch(nn.Module):
    """One contrast's encoder branch: full- and half-resolution features."""

    def __init__(self, ngf: int) -> None:
        super().__init__()
        self.e0 = ConvNormAct(1, ngf, k=7)
        self.e1 = ConvNormAct(ngf, 2 * ngf, stride=2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f0 = self.e0(x)
        return f0, self.e1(f0)


class CollaGANGenerator(nn.Module):
    """(images [0, 1] N×C×H×W, available N×C, target one-hot N×C) → N×1×H×W in [0, 1].

    One encoder branch per contrast (missing ones are zeroed, and so are their features); the
    branches meet at half resolution, go through residual blocks, and the decoder's up-convs are
    followed by CCAM with U-Net skips from the fused branch features. H, W multiples of 4."""

    def __init__(self, ngf: int = 16, n_blocks: int = 4, n_contrasts: int = 5) -> None:
        super().__init__()
        c = n_contrasts
        self.branches = nn.ModuleList(Branch(ngf) for _ in range(c))
        self.skip0 = nn.Conv2d(c * ngf + 2 * c, ngf, 1)
        self.skip1 = nn.Conv2d(c * 2 * ngf, 2 * ngf, 1)
        self.down = ConvNormAct(c * 2 * ngf, 4 * ngf, stride=2)
        self.blocks = nn.Sequential(*[ResBlock(4 * ngf) for _ in range(n_blocks)])
        self.att2 = CCAM(4 * ngf, c)
        self.up1, self.att1 = UpConv(4 * ngf, 2 * ngf), CCAM(2 * ngf, c)
        self.up0, self.att0 = UpConv(2 * ngf, ngf), CCAM(ngf, c)
        self.head = Head(ngf)

    def forward(self, images: torch.Tensor, available: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        f0s, f1s = [], []
        for k, branch in enumerate(self.branches):
            a = available[:, k].view(-1, 1, 1, 1)
            f0, f1 = branch((images[:, k:k + 1] * 2.0 - 1.0) * a)
            f0s.append(f0 * a)
            f1s.append(f1 * a)
        size = images.shape[-2:]
        maps = torch.cat([available, target], dim=1)[:, :, None, None].expand(-1, -1, *size)
        s0 = self.skip0(torch.cat(f0s + [maps], dim=1))
        f1 = torch.cat(f1s, dim=1)
        h = self.att2(self.blocks(self.down(f1)), target)
        h = self.att1(self.up1(h), target) + self.skip1(f1)
        h = self.att0(self.up0(h), target) + s0
        return (self.head(h) + 1.0) * 0.5
