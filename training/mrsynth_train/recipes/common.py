"""What every recipe shares: option parsing, batch → tensors, the [-1, 1] GAN space, the image
history pool, learning-rate decay, and the base for pairwise (single-source) recipes.

A recipe (junyanz CycleGAN's "model class") is constructed from a TrainConfig and exposes
``modules()``, ``optimizers()``, ``train_step(batch)``, ``predict(images, available, target)`` and
``inference_module()`` — the generator-only nn.Module used at inference (parameter and GMAC counts).
Every inference module takes the project's [0, 1] images and returns [0, 1] images. Optional:
``extra_state()`` / ``load_extra_state(state)`` for state outside modules and optimizers (tensors and
lists of tensors only: checkpoints load with ``weights_only=True``), and ``fp16_ready = True`` when every
backward/step goes through :func:`optimize` with ``self.scaler`` (the trainer's fp16 GradScaler).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from MRSynthLib.contrasts import CONTRASTS, canonical
from MRSynthLib.errors import MRSynthError

from ..data import Batch
from ..schema import TrainConfig, from_dict

N_CONTRASTS = len(CONTRASTS)


def parse_options(cls, cfg: TrainConfig):
    """The recipe's own options dataclass from ``cfg.options``; unknown keys and wrong types are errors
    naming ``options.<key>``."""
    return from_dict(cls, dict(cfg.options or {}), "options.")


def to_tensors(batch: Batch) -> dict[str, torch.Tensor]:
    """The per-sample arrays as tensors (batch-level fields stay on the batch: see ``shard_views``)."""
    from ..devices import to_device

    return {k: to_device(v) for k, v in vars(batch).items() if isinstance(v, np.ndarray) and k not in Batch.BATCH_LEVEL}


def shard_views(batch: Batch) -> list[np.ndarray]:
    """``has`` of every shard (one view when not distributed): choices must suit all of them."""
    return list(batch.shard_has) if batch.shard_has is not None else [batch.has]


def global_rows(batch: Batch) -> tuple[int, slice]:
    """(global batch size, this shard's rows). Per-sample random draws are made for the whole global batch
    and sliced, so 2 ranks × B draw exactly what 1 process × 2B draws (one process: the usual draw)."""
    n = len(batch.target)
    total = n * len(batch.shard_has) if batch.shard_has is not None else n
    return total, slice(batch.shard_offset, batch.shard_offset + n)


def choose(options: list, choice: float):
    """The batch's choice among ``options`` (identical on every rank)."""
    return options[min(int(choice * len(options)), len(options) - 1)]


def to_gan(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] → [-1, 1], the range of the tanh generators."""
    return x * 2.0 - 1.0


def from_gan(y: torch.Tensor) -> torch.Tensor:
    return (y + 1.0) * 0.5


def one_hot(index: torch.Tensor | int, n: int = N_CONTRASTS, batch: int | None = None) -> torch.Tensor:
    if isinstance(index, int):
        index = torch.full((batch or 1,), index, dtype=torch.long)
    return nn.functional.one_hot(index, n).float()


def set_requires_grad(modules, flag: bool) -> None:
    """Freeze discriminators during the generator step (saves their weight gradients)."""
    for m in modules:
        for p in m.parameters():
            p.requires_grad_(flag)


def adam(params, lr: float, betas: tuple[float, float] = (0.5, 0.999)) -> torch.optim.Adam:
    return torch.optim.Adam([p for p in params if p.requires_grad], lr=lr, betas=betas)


def linear_decay(opt: torch.optim.Optimizer, steps: int, start: float) -> torch.optim.lr_scheduler.LambdaLR:
    """Constant learning rate, then linear decay to 0 from ``start`` × steps (CycleGAN's schedule)."""
    begin = int(steps * start)

    def factor(step: int) -> float:
        return 1.0 if step < begin else max(0.0, 1.0 - (step - begin) / max(steps - begin, 1))

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


def cosine_decay(opt: torch.optim.Optimizer, steps: int, floor: float) -> torch.optim.lr_scheduler.LambdaLR:
    """Cosine annealing from the base rate to ``floor`` × base over ``steps``, in closed form (unlike
    CosineAnnealingLR's recursion, it stays right when the trainer moves the schedule to a CPU budget's clock)."""

    def factor(step: int) -> float:
        t = min(step / max(steps, 1), 1.0)
        return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * t))

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


class ImagePool:
    """History of generated images for the discriminator (Shrivastava et al. 2017; CycleGAN uses 50):
    half of the time D sees an older fake instead of the newest one, which damps oscillation.
    Its contents are checkpointed (``state_dict``), so a resumed run shows D the same fakes."""

    def __init__(self, size: int) -> None:
        self.size, self.images = size, []

    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return images
        out = []
        for img in images.detach():
            img = img.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(img)
                out.append(img)
            elif torch.rand(()) < 0.5:
                i = int(torch.randint(len(self.images), ()))
                out.append(self.images[i].clone())
                self.images[i] = img
            else:
                out.append(img)
        return torch.cat(out)

    def state_dict(self) -> dict:
        return {"images": [img.detach().cpu() for img in self.images]}

    def load_state_dict(self, state: dict) -> None:
        device = torch.get_default_device()
        self.images = [img.to(device) for img in state["images"]][:self.size]


