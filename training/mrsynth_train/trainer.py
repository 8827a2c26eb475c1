"""One training loop for every recipe: run folder, atomic checkpoints, exact resume, logs."""

from __future__ import annotations

import json
import logging
import os
import random
import time
import warnings
from pathlib import Path

import numpy as np

from MRSynthLib.errors import MRSynthError

from .checkpoint import atomic_torch_save, initialize_from, load_checkpoint, save_checkpoint, truncate_log
from .config import check_config
from .data import Augment, SliceSampler, mixture_weights
from .recipes import build_recipe
from .runfolder import environment, git_state, tensorboard_writer, train_log
from .schema import TrainConfig, to_dict
from .simstream import refresh_simulated
from .subjects import load_root, simulated_subjects
from .templates import templates_record, write_templates

logger = logging.getLogger("mrsynth_train")

def resolve_root(path: str, root_dir: Path | None) -> Path:
    """Absolute path of a data root: relative to the config file's folder when known, else to the cwd."""
    p = Path(path).expanduser()
    return (root_dir / p if not p.is_absolute() and root_dir is not None else p).resolve()


def resolved_config(cfg: TrainConfig, root_dir: Path | None) -> dict:
    """The config as run, data roots made absolute (the run folder must say which data it saw)."""
    out = to_dict(cfg)
    out["data"]["real_root"] = str(resolve_root(cfg.data.real_root, root_dir))
    out["data"]["extra_roots"] = [str(resolve_root(r, root_dir)) for r in cfg.data.extra_roots]
    return out


def _empty_dataset(cfg: TrainConfig, skipped: list[str]) -> MRSynthError:
    """Why nothing can be trained on, in the user's terms."""
    d, why = cfg.data, []
    if skipped:
        why.append(f"{len(skipped)} subjects skipped: " + "; ".join(skipped))
    if d.real_weight <= 0 and not d.extra_roots:
        why.append("data.real_weight is 0, so data.real_root is not read")
    elif not skipped:
        why.append("no subject folders found under the data roots")
    why.append("data.simulated is 0")
    return MRSynthError(f"training dataset is empty ({'; '.join(why)})")


def build_sampler(cfg: TrainConfig, root_dir: Path | None = None) -> tuple[SliceSampler, dict]:
    """Real roots + extra roots + the simulator, mixed with the configured weights."""
    d = cfg.data
    if len(d.extra_weights) != len(d.extra_roots):
        raise MRSynthError(f"data.extra_roots has {len(d.extra_roots)} entries but data.extra_weights has "
                           f"{len(d.extra_weights)}")
    real, skipped = [], []
    if d.real_weight > 0:
        real, skipped = load_root(resolve_root(d.real_root, root_dir), d.real_include or None, d.real_exclude or None)
    extras = []
    for root in d.extra_roots:
        subjects, more = load_root(resolve_root(root, root_dir))
        extras.append(subjects)
        skipped += more
    sims = simulated_subjects(d.simulated, tuple(d.simulated_shape), d.simulated_seed) if d.simulated else []
    sim_weight = max(0.0, 1.0 - d.real_weight) if (real or any(extras)) else 1.0
    groups = [real, *extras, sims]
    if not any(groups):
        raise _empty_dataset(cfg, skipped)
    weights = mixture_weights(groups, [d.real_weight, *d.extra_weights, sim_weight])
    augment = (Augment(flip=d.flip, gamma=d.gamma, gamma_range=tuple(d.gamma_range), scale=d.scale, bias=d.bias, bias_strength=d.bias_strength,
                       noise=d.noise, noise_std=d.noise_std, subject_gamma=d.subject_gamma,
                       subject_gamma_range=tuple(d.subject_gamma_range), curve=d.curve, curve_knots=d.curve_knots,
                       curve_concentration=d.curve_concentration) if d.augment else False)
    subjects = [s for g in groups for s in g]
    info = {"real": [s.name for s in real], "extra": [[s.name for s in g] for g in extras],
            "simulated": len(sims), "skipped": len(skipped), "skipped_subjects": skipped}
    sampler = SliceSampler(subjects, weights, patch=d.patch, seed=cfg.seed, augment=augment, paired=d.paired,
                           context=d.context, axis=d.axis)
    return sampler, info


