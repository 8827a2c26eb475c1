"""Hyper-GAN (Yang et al., MICCAI 2021, "A unified Hyper-GAN model for unpaired multi-contrast MR
image translation"): one hyper-encoder (5 residual blocks) maps any contrast into a common feature
space, one hyper-decoder (4 residual blocks) maps it to any contrast; contrast modulators turn a
one-hot contrast code into the per-layer modulation of both (CIN or filter scaling, see
``ModulatedNorm`` for why the scale sits after the normalization)."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

from .common import ContrastModulator, GradReverse, Head, ModulatedNorm


class ModConv(nn.Module):
    """conv → ModulatedNorm → ReLU (the norm removes any bias, so the conv has none)."""

    def __init__(self, cin: int, cout: int, k: int, mode: str, stride: int = 1, up: bool = False) -> None:
        super().__init__()
        self.up = up
        self.conv = nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, padding_mode="reflect", bias=False)
        self.norm = ModulatedNorm(cout, mode)
        self.sizes = [self.norm.n_params]

    def forward(self, x: torch.Tensor, params: Iterator[torch.Tensor]) -> torch.Tensor:
        if self.up:
            x = nn.functional.interpolate(x, scale_factor=2.0, mode="nearest")
        return torch.relu(self.norm(self.conv(x), next(params)))


class ModResBlock(nn.Module):
    def __init__(self, ch: int, mode: str) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(ch, ch, 3, padding=1, padding_mode="reflect", bias=False)
        self.conv2 = nn.Conv2d(ch, ch, 3, padding=1, padding_mode="reflect", bias=False)
        self.norm1, self.norm2 = ModulatedNorm(ch, mode), ModulatedNorm(ch, mode)
        self.sizes = [self.norm1.n_params, self.norm2.n_params]

    def forward(self, x: torch.Tensor, params: Iterator[torch.Tensor]) -> torch.Tensor:
        h = torch.relu(self.norm1(self.conv1(x), next(params)))
        return x + self.norm2(self.conv2(h), next(params))


class _Modulated(nn.Module):
    """A stack of modulated layers plus the modulator that feeds them, in order."""

    def __init__(self, layers: list[nn.Module], n_contrasts: int, hidden: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.modulator = ContrastModulator(n_contrasts, [n for layer in layers for n in layer.sizes], hidden)

    def forward(self, x: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        params = iter(self.modulator(code))
        for layer in self.layers:
            x = layer(x, params)
        return x


class HyperEncoder(_Modulated):
    """c7s1-ngf, d2ngf, d4ngf, ``n_blocks`` residual blocks, all modulated by the source contrast."""

    def __init__(self, ngf: int, n_blocks: int = 5, n_contrasts: int = 5, mode: str = "cin", hidden: int = 64) -> None:
        super().__init__([ModConv(1, ngf, 7, mode), ModConv(ngf, 2 * ngf, 3, mode, stride=2),
                          ModConv(2 * ngf, 4 * ngf, 3, mode, stride=2),
                          *[ModResBlock(4 * ngf, mode) for _ in range(n_blocks)]], n_contrasts, hidden)


class HyperDecoder(_Modulated):
    """``n_blocks`` residual blocks, two modulated up-convs, tanh head, modulated by the target contrast."""

    def __init__(self, ngf: int, n_blocks: int = 4, n_contrasts: int = 5, mode: str = "cin", hidden: int = 64) -> None:
        super().__init__([*[ModResBlock(4 * ngf, mode) for _ in range(n_blocks)],
                          ModConv(4 * ngf, 2 * ngf, 3, mode, up=True), ModConv(2 * ngf, ngf, 3, mode, up=True)],
                         n_contrasts, hidden)
        self.head = Head(ngf)

    def forward(self, x: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        return self.head(super().forward(x, code))


class ContrastClassifier(nn.Sequential):
    """Per-position contrast classifier on the common features behind a gradient-reversal layer
    (1×1 convs as in the paper): it learns to tell the source contrast, the encoder learns to hide it."""

    def __init__(self, channels: int, n_contrasts: int = 5, hidden: int = 64, grl: float = 1.0) -> None:
        super().__init__(GradReverse(grl), nn.Conv2d(channels, hidden, 1), nn.LeakyReLU(0.2, True),
                         nn.Conv2d(hidden, hidden // 2, 1), nn.LeakyReLU(0.2, True),
                         nn.Conv2d(hidden // 2, n_contrasts, 1))


class HyperGANGenerator(nn.Module):
    """Inference network: (images [0, 1] N×C×H×W, available N×C, target one-hot N×C) → N×1×H×W [0, 1].

    Several sources: their common-space features are averaged over the available contrasts before
    decoding. The paper (and its code) translates one source at a time; the mean is our extension,
    justified by the common-space loss, which trains every contrast of a subject to the same
    features. Only the contrasts available in some row are encoded (H, W multiples of 4)."""

    def __init__(self, ngf: int = 32, enc_blocks: int = 5, dec_blocks: int = 4, n_contrasts: int = 5,
                 mode: str = "cin", hidden: int = 64) -> None:
        super().__init__()
        self.n_contrasts = n_contrasts
        self.skip_unavailable = True  # saves work in Python; the ONNX export turns it off (see export_graphs)
        self.encoder = HyperEncoder(ngf, enc_blocks, n_contrasts, mode, hidden)
        self.decoder = HyperDecoder(ngf, dec_blocks, n_contrasts, mode, hidden)

    def code(self, index: int, n: int, like: torch.Tensor) -> torch.Tensor:
        c = like.new_zeros(n, self.n_contrasts)
        c[:, index] = 1.0
        return c

    def forward(self, images: torch.Tensor, available: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        n = images.shape[0]
        total, weight = None, available.new_zeros(n, 1, 1, 1)
        for c in range(self.n_contrasts):
            if self.skip_unavailable and not bool((available[:, c] > 0).any()):
                continue
            f = self.encoder(images[:, c:c + 1] * 2.0 - 1.0, self.code(c, n, images))
            w = available[:, c].view(-1, 1, 1, 1)
            total = f * w if total is None else total + f * w
            weight = weight + w
        if total is None:
            raise ValueError("no available source contrast")
        return (self.decoder(total / weight.clamp(min=1.0), target) + 1.0) * 0.5
