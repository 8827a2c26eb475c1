"""Recipe for the unified default model: masked L1 with mean-style or reference-style targets."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from MRSynthLib.nets.unified import UnifiedConfig, UnifiedModel

from .config import TrainConfig, from_dict
from .data import Batch
from .recipe_common import cosine_decay, to_tensors


@dataclass
class UnifiedOptions:
    ref_style_prob: float = 0.5  # share of samples generated with the style encoded from the true target
    style_recon: float = 0.0  # StarGAN-v2 style reconstruction: the style encoder must recover the code
    random_style_prob: float = 0.0  # share of samples generated from another contrast's mean style (needs style_recon)


class UnifiedRecipe:
    """One model, one optimizer; half of each batch is generated with the target's mean style,
    half with the style encoded from the true target slice (reference-guided), and a small
    penalty keeps each contrast's codes centred on its mean style (so α interpolation is meaningful)."""

    name = "unified"

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg
        self.options = from_dict(UnifiedOptions, cfg.options, "options.")
        self.model = UnifiedModel(UnifiedConfig(**vars(cfg.model)))
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
        """(N, C, H, W), (N, C), target index → (N, 1, H, W) in [0, 1]; the common evaluation interface."""
        model = self.model.eval()
        style = model.mean_styles[target].expand(images.shape[0], -1)
        return model.generator(images, available, style).clamp(0, 1)

    def train_step(self, batch: Batch) -> dict[str, float]:
        t = to_tensors(batch)
        model = self.model.train()
        ref = model.style_encoder(t["truth"])
        mean = model.mean_styles[t["target"]]
        use_ref = (torch.rand(ref.shape[0], 1) < self.options.ref_style_prob).float()
        style = use_ref * ref + (1 - use_ref) * mean
        o = self.options
        # a few samples ask for another contrast's style: no pixel target, only the style must come back,
        # so the generator cannot read the target from the availability mask and ignore the style code
        other = torch.zeros_like(use_ref)
        if o.style_recon and o.random_style_prob:
            other = (torch.rand(ref.shape[0], 1) < o.random_style_prob).float()
            rand_target = torch.randint(0, model.mean_styles.shape[0], (ref.shape[0],))
            style = other * model.mean_styles[rand_target] + (1 - other) * style
        pred = model.generator(t["images"], t["available"], style)
        pixel = t["mask"] * (1 - other)[:, :, None, None]
        l1 = ((pred - t["truth"]).abs() * pixel).sum() / pixel.sum().clamp(min=1.0)
        reg = ((ref - mean) ** 2).mean()
        loss = l1 + self.cfg.style_reg * reg
        if o.style_recon:
            loss = loss + o.style_recon * (model.style_encoder(pred) - style.detach()).abs().mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        return {"loss": loss.item(), "l1": l1.item(), "style_reg": reg.item()}