def _preview_grid(recipe, batch) -> np.ndarray:
    """Rows of (prediction | truth) for a fixed batch, for TensorBoard's image tab."""

    preds = []
    from MRSynthLib.nets.unified import images_with_context

    from .devices import to_device

    for i in range(len(batch.target)):
        around = batch.neighbours[i:i + 1] if batch.neighbours.shape[2] else None  # 2.5D (unified only)
        x, a = to_device(images_with_context(batch.images[i:i + 1], around)), to_device(batch.available[i:i + 1])
        try:
            preds.append(recipe.predict(x, a, int(batch.target[i]))[0, 0].float().cpu().numpy())
        except MRSynthError:  # a pairwise recipe without the needed source
            preds.append(np.zeros_like(batch.truth[i, 0]))
    rows = [np.concatenate([p, t[0]], axis=1) for p, t in zip(preds, batch.truth, strict=True)]
    return np.clip(np.concatenate(rows, axis=0), 0, 1)[None]


def _budget_used(cpu0: float, budget: float, dist) -> float:
    """Fraction of the CPU-time budget (all threads) spent since ``cpu0``; rank 0's value on every rank,
    so all ranks stop at the same step and keep identical learning rates."""
    import torch

    used = torch.tensor([(time.process_time() - cpu0) / budget], dtype=torch.float64)
    if dist.world > 1:
        import torch.distributed as tdist

        tdist.broadcast(used, src=0)
    return float(used.item())


