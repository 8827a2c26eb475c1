"""The simulator as an endless source: ``data.simulated_refresh`` swaps in new simulated subjects every N
steps, deterministically from the step (so --resume sees the same ones), and real subjects stay."""

from __future__ import annotations

import json

from test_training import _tiny_cfg


def test_refresh_swaps_the_simulated_subjects_by_generation():
    from mrsynth_train.simstream import refresh_simulated
    from mrsynth_train.trainer import build_sampler

    cfg = _tiny_cfg(data={"real_weight": 0.0, "simulated": 2, "simulated_shape": [40, 48, 40], "patch": 32,
                          "simulated_seed": 50, "simulated_refresh": 3})
    sampler, _ = build_sampler(cfg)
    names = lambda: [s.name for s in sampler.subjects]  # noqa: E731
    assert names() == ["sim-50", "sim-51"]
    assert refresh_simulated(sampler, cfg, 0) is None and refresh_simulated(sampler, cfg, 2) is None
    assert refresh_simulated(sampler, cfg, 3) == 1 and names() == ["sim-52", "sim-53"]
    assert refresh_simulated(sampler, cfg, 5) is None and names() == ["sim-52", "sim-53"]
    assert refresh_simulated(sampler, cfg, 7) == 2 and names() == ["sim-54", "sim-55"]
    batch = sampler.sample(2)  # the new subjects are indexed: slices come from them
    assert batch.mask.sum() > 0
    cfg.data.simulated_refresh = 0
    assert refresh_simulated(sampler, cfg, 100) is None


def test_a_run_with_refresh_trains_and_a_resume_picks_the_same_generation(tmp_path):
    from mrsynth_train.trainer import train

    cfg = _tiny_cfg(steps=5, checkpoint_every=3,
                    data={"real_weight": 0.0, "simulated": 1, "simulated_shape": [40, 48, 40], "patch": 32,
                          "simulated_refresh": 2})
    train(cfg, tmp_path / "straight", progress=False)
    train(cfg, tmp_path / "resumed", max_steps=3, progress=False)
    train(cfg, tmp_path / "resumed", resume=True, progress=False)
    log = (tmp_path / "straight" / "train.log").read_text(encoding="utf-8")
    assert "generation 1 (sim-1001)" in log and "generation 2 (sim-1002)" in log
    resumed = (tmp_path / "resumed" / "train.log").read_text(encoding="utf-8")
    assert "step 3: simulated subjects of generation 1" in resumed  # after the resume, before step 4
    losses = [[json.loads(x)["l1"] for x in (tmp_path / r / "log.jsonl").read_text().splitlines()]
              for r in ("straight", "resumed")]
    assert losses[0] == losses[1]
