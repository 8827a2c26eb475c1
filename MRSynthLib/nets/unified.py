"""The unified default generator: any subset of contrasts in, any contrast out, target as a style code.

One network carries the ideas of the seed methods:
- availability mask (CollaGAN / MM-GAN / MIST): missing inputs are zeros and the mask is given as
  extra channels, so one model serves every source subset;
- target = style code in the decoder (Hyper-GAN-CIN, MIST/StarGAN v2): each contrast has a learned
  mean style; a style encoder maps a reference image to a code; target choice, reference style and
  style interpolation are all the same mechanism (a point in style space);
- U-Net-like additive skips keep anatomy sharp at low cost;
- a per-voxel path (1×1 convs, FiLM-modulated by the style, *no* normalization) keeps the absolute
  intensity relations between inputs that instance normalization removes from the main path;
- optionally (``input_mix``) the output is a per-voxel softmax mixture of the given inputs and the
  generated image, so a near-identical input (T1Gd for T1) can pass its own intensities through;
- optionally (``scale_head`` w > 0) a small head reads the decoder's last features (detached: it never
  changes the image) and predicts a per-voxel Laplace scale log b of the output's error, trained with the
  Laplace likelihood of the residual: the network's own uncertainty, for the uncertainty map;
- optionally (``context`` k > 0, "2.5D") the k neighbouring slices on each side of every input come in
  as extra channels (see :func:`images_with_context` for the channel order), so the encoder sees
  through-plane anatomy; the per-voxel path and the input mixture use the centre slice only.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class UnifiedConfig:
    n_contrasts: int = 5
    ngf: int = 16
    n_blocks: int = 6
    style_dim: int = 8
    pointwise: int = 32  # width of the un-normalized per-voxel path (0 = off)
    input_mix: int = 0  # 1: the output is a per-voxel softmax mixture of the given inputs and the generated image
    context: int = 0  # 2.5D: k neighbouring slices on each side of every input as extra channels
    scale_head: int = 0  # width of the Laplace scale head (0 = off), see ``UnifiedGenerator.forward_with_scale``

    @property
    def image_channels(self) -> int:
        """Channels of the ``images`` input: the centre slices, then each contrast's 2k neighbours."""
        return self.n_contrasts * (1 + 2 * self.context)

    def to_dict(self) -> dict:
        return asdict(self)


