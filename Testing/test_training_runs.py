"""The run folder and resume under the audit's eye: GAN history pools and the fp16 gradient scaler survive
--resume exactly, log.jsonl has no duplicate steps after a kill, the issue's CLI form, config checks before
any data is read, and clear errors for broken or empty datasets."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_RECIPE_OPTIONS
from test_training import _log, _tiny_cfg

from MRSynthLib.errors import MRSynthError


def _cyclegan_cfg(**over):
    options = {**TINY_RECIPE_OPTIONS["cyclegan"], "pool_size": 2}
    return _tiny_cfg(recipe="cyclegan", steps=8, batch_size=2, lr=2e-4, checkpoint_every=4, options=options,
                     model={}, **over)


def test_gan_resume_is_exact_with_the_image_pool(tmp_path):
    """CycleGAN with a pool of 2: 8 steps straight == 4 steps, 'kill', --resume to 8. The pool's contents
    decide what the discriminators see, so they must come back from the checkpoint."""
    from mrsynth_train.trainer import train

    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    train(_cyclegan_cfg(), straight, progress=False)
    train(_cyclegan_cfg(), resumed, max_steps=4, progress=False)
    state = torch.load(resumed / "checkpoint.pt", weights_only=True)
    pools = state["extra"]["pools"]
    assert state["step"] == 4 and max(len(p["images"]) for p in pools.values()) == 2
    train(_cyclegan_cfg(), resumed, resume=True, progress=False)
    for name in ("discriminators.pt", "generators.pt"):
        a = torch.load(straight / name, weights_only=True)
        b = torch.load(resumed / name, weights_only=True)
        assert all(torch.equal(a[k], b[k]) for k in a), name


def _conv_dtypes():
    """Record the output dtype of every Conv2d call (which precision autocast really ran)."""
    seen: list[torch.dtype] = []
    hook = torch.nn.modules.module.register_module_forward_hook(
        lambda m, i, o: seen.append(o.dtype) if isinstance(m, torch.nn.Conv2d) else None)
    return seen, hook


def test_fp16_gradient_scaler_is_checkpointed_and_restored(tmp_path):
    """amp: fp16 runs float16 autocast with a GradScaler (torch's CPU scaler here); its state is in every
    checkpoint and a resume continues from it: a planted scale and growth count must come back."""
    from mrsynth_train.trainer import train

    seen, hook = _conv_dtypes()
    try:
        train(_tiny_cfg(amp="fp16", steps=4, checkpoint_every=2), tmp_path, max_steps=2, progress=False)
    finally:
        hook.remove()
    assert torch.float16 in seen
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert state["scaler"]["scale"] in (65536.0, 32768.0, 16384.0)  # backs off on an inf/NaN step
    state["scaler"].update(scale=1024.0, _growth_tracker=1000)
    torch.save(state, tmp_path / "checkpoint.pt")
    summary = train(_tiny_cfg(amp="fp16", steps=4, checkpoint_every=2), tmp_path, resume=True, progress=False)
    assert all(np.isfinite(v) for v in summary["losses"].values())
    after = torch.load(tmp_path / "checkpoint.pt", weights_only=True)["scaler"]
    assert after["scale"] == 1024.0 and after["_growth_tracker"] == 1002  # two more finite steps
    env = json.loads((tmp_path / "config.json").read_text(encoding="utf-8"))["environment"]
    assert env["amp"] == "fp16"


def test_every_checkpoint_has_a_scaler_entry_and_bf16_needs_none(tmp_path):
    from mrsynth_train.trainer import train

    train(_tiny_cfg(steps=1, amp="bf16"), tmp_path, progress=False)
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=True)["scaler"] == {}


def test_deterministic_option_switches_torch_to_deterministic_algorithms(tmp_path):
    from mrsynth_train.distributed import backend_for
    from mrsynth_train.trainer import train

    flags: list[bool] = []
    hook = torch.nn.modules.module.register_module_forward_hook(
        lambda m, i, o: flags.append(torch.are_deterministic_algorithms_enabled()))
    try:
        train(_tiny_cfg(steps=1, deterministic=True), tmp_path, progress=False)
    finally:
        hook.remove()
    assert flags and all(flags) and not torch.are_deterministic_algorithms_enabled()  # restored after
    env = json.loads((tmp_path / "config.json").read_text(encoding="utf-8"))["environment"]
    assert env["deterministic"] is True
    assert backend_for("cpu") == "gloo" and backend_for("cuda:1") == "nccl"


def test_resume_after_a_kill_does_not_log_steps_twice(tmp_path):
    """A run killed after logging steps 4-5 but before its next checkpoint (6) resumes from step 3:
    log.jsonl is cut back to step 3, so each step is logged once."""
    from mrsynth_train.trainer import train

    run = tmp_path / "run"
    train(_tiny_cfg(), run, max_steps=3, progress=False)
    shutil.copy(run / "checkpoint.pt", tmp_path / "step3.pt")
    train(_tiny_cfg(), run, resume=True, max_steps=5, progress=False)
    with open(run / "log.jsonl", "a", encoding="utf-8") as f:
        f.write('{"step": 6, "wal')  # half a line, as a kill can leave
    shutil.copy(tmp_path / "step3.pt", run / "checkpoint.pt")  # the kill: the last checkpoint is step 3's
    train(_tiny_cfg(), run, resume=True, progress=False)
    assert [r["step"] for r in _log(run)] == [1, 2, 3, 4, 5, 6]
    text = (run / "train.log").read_text(encoding="utf-8")
    assert "resumed from step 3 (dropped 3 log lines" in text and "checkpoint at step 6" in text


def test_run_folder_records_paths_code_and_environment(tmp_path):
    from mrsynth_train.trainer import train

    train(_tiny_cfg(steps=1, data={"real_root": "no/such/root", "real_weight": 0.0, "simulated": 1,
                                   "simulated_shape": [40, 48, 40], "patch": 32}), tmp_path, progress=False)
    record = json.loads((tmp_path / "config.json").read_text(encoding="utf-8"))
    assert Path(record["config"]["data"]["real_root"]).is_absolute()
    assert record["git_dirty"] in (True, False) and "git_commit" in record  # the tests run inside the git checkout
    env = record["environment"]
    assert env["numpy"] == np.__version__ and env["onnx"] and env["onnxruntime"] and "cuda" in env
    assert "finished at step 1" in (tmp_path / "train.log").read_text(encoding="utf-8")


def _ball(path: Path, shape=(16, 16, 16)) -> None:
    from conftest import write_nifti

    from MRSynthLib.volume import Volume

    zz, yy, xx = np.mgrid[:shape[0], :shape[1], :shape[2]]
    c = [s // 2 for s in shape]
    ball = ((zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2 < 25).astype(np.float32) * (1 + 0.1 * xx)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_nifti(Volume(ball), path)


def test_a_subject_with_mismatched_shapes_is_skipped_and_counted(tmp_path):
    from mrsynth_train.subjects import load_root

    for c in ("T1", "T2"):
        _ball(tmp_path / "good" / f"{c}.nii.gz")
    _ball(tmp_path / "bad" / "T1.nii.gz")
    _ball(tmp_path / "bad" / "T2.nii.gz", shape=(16, 16, 12))
    subjects, skipped = load_root(tmp_path)
    assert [s.name for s in subjects] == ["good"]
    assert len(skipped) == 1 and skipped[0].startswith("bad: ") and "T2.nii.gz" in skipped[0]
    assert "(16, 16, 12)" in skipped[0]


def test_an_empty_dataset_is_a_clear_error(tmp_path):
    from mrsynth_train.trainer import build_sampler

    (tmp_path / "empty").mkdir()
    data = {"real_root": str(tmp_path / "empty"), "real_weight": 1.0, "simulated": 0, "patch": 32}
    with pytest.raises(MRSynthError, match=r"training dataset is empty \(no subject folders .*simulated is 0"):
        build_sampler(_tiny_cfg(data=data))
    _ball(tmp_path / "broken" / "bad" / "T1.nii.gz")
    (tmp_path / "broken" / "bad" / "T2.nii.gz").write_bytes(b"not a nifti")
    with pytest.raises(MRSynthError, match=r"training dataset is empty \(1 subjects skipped: bad: .*T2"):
        build_sampler(_tiny_cfg(data={**data, "real_root": str(tmp_path / "broken")}))


def _yaml(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "c.yaml"
    p.write_text(text, encoding="utf-8")
    return p


@pytest.mark.parametrize("text,message", [
    ("recipe: cyclegn\n", "config key 'recipe': unknown recipe 'cyclegn'"),
    ("recipe: cyclegan\noptions:\n  pool_sise: 3\n", "unknown config key 'options.pool_sise'"),
    ("recipe: cyclegan\noptions:\n  pairs: [[T1, T1]]\n", r"options.pairs\[0\] pairs T1 with itself"),
    ("recipe: hypergan\noptions:\n  mode: film\n", "options.mode must be"),
    ("recipe: cyclegan\nmodel:\n  ngf: 8\n", "config key 'model' is not used by recipe 'cyclegan'"),
    ("data:\n  axis: oblique\n", "config key 'data.axis' must be one of axial, coronal, sagittal"),
    ("amp: half\n", "config key 'amp' must be one of"),
    ("recipe: simple\ndata:\n  context: 1\n", "config key 'data.context': 2.5D input is built into the unified"),
])
def test_load_config_checks_the_recipe_before_any_data(tmp_path, text, message):
    """No data root exists here: the errors come from load_config itself."""
    from mrsynth_train.config import load_config

    with pytest.raises(MRSynthError, match=message):
        load_config(_yaml(tmp_path, text))


def test_the_trainer_checks_a_config_built_in_code_before_any_data(tmp_path):
    """A TrainConfig made in code (not read by load_config) is checked first too: the 2.5D context of a
    recipe that ignores it is refused before the (here missing) data root is read or the run folder made."""
    from mrsynth_train.trainer import train

    cfg = _tiny_cfg(recipe="simple", options={"hidden": 8},
                    data={"real_root": str(tmp_path / "missing"), "real_weight": 1.0, "simulated": 0, "context": 1})
    with pytest.raises(MRSynthError, match="config key 'data.context'"):
        train(cfg, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_the_issue_cli_form_trains_without_a_subcommand(tmp_path, monkeypatch):
    """``mrsynth-train --config C.yaml --max-steps 1`` (no ``train``, no ``--out``: runs/<config name>)."""
    import yaml

    from mrsynth_train.cli import main

    cfg = {"steps": 2, "batch_size": 2, "checkpoint_every": 1, "threads": 1,
           "data": {"real_weight": 0.0, "simulated": 1, "simulated_shape": [40, 48, 40], "patch": 32},
           "model": {"ngf": 4, "n_blocks": 1, "style_dim": 4}}
    path = _yaml(tmp_path, yaml.safe_dump(cfg))
    monkeypatch.chdir(tmp_path)
    assert main(["--config", str(path), "--max-steps", "1"]) == 0
    assert [r["step"] for r in _log(tmp_path / "runs" / "c")] == [1]
    assert main(["--config", str(path), "--resume"]) == 0
    assert main(["train", "--config", str(path), "--out", "runs/c", "--resume"]) == 0  # the subcommand form
    assert [r["step"] for r in _log(tmp_path / "runs" / "c")] == [1, 2]


def test_missing_tensorboard_is_warned_once(tmp_path, monkeypatch, caplog):
    import sys

    from mrsynth_train import runfolder

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import → ImportError
    monkeypatch.setattr(runfolder, "_warned", set())
    with caplog.at_level("WARNING", logger="mrsynth_train"):
        assert runfolder.tensorboard_writer(tmp_path, None) is None
        assert runfolder.tensorboard_writer(tmp_path, None) is None
    assert sum("tensorboard is not installed" in r.getMessage() for r in caplog.records) == 1


def test_fp16_is_refused_for_a_recipe_that_bypasses_the_scaler():
    from mrsynth_train.config import check_fp16

    class Plain:  # a recipe doing its own backward/step (no fp16_ready)
        name = "plain"

    with pytest.raises(MRSynthError, match="fp16 needs a gradient scaler"):
        check_fp16(Plain, "fp16")
    check_fp16(Plain, "bf16")


@pytest.mark.parametrize("recipe", ["hypergan", "collagan", "mist", "cyclegan", "unit", "supervised", "simple"])
def test_fp16_trains_every_scaler_ready_gan_recipe(recipe, tmp_path):
    """Several optimizers per step share one scaler (one update() per step): the losses stay finite."""
    from mrsynth_train.trainer import train

    seen, hook = _conv_dtypes()
    try:
        summary = train(_tiny_cfg(recipe=recipe, amp="fp16", steps=2, checkpoint_every=2, batch_size=2, model={},
                                  options=TINY_RECIPE_OPTIONS[recipe]), tmp_path, progress=False)
    finally:
        hook.remove()
    assert torch.float16 in seen and all(np.isfinite(v) for v in summary["losses"].values())
    assert "scale" in torch.load(tmp_path / "checkpoint.pt", weights_only=True)["scaler"]


@pytest.mark.filterwarnings("ignore:Seems like `optimizer.step\\(\\)` has been overridden")  # the deep copies
def test_two_shards_compute_the_one_process_loss():
    """What each torchrun rank computes on its shard averages to the one-process loss of the whole batch:
    per-sample draws come from the global batch's draw, the masked L1 uses the global pixel count."""
    import copy

    from mrsynth_train.distributed import DistInfo, shard
    from mrsynth_train.recipes import build_recipe
    from mrsynth_train.trainer import build_sampler

    cfg = _tiny_cfg(options={"ref_style_prob": 0.5, "style_recon": 1.0, "random_style_prob": 0.5})
    batch = build_sampler(cfg)[0].sample(4)
    torch.manual_seed(0)
    recipe = build_recipe(cfg)
    results = []
    for part in [batch, *(shard(batch, DistInfo(rank=r, world=2)) for r in (0, 1))]:
        torch.manual_seed(1)  # every rank's generator is in the same state
        results.append(copy.deepcopy(recipe).train_step(part)["l1"])
    full, rank0, rank1 = results
    assert rank0 != rank1 and (rank0 + rank1) / 2 == pytest.approx(full, rel=1e-5)
