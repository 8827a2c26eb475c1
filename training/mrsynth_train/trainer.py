"""One training loop for every recipe: run folder, atomic checkpoints, exact resume, logs."""

from __future__ import annotations

import json
import platform
import random
import subprocess
import time
from pathlib import Path

import numpy as np

from MRSynthLib.errors import MRSynthError

from .config import TrainConfig, to_dict
from .data import Augment, SliceSampler, load_root, mixture_weights, simulated_subjects
from .templates import templates_record, write_templates

RECIPES = {
    "unified": "recipe_unified:UnifiedRecipe",
    "hypergan": "recipe_hypergan:HyperGANRecipe",
    "collagan": "recipe_collagan:CollaGANRecipe",
    "mist": "recipe_mist:MISTRecipe",
    "cyclegan": "recipe_cyclegan:CycleGANRecipe",
    "unit": "recipe_unit:UNITRecipe",
    "supervised": "recipe_supervised:SupervisedRecipe",
    "simple": "recipe_simple:SimpleRecipe",
}


def build_recipe(cfg: TrainConfig):
    import importlib  # noqa: PLC0415

    if cfg.recipe not in RECIPES:
        raise MRSynthError(f"unknown recipe '{cfg.recipe}' (known: {', '.join(sorted(RECIPES))})")
    module, cls = RECIPES[cfg.recipe].split(":")
    return getattr(importlib.import_module(f"{__package__}.{module}"), cls)(cfg)


def _resolve(path: str, root_dir: Path | None) -> Path:
    p = Path(path)
    return (root_dir / p).resolve() if not p.is_absolute() and root_dir is not None else p


def build_sampler(cfg: TrainConfig, root_dir: Path | None = None) -> tuple[SliceSampler, dict]:
    """Real roots + extra roots + the simulator, mixed with the configured weights."""
    d = cfg.data
    if len(d.extra_weights) != len(d.extra_roots):
        raise MRSynthError(f"data.extra_roots has {len(d.extra_roots)} entries but data.extra_weights has "
                           f"{len(d.extra_weights)}")
    real, skipped = ([], 0)
    if d.real_weight > 0:
        real, skipped = load_root(_resolve(d.real_root, root_dir), d.real_include or None, d.real_exclude or None)
    extras = []
    for root in d.extra_roots:
        subjects, n_skipped = load_root(_resolve(root, root_dir))
        extras.append(subjects)
        skipped += n_skipped
    sims = simulated_subjects(d.simulated, tuple(d.simulated_shape), d.simulated_seed) if d.simulated else []
    sim_weight = max(0.0, 1.0 - d.real_weight) if (real or extras) else 1.0
    groups = [real, *extras, sims]
    weights = mixture_weights(groups, [d.real_weight, *d.extra_weights, sim_weight])
    augment = (Augment(flip=d.flip, gamma=d.gamma, gamma_range=tuple(d.gamma_range), scale=d.scale, bias=d.bias, bias_strength=d.bias_strength,
                       noise=d.noise, noise_std=d.noise_std, subject_gamma=d.subject_gamma,
                       subject_gamma_range=tuple(d.subject_gamma_range)) if d.augment else False)
    subjects = [s for g in groups for s in g]
    info = {"real": [s.name for s in real], "extra": [[s.name for s in g] for g in extras],
            "simulated": len(sims), "skipped": skipped}
    sampler = SliceSampler(subjects, weights, patch=d.patch, seed=cfg.seed, augment=augment, paired=d.paired,
                           context=d.context, axis=d.axis)
    return sampler, info


def _atomic_torch_save(obj, path: Path) -> None:
    """Saved through memory: torch names the zip's records after the file it writes, so saving to a temp
    file would make the same weights differ byte for byte from run to run (and so their SHA256)."""
    import io  # noqa: PLC0415

    import torch  # noqa: PLC0415

    from MRSynthLib.io import write_bytes_atomic  # noqa: PLC0415

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    write_bytes_atomic(buffer.getvalue(), path)


def _git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                              cwd=Path(__file__).parent).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def save_checkpoint(path: Path, step: int, recipe, sampler: SliceSampler, wall: float, cpu: float = 0.0) -> None:
    import torch  # noqa: PLC0415

    state = {
        "step": step,
        "wall_s": wall,
        "cpu_s": cpu,  # CPU seconds spent so far: a CPU budget counts across --resume
        "modules": {k: m.state_dict() for k, m in recipe.modules().items()},
        "optimizers": {k: o.state_dict() for k, o in recipe.optimizers().items()},
        "rng": {"torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                "numpy_sampler": json.dumps(sampler.rng.bit_generator.state),
                "numpy_choice": json.dumps(sampler.choice_rng.bit_generator.state),
                "python": json.dumps(random.getstate())},
    }
    _atomic_torch_save(state, path)


