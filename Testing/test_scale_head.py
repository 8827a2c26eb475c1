"""The Laplace scale head (the uncertainty map's network-own method): fitted onto a finished run with
``--init-from`` and everything else frozen, it learns the residual's scale without changing one image
voxel; it exports as a second ONNX output that ONNX Runtime and torch run alike."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mrsynth_train.config import TrainConfig, from_dict  # noqa: E402
from MRSynthLib.errors import MRSynthError  # noqa: E402

ARCH = {"ngf": 4, "n_blocks": 1, "style_dim": 4}


def _cfg(**over) -> TrainConfig:
    base = {"recipe": "unified", "steps": 4, "batch_size": 4, "lr": 0.002, "checkpoint_every": 100, "log_every": 1,
            "threads": 2, "data": {"real_weight": 0.0, "simulated": 1, "simulated_shape": [40, 48, 40], "patch": 32},
            "model": dict(ARCH)}
    base.update(over)
    return from_dict(TrainConfig, base)


def _head_cfg(steps: int = 30) -> TrainConfig:
    return _cfg(steps=steps, lr=0.01, options={"laplace": 1.0, "train_only": ["generator.scale"],
                                               "ref_style_prob": 0.0},
                model={**ARCH, "scale_head": 8})


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[Path, Path]:
    """A plain run and a scale head fitted onto it."""
    from mrsynth_train.trainer import train

    root = tmp_path_factory.mktemp("scale")
    train(_cfg(), root / "base", progress=False)
    train(_head_cfg(), root / "head", progress=False, init_from=root / "base")
    return root / "base", root / "head"


def test_the_head_learns_and_the_image_weights_stay_those_of_the_run(runs):
    base, head = runs
    before = torch.load(base / "model.pt", weights_only=True)
    after = torch.load(head / "model.pt", weights_only=True)
    assert set(after) - set(before) == {k for k in after if k.startswith("generator.scale.")}
    assert all(torch.equal(before[k], after[k]) for k in before)  # frozen: not one weight moved
    log = [json.loads(x) for x in (head / "log.jsonl").read_text().splitlines()]
    nll = [r["laplace_nll"] for r in log]
    assert np.mean(nll[-5:]) < np.mean(nll[:5]) - 0.1  # the head fits the residual's scale
    assert json.loads((head / "config.json").read_text())["init_from"] == str(base)


def test_the_scale_comes_from_the_same_pass_and_onnx_agrees_with_torch(runs, tmp_path, small_subject):
    from mrsynth_train.export import export_run
    from MRSynthLib.registry import load_backend, resolve_model
    from MRSynthLib.synthesis import prepare, run_slices, run_slices_with_scale, style_code

    _, head = runs
    export_run(head, tmp_path, model_id="with-scale")
    bundle = resolve_model(str(tmp_path / "with-scale.onnx"), roles=("generator", "style", "weights"))
    ort, pt = load_backend(bundle, "onnx", "cpu"), load_backend(bundle, "torch", "cpu")
    assert ort.has_scale_head and pt.has_scale_head
    prepared = prepare({c: small_subject.volumes[c] for c in ("T1", "T2")})
    style = style_code(ort, "FLAIR")
    image, b = run_slices_with_scale(ort, prepared, style)
    assert np.array_equal(image, run_slices(ort, prepared, style))  # the image is the plain pass's
    assert (b[prepared.mask] > 0).all() and (b[~prepared.mask] == 0).all()
    image_pt, b_pt = run_slices_with_scale(pt, prepared, style)
    assert np.abs(image - image_pt).max() < 1e-4
    assert np.abs(np.log(b_pt[prepared.mask]) - np.log(b[prepared.mask])).max() < 1e-3, (b.max(), b_pt.max())


def test_a_model_without_a_head_says_so(tiny_bundle, small_subject):
    from MRSynthLib.registry import load_backend, resolve_model
    from MRSynthLib.synthesis import prepare, run_slices_with_scale, style_code

    engine = load_backend(resolve_model(str(tiny_bundle.with_suffix(".onnx"))), "onnx", "cpu")
    assert not engine.has_scale_head
    prepared = prepare({"T1": small_subject.volumes["T1"]})
    with pytest.raises(MRSynthError, match="has no scale head"):
        run_slices_with_scale(engine, prepared, style_code(engine, "T2"))


def test_bad_head_settings_are_one_clear_error(runs, tmp_path):
    from mrsynth_train.trainer import train

    base, _ = runs
    with pytest.raises(MRSynthError, match="needs a scale head"):
        train(_cfg(options={"laplace": 1.0}), tmp_path / "a", progress=False)
    with pytest.raises(MRSynthError, match="no parameter starts with 'generator.nothing'"):
        train(_cfg(options={"train_only": ["generator.nothing"]}), tmp_path / "b", progress=False)
    with pytest.raises(MRSynthError, match="do not fit this config"):  # a wider network than the run's
        train(_cfg(model={**ARCH, "ngf": 8}), tmp_path / "c", progress=False, init_from=base)
    with pytest.raises(MRSynthError, match="has no model.pt"):
        train(_cfg(), tmp_path / "d", progress=False, init_from=tmp_path / "nowhere")


@pytest.mark.slow
def test_the_uncertainty_validation_scores_the_head_on_held_out_real_subjects(runs, real_root, tmp_path):
    """validate-confidence on two real sites (every 24th brain slice): the head is a scored map and a
    fitted combination with the error model, beside the others."""
    from mrsynth_train.confidence_validation import run_confidence_validation

    _, head = runs
    report = run_confidence_validation(real_root, tmp_path, {"Kirby21": head, "BraTS18-TCIA": head},
                                       stride=24)
    rows = [json.loads(x) for x in (tmp_path / "rows.jsonl").read_text().splitlines()]
    assert rows and all(np.isfinite(r["methods"]["head"]["rho"]) for r in rows)
    assert "| head | FLAIR |" in report and "| levelfit+head | FLAIR |" in report
    with np.load(next((tmp_path / "samples").glob("*.npz"))) as z:
        # scored voxels inside the pipeline's own brain mask get the head's b mapped to output units (> 0)
        assert (z["head"] >= 0).all() and (z["head"] > 0).mean() > 0.8
