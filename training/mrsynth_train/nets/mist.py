"""MIST-style networks (Raut et al. 2022, "MIST GAN: modality imputation using style transfer for
MRI"; built on StarGAN v2, Choi et al. 2020, and MUNIT, Huang et al. 2018): a content encoder shared
by every contrast, a combiner that fuses the contents of the available inputs, a separator that
recovers each input's content from the fused code, a style encoder and a mapping network with one
head per contrast, and an AdaIN decoder (MRSynthLib's StyledResBlock/StyledUp)."""

from __future__ import annotations

import torch
from torch import nn

from MRSynthLib.nets.blocks import ConvNormAct, StyledResBlock, StyledUp

from .common import Head, ResBlock


def _pick(per_contrast: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(N, C, S) per-contrast outputs and a (N, C) one-hot target → (N, S)."""
    return (per_contrast * target[:, :, None]).sum(dim=1)


class ContentEncoder(nn.Sequential):
    """Image → content code at ¼ resolution (anatomy; IN removes the contrast's global statistics)."""

    def __init__(self, ngf: int, n_blocks: int) -> None:
        super().__init__(ConvNormAct(1, ngf, k=7), ConvNormAct(ngf, 2 * ngf, stride=2),
                         ConvNormAct(2 * ngf, 4 * ngf, stride=2), *[ResBlock(4 * ngf) for _ in range(n_blocks)])


class Combiner(nn.Module):
    """Fuses the content codes of the available inputs: masked mean and max → 1×1 conv → IN → ReLU,
    so any non-empty subset of inputs gives one content code."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.mix = ConvNormAct(2 * channels, channels, k=1)

    def forward(self, contents: torch.Tensor, available: torch.Tensor) -> torch.Tensor:
        """contents (N, C, F, h, w), available (N, C)."""
        a = available[:, :, None, None, None]
        mean = (contents * a).sum(dim=1) / a.sum(dim=1).clamp(min=1.0)
        mx = contents.masked_fill(a == 0, -1e4).amax(dim=1)
        mx = torch.where(a.sum(dim=1) > 0, mx, torch.zeros_like(mx))
        return self.mix(torch.cat([mean, mx], dim=1))


class Separator(nn.Module):
    """Fused content → each contrast's content code (1×1 conv): trained to give back each input's own
    code, so the combiner cannot discard what any single input contributed. Training only."""

    def __init__(self, channels: int, n_contrasts: int) -> None:
        super().__init__()
        self.n, self.proj = n_contrasts, nn.Conv2d(channels, channels * n_contrasts, 1)

    def forward(self, fused: torch.Tensor) -> torch.Tensor:
        n, f, h, w = fused.shape
        return self.proj(fused).view(n, self.n, f, h, w)


class StyleEncoder(nn.Module):
    """Reference image → style code for the given contrast (shared trunk, one linear head per contrast)."""

    def __init__(self, ngf: int, style_dim: int, n_contrasts: int) -> None:
        super().__init__()
        self.trunk = nn.Sequential(
            nn.Conv2d(1, ngf, 3, stride=2, padding=1), nn.LeakyReLU(0.2),
            nn.Conv2d(ngf, 2 * ngf, 3, stride=2, padding=1), nn.LeakyReLU(0.2),
            nn.Conv2d(2 * ngf, 4 * ngf, 3, stride=2, padding=1), nn.LeakyReLU(0.2),
            nn.Conv2d(4 * ngf, 4 * ngf, 3, stride=2, padding=1), nn.LeakyReLU(0.2))
        self.heads = nn.Linear(4 * ngf, style_dim * n_contrasts)
        self.n, self.s = n_contrasts, style_dim

    def forward(self, image: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        h = self.heads(self.trunk(image * 2.0 - 1.0).mean(dim=(2, 3)))
        return _pick(h.view(-1, self.n, self.s), target)


class MappingNetwork(nn.Module):
    """Latent z → style code for the given contrast (StarGAN v2: shared MLP, one head per contrast)."""

    def __init__(self, latent_dim: int, style_dim: int, n_contrasts: int, hidden: int = 64) -> None:
        super().__init__()
        self.shared = nn.Sequential(nn.Linear(latent_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                    nn.Linear(hidden, hidden), nn.ReLU())
        self.heads = nn.Linear(hidden, style_dim * n_contrasts)
        self.n, self.s, self.latent_dim = n_contrasts, style_dim, latent_dim

    def forward(self, z: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return _pick(self.heads(self.shared(z)).view(-1, self.n, self.s), target)


class Decoder(nn.Module):
    """Content code + style → image: AdaIN residual blocks and up-sampling, tanh head, [0, 1] out."""

    def __init__(self, ngf: int, n_blocks: int, style_dim: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(StyledResBlock(4 * ngf, style_dim) for _ in range(n_blocks))
        self.up1, self.up2 = StyledUp(4 * ngf, 2 * ngf, style_dim), StyledUp(2 * ngf, ngf, style_dim)
        self.head = Head(ngf)

    def forward(self, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        h = content
        for b in self.blocks:
            h = b(h, style)
        return (self.head(self.up2(self.up1(h, style), style)) + 1.0) * 0.5


class MISTGenerator(nn.Module):
    """(images [0, 1] N×C×H×W, available N×C, style N×S) → N×1×H×W in [0, 1]."""

    def __init__(self, ngf: int = 16, enc_blocks: int = 2, dec_blocks: int = 4, style_dim: int = 16,
                 n_contrasts: int = 5) -> None:
        super().__init__()
        self.n_contrasts = n_contrasts
        self.skip_unavailable = True  # saves work in Python; the ONNX export turns it off (see export_graphs)
        self.content = ContentEncoder(ngf, enc_blocks)
        self.combiner = Combiner(4 * ngf)
        self.decoder = Decoder(ngf, dec_blocks, style_dim)

    def contents(self, images: torch.Tensor, available: torch.Tensor) -> torch.Tensor:
        """(N, C, F, h, w) content codes; contrasts missing in every row are left zero."""
        codes = None
        for c in range(self.n_contrasts):
            if self.skip_unavailable and not bool((available[:, c] > 0).any()):
                continue
            f = self.content(images[:, c:c + 1] * 2.0 - 1.0)
            if codes is None:
                codes = f.new_zeros((f.shape[0], self.n_contrasts) + f.shape[1:])
            codes[:, c] = f
        if codes is None:
            raise ValueError("no available source contrast")
        return codes

    def forward(self, images: torch.Tensor, available: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.combiner(self.contents(images, available), available), style)


class MISTInference(nn.Module):
    """Latent-guided inference with z = 0 (the mode of the prior): (images, available, target one-hot)."""

    def __init__(self, generator: MISTGenerator, mapping: MappingNetwork) -> None:
        super().__init__()
        self.generator, self.mapping = generator, mapping

    def forward(self, images: torch.Tensor, available: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        z = images.new_zeros(images.shape[0], self.mapping.latent_dim)
        return self.generator(images, available, self.mapping(z, target))
