"""Learning-rate schedules under a CPU-time budget: a run stopped by its budget must have annealed, and the
budget must count across --resume (equal-budget comparisons rely on both)."""

from __future__ import annotations

import json
import math

import pytest
import torch
from conftest import TINY_RECIPE_OPTIONS
from test_training import _tiny_cfg


def test_cosine_decay_by_hand():
    from mrsynth_train.recipes.common import cosine_decay

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    factor = cosine_decay(opt, 100, floor=0.05).lr_lambdas[0]
    assert factor(0) == pytest.approx(1.0)
    assert factor(50) == pytest.approx(0.05 + 0.95 * 0.5)
    assert factor(25) == pytest.approx(0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi / 4)))
    assert factor(100) == pytest.approx(0.05) and factor(10**6) == pytest.approx(0.05)


def test_cosine_decay_matches_torch_cosine_annealing():
    """Same trajectory as the CosineAnnealingLR the shipped models were trained with."""
    from mrsynth_train.recipes.common import cosine_decay

    p1, p2 = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    o1, o2 = torch.optim.SGD([p1], lr=0.002), torch.optim.SGD([p2], lr=0.002)
    s1 = torch.optim.lr_scheduler.CosineAnnealingLR(o1, T_max=40, eta_min=0.002 * 0.05)
    s2 = cosine_decay(o2, 40, floor=0.05)
    for _ in range(40):
        o1.step()
        o2.step()
        s1.step()
        s2.step()
        assert o1.param_groups[0]["lr"] == pytest.approx(o2.param_groups[0]["lr"], rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("recipe", ["unified", "cyclegan"])  # cosine to 5 %; constant, then linear to 0
def test_a_budget_stopped_run_has_annealed(recipe, tmp_path):
    """steps is huge, the CPU budget stops the run: its learning rate must still have decayed to the end of
    its schedule (without the budget clock it would stay at the base rate)."""
    from mrsynth_train.trainer import train

    # one thread: two threads spin-waiting on a loaded machine can burn the whole budget in one step
    over = {"recipe": recipe, "steps": 10**6, "cpu_budget_s": 4.0, "checkpoint_every": 10**6, "threads": 1}
    if recipe != "unified":
        over["options"] = TINY_RECIPE_OPTIONS[recipe]
    cfg = _tiny_cfg(**over)
    summary = train(cfg, tmp_path, progress=False)
    assert 1 < summary["steps"] < 10**6
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    lrs = [g["lr"] for o in state["optimizers"].values() if "param_groups" in o for g in o["param_groups"]]
    base = [g["initial_lr"] for o in state["optimizers"].values() if "param_groups" in o for g in o["param_groups"]]
    assert lrs and all(lr <= 0.15 * b for lr, b in zip(lrs, base, strict=True)), (lrs, base)
    assert state["cpu_s"] >= 0.8 * cfg.cpu_budget_s
    logged = [json.loads(x)["lr"] for x in (tmp_path / "log.jsonl").read_text(encoding="utf-8").splitlines()]
    assert logged[0] > logged[-1] and logged == sorted(logged, reverse=True)  # the schedule, visible in the log


@pytest.mark.parametrize("recipe", ["unified", "hypergan", "collagan", "mist", "cyclegan", "unit", "supervised",
                                    "simple"])
def test_every_optimizer_of_every_recipe_has_a_schedule(recipe):
    """The equal-budget comparison is fair only if every recipe anneals: each optimizer has an LR scheduler
    (which the trainer moves to the budget's clock) whose rate falls to the end of its schedule."""
    from mrsynth_train.recipes import build_recipe

    over = {"recipe": recipe, "steps": 100}
    if recipe != "unified":
        over["options"] = TINY_RECIPE_OPTIONS[recipe]
    objs = build_recipe(_tiny_cfg(**over)).optimizers().values()
    optimizers = [o for o in objs if isinstance(o, torch.optim.Optimizer)]
    schedulers = [o for o in objs if isinstance(o, torch.optim.lr_scheduler.LRScheduler)]
    assert optimizers and {id(s.optimizer) for s in schedulers} == {id(o) for o in optimizers}
    for s in schedulers:
        assert all(f(100) <= 0.05 < f(0) for f in s.lr_lambdas)


def test_mist_diversification_weight_follows_the_budget_clock(tmp_path):
    """MIST's style-diversification weight decays over the steps (StarGAN v2); a budget-stopped run must
    have moved it to the end of its schedule like the learning rates."""
    from mrsynth_train.trainer import train

    cfg = _tiny_cfg(recipe="mist", steps=10**6, cpu_budget_s=3.0, checkpoint_every=10**6, threads=1,
                    options=TINY_RECIPE_OPTIONS["mist"])
    summary = train(cfg, tmp_path, progress=False)
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    position = int(state["modules"]["state"]["step"])
    assert summary["steps"] < 10**5 and position >= 0.8 * 10**6


def test_the_budget_counts_across_resume(tmp_path):
    """A run that spent its budget does not get a fresh one on --resume."""
    from mrsynth_train.trainer import train

    cfg = _tiny_cfg(steps=10**6, cpu_budget_s=2.0, checkpoint_every=10**6)
    first = train(cfg, tmp_path, progress=False)
    again = train(cfg, tmp_path, resume=True, progress=False)
    assert again["steps"] == first["steps"]


def test_saved_weights_are_byte_identical_whatever_the_file_name(tmp_path):
    """Same weights, same bytes (and SHA256), so a retrained model can be compared with the shipped one."""
    from mrsynth_train.checkpoint import atomic_torch_save

    state = torch.nn.Linear(3, 2).state_dict()
    atomic_torch_save(state, tmp_path / "a.pt")
    atomic_torch_save(state, tmp_path / "other-name.pt")
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "other-name.pt").read_bytes()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left
