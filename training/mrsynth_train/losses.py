"""Losses shared by the recipes, each with its reduction stated (mean over every element unless said)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def lsgan(pred: torch.Tensor, real: bool) -> torch.Tensor:
    """Least-squares GAN loss (Mao et al. 2017): mean (D(x) − 1)² for real, mean D(x)² for fake."""
    return ((pred - 1.0) ** 2).mean() if real else (pred ** 2).mean()


def l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a - b).abs().mean()


def masked_l1(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean |a − b| over the mask's voxels (the evaluation protocol measures inside the brain)."""
    return ((a - b).abs() * mask).sum() / mask.sum().clamp(min=1.0)


def _gauss(window: int, sigma: float, device, dtype) -> torch.Tensor:
    x = torch.arange(window, device=device, dtype=dtype) - (window - 1) / 2
    g = torch.exp(-x ** 2 / (2 * sigma ** 2))
    return g / g.sum()


def ssim(a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0, window: int = 11,
         sigma: float = 1.5) -> torch.Tensor:
    """Differentiable 2D SSIM (Wang et al. 2004) with a Gaussian window, per image, shape (N,).

    Written here because the loss needs gradients (scikit-image's SSIM, used for evaluation, has
    none); constants K1 = 0.01, K2 = 0.03 as in skimage; reflect padding keeps the size.

    Always computed in float32 (or wider), also under autocast: the variances are differences of nearly equal
    blurred squares, which bfloat16's 8-bit mantissa turns into large negative numbers (SSIM far below
    −1, the log loss −inf on CPUs with native bf16 and on GPUs)."""
    with torch.autocast(a.device.type, enabled=False):
        dtype = torch.promote_types(a.dtype, torch.float32)  # float64 stays float64
        return _ssim_float32(a.to(dtype), b.to(dtype), data_range, window, sigma)


def _ssim_float32(a: torch.Tensor, b: torch.Tensor, data_range: float, window: int, sigma: float) -> torch.Tensor:
    c = a.shape[1]
    g = _gauss(window, sigma, a.device, a.dtype)
    kx = g.view(1, 1, 1, -1).expand(c, 1, 1, window)
    ky = g.view(1, 1, -1, 1).expand(c, 1, window, 1)

    def blur(x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (window // 2,) * 4, mode="reflect")
        return F.conv2d(F.conv2d(x, kx, groups=c), ky, groups=c)

    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a ** 2
    var_b = blur(b * b) - mu_b ** 2
    cov = blur(a * b) - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    return s.flatten(1).mean(dim=1)


def ssim_loss(a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """CollaGAN's −log((1 + SSIM) / 2), mean over the batch: 0 for identical images, grows without
    bound as SSIM → −1 (Lee et al. 2019). float32 under any autocast (see ``ssim``)."""
    s = ssim(a, b, data_range)
    with torch.autocast(s.device.type, enabled=False):
        return -torch.log(((1 + s) / 2).clamp(min=1e-6)).mean()


def kl_unit_variance(mu: torch.Tensor) -> torch.Tensor:
    """KL(N(μ, I) ‖ N(0, I)) up to a constant: mean μ² (UNIT's encoder with fixed unit variance)."""
    return (mu ** 2).mean()