@functools.cache
def _define() -> dict:
    """Define the torch classes on first use, so importing this module never imports torch."""
    import torch
    from torch import nn

    from .blocks import ConvNormAct, StyledResBlock, StyledUp

    class UnifiedGenerator(nn.Module):
        """(images N×C×H×W, available N×C, style N×S) → synthetic N×1×H×W; H, W multiples of 4."""

        def __init__(self, cfg: UnifiedConfig) -> None:
            super().__init__()
            c, f, s = cfg.n_contrasts, cfg.ngf, cfg.style_dim
            self.n_contrasts, self.context = c, cfg.context
            self.enc0 = ConvNormAct(2 * c + 2 * cfg.context * c, f, k=5)
            self.enc1 = ConvNormAct(f, 2 * f, stride=2)
            self.enc2 = ConvNormAct(2 * f, 4 * f, stride=2)
            self.blocks = nn.ModuleList(StyledResBlock(4 * f, s) for _ in range(cfg.n_blocks))
            self.up1 = StyledUp(4 * f, 2 * f, s)
            self.up2 = StyledUp(2 * f, f, s)
            self.out = nn.Conv2d(f, 1, 5, padding=2, padding_mode="reflect")
            self.pointwise = cfg.pointwise
            if cfg.pointwise:
                self.point_in = nn.Conv2d(2 * c, cfg.pointwise, 1)
                self.point_film = nn.Linear(s, 2 * cfg.pointwise)
                nn.init.zeros_(self.point_film.weight)
                nn.init.zeros_(self.point_film.bias)
                self.point_out = nn.Conv2d(cfg.pointwise, 1, 1)
            self.input_mix = cfg.input_mix
            if cfg.input_mix:  # logits: one per input contrast + one for the generated image
                self.mix = nn.Conv2d(f, c + 1, 1)
                nn.init.zeros_(self.mix.weight)
                with torch.no_grad():
                    self.mix.bias.zero_()
                    self.mix.bias[c] = 2.0  # start close to the plain generator
            self.scale_head = cfg.scale_head
            if cfg.scale_head:  # decoder features + output + masked inputs → log b (Laplace scale of the error)
                w = cfg.scale_head
                self.scale = nn.Sequential(
                    nn.Conv2d(f + 1 + 2 * c, w, 3, padding=1, padding_mode="reflect"), nn.LeakyReLU(0.2),
                    nn.Conv2d(w, w, 3, padding=2, dilation=2, padding_mode="reflect"), nn.LeakyReLU(0.2),
                    nn.Conv2d(w, 1, 3, padding=1, padding_mode="reflect"))
                with torch.no_grad():
                    self.scale[-1].bias.fill_(-3.0)  # b ≈ 0.05 of the [0, 1] range before training

        def forward(self, images: torch.Tensor, available: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
            return self._forward(images, available, style)[0]

        def forward_with_scale(self, images: torch.Tensor, available: torch.Tensor, style: torch.Tensor
                               ) -> tuple[torch.Tensor, torch.Tensor]:
            """(synthetic, log b): b is the Laplace scale of |synthetic − truth| (E|error| = b, SD = √2·b), in
            the output's [0, 1] units. The head sees the features detached, so it never changes the image."""
            if not self.scale_head:
                raise ValueError("this generator has no scale head (UnifiedConfig.scale_head = 0)")
            out, h, x = self._forward(images, available, style)
            log_b = self.scale(torch.cat([h.detach(), out.detach(), x], dim=1))
            return out, log_b.clamp(-9.0, 3.0)

        def _forward(self, images: torch.Tensor, available: torch.Tensor, style: torch.Tensor):
            avail = available[:, :, None, None]
            c = self.n_contrasts
            centre = images[:, :c]
            x = torch.cat([centre * avail, avail.expand_as(centre)], dim=1)
            if self.context:  # each contrast's neighbours masked like the contrast itself
                around = images[:, c:] * avail.repeat_interleave(2 * self.context, dim=1)
                e0 = self.enc0(torch.cat([x, around], dim=1))
            else:
                e0 = self.enc0(x)
            e1 = self.enc1(e0)
            h = self.enc2(e1)
            for block in self.blocks:
                h = block(h, style)
            h = self.up1(h, style) + e1
            h = self.up2(h, style) + e0
            out = self.out(h)
            if self.pointwise:
                gamma, beta = self.point_film(style)[:, :, None, None].chunk(2, dim=1)
                out = out + self.point_out(torch.relu(self.point_in(x) * (1 + gamma) + beta))
            if self.input_mix:
                logits = self.mix(h)
                blocked = torch.cat([(1.0 - avail) * -1e4, torch.zeros_like(avail[:, :1])], dim=1)
                weights = torch.softmax(logits + blocked, dim=1)
                out = (weights * torch.cat([centre, out], dim=1)).sum(dim=1, keepdim=True)
            return out, h, x


    class StyleEncoder(nn.Module):
        """Reference image (N×1×H×W) → style code (N×S): strided convs and global average pooling,
        so the code can carry global appearance (contrast, protocol) but not anatomy."""

        def __init__(self, cfg: UnifiedConfig) -> None:
            super().__init__()
            f = cfg.ngf
            self.features = nn.Sequential(
                nn.Conv2d(1, f, 3, stride=2, padding=1), nn.LeakyReLU(0.2),
                nn.Conv2d(f, 2 * f, 3, stride=2, padding=1), nn.LeakyReLU(0.2),
                nn.Conv2d(2 * f, 4 * f, 3, stride=2, padding=1), nn.LeakyReLU(0.2),
                nn.Conv2d(4 * f, 4 * f, 3, stride=2, padding=1), nn.LeakyReLU(0.2),
            )
            self.head = nn.Linear(4 * f, cfg.style_dim)

        def forward(self, image: torch.Tensor) -> torch.Tensor:
            return self.head(self.features(image).mean(dim=(2, 3)))


    class UnifiedModel(nn.Module):
        """Generator + style encoder + one learned mean style per contrast."""

        def __init__(self, cfg: UnifiedConfig | None = None) -> None:
            super().__init__()
            self.cfg = cfg or UnifiedConfig()
            self.generator = UnifiedGenerator(self.cfg)
            self.style_encoder = StyleEncoder(self.cfg)
            self.mean_styles = nn.Parameter(torch.randn(self.cfg.n_contrasts, self.cfg.style_dim) * 0.5)

        def forward(self, images: torch.Tensor, available: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            """Convenience: synthesize with each sample's target mean style (target: N long)."""
            return self.generator(images, available, self.mean_styles[target])

    return {"UnifiedGenerator": UnifiedGenerator, "StyleEncoder": StyleEncoder, "UnifiedModel": UnifiedModel}


def images_with_context(centre, neighbours=None):
    """The generator's ``images`` input from centre slices (N, C, H, W) and neighbours (N, C, 2k, H, W; each
    contrast's slices z−k…z−1, z+1…z+k): centre channels first, then the neighbours contrast by contrast.
    Works on numpy arrays and torch tensors alike (reshape + concatenate)."""
    if neighbours is None or neighbours.shape[2] == 0:
        return centre
    n, c, m, h, w = neighbours.shape
    flat = neighbours.reshape(n, c * m, h, w)
    if hasattr(centre, "detach"):  # torch
        import torch

        return torch.cat([centre, flat], dim=1)
    import numpy as np

    return np.concatenate([centre, flat], axis=1)


def __getattr__(name: str):
    if name.startswith("__"):  # import machinery probes (__path__, __file__…) must not import torch
        raise AttributeError(name)
    classes = _define()
    if name in classes:
        return classes[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
