"""CycleGAN's ResNet generator (Johnson et al. 2016; Zhu et al. 2017): the speed and quality reference.

c7s1-64, d128, d256, 9 × R256, u128, u64, c7s1-1 with instance norm and reflection padding;
48.7 GMAC per 256² slice with ngf = 64 and 9 blocks.
"""

from __future__ import annotations

import functools


@functools.cache
def _define() -> dict:
    """Define the torch classes on first use, so importing this module never imports torch."""
    from torch import nn

    class _Res(nn.Module):
        def __init__(self, ch: int) -> None:
            super().__init__()
            self.body = nn.Sequential(
                nn.ReflectionPad2d(1), nn.Conv2d(ch, ch, 3), nn.InstanceNorm2d(ch), nn.ReLU(True),
                nn.ReflectionPad2d(1), nn.Conv2d(ch, ch, 3), nn.InstanceNorm2d(ch),
            )

        def forward(self, x):
            return x + self.body(x)


    class ResnetGenerator(nn.Sequential):
        def __init__(self, cin: int = 1, cout: int = 1, ngf: int = 64, n_blocks: int = 9) -> None:
            layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(cin, ngf, 7), nn.InstanceNorm2d(ngf), nn.ReLU(True)]
            for i in range(2):
                m = 2 ** i
                layers += [nn.Conv2d(ngf * m, ngf * m * 2, 3, stride=2, padding=1), nn.InstanceNorm2d(ngf * m * 2),
                           nn.ReLU(True)]
            layers += [_Res(ngf * 4) for _ in range(n_blocks)]
            for i in range(2):
                m = 2 ** (2 - i)
                layers += [nn.ConvTranspose2d(ngf * m, ngf * m // 2, 3, stride=2, padding=1, output_padding=1),
                           nn.InstanceNorm2d(ngf * m // 2), nn.ReLU(True)]
            layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, cout, 7), nn.Tanh()]
            super().__init__(*layers)

    return {"_Res": _Res, "ResnetGenerator": ResnetGenerator}


def __getattr__(name: str):
    classes = _define()
    if name in classes:
        return classes[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
