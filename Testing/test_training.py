"""The training loop for real: steps on simulated subjects, atomic checkpoints, exact resume, config errors,
export → synthesize round trip, and a 2-process gloo run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mrsynth_train.config import TrainConfig, from_dict, load_config
from MRSynthLib.errors import MRSynthError


def _tiny_cfg(**over) -> TrainConfig:
    base = {"recipe": "unified", "steps": 6, "batch_size": 4, "lr": 0.002, "checkpoint_every": 3, "log_every": 1,
            "threads": 2,
            "data": {"real_weight": 0.0, "simulated": 1, "simulated_shape": [40, 48, 40], "patch": 32},
            "model": {"ngf": 4, "n_blocks": 1, "style_dim": 4}}
    base.update(over)
    return from_dict(TrainConfig, base)


def _log(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "log.jsonl").read_text(encoding="utf-8").splitlines()]


def test_losses_are_finite_and_move(tmp_path):
    from mrsynth_train.trainer import train

    summary = train(_tiny_cfg(steps=8), tmp_path, progress=False)
    log = _log(tmp_path)
    assert summary["steps"] == 8 and len(log) == 8
    losses = [r["l1"] for r in log]
    assert np.all(np.isfinite(losses)) and losses[-1] != losses[0]
    assert (tmp_path / "model.pt").exists() and (tmp_path / "config.json").exists()
    assert any((tmp_path / "tensorboard").iterdir())


def test_resume_after_a_kill_continues_at_the_same_step(tmp_path):
    """Train 6 steps straight; separately train 3, 'kill', resume to 6: identical weights."""
    import torch

    from mrsynth_train.trainer import train

    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    train(_tiny_cfg(), straight, progress=False)
    train(_tiny_cfg(), resumed, max_steps=3, progress=False)
    state = torch.load(resumed / "checkpoint.pt", weights_only=True)
    assert state["step"] == 3
    train(_tiny_cfg(), resumed, resume=True, progress=False)
    a = torch.load(straight / "model.pt", weights_only=True)
    b = torch.load(resumed / "model.pt", weights_only=True)
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    assert [r["step"] for r in _log(resumed)] == [1, 2, 3, 4, 5, 6]


def test_resume_without_checkpoint_is_an_error(tmp_path):
    from mrsynth_train.trainer import train

    with pytest.raises(MRSynthError, match="no checkpoint"):
        train(_tiny_cfg(), tmp_path, resume=True, progress=False)


@pytest.mark.parametrize("text,message", [
    ("stepz: 3\n", "unknown config key 'stepz'"),
    ("steps: three\n", "config key 'steps' must be int"),
    ("data:\n  patch: 1.5\n", "config key 'data.patch' must be int"),
    ("data:\n  colour: red\n", "unknown config key 'data.colour'"),
    ("recipe: [unified\n", "invalid YAML"),
])
def test_config_errors_name_the_key(tmp_path, text, message):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    with pytest.raises(MRSynthError, match=message.replace("[", r"\[")):
        load_config(p)


def test_shipped_configs_are_valid():
    for p in sorted(Path(__file__).resolve().parents[1].glob("training/configs/*.yaml")):
        assert load_config(p).steps > 0


def test_export_round_trip_matches_torch(tmp_path, small_subject):
    """Train a few steps, export to ONNX, synthesize through the CLI model path; torch agrees to 1e-4."""
    from mrsynth_train.export import export_run
    from mrsynth_train.trainer import train
    from MRSynthLib.registry import load_backend, resolve_model
    from MRSynthLib.synthesis import synthesize

    train(_tiny_cfg(steps=3), tmp_path / "run", progress=False)
    card = export_run(tmp_path / "run", tmp_path / "bundle", model_id="roundtrip")
    assert card["files"]["generator"]["name"] == "roundtrip.onnx"
    bundle = resolve_model(str(tmp_path / "bundle" / "roundtrip.onnx"), roles=("generator", "style", "weights"))
    inputs = {c: small_subject.volumes[c] for c in ("T1", "T2")}
    a = synthesize(inputs, "FLAIR", engine=load_backend(bundle, "onnx", "cpu"))
    b = synthesize(inputs, "FLAIR", engine=load_backend(bundle, "torch", "cpu"))
    assert np.abs(a.array - b.array).max() < 1e-4


@pytest.mark.slow
def test_two_process_gloo_run_matches_one_process(tmp_path):
    """torchrun --nproc_per_node 2 (gloo, CPU): same weights on both ranks, and the loss trajectory of 1 process
    with the doubled batch: per-sample random draws are made for the global batch and the masked L1 is
    normalised by the global batch's brain pixels, so only float summation order differs."""
    import yaml

    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"recipe": "unified", "steps": 5, "batch_size": 4, "lr": 0.002,
                                   "checkpoint_every": 5, "log_every": 1, "threads": 2,
                                   "data": {"real_weight": 0.0, "simulated": 1, "simulated_shape": [40, 48, 40],
                                            "patch": 32},
                                   "model": {"ngf": 4, "n_blocks": 1, "style_dim": 4}}))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    torchrun = Path(sys.executable).parent / "torchrun"
    for world, run in ((1, "one"), (2, "two")):
        proc = subprocess.run([str(torchrun), "--standalone", f"--nproc_per_node={world}", "-m", "mrsynth_train.cli",
                               "train", "--config", str(cfg), "--out", str(tmp_path / run)],
                              capture_output=True, text=True, encoding="utf-8", env=env, timeout=600)
        assert proc.returncode == 0, proc.stderr[-2000:]
    one, two = _log(tmp_path / "one"), _log(tmp_path / "two")
    assert [r["step"] for r in two] == [1, 2, 3, 4, 5]
    summary = json.loads((tmp_path / "two" / "summary.json").read_text(encoding="utf-8"))
    assert summary["world_size"] == 2 and summary["ranks_in_sync"] is True  # rank 1 holds rank 0's weights
    l1_one, l1_two = np.array([r["l1"] for r in one]), np.array([r["l1"] for r in two])
    assert abs(l1_one[0] - l1_two[0]) < 1e-5  # the same initial weights, global batch and normalisation
    assert np.allclose(l1_one, l1_two, rtol=1e-3)  # was 25 % with per-rank draws and per-shard means


