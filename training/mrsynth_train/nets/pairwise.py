"""Single-source networks of the pairwise baselines (Welander et al. 2018, "Generative adversarial
networks for image-to-image translation on multi-contrast MR images — a comparison of CycleGAN and
UNIT"): the two-layer "simple" model and UNIT's shared-latent encoders/decoders. CycleGAN and the
supervised baseline use nets.resnet_generator.ResnetGenerator."""

from __future__ import annotations

import torch
from torch import nn

from MRSynthLib.nets.blocks import ConvNormAct

from .common import Head, ResBlock, UpConv


class SimpleNet(nn.Sequential):
    """Welander et al.'s "simple" model: 1×1 conv (256) → ReLU → 1×1 conv, i.e. a learned non-linear
    intensity mapping applied voxel by voxel — the floor any spatial model must beat."""

    def __init__(self, hidden: int = 256) -> None:
        super().__init__(nn.Conv2d(1, hidden, 1), nn.ReLU(inplace=True), nn.Conv2d(hidden, 1, 1))


class UNITEncoder(nn.Module):
    """c7s1-ngf, d2ngf, d4ngf, private residual blocks, then the residual block shared by both
    domains' encoders (Liu et al. 2017: weight sharing ties the two latents into one space)."""

    def __init__(self, ngf: int, n_res: int, shared: nn.Module) -> None:
        super().__init__()
        self.body = nn.Sequential(ConvNormAct(1, ngf, k=7), ConvNormAct(ngf, 2 * ngf, stride=2),
                                  ConvNormAct(2 * ngf, 4 * ngf, stride=2), *[ResBlock(4 * ngf) for _ in range(n_res - 1)])
        self.shared = shared

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shared(self.body(x))


class UNITDecoder(nn.Module):
    """The residual block shared by both decoders, private residual blocks, two up-convs, tanh head."""

    def __init__(self, ngf: int, n_res: int, shared: nn.Module) -> None:
        super().__init__()
        self.shared = shared
        self.body = nn.Sequential(*[ResBlock(4 * ngf) for _ in range(n_res - 1)], UpConv(4 * ngf, 2 * ngf),
                                  UpConv(2 * ngf, ngf), Head(ngf))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(self.shared(z))


class UNITPair(nn.Module):
    """Encoders and decoders of one contrast pair (a, b) with their shared high-level layers."""

    def __init__(self, ngf: int = 64, n_res: int = 4) -> None:
        super().__init__()
        shared_enc, shared_dec = ResBlock(4 * ngf), ResBlock(4 * ngf)
        self.enc_a, self.enc_b = UNITEncoder(ngf, n_res, shared_enc), UNITEncoder(ngf, n_res, shared_enc)
        self.dec_a, self.dec_b = UNITDecoder(ngf, n_res, shared_dec), UNITDecoder(ngf, n_res, shared_dec)


class Translator(nn.Module):
    """encoder → decoder with the latent mean (no sampling noise at inference)."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module) -> None:
        super().__init__()
        self.encoder, self.decoder = encoder, decoder

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))
