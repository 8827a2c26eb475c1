"""Load a training config and check everything about it before any data is read: keys and types
(``schema``), then the recipe's name, its ``options`` (unknown keys, types, values, contrast pairs), the
slice axis, the 2.5D context, the amp mode and the ``model:`` section. A typo fails in a second, not
after a minute of loading volumes. The schema's names are re-exported here for callers of the package."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from MRSynthLib.errors import MRSynthError

from .recipes import recipe_class
from .schema import DataConfig, ModelConfig, TrainConfig, from_dict, to_dict

__all__ = ["DataConfig", "ModelConfig", "TrainConfig", "check_config", "check_fp16", "from_dict", "load_config",
           "to_dict"]


def load_config(path: str | Path) -> TrainConfig:
    """Read and check a YAML config (see the module's docstring), all before any data is read."""
    import yaml

    p = Path(path)
    if not p.exists():
        raise MRSynthError("config file not found", str(p))
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise MRSynthError(f"invalid YAML: {str(exc).splitlines()[0]}", str(p)) from None
    if not isinstance(data, dict):
        raise MRSynthError("config must be a mapping of keys", str(p))
    cfg = from_dict(TrainConfig, data)
    check_config(cfg, has_model_section="model" in data)
    return cfg


def check_fp16(cls, amp: str) -> None:
    """fp16 needs every backward/step of the recipe to go through the GradScaler (``fp16_ready``)."""
    if amp == "fp16" and not getattr(cls, "fp16_ready", False):
        raise MRSynthError(f"config key 'amp': fp16 needs a gradient scaler in every update, which recipe "
                           f"'{cls.name}' does not route its steps through yet; use amp: bf16 or off")


def check_config(cfg: TrainConfig, has_model_section: bool = False) -> None:
    """Every check that needs no data: recipe name and ``options``, ``data.axis``, ``data.context`` (2.5D:
    only recipes that read the neighbours), ``amp`` (fp16 only for recipes routed through the scaler), and
    a ``model:`` section only for recipes built from it (it would be silently ignored). The trainer runs it
    first too, so a config built in code fails as early as one read from a file."""
    from .data import AXES
    from .devices import AMP_MODES
    from .recipes.common import parse_options, parse_pairs

    cls = recipe_class(cfg.recipe)
    options = parse_options(cls.Options, cfg) if hasattr(cls, "Options") else None
    if options is not None and "pairs" in {f.name for f in dataclasses.fields(options)}:
        parse_pairs(options.pairs)
    if has_model_section and not getattr(cls, "uses_model_section", False):
        raise MRSynthError(f"config key 'model' is not used by recipe '{cfg.recipe}' (its architecture is set "
                           "in 'options'); remove the model section")
    if cfg.data.axis not in AXES:
        raise MRSynthError(f"config key 'data.axis' must be one of {', '.join(AXES)}, got '{cfg.data.axis}'")
    if cfg.data.context and not getattr(cls, "reads_context", False):  # the neighbours would be ignored
        raise MRSynthError(f"config key 'data.context': 2.5D input is built into the unified recipe only, not "
                           f"'{cfg.recipe}' (set context: 0)")
    if cfg.amp not in AMP_MODES:
        raise MRSynthError(f"config key 'amp' must be one of {', '.join(AMP_MODES)}, got '{cfg.amp}'")
    check_fp16(cls, cfg.amp)