def load_checkpoint(path: Path, recipe, sampler: SliceSampler) -> tuple[int, float, float]:
    import torch  # noqa: PLC0415

    state = torch.load(str(path), map_location="cpu", weights_only=True)
    for k, m in recipe.modules().items():
        m.load_state_dict(state["modules"][k])
    for k, o in recipe.optimizers().items():
        o.load_state_dict(state["optimizers"][k])
    torch.set_rng_state(state["rng"]["torch"])
    if torch.cuda.is_available() and state["rng"].get("cuda"):
        torch.cuda.set_rng_state_all(state["rng"]["cuda"])
    sampler.rng.bit_generator.state = json.loads(state["rng"]["numpy_sampler"])
    if "numpy_choice" in state["rng"]:  # checkpoints written before the batch-level choice existed
        sampler.choice_rng.bit_generator.state = json.loads(state["rng"]["numpy_choice"])
    py = json.loads(state["rng"]["python"])
    random.setstate((py[0], tuple(py[1]), py[2]))
    return int(state["step"]), float(state["wall_s"]), float(state.get("cpu_s", 0.0))


def _preview_grid(recipe, batch) -> np.ndarray:
    """Rows of (prediction | truth) for a fixed batch, for TensorBoard's image tab."""

    preds = []
    from .devices import to_device  # noqa: PLC0415

    for i in range(len(batch.target)):
        x, a = to_device(batch.images[i:i + 1]), to_device(batch.available[i:i + 1])
        try:
            preds.append(recipe.predict(x, a, int(batch.target[i]))[0, 0].float().cpu().numpy())
        except MRSynthError:  # a pairwise recipe without the needed source
            preds.append(np.zeros_like(batch.truth[i, 0]))
    rows = [np.concatenate([p, t[0]], axis=1) for p, t in zip(preds, batch.truth, strict=True)]
    return np.clip(np.concatenate(rows, axis=0), 0, 1)[None]


def _budget_used(cpu0: float, budget: float, dist) -> float:
    """Fraction of the CPU-time budget (all threads) spent since ``cpu0``; rank 0's value on every rank,
    so all ranks stop at the same step and keep identical learning rates."""
    import torch  # noqa: PLC0415

    used = torch.tensor([(time.process_time() - cpu0) / budget], dtype=torch.float64)
    if dist.world > 1:
        import torch.distributed as tdist  # noqa: PLC0415

        tdist.broadcast(used, src=0)
    return float(used.item())


def _follow_budget(recipe, used: float, steps: int) -> None:
    """Move the recipe's LR schedules to the budget's clock when it runs ahead of the step count, so a run
    stopped by its CPU budget has annealed like a run that reached its last step (budget-aware schedules,
    Li et al., "Budgeted Training", ICLR 2020). Schedules are closed-form lambdas of the step index."""
    import torch  # noqa: PLC0415

    position = int(min(used, 1.0) * steps)
    for obj in recipe.optimizers().values():
        if isinstance(obj, torch.optim.lr_scheduler.LRScheduler) and obj.last_epoch < position:
            obj.last_epoch = position
    if hasattr(recipe, "advance_schedule"):  # schedules that are not LR schedulers (MIST's ds weight)
        recipe.advance_schedule(position)


def _learning_rate(recipe) -> float:
    """The first optimizer's current rate (the generator's, in GAN recipes): logged to see the schedule."""
    return next((float(o.param_groups[0]["lr"]) for o in recipe.optimizers().values() if hasattr(o, "param_groups")),
                0.0)


