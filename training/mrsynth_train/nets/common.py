"""Blocks shared by the recipe networks (MONAI's split: blocks here, networks in one file per method).

Data convention inside every recipe network: images in [-1, 1] (``2·x − 1`` of the project's [0, 1]
convention), tanh outputs, as in CycleGAN and its descendants.
"""

from __future__ import annotations

import torch
from torch import nn

from MRSynthLib.nets.blocks import ConvNormAct


class _ReverseGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, lam: float) -> torch.Tensor:
        ctx.lam = lam
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return -ctx.lam * grad, None


def grad_reverse(x: torch.Tensor, lam: float = 1.0) -> torch.Tensor:
    """Identity forward, gradient × (−lam) backward (Ganin & Lempitsky 2015): a classifier behind it
    learns to recognise the contrast while the features before it learn to hide the contrast."""
    return _ReverseGrad.apply(x, lam)


class GradReverse(nn.Module):
    def __init__(self, lam: float = 1.0) -> None:
        super().__init__()
        self.lam = lam

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return grad_reverse(x, self.lam)


class ModulatedNorm(nn.Module):
    """Instance norm, then a contrast-specific modulation *after* the norm.

    ``cin``: conditional instance norm, x̂·γ_c + β_c (Dumoulin et al. 2017; Hyper-GAN-CIN).
    ``fs``: filter scaling, x̂·s_c + β with a shared shift. Hyper-GAN-FS scales the conv filters,
    i.e. multiplies the conv output by s_c *before* the norm; but IN(s·x) = sign(s)·IN(x), so the
    norm cancels any positive scale. Placed after the norm the scale survives, which makes FS the
    shift-free special case of CIN — the difference the ablation measures.
    ``scale``/``shift`` are (N, C) from the contrast modulator; the scale is used as 1 + scale so a
    zero-initialised modulator starts as the identity.
    """

    def __init__(self, channels: int, mode: str) -> None:
        super().__init__()
        if mode not in ("cin", "fs"):
            raise ValueError(f"modulation mode must be 'cin' or 'fs', got {mode!r}")
        self.mode, self.channels = mode, channels
        self.norm = nn.InstanceNorm2d(channels, affine=False)
        self.shared_shift = nn.Parameter(torch.zeros(channels)) if mode == "fs" else None

    @property
    def n_params(self) -> int:
        """How many modulation values per sample this layer consumes."""
        return 2 * self.channels if self.mode == "cin" else self.channels

    def forward(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        h = self.norm(x)
        if self.mode == "cin":
            scale, shift = params[:, :self.channels], params[:, self.channels:]
        else:
            scale, shift = params, self.shared_shift.expand(x.shape[0], -1)
        return h * (1 + scale[:, :, None, None]) + shift[:, :, None, None]


class ContrastModulator(nn.Module):
    """One-hot contrast code → the modulation parameters of every ModulatedNorm of a network.

    Hyper-GAN chains dense+tanh layers from the code; here a shared tanh embedding feeds one linear
    head per layer, zero-initialised so training starts from the unmodulated network."""

    def __init__(self, n_contrasts: int, sizes: list[int], hidden: int = 64) -> None:
        super().__init__()
        self.embed = nn.Sequential(nn.Linear(n_contrasts, hidden), nn.Tanh())
        self.heads = nn.ModuleList(nn.Linear(hidden, n) for n in sizes)
        for h in self.heads:
            nn.init.zeros_(h.weight)
            nn.init.zeros_(h.bias)

    def forward(self, code: torch.Tensor) -> list[torch.Tensor]:
        e = self.embed(code)
        return [h(e) for h in self.heads]


class ResBlock(nn.Module):
    """Plain residual block (conv-IN-ReLU-conv-IN + skip), the unit of ResNet generators."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(ch, ch, 3, padding=1, padding_mode="reflect"), nn.InstanceNorm2d(ch, affine=True),
            nn.ReLU(inplace=True),
            nn.Conv2d(ch, ch, 3, padding=1, padding_mode="reflect"), nn.InstanceNorm2d(ch, affine=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class UpConv(nn.Sequential):
    """Nearest ×2 up-sampling then ConvNormAct: no transposed-conv checkerboard (Odena et al. 2016)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(nn.Upsample(scale_factor=2.0, mode="nearest"), ConvNormAct(cin, cout))


class Head(nn.Sequential):
    """7×7 reflect-padded conv to ``cout`` channels and tanh: the output layer of the generators."""

    def __init__(self, cin: int, cout: int = 1) -> None:
        super().__init__(nn.Conv2d(cin, cout, 7, padding=3, padding_mode="reflect"), nn.Tanh())


class PatchDiscriminator(nn.Module):
    """70×70 PatchGAN (Isola et al. 2017): C64-C128-C256-C512, 4×4 convs, LeakyReLU 0.2, IN from the
    second layer, one logit per overlapping 70×70 patch (no sigmoid: LSGAN).

    ``out_channels`` > 1 gives one patch map per contrast (StarGAN v2's multi-task discriminator;
    pick the target's channel). ``n_classes`` > 0 adds a domain-classification head on the pooled
    features (StarGAN / CollaGAN) and ``forward`` then returns ``(patch_logits, class_logits)``."""

    def __init__(self, cin: int = 1, ndf: int = 64, n_layers: int = 3, out_channels: int = 1,
                 n_classes: int = 0) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(cin, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        ch = ndf
        for i in range(1, n_layers + 1):
            nxt = ndf * min(2 ** i, 8)
            layers += [nn.Conv2d(ch, nxt, 4, stride=2 if i < n_layers else 1, padding=1),
                       nn.InstanceNorm2d(nxt, affine=True), nn.LeakyReLU(0.2, True)]
            ch = nxt
        self.features = nn.Sequential(*layers)
        self.patch = nn.Conv2d(ch, out_channels, 4, stride=1, padding=1)
        self.classify = nn.Linear(ch, n_classes) if n_classes > 0 else None

    def forward(self, x: torch.Tensor):
        f = self.features(x)
        if self.classify is None:
            return self.patch(f)
        return self.patch(f), self.classify(f.mean(dim=(2, 3)))