class HistoryPools:
    """Mixin of the recipes with one ImagePool per contrast in ``self.pools``: checkpoints carry them."""

    pools: dict[str, ImagePool]

    def extra_state(self) -> dict:
        return {"pools": {name: pool.state_dict() for name, pool in self.pools.items()}}

    def load_extra_state(self, state: dict) -> None:
        for name, pool in self.pools.items():
            if name in state.get("pools", {}):
                pool.load_state_dict(state["pools"][name])


def parse_pairs(pairs: list[list[str]]) -> list[tuple[int, int]]:
    """``options.pairs`` as (source, target) contrast indices; a pair must hold two different contrasts."""
    out = []
    for i, p in enumerate(pairs):
        if len(p) != 2:
            raise MRSynthError(f"options.pairs[{i}] must be two contrasts, got {p!r}")
        a, b = (CONTRASTS.index(canonical(c)) for c in p)
        if a == b:
            raise MRSynthError(f"options.pairs[{i}] pairs {p[0]} with itself")
        out.append((a, b))
    if not out:
        raise MRSynthError("options.pairs is empty")
    return out


def default_pairs() -> list[list[str]]:
    """T1↔T1Gd and T2↔FLAIR: with bidirectional models these cover all four contrasts of the real data."""
    return [["T1", "T1Gd"], ["T2", "FLAIR"]]


@dataclass
class PairwiseOptions:
    pairs: list[list[str]] = field(default_factory=default_pairs)


def direction_key(src: int, tgt: int) -> str:
    return f"{CONTRASTS[src]}_to_{CONTRASTS[tgt]}"


class PairwiseInference(nn.Module):
    """Routes a (images, available, target) request to the one-source translator of a pair: the
    first configured pair containing the target whose partner is available in every row."""

    def __init__(self, translators: nn.ModuleDict, pairs: list[tuple[int, int]], recipe: str) -> None:
        super().__init__()
        self.translators, self.pairs, self.recipe = translators, pairs, recipe

    def source_for(self, target: int, available: torch.Tensor) -> int:
        partners = [b if a == target else a for a, b in self.pairs if target in (a, b)]
        for p in partners:
            if bool((available[:, p] > 0).all()):
                return p
        pairs = ", ".join(f"{CONTRASTS[a]}<->{CONTRASTS[b]}" for a, b in self.pairs)
        if not partners:
            raise MRSynthError(f"recipe '{self.recipe}' cannot synthesize {CONTRASTS[target]}: it was trained "
                               f"on the pairs {pairs} only")
        need = " or ".join(CONTRASTS[p] for p in partners)
        raise MRSynthError(f"recipe '{self.recipe}' synthesizes {CONTRASTS[target]} from {need} "
                           f"(pairs {pairs}), which is not among the inputs")

    def forward(self, images: torch.Tensor, available: torch.Tensor, target: int) -> torch.Tensor:
        src = self.source_for(int(target), available)
        y = self.translators[direction_key(src, int(target))](to_gan(images[:, src:src + 1]))
        return from_gan(y)


class PairwiseRecipe:
    """Base of the pairwise baselines (CycleGAN, UNIT, supervised, simple): one bidirectional
    translator per configured contrast pair; ``predict`` picks the paired source of the target."""

    name = "pairwise"
    Options = PairwiseOptions
    scaler = None  # the trainer's GradScaler (fp16), see ``optimize``

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg
        self.opt = parse_options(self.Options, cfg)
        self.pairs = parse_pairs(self.opt.pairs)
        self.directions = [d for a, b in self.pairs for d in ((a, b), (b, a))]

    def translators(self) -> nn.ModuleDict:
        """``direction_key(src, tgt)`` → module mapping (N, 1, H, W) [-1, 1] images of src to tgt."""
        raise NotImplementedError

    def inference_module(self) -> nn.Module:
        return PairwiseInference(self.translators(), self.pairs, self.name)

    @torch.no_grad()
    def predict(self, images: torch.Tensor, available: torch.Tensor, target: int) -> torch.Tensor:
        module = self.inference_module().eval()
        return module(images, available, target).clamp(0, 1)

    def usable_pairs(self, shards: list[np.ndarray], paired: bool) -> list[tuple[int, int]]:
        """Pairs that every shard can train: a row holding both contrasts (paired) or each contrast (unpaired)."""
        def ok(has: np.ndarray, a: int, b: int) -> bool:
            if paired:
                return bool(((has[:, a] > 0) & (has[:, b] > 0)).any())
            return bool((has[:, a] > 0).any() and (has[:, b] > 0).any())

        return [(a, b) for a, b in self.pairs if all(ok(h, a, b) for h in shards)]

    def pick_pair(self, batch: Batch, paired: bool) -> tuple[int, int]:
        usable = self.usable_pairs(shard_views(batch), paired)
        if not usable:
            names = ", ".join(f"{CONTRASTS[a]}+{CONTRASTS[b]}" for a, b in self.pairs)
            raise MRSynthError(f"recipe '{self.name}': no sample in the batch holds a configured pair ({names})")
        return choose(usable, batch.choice)


