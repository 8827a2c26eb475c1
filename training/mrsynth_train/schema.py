"""The training config's schema: typed dataclasses and their strict reading from a mapping (an unknown
key or a wrong type is an error naming it). ``config.load_config`` reads a file through it and then runs
the checks that need the recipes; the recipes read their own ``options`` through ``from_dict``."""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field

from MRSynthLib.errors import MRSynthError


@dataclass
class DataConfig:
    real_root: str = "../shared/data/real"
    real_include: list[str] = field(default_factory=list)
    real_exclude: list[str] = field(default_factory=list)
    simulated: int = 4
    simulated_shape: list[int] = field(default_factory=lambda: [144, 176, 144])
    simulated_seed: int = 1000
    simulated_refresh: int = 0  # > 0: new simulated subjects every N steps (the simulator as an endless source)
    real_weight: float = 0.5
    patch: int = 128
    paired: bool = True  # False: each contrast from a different subject/slice (Hyper-GAN's unpaired setting)
    context: int = 0  # 2.5D: neighbouring slices on each side
    axis: str = "axial"
    augment: bool = True
    flip: float = 0.5
    gamma: float = 0.3
    gamma_range: list[float] = field(default_factory=lambda: [0.8, 1.25])
    scale: float = 0.0
    bias: float = 0.0
    bias_strength: float = 0.3
    noise: float = 0.0
    noise_std: float = 0.03
    subject_gamma: float = 0.0  # whole sample, truth included (see data.Augment)
    subject_gamma_range: list[float] = field(default_factory=lambda: [0.6, 1.8])
    curve: float = 0.0  # per input channel: random monotone tone curve (SynthSR-style domain randomization)
    curve_knots: int = 6
    curve_concentration: float = 2.0
    extra_roots: list[str] = field(default_factory=list)  # more subject folders / BIDS roots
    extra_weights: list[float] = field(default_factory=list)


@dataclass
class ModelConfig:
    ngf: int = 16
    n_blocks: int = 6
    style_dim: int = 8
    pointwise: int = 32
    input_mix: int = 0
    scale_head: int = 0  # width of the Laplace scale head of the uncertainty map (0 = none; options.laplace trains it)


@dataclass
class TrainConfig:
    recipe: str = "unified"
    seed: int = 0
    steps: int = 1000
    cpu_budget_s: float = 0.0  # CPU-time budget of this process, all threads (0 = none); immune to machine load
    batch_size: int = 8
    lr: float = 1e-3
    style_reg: float = 0.05
    checkpoint_every: int = 100
    log_every: int = 10
    threads: int = 2
    device: str = "auto"  # auto | cpu | cuda | cuda:N (under torchrun: cuda:<local rank>)
    amp: str = "auto"  # autocast: auto (bf16 on GPU, off on CPU) | bf16 | fp16 (+ GradScaler) | off; "on" = bf16
    # torch.use_deterministic_algorithms(True): bitwise-repeatable GPU runs, slower; an op without a deterministic
    # kernel then raises. On CUDA, cuBLAS also needs CUBLAS_WORKSPACE_CONFIG=:4096:8 before its first use: the
    # trainer sets it when unset, but under torchrun export it in the launching shell to be sure.
    deterministic: bool = False
    validate_on: list[str] = field(default_factory=list)
    options: dict = field(default_factory=dict)  # recipe-specific, validated by the recipe's own dataclass
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)


def _coerce(value, typ, where: str):
    origin = typing.get_origin(typ)
    if dataclasses.is_dataclass(typ):
        if not isinstance(value, dict):
            raise MRSynthError(f"config key '{where}' must be a mapping")
        return from_dict(typ, value, where + ".")
    if origin is list:
        if not isinstance(value, list):
            raise MRSynthError(f"config key '{where}' must be a list, got {type(value).__name__}")
        (inner,) = typing.get_args(typ)
        return [_coerce(v, inner, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin in (typing.Union, types.UnionType):
        return value
    if typ is dict or origin is dict:
        if not isinstance(value, dict):
            raise MRSynthError(f"config key '{where}' must be a mapping")
        return value
    if typ is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
        raise MRSynthError(f"config key '{where}' must be {typ.__name__}, got {type(value).__name__} ({value!r})")
    return value


def from_dict(cls, data: dict, prefix: str = ""):
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        if key not in known:
            raise MRSynthError(f"unknown config key '{prefix}{key}' (known: {', '.join(sorted(known))})")
    return cls(**{k: _coerce(v, hints[k], prefix + k) for k, v in data.items()})


def to_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)