def _follow_budget(recipe, used: float, steps: int) -> None:
    """Move the recipe's LR schedules to the budget's clock when it runs ahead of the step count, so a run
    stopped by its CPU budget has annealed like a run that reached its last step (budget-aware schedules,
    Li et al., "Budgeted Training", ICLR 2020). Schedules are closed-form lambdas of the step index."""
    import torch

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
          config_dir: Path | None = None, progress: bool = True, init_from: Path | None = None) -> dict:
    """Train ``cfg`` into run folder ``out``; returns a summary (steps, wall time, last losses).
    ``init_from``: a finished run whose weights start this one (modules it lacks, e.g. a new head, start
    fresh); ignored on ``resume``, where the checkpoint holds everything.

    Under ``torchrun`` every rank runs this function; ``cfg.batch_size`` is the global batch. The config
    is checked first (``config.check_config``), before any device or data is touched.
    """
    check_config(cfg)
    from . import distributed
    from .devices import deterministic, resolve_device

    # the device first: it decides the process group's backend (gloo on CPU even where CUDA exists)
    device = resolve_device(cfg.device, int(os.environ.get("LOCAL_RANK", "0")))
    dist = distributed.setup(device)
    if cfg.batch_size % dist.world:
        raise MRSynthError(f"batch_size {cfg.batch_size} is not divisible by the {dist.world} processes")
    out.mkdir(parents=True, exist_ok=True)
    with train_log(out / "train.log" if dist.main else None), deterministic(cfg.deterministic), \
            warnings.catch_warnings():
        if cfg.amp == "fp16":  # a step the GradScaler skips (inf gradients) still moves the closed-form schedules
            warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler\.step\(\)` before")
        summary = _train(cfg, out, resume, max_steps, config_dir, progress, dist, device, init_from)
    distributed.cleanup(dist)
    return summary


def _train(cfg: TrainConfig, out: Path, resume: bool, max_steps: int | None, config_dir: Path | None,
           progress: bool, dist, device: str, init_from: Path | None = None) -> dict:
    import torch
    from tqdm import tqdm

    from . import distributed
    from .devices import amp_mode, autocast, grad_scaler, release_device, use_device

    amp = amp_mode(cfg.amp, device)
    use_device(device)
    torch.set_num_threads(max(1, cfg.threads // dist.world))
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    logger.info("run %s: recipe %s on %s (amp %s, %d process(es)), config from %s", out, cfg.recipe, device, amp,
                dist.world, config_dir or "code")
    sampler, data_info = build_sampler(cfg, config_dir)
    preview = SliceSampler(sampler.subjects, None, patch=cfg.data.patch, seed=cfg.seed + 999,
                           augment=False, context=cfg.data.context, axis=cfg.data.axis).sample(4)
    recipe = build_recipe(cfg)
    scaler = grad_scaler(amp, device)
    if getattr(recipe, "fp16_ready", False):
        recipe.scaler = scaler
    distributed.average_gradients(recipe.modules().values(), dist)
    ckpt = out / "checkpoint.pt"
    step, wall, cpu = 0, 0.0, 0.0
    if resume:
        if not ckpt.exists():
            raise MRSynthError("--resume given but no checkpoint in the run folder", str(ckpt))
        step, wall, cpu = load_checkpoint(ckpt, recipe, sampler, scaler)
        if dist.main:
            dropped = truncate_log(out / "log.jsonl", step)
            logger.info("resumed from step %d (dropped %d log lines written after that checkpoint)", step, dropped)
    elif init_from is not None:
        initialize_from(recipe, init_from)
    writer = None
    if dist.main:
        real_names = data_info["real"] + [n for group in data_info["extra"] for n in group]
        write_templates(out, templates_record(sampler.subjects, real_names))
        git = git_state()
        (out / "config.json").write_text(json.dumps({
            "config": resolved_config(cfg, config_dir), "data": data_info, "git_commit": git["commit"],
            "git_dirty": git["dirty"], "init_from": str(init_from) if init_from else None,
            "environment": environment(device, threads=cfg.threads, world_size=dist.world, amp=amp,
                                       deterministic=cfg.deterministic),
        }, indent=2))
        writer = tensorboard_writer(out / "tensorboard", step + 1 if resume else None)
    total = cfg.steps if max_steps is None else min(cfg.steps, max_steps)
    losses: dict[str, float] = {}
    bar = tqdm(total=total, initial=step, desc=f"train {cfg.recipe}", disable=not (progress and dist.main),
               dynamic_ncols=True)
    t0 = time.perf_counter() - wall
    cpu0 = time.process_time() - cpu
    jsonl = open(out / "log.jsonl", "a") if dist.main else None  # noqa: SIM115
    try:
        while step < total:
            if cfg.cpu_budget_s:
                used = _budget_used(cpu0, cfg.cpu_budget_s, dist)
                if used >= 1.0:
                    break
                _follow_budget(recipe, used, cfg.steps)
            refresh_simulated(sampler, cfg, step)  # data.simulated_refresh: new simulated subjects every N steps
            with autocast(amp, device):
                losses = recipe.train_step(distributed.shard(sampler.sample(cfg.batch_size), dist))
            if scaler.is_enabled():
                scaler.update()  # once per step, after every optimizer of the step went through it
            step += 1
            bar.update(1)
            if step % cfg.log_every == 0 or step == total:
                losses = distributed.mean_across_ranks(losses, dist)
                lr = _learning_rate(recipe)
                if jsonl is not None:
                    jsonl.write(json.dumps({"step": step, "wall_s": round(time.perf_counter() - t0, 2), **losses,
                                            "lr": lr}) + "\n")
                    jsonl.flush()
                    bar.set_postfix({k: f"{v:.4f}" for k, v in losses.items()})
                if writer is not None:
                    for k, v in losses.items():
                        writer.add_scalar(f"loss/{k}", v, step)
                    writer.add_scalar("lr", lr, step)
            if step % cfg.checkpoint_every == 0 or step == total:
                if dist.main:  # the final checkpoint is also written after the loop (time budget)
                    save_checkpoint(ckpt, step, recipe, sampler, time.perf_counter() - t0, time.process_time() - cpu0,
                                    scaler)
                    logger.info("checkpoint at step %d", step)
                    if writer is not None:
                        writer.add_images("prediction | truth", _preview_grid(recipe, preview), step,
                                          dataformats="CHW")
    finally:
        release_device(device)
        bar.close()
        if jsonl is not None:
            jsonl.close()
        if writer is not None:
            writer.close()
    wall = time.perf_counter() - t0
    if dist.main and step % cfg.checkpoint_every != 0 and step != total:
        save_checkpoint(ckpt, step, recipe, sampler, wall, time.process_time() - cpu0, scaler)
    summary = {"steps": step, "wall_s": round(wall, 1), "cpu_s": round(time.process_time() - cpu0, 1), "losses": losses, "data": data_info,
               "world_size": dist.world}
    if dist.world > 1:  # a collective: every rank takes part
        summary["ranks_in_sync"] = distributed.weights_in_sync(recipe.modules().values(), dist)
    if dist.main:
        for name, module in recipe.modules().items():
            atomic_torch_save(module.state_dict(), out / f"{name}.pt")
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
        logger.info("finished at step %d: %s", step, json.dumps(losses))
    return summary