def unpaired_sides(t: dict[str, torch.Tensor], a: int, b: int, shuffle: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Real images of contrast a and of contrast b in [-1, 1], (Na, 1, H, W) and (Nb, 1, H, W).

    With ``shuffle`` the b side is rolled by one row, so no row pairs a co-registered a/b slice:
    training stays unpaired even when the sampler returns paired subjects (Hyper-GAN's setting)."""
    ia = (t["has"][:, a] > 0).nonzero().flatten()
    ib = (t["has"][:, b] > 0).nonzero().flatten()
    if shuffle and len(ib) > 1:
        ib = ib.roll(1)
    return to_gan(t["contrasts"][ia, a:a + 1]), to_gan(t["contrasts"][ib, b:b + 1])


def paired_sides(t: dict[str, torch.Tensor], a: int, b: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Co-registered a and b slices in [-1, 1] from the rows that hold both."""
    rows = ((t["has"][:, a] > 0) & (t["has"][:, b] > 0)).nonzero().flatten()
    return to_gan(t["contrasts"][rows, a:a + 1]), to_gan(t["contrasts"][rows, b:b + 1])


def options_dict(opt) -> dict:
    return dataclasses.asdict(opt)


def discriminator_loss(d: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """LSGAN discriminator loss, halved as in CycleGAN so D learns slower than G."""
    from ..losses import lsgan

    return 0.5 * (lsgan(d(real), True) + lsgan(d(fake.detach()), False))


def patch_discriminators(contrasts: set[int], ndf: int) -> nn.ModuleDict:
    """One 70×70 PatchGAN per contrast (Hyper-GAN, CycleGAN), keyed by contrast name."""
    from ..nets.common import PatchDiscriminator

    return nn.ModuleDict({CONTRASTS[c]: PatchDiscriminator(1, ndf) for c in sorted(contrasts)})


def optimize(optimizers: torch.optim.Optimizer | tuple, loss: torch.Tensor, scaler=None) -> None:
    """One update of one or several optimizers from one loss: zero the gradients, back-propagate, step.
    With an enabled fp16 GradScaler the loss is scaled (float16 gradients would underflow) and a step with
    inf/NaN gradients is skipped; the trainer calls ``scaler.update()`` once per training step."""
    group = optimizers if isinstance(optimizers, tuple) else (optimizers,)
    for opt in group:
        opt.zero_grad(set_to_none=True)
    if scaler is not None and scaler.is_enabled():
        scaler.scale(loss).backward()
        for opt in group:
            scaler.step(opt)
        return
    loss.backward()
    for opt in group:
        opt.step()


def update_pair_discriminators(recipe, d_a: nn.Module, d_b: nn.Module, real_a: torch.Tensor, real_b: torch.Tensor,
                               fake_a: torch.Tensor, fake_b: torch.Tensor, ca: str, cb: str) -> torch.Tensor:
    """The discriminator half of a two-domain GAN step (history pools, LSGAN), then the LR schedules."""
    set_requires_grad([d_a, d_b], True)
    loss_d = (discriminator_loss(d_a, real_a, recipe.pools[ca].query(fake_a))
              + discriminator_loss(d_b, real_b, recipe.pools[cb].query(fake_b)))
    optimize(recipe.opt_d, loss_d, recipe.scaler)
    for s in recipe.sched:
        s.step()
    return loss_d


class OneHotGeneratorRecipe:
    """Shared plumbing of the multi-contrast GAN recipes whose generator takes
    (images, available, one-hot target) and that train with opt_g/opt_d and two LR schedules."""

    generator: nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    sched: list
    scaler = None  # the trainer's GradScaler (fp16), see ``optimize``

    def optimizers(self) -> dict:
        return {"opt_g": self.opt_g, "opt_d": self.opt_d, "sched_g": self.sched[0], "sched_d": self.sched[1]}

    def inference_module(self) -> nn.Module:
        return self.generator

    @torch.no_grad()
    def predict(self, images: torch.Tensor, available: torch.Tensor, target: int) -> torch.Tensor:
        g = self.generator.eval()
        return g(images, available, one_hot(target, batch=images.shape[0])).clamp(0, 1)