def train(cfg: TrainConfig, out: Path, resume: bool = False, max_steps: int | None = None,
          config_dir: Path | None = None, progress: bool = True) -> dict:
    """Train ``cfg`` into run folder ``out``; returns a summary (steps, wall time, last losses).

    Under ``torchrun`` every rank runs this function; ``cfg.batch_size`` is the global batch.
    """
    import torch  # noqa: PLC0415
    from tqdm import tqdm  # noqa: PLC0415

    from . import distributed  # noqa: PLC0415
    from .devices import amp_enabled, autocast, release_device, resolve_device, use_device  # noqa: PLC0415

    dist = distributed.setup()
    device = resolve_device(cfg.device, dist.local_rank)
    amp = amp_enabled(cfg.amp, device)
    use_device(device)
    if cfg.batch_size % dist.world:
        raise MRSynthError(f"batch_size {cfg.batch_size} is not divisible by the {dist.world} processes")
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(max(1, cfg.threads // dist.world))
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    sampler, data_info = build_sampler(cfg, config_dir)
    preview = SliceSampler(sampler.subjects, None, patch=cfg.data.patch, seed=cfg.seed + 999,
                           augment=False).sample(4)
    recipe = build_recipe(cfg)
    distributed.average_gradients(recipe.modules().values(), dist)
    ckpt = out / "checkpoint.pt"
    step, wall, cpu = 0, 0.0, 0.0
    if resume:
        if not ckpt.exists():
            raise MRSynthError("--resume given but no checkpoint in the run folder", str(ckpt))
        step, wall, cpu = load_checkpoint(ckpt, recipe, sampler)
    writer = None
    if dist.main:
        real_names = data_info["real"] + [n for group in data_info["extra"] for n in group]
        write_templates(out, templates_record(sampler.subjects, real_names))
        (out / "config.json").write_text(json.dumps({
            "config": to_dict(cfg), "data": data_info, "git_commit": _git_commit(),
            "environment": {"python": platform.python_version(), "torch": torch.__version__,
                            "machine": platform.machine(), "threads": cfg.threads, "world_size": dist.world,
                            "device": device, "amp_bf16": amp},
        }, indent=2))
        try:
            from torch.utils.tensorboard import SummaryWriter  # noqa: PLC0415

            writer = SummaryWriter(str(out / "tensorboard"), purge_step=step + 1 if resume else None)
        except ImportError:  # tensorboard is optional: the JSONL log always exists
            writer = None
    total = cfg.steps if max_steps is None else min(cfg.steps, max_steps)
    losses: dict[str, float] = {}
    bar = tqdm(total=total, initial=step, desc=f"train {cfg.recipe}", disable=not (progress and dist.main),
               dynamic_ncols=True)
    t0 = time.perf_counter() - wall
    cpu0 = time.process_time() - cpu
    log = open(out / "log.jsonl", "a") if dist.main else None  # noqa: SIM115
    try:
        while step < total:
            if cfg.cpu_budget_s:
                used = _budget_used(cpu0, cfg.cpu_budget_s, dist)
                if used >= 1.0:
                    break
                _follow_budget(recipe, used, cfg.steps)
            with autocast(amp, device):
                losses = recipe.train_step(distributed.shard(sampler.sample(cfg.batch_size), dist))
            step += 1
            bar.update(1)
            if step % cfg.log_every == 0 or step == total:
                losses = distributed.mean_across_ranks(losses, dist)
                lr = _learning_rate(recipe)
                if log is not None:
                    log.write(json.dumps({"step": step, "wall_s": round(time.perf_counter() - t0, 2), **losses,
                                          "lr": lr}) + "\n")
                    log.flush()
                    bar.set_postfix({k: f"{v:.4f}" for k, v in losses.items()})
                if writer is not None:
                    for k, v in losses.items():
                        writer.add_scalar(f"loss/{k}", v, step)
                    writer.add_scalar("lr", lr, step)
            if step % cfg.checkpoint_every == 0 or step == total:
                if dist.main:  # the final checkpoint is also written after the loop (time budget)
                    save_checkpoint(ckpt, step, recipe, sampler, time.perf_counter() - t0, time.process_time() - cpu0)
                    if writer is not None:
                        writer.add_images("prediction | truth", _preview_grid(recipe, preview), step,
                                          dataformats="CHW")
    finally:
        release_device(device)
        bar.close()
        if log is not None:
            log.close()
        if writer is not None:
            writer.close()
    wall = time.perf_counter() - t0
    if dist.main and step % cfg.checkpoint_every != 0 and step != total:
        save_checkpoint(ckpt, step, recipe, sampler, wall, time.process_time() - cpu0)
    summary = {"steps": step, "wall_s": round(wall, 1), "cpu_s": round(time.process_time() - cpu0, 1), "losses": losses, "data": data_info,
               "world_size": dist.world}
    if dist.main:
        for name, module in recipe.modules().items():
            _atomic_torch_save(module.state_dict(), out / f"{name}.pt")
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
    distributed.cleanup(dist)
    return summary
