"""Building blocks shared by the networks: conv units and style-modulated (AdaIN) residual blocks.

Modulation is applied *after* instance normalization: IN(s·x) = sign(s)·IN(x), so a scale placed
before the norm (as in Hyper-GAN's filter scaling) would be cancelled.
"""

from __future__ import annotations

import functools


@functools.cache
def _define() -> dict:
    """Define the torch classes on first use, so importing this module never imports torch."""
    import torch
    from torch import nn

    class AdaIN(nn.Module):
        """Instance norm without affine, then a per-channel scale and shift predicted from a style code."""

        def __init__(self, channels: int, style_dim: int) -> None:
            super().__init__()
            self.norm = nn.InstanceNorm2d(channels, affine=False)
            self.affine = nn.Linear(style_dim, 2 * channels)
            nn.init.zeros_(self.affine.weight)
            nn.init.zeros_(self.affine.bias)

        def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
            gamma, beta = self.affine(style).unsqueeze(-1).unsqueeze(-1).chunk(2, dim=1)
            return self.norm(x) * (1 + gamma) + beta


    class ConvNormAct(nn.Sequential):
        """Conv → InstanceNorm (affine) → ReLU, the encoder's unit."""

        def __init__(self, cin: int, cout: int, k: int = 3, stride: int = 1) -> None:
            super().__init__(
                nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, padding_mode="reflect"),
                nn.InstanceNorm2d(cout, affine=True),
                nn.ReLU(inplace=True),
            )


    class StyledResBlock(nn.Module):
        """Residual block whose two norms are AdaIN layers driven by the style code."""

        def __init__(self, channels: int, style_dim: int) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, padding_mode="reflect")
            self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, padding_mode="reflect")
            self.norm1 = AdaIN(channels, style_dim)
            self.norm2 = AdaIN(channels, style_dim)

        def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
            h = torch.relu(self.norm1(self.conv1(x), style))
            return x + self.norm2(self.conv2(h), style)


    class StyledUp(nn.Module):
        """Nearest ×2 upsampling, conv, AdaIN, ReLU (no checkerboard artefacts)."""

        def __init__(self, cin: int, cout: int, style_dim: int) -> None:
            super().__init__()
            self.conv = nn.Conv2d(cin, cout, 3, padding=1, padding_mode="reflect")
            self.norm = AdaIN(cout, style_dim)

        def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
            x = nn.functional.interpolate(x, scale_factor=2.0, mode="nearest")
            return torch.relu(self.norm(self.conv(x), style))

    return {"AdaIN": AdaIN, "ConvNormAct": ConvNormAct, "StyledResBlock": StyledResBlock, "StyledUp": StyledUp}


def __getattr__(name: str):
    classes = _define()
    if name in classes:
        return classes[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
