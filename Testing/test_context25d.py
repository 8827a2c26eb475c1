"""2.5D input (``data.context`` k > 0): the unified model reads each input's k neighbouring slices on either
side as extra channels, in training, in the exported graphs and in the product's slice loop."""

from __future__ import annotations

import numpy as np
import pytest
from test_training import _tiny_cfg


def test_neighbour_slices_order_and_clamping():
    """z−k…z−1, z+1…z+k per contrast, clamped at the ends — the order the training sampler uses."""
    from MRSynthLib.synthesis import neighbour_slices

    n, c = 6, 2
    stack = np.zeros((n, 3, 4, c), np.float32)  # slices-first (N, a, b, C); value = 10·contrast + slice
    for z in range(n):
        for ch in range(c):
            stack[z, :, :, ch] = 10 * ch + z
    out = neighbour_slices(stack, [0, 3, 5], k=2)
    assert out.shape == (3, c, 4, 3, 4)
    assert out[:, 0, :, 0, 0].tolist() == [[0, 0, 1, 2], [1, 2, 4, 5], [3, 4, 5, 5]]
    assert out[:, 1, :, 0, 0].tolist() == [[10, 10, 11, 12], [11, 12, 14, 15], [13, 14, 15, 15]]


def test_images_with_context_puts_centre_first_then_each_contrasts_neighbours():
    import torch

    from MRSynthLib.nets.unified import images_with_context

    centre = np.arange(2 * 3).reshape(2, 3, 1, 1).astype(np.float32)
    around = np.arange(2 * 3 * 2).reshape(2, 3, 2, 1, 1).astype(np.float32) + 100
    a = images_with_context(centre, around)
    assert a.shape == (2, 9, 1, 1)
    assert a[0, :, 0, 0].tolist() == [0, 1, 2, 100, 101, 102, 103, 104, 105]
    t = images_with_context(torch.from_numpy(centre), torch.from_numpy(around))
    assert torch.equal(t, torch.from_numpy(a))
    assert images_with_context(centre, None) is centre


def test_a_25d_model_trains_exports_and_reads_its_neighbours(tmp_path, small_subject):
    """Train a few 2.5D steps; the card says context 1; ONNX and torch agree to 1e-4 through the product's
    pipeline; changing only the neighbouring slices changes the output (the neighbours are really read), and
    one slice alone and the live preview's slice equal that slice of the whole-volume run."""
    import json

    from mrsynth_train.export import export_run
    from mrsynth_train.trainer import train
    from MRSynthLib.registry import load_backend, resolve_model
    from MRSynthLib.synthesis import prepare, run_slices, style_code, synthesize

    cfg = _tiny_cfg(steps=3, data={"real_weight": 0.0, "simulated": 1, "simulated_shape": [40, 48, 40],
                                   "patch": 32, "context": 1})
    summary = train(cfg, tmp_path / "run", progress=False)
    assert summary["steps"] == 3
    assert json.loads((tmp_path / "run" / "config.json").read_text(encoding="utf-8"))["config"]["data"]["context"] == 1
    card = export_run(tmp_path / "run", tmp_path / "bundle", model_id="ctx")
    assert card["arch"]["context"] == 1
    bundle = resolve_model(str(tmp_path / "bundle" / "ctx.onnx"), roles=("generator", "style", "weights"))
    onnx, torch_engine = load_backend(bundle, "onnx", "cpu"), load_backend(bundle, "torch", "cpu")
    assert onnx.context == torch_engine.context == 1
    inputs = {c: small_subject.volumes[c] for c in ("T1", "T2")}
    a = synthesize(inputs, "FLAIR", engine=onnx, calibrate=False)
    b = synthesize(inputs, "FLAIR", engine=torch_engine, calibrate=False)
    assert np.abs(a.array - b.array).max() < 1e-4

    prepared = prepare(inputs)
    style = style_code(onnx, "FLAIR")
    full = run_slices(onnx, prepared, style)
    area = prepared.mask.reshape(prepared.mask.shape[0], -1).sum(axis=1)  # axial = canonical axis 0
    z = int(np.argmax(area))
    one = run_slices(onnx, prepared, style, indices=[z])
    np.testing.assert_allclose(one[z], full[z], atol=1e-5)
    # the live preview goes through the same slice loop: a 2.5D engine's preview slice is the full run's
    from MRSynthLib.preview import PreviewSession
    from MRSynthLib.request import SynthesisRequest

    session = PreviewSession(onnx, SynthesisRequest(inputs, "FLAIR", calibrate=False))
    np.testing.assert_allclose(session.synthesize_slice(0.0, z), full[z], atol=1e-5)
    prepared.stack[:, z + 1] = prepared.stack[:, z + 1][..., ::-1].copy()  # only a neighbour changes
    moved = run_slices(onnx, prepared, style, indices=[z])
    assert np.abs(moved[z] - full[z]).max() > 1e-3


def test_only_the_unified_recipe_takes_context():
    from mrsynth_train.config import check_config
    from MRSynthLib.errors import MRSynthError

    cfg = _tiny_cfg(recipe="simple", options={"hidden": 8},
                    data={"real_weight": 0.0, "simulated": 1, "simulated_shape": [40, 48, 40], "patch": 32,
                          "context": 1})
    with pytest.raises(MRSynthError, match="data.context"):
        check_config(cfg)