def test_style_reconstruction_option_trains_and_rejects_unknown_options(tmp_path):
    from mrsynth_train.recipes import build_recipe
    from mrsynth_train.trainer import build_sampler

    cfg = _tiny_cfg(options={"style_recon": 1.0, "random_style_prob": 0.5})
    sampler, _ = build_sampler(cfg)
    recipe = build_recipe(cfg)
    before = [p.detach().clone() for p in recipe.model.style_encoder.parameters()]
    losses = [recipe.train_step(sampler.sample(4)) for _ in range(3)]
    assert all(np.isfinite(v) for r in losses for v in r.values())
    after = list(recipe.model.style_encoder.parameters())
    assert any(not np.allclose(a.detach().numpy(), b.numpy()) for a, b in zip(after, before, strict=True))
    with pytest.raises(MRSynthError, match="unknown config key 'options.style_recn'"):
        build_recipe(_tiny_cfg(options={"style_recn": 1.0}))


def test_device_and_amp_settings_are_checked():
    from mrsynth_train.devices import amp_mode, resolve_device

    assert resolve_device("cpu") == "cpu"
    assert amp_mode("auto", "cpu") == "off" and amp_mode("auto", "cuda:0") == "bf16"
    assert amp_mode("on", "cpu") == "bf16" and amp_mode("off", "cuda:1") == "off"
    assert amp_mode("fp16", "cpu") == "fp16" and amp_mode("bf16", "cuda:0") == "bf16"
    with pytest.raises(MRSynthError, match="must be auto, cpu, cuda"):
        resolve_device("gpu")
    with pytest.raises(MRSynthError, match="must be one of auto, bf16, fp16, off"):
        amp_mode("yes", "cpu")
    import torch

    if not torch.cuda.is_available():
        assert resolve_device("auto", local_rank=1) == "cpu"
        with pytest.raises(MRSynthError, match="torch.cuda.is_available"):
            resolve_device("cuda")


@pytest.mark.parametrize("recipe", ["unified", "hypergan", "collagan", "mist", "cyclegan", "unit", "supervised",
                                    "simple"])
def test_bfloat16_autocast_trains(recipe, tmp_path):
    """amp: on runs the recipe's forward passes in bfloat16 (here on CPU, the GPU path's arithmetic);
    the losses stay finite and the stored weights stay float32."""
    import torch
    from conftest import TINY_RECIPE_OPTIONS

    from mrsynth_train.trainer import train

    over = {"recipe": recipe, "amp": "on", "steps": 3, "checkpoint_every": 3}
    if recipe != "unified":
        over["options"] = TINY_RECIPE_OPTIONS[recipe]
    seen = []
    hook = torch.nn.modules.module.register_module_forward_hook(
        lambda m, i, o: seen.append(o.dtype) if isinstance(m, torch.nn.Conv2d) else None)
    try:
        summary = train(_tiny_cfg(**over), tmp_path, progress=False)
    finally:
        hook.remove()
    assert torch.bfloat16 in seen
    assert all(np.isfinite(v) for v in summary["losses"].values())
    weights = torch.load(str(tmp_path / {"unified": "model.pt", "cyclegan": "generators.pt", "unit": "models.pt", "supervised": "generators.pt",
                                     "simple": "generators.pt"}.get(recipe, "generator.pt")), weights_only=True)
    assert weights and all(t.dtype in (torch.float32, torch.int64) for t in weights.values())
    env = json.loads((tmp_path / "config.json").read_text(encoding="utf-8"))["environment"]
    assert env["device"] == "cpu" and env["amp"] == "bf16"
