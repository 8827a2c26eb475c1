"""The training recipes, one module per method (their interface: ``common``), and the one table that
names them. Class attributes tell ``config.check_config`` what a recipe accepts: ``Options`` (its
``options`` dataclass), ``uses_model_section``, ``reads_context`` (2.5D neighbours) and ``fp16_ready``.
The table maps a config's ``recipe:`` name to ``module:Class``; looking one up imports that module only
(and torch with it), so reading the table stays cheap."""

from __future__ import annotations

import importlib

from MRSynthLib.errors import MRSynthError

RECIPES = {
    "unified": "unified:UnifiedRecipe",
    "hypergan": "hypergan:HyperGANRecipe",
    "collagan": "collagan:CollaGANRecipe",
    "mist": "mist:MISTRecipe",
    "cyclegan": "cyclegan:CycleGANRecipe",
    "unit": "unit:UNITRecipe",
    "supervised": "supervised:SupervisedRecipe",
    "simple": "simple:SimpleRecipe",
}


def recipe_class(name: str):
    """The recipe class registered under ``name``."""
    if name not in RECIPES:
        raise MRSynthError(f"config key 'recipe': unknown recipe '{name}' (known: {', '.join(sorted(RECIPES))})")
    module, cls = RECIPES[name].split(":")
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)


def build_recipe(cfg):
    """The configured recipe, with freshly initialised networks and optimizers. ``config.check_config``
    validates the config first (``load_config`` and the trainer run it)."""
    return recipe_class(cfg.recipe)(cfg)
