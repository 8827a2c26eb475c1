"""Recipe for the unified default model: masked L1 with mean-style or reference-style targets."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from MRSynthLib.errors import MRSynthError
from MRSynthLib.nets.unified import UnifiedConfig, UnifiedModel, images_with_context

from ..data import Batch
from ..schema import TrainConfig, from_dict
from .common import cosine_decay, global_rows, optimize, to_tensors


@dataclass
class UnifiedOptions:
    ref_style_prob: float = 0.5  # share of samples generated with the style encoded from the true target
    style_recon: float = 0.0  # StarGAN-v2 style reconstruction: the style encoder must recover the code
    random_style_prob: float = 0.0  # share of samples generated from another contrast's mean style (needs style_recon)
    laplace: float = 0.0  # weight of the scale head's Laplace likelihood (needs model.scale_head > 0)
    train_only: list[str] = field(default_factory=list)  # parameter-name prefixes to train; the rest frozen


class UnifiedRecipe:
    """One model, one optimizer; half of each batch is generated with the target's mean style,
    half with the style encoded from the true target slice (reference-guided), and a small
    penalty keeps each contrast's codes centred on its mean style (so α interpolation is meaningful)."""

    name = "unified"
    Options = UnifiedOptions
    uses_model_section = True  # the only recipe built from the config's ``model:`` section
    reads_context = True  # data.context > 0: 2.5D, the neighbouring slices are extra generator channels
    fp16_ready = True
    scaler = None  # the trainer's GradScaler (fp16), see ``optimize``

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg
        self.options = from_dict(UnifiedOptions, cfg.options, "options.")
        # data.context > 0 (2.5D): the neighbouring slices come in as extra generator channels
        self.model = UnifiedModel(UnifiedConfig(**vars(cfg.model), context=cfg.data.context))
        if self.options.laplace and not self.model.cfg.scale_head:
            raise MRSynthError("options.laplace needs a scale head: set model.scale_head (e.g. 16)")
        if self.options.train_only:
            frozen_except(self.model, self.options.train_only)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.lr, betas=(0.9, 0.999))
        self.scheduler = cosine_decay(self.optimizer, cfg.steps, floor=0.05)

    def inference_module(self) -> torch.nn.Module:
        return self.model.generator

    def modules(self) -> dict[str, torch.nn.Module]:
        return {"model": self.model}

    def optimizers(self) -> dict:
        return {"optimizer": self.optimizer, "scheduler": self.scheduler}

    @torch.no_grad()
    def predict(self, images: torch.Tensor, available: torch.Tensor, target: int) -> torch.Tensor:
        """(N, C·(1+2k), H, W), (N, C), target index → (N, 1, H, W) in [0, 1]; the common evaluation
        interface (2.5D: images already carry the neighbours, ``images_with_context``)."""
        model = self.model.eval()
        style = model.mean_styles[target].expand(images.shape[0], -1)
        return model.generator(images, available, style).clamp(0, 1)

    def train_step(self, batch: Batch) -> dict[str, float]:
        t = to_tensors(batch)
        model = self.model.train()
        ref = model.style_encoder(t["truth"])
        mean = model.mean_styles[t["target"]]
        total, rows = global_rows(batch)  # draws for the global batch: the same under torchrun as in one process
        use_ref = (torch.rand(total, 1)[rows] < self.options.ref_style_prob).float()
        style = use_ref * ref + (1 - use_ref) * mean
        o = self.options
        # a few samples ask for another contrast's style: no pixel target, only the style must come back,
        # so the generator cannot read the target from the availability mask and ignore the style code
        other_all = torch.zeros(total, 1)
        if o.style_recon and o.random_style_prob:
            other_all = (torch.rand(total, 1) < o.random_style_prob).float()
            rand_target = torch.randint(0, model.mean_styles.shape[0], (total,))[rows]
            style = other_all[rows] * model.mean_styles[rand_target] + (1 - other_all[rows]) * style
        images = images_with_context(t["images"], t["neighbours"] if model.cfg.context else None)
        if o.laplace:
            pred, log_b = model.generator.forward_with_scale(images, t["available"], style)
        else:
            pred = model.generator(images, t["available"], style)
        pixel = t["mask"] * (1 - other_all[rows])[:, :, None, None]
        denominator = _pixels(batch, pixel, other_all)
        l1 = ((pred - t["truth"]).abs() * pixel).sum() / denominator
        reg = ((ref - mean) ** 2).mean()
        loss = l1 + self.cfg.style_reg * reg
        extra = {}
        if o.laplace:  # −log Laplace(truth | pred, b) up to a constant; the residual is fixed (detached)
            nll = (((pred.detach() - t["truth"]).abs() * torch.exp(-log_b) + log_b) * pixel).sum() / denominator
            loss = loss + o.laplace * nll
            extra["laplace_nll"] = nll.item()
        if o.style_recon:
            loss = loss + o.style_recon * (model.style_encoder(pred) - style.detach()).abs().mean()
        optimize(self.optimizer, loss, self.scaler)
        self.scheduler.step()
        return {"loss": loss.item(), "l1": l1.item(), "style_reg": reg.item(), **extra}


def frozen_except(model: torch.nn.Module, prefixes: list[str]) -> None:
    """Train only the parameters whose names start with one of ``prefixes`` (e.g. ``generator.scale``, to
    fit a scale head onto a trained network without changing its images); an unmatched prefix is an error."""
    names = [n for n, _ in model.named_parameters()]
    for prefix in prefixes:
        if not any(n.startswith(prefix) for n in names):
            raise MRSynthError(f"options.train_only: no parameter starts with '{prefix}'")
    for name, param in model.named_parameters():
        param.requires_grad_(any(name.startswith(p) for p in prefixes))


def _pixels(batch: Batch, pixel: torch.Tensor, other_all: torch.Tensor) -> torch.Tensor:
    """Denominator of the masked L1: this batch's brain pixels; under torchrun the *global* batch's over the
    number of ranks (whose gradients are averaged), so 2 ranks × B optimise 1 process × 2B's loss."""
    if batch.global_mask_area is None:
        return pixel.sum().clamp(min=1.0)
    area = torch.as_tensor(batch.global_mask_area, dtype=pixel.dtype, device=pixel.device)
    return (area * (1 - other_all[:, 0])).sum().clamp(min=1.0) / len(batch.shard_has)
