"""The physics simulator as an endless source (``data.simulated_refresh: N``).

Every N steps the simulated subjects are replaced by new ones — new seeds, so new deformation, tissue
values, protocol (TR/TE/TI), bias field, noise and lesion — while the real subjects stay. Generation g
uses seeds ``simulated_seed + g·n`` … ``+ n − 1`` (generation 0 is the fixed set a run without refresh
trains on). The generation is a function of the step alone, so ``--resume`` and every torchrun rank see
the same subjects. Each refresh simulates the subjects anew (whole volumes), so refresh every few
hundred steps, not every step.
"""

from __future__ import annotations

import logging

from .data import SliceSampler
from .schema import TrainConfig
from .subjects import simulate_set

logger = logging.getLogger("mrsynth_train")


def generation(step: int, refresh: int) -> int:
    """Which set of simulated subjects a run at ``step`` trains on."""
    return step // refresh if refresh > 0 else 0


def refresh_simulated(sampler: SliceSampler, cfg: TrainConfig, step: int) -> int | None:
    """Swap in the simulated subjects of the generation ``step`` belongs to, when it changed; returns the
    new generation, or None when nothing changed (no refresh configured, no simulated subjects)."""
    d = cfg.data
    if d.simulated_refresh <= 0 or d.simulated <= 0:
        return None
    g = generation(step, d.simulated_refresh)
    if g == getattr(sampler, "sim_generation", 0):
        return None
    subjects = simulate_set(d.simulated, tuple(d.simulated_shape), d.simulated_seed + g * d.simulated)
    sampler.replace_subjects(len(sampler.subjects) - d.simulated, subjects)  # the simulated group comes last
    sampler.sim_generation = g
    logger.info("step %d: simulated subjects of generation %d (%s)", step, g, ", ".join(s.name for s in subjects))
    return g
