"""Multiply-accumulate counts of conv/linear layers, measured with forward hooks on a real forward pass."""

from __future__ import annotations


def count_macs(module, height: int, width: int, extra_inputs=None) -> int:
    """MACs of one forward pass of ``module`` on a single (height × width) slice.

    For the unified generator the inputs are (images, available, style); for other networks pass
    ``extra_inputs`` as a callable building the inputs from (height, width)."""
    import torch
    from torch import nn

    total = 0

    def conv_hook(mod, inp, out):
        nonlocal total
        kk = mod.kernel_size[0] * mod.kernel_size[1]
        if isinstance(mod, nn.ConvTranspose2d):  # every input pixel scatters into k·k·Cout outputs
            total += int(inp[0].numel() * kk * mod.out_channels // mod.groups)
        else:
            total += int(out.numel() * kk * (mod.in_channels // mod.groups))

    def lin_hook(mod, _inp, out):
        nonlocal total
        total += int(out.numel() * mod.in_features)

    hooks = []
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(lin_hook))
    if extra_inputs is None:
        n_c = getattr(module, "n_contrasts", module.enc0[0].in_channels // 2)
        channels = n_c * (1 + 2 * getattr(module, "context", 0))  # 2.5D: neighbours as extra channels
        style_dim = module.blocks[0].norm1.affine.in_features
        inputs = (torch.zeros(1, channels, height, width), torch.ones(1, n_c), torch.zeros(1, style_dim))
    else:
        inputs = extra_inputs(height, width)
    try:
        with torch.no_grad():
            module.eval()(*inputs)
    finally:
        for h in hooks:
            h.remove()
    return total
