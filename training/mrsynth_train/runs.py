"""A trained run folder read back, in one place (``runfolder`` and the trainer write it): the resolved
config it ran with, its environment, and its recipe rebuilt with the trained weights. Export, evaluation,
validation, site validation and intensity templates all load runs through here."""

from __future__ import annotations

import json
from pathlib import Path

from MRSynthLib.errors import MRSynthError

from .recipes import build_recipe
from .schema import TrainConfig, from_dict


def _record(run: Path) -> dict:
    path = run / "config.json"
    if not path.exists():
        raise MRSynthError("not a run folder (no config.json)", str(run))
    return json.loads(path.read_text(encoding="utf-8"))


def run_config(run: Path) -> dict:
    """The resolved config the run trained with (data roots absolute), as written into ``config.json``."""
    return _record(run)["config"]


def run_environment(run: Path) -> dict:
    """Software and hardware the run trained on; empty for a folder without ``config.json``."""
    return _record(run).get("environment", {}) if (run / "config.json").exists() else {}


def load_run(run: Path):
    """(recipe, TrainConfig): the run's recipe rebuilt from its config, every network with its trained
    weights, in eval mode on the CPU."""
    import torch

    cfg = from_dict(TrainConfig, run_config(run))
    recipe = build_recipe(cfg)
    for name, module in recipe.modules().items():
        weights = run / f"{name}.pt"
        if not weights.exists():
            raise MRSynthError(f"run has no trained weights '{weights.name}' (unfinished?)", str(run))
        module.load_state_dict(torch.load(str(weights), map_location="cpu", weights_only=True))
        module.eval()
    return recipe, cfg


def load_run_model(run: Path):
    """(UnifiedModel, resolved config dict) of a finished unified run: ``load_run``'s network, for code
    that runs it as the product does (``TorchBackend``) or exports it."""
    if not (run / "config.json").exists() or not (run / "model.pt").exists():
        raise MRSynthError("not a finished run folder (config.json and model.pt needed)", str(run))
    recipe, cfg = load_run(run)
    if cfg.recipe != "unified":
        raise MRSynthError(f"run trained recipe '{cfg.recipe}'; only the unified recipe has this network", str(run))
    return recipe.model, run_config(run)
