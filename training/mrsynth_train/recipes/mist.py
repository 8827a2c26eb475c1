"""MIST-style recipe (Raut et al. 2022, MIST GAN; StarGAN v2, Choi et al. 2020; MUNIT, Huang et al.
2018): the available inputs' content codes are combined, and the target is generated with a style
that is either encoded from a reference (reference-guided) or mapped from a random latent
(latent-guided). Losses: LSGAN against a discriminator with one patch map per contrast; cyclic style
(the style encoder recovers the style used); cyclic content (the fake's content code equals the
fused one); an image cycle back to one of the inputs with that input's style; the separator's
per-input content recovery; the style-diversification loss (two latents must give different
images; its weight decays linearly to 0 as in StarGAN v2); and, the data being paired, L1 between
the reference-guided fake (the truth's own style) and the truth. The mapping network has its own
optimizer with a much smaller learning rate (StarGAN v2: 0.01×). Adam (0.0, 0.99).

StarGAN v2 keeps its learning rates constant; here they decay linearly to 0 after ``decay_from`` of the
steps (``decay_from: 1`` keeps them constant), and both that and the diversification weight follow the
CPU budget's clock when a budget stops the run (:meth:`MISTRecipe.advance_schedule`), so at equal
budget every recipe ends annealed."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .. import losses
from ..data import Batch
from ..nets.common import PatchDiscriminator
from ..nets.mist import MappingNetwork, MISTGenerator, MISTInference, Separator, StyleEncoder
from ..schema import TrainConfig
from .common import (
    N_CONTRASTS,
    adam,
    linear_decay,
    one_hot,
    optimize,
    parse_options,
    set_requires_grad,
    to_tensors,
)


@dataclass
class MISTOptions:
    ngf: int = 16
    enc_blocks: int = 2
    dec_blocks: int = 4
    style_dim: int = 16
    latent_dim: int = 16
    mapping_hidden: int = 64
    ndf: int = 32
    mapping_lr_scale: float = 0.01
    lambda_adv: float = 1.0
    lambda_style: float = 1.0
    lambda_content: float = 1.0
    lambda_cycle: float = 1.0
    lambda_sep: float = 1.0
    lambda_ds: float = 1.0  # decays linearly to 0 over ds_decay_steps (0 → over cfg.steps)
    ds_decay_steps: int = 0
    lambda_l1: float = 10.0
    decay_from: float = 0.5  # learning rates decay linearly to 0 after this fraction of the steps (1: constant)


class MISTRecipe:
    name = "mist"
    Options = MISTOptions
    fp16_ready = True  # every update goes through optimize() with the trainer's GradScaler
    scaler = None  # the trainer's GradScaler (fp16), see ``optimize``

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg
        o = self.opt = parse_options(MISTOptions, cfg)
        self.generator = MISTGenerator(o.ngf, o.enc_blocks, o.dec_blocks, o.style_dim, N_CONTRASTS)
        self.separator = Separator(4 * o.ngf, N_CONTRASTS)
        self.style_encoder = StyleEncoder(o.ngf, o.style_dim, N_CONTRASTS)
        self.mapping = MappingNetwork(o.latent_dim, o.style_dim, N_CONTRASTS, o.mapping_hidden)
        self.discriminator = PatchDiscriminator(1, o.ndf, out_channels=N_CONTRASTS)
        betas = (0.0, 0.99)
        g_params = [*self.generator.parameters(), *self.separator.parameters(), *self.style_encoder.parameters()]
        self.opt_g = adam(g_params, cfg.lr, betas)
        self.opt_map = adam(self.mapping.parameters(), cfg.lr * o.mapping_lr_scale, betas)
        self.opt_d = adam(self.discriminator.parameters(), cfg.lr, betas)
        self.sched = [linear_decay(opt, cfg.steps, o.decay_from) for opt in (self.opt_g, self.opt_map, self.opt_d)]
        self.ds_steps = o.ds_decay_steps or cfg.steps
        self.state = _State()  # schedule position, checkpointed with the modules: the ds-weight schedule

    def modules(self) -> dict[str, nn.Module]:
        return {"generator": self.generator, "separator": self.separator, "style_encoder": self.style_encoder,
                "mapping": self.mapping, "discriminator": self.discriminator, "state": self.state}

    def optimizers(self) -> dict:
        return {"opt_g": self.opt_g, "opt_map": self.opt_map, "opt_d": self.opt_d,
                "sched_g": self.sched[0], "sched_map": self.sched[1], "sched_d": self.sched[2]}

    def advance_schedule(self, position: int) -> None:
        """Move the diversification weight's schedule to ``position`` (the CPU budget's clock, in steps)
        when it runs ahead of the step count; the trainer moves the LR schedulers the same way."""
        if int(self.state.step) < position:
            self.state.step.fill_(position)

    def inference_module(self) -> nn.Module:
        return MISTInference(self.generator, self.mapping)

    @torch.no_grad()
    def predict(self, images: torch.Tensor, available: torch.Tensor, target: int) -> torch.Tensor:
        m = self.inference_module().eval()
        return m(images, available, one_hot(target, batch=images.shape[0])).clamp(0, 1)

    @torch.no_grad()
    def predict_reference(self, images: torch.Tensor, available: torch.Tensor, target: int,
                          reference: torch.Tensor) -> torch.Tensor:
        """Reference-guided generation: the target contrast in the style of ``reference`` (N×1×H×W)."""
        self.generator.eval()
        style = self.style_encoder.eval()(reference, one_hot(target, batch=images.shape[0]))
        return self.generator(images, available, style).clamp(0, 1)

    def _adv(self, image: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        """The target contrast's patch map of the multi-task discriminator."""
        return (self.discriminator(image) * code[:, :, None, None]).sum(dim=1)

    def train_step(self, batch: Batch) -> dict[str, float]:
        t, o = to_tensors(batch), self.opt
        for m in self.modules().values():
            m.train()
        images, available, truth = t["images"], t["available"], t["truth"]
        n, code = images.shape[0], one_hot(t["target"])
        g = self.generator

        set_requires_grad([self.discriminator], False)
        contents = g.contents(images, available)
        fused = g.combiner(contents, available)
        z1, z2 = torch.randn(n, o.latent_dim), torch.randn(n, o.latent_dim)
        s_lat, s_lat2 = self.mapping(z1, code), self.mapping(z2, code)
        s_ref = self.style_encoder(truth, code)
        fake_lat, fake_lat2 = g.decoder(fused, s_lat), g.decoder(fused, s_lat2)
        fake_ref = g.decoder(fused, s_ref)
        a = available[:, :, None, None, None]
        terms = {
            "adv": losses.lsgan(self._adv(fake_lat, code), True) + losses.lsgan(self._adv(fake_ref, code), True),
            "style": losses.l1(self.style_encoder(fake_lat, code), s_lat),
            "content": losses.l1(g.content(fake_lat * 2.0 - 1.0), fused),
            "sep": ((self.separator(fused) - contents.detach()).abs() * a).sum()
            / (a.sum() * contents[0, 0].numel()).clamp(min=1.0),
            "ds": -losses.l1(fake_lat, fake_lat2),
            "l1": losses.l1(fake_ref, truth),
        }
        src = torch.multinomial(available.clamp(min=0) + 1e-12, 1).flatten()  # one available input per row
        src_code, x_src = one_hot(src), images[torch.arange(n), src].unsqueeze(1)
        back = g.decoder(g.content(fake_ref * 2.0 - 1.0), self.style_encoder(x_src, src_code))
        terms["cycle"] = losses.l1(back, x_src)
        ds_w = o.lambda_ds * max(0.0, 1.0 - float(self.state.step) / max(self.ds_steps, 1))
        w = {"adv": o.lambda_adv, "style": o.lambda_style, "content": o.lambda_content, "sep": o.lambda_sep,
             "ds": ds_w, "l1": o.lambda_l1, "cycle": o.lambda_cycle}
        loss_g = sum(w[k] * v for k, v in terms.items())
        optimize((self.opt_g, self.opt_map), loss_g, self.scaler)

        set_requires_grad([self.discriminator], True)
        loss_d = 0.5 * (losses.lsgan(self._adv(truth, code), True)
                        + 0.5 * losses.lsgan(self._adv(fake_lat.detach(), code), False)
                        + 0.5 * losses.lsgan(self._adv(fake_ref.detach(), code), False))
        optimize(self.opt_d, loss_d, self.scaler)
        for sched in self.sched:
            sched.step()
        self.state.step += 1
        return {"loss_g": loss_g.item(), **{k: v.item() for k, v in terms.items()}, "loss_d": loss_d.item()}


class _State(nn.Module):
    """Holds the recipe's schedule position (steps, or the budget's clock when it runs ahead) as a buffer
    so checkpoints carry the ds-weight schedule."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("step", torch.zeros((), dtype=torch.long))
