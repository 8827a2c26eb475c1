"""Config checks that need the recipes: run by ``load_config`` so a typo fails in a second, before the
data is loaded and the networks are built (a run on real data spends a minute loading volumes first)."""

from __future__ import annotations

import dataclasses

from MRSynthLib.errors import MRSynthError

from .config import TrainConfig


def recipe_class(name: str):
    """The recipe class registered under ``name`` (imports its module only)."""
    import importlib  # noqa: PLC0415

    from .trainer import RECIPES  # noqa: PLC0415

    if name not in RECIPES:
        raise MRSynthError(f"config key 'recipe': unknown recipe '{name}' (known: {', '.join(sorted(RECIPES))})")
    module, cls = RECIPES[name].split(":")
    return getattr(importlib.import_module(f"{__package__}.{module}"), cls)


def check_fp16(cls, amp: str) -> None:
    """fp16 needs every backward/step of the recipe to go through the GradScaler (``fp16_ready``)."""
    if amp == "fp16" and not getattr(cls, "fp16_ready", False):
        raise MRSynthError(f"config key 'amp': fp16 needs a gradient scaler in every update, which recipe "
                           f"'{cls.name}' does not route its steps through yet; use amp: bf16 or off")


def check_config(cfg: TrainConfig, has_model_section: bool = False) -> None:
    """Recipe name, the recipe's ``options`` (unknown keys, types, values, contrast pairs), ``data.axis``,
    ``amp``, and a ``model:`` section only for recipes built from it (it would be silently ignored)."""
    from .data import AXES  # noqa: PLC0415
    from .devices import AMP_MODES  # noqa: PLC0415
    from .recipe_common import _parse_pairs, parse_options  # noqa: PLC0415

    cls = recipe_class(cfg.recipe)
    options = parse_options(cls.Options, cfg) if hasattr(cls, "Options") else None
    if options is not None and "pairs" in {f.name for f in dataclasses.fields(options)}:
        _parse_pairs(options.pairs)
    if has_model_section and not getattr(cls, "uses_model_section", False):
        raise MRSynthError(f"config key 'model' is not used by recipe '{cfg.recipe}' (its architecture is set "
                           "in 'options'); remove the model section")
    if cfg.data.axis not in AXES:
        raise MRSynthError(f"config key 'data.axis' must be one of {', '.join(AXES)}, got '{cfg.data.axis}'")
    if cfg.amp not in AMP_MODES:
        raise MRSynthError(f"config key 'amp' must be one of {', '.join(AMP_MODES)}, got '{cfg.amp}'")
    check_fp16(cls, cfg.amp)
