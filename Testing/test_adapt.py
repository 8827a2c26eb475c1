"""Test-time adaptation (an experiment, docs/models.md): it fits the patient's own pseudo-tasks and leaves the
model as it found it."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")


def test_adaptation_lowers_the_pseudo_task_loss_and_restores_the_weights(small_subject):
    from mrsynth_train.adapt import adapt_generator, adapted_predictions
    from MRSynthLib.backends import ModelSettings
    from MRSynthLib.backends.torch_backend import TorchBackend
    from MRSynthLib.nets.unified import UnifiedConfig, UnifiedModel
    from MRSynthLib.synthesis import prepare

    torch.manual_seed(0)
    arch = {"ngf": 4, "n_blocks": 1, "style_dim": 4}
    engine = TorchBackend(None, arch, ModelSettings(model_id="tiny"), device="cpu", model=UnifiedModel(UnifiedConfig(**arch)))
    prepared = prepare({c: small_subject.volumes[c] for c in ("T1", "T2", "FLAIR")})
    before = {k: v.clone() for k, v in engine.model.state_dict().items()}
    out, trace = adapted_predictions(engine, prepared, "PD", steps=25, lr=3e-3)
    assert trace["steps"] == 25 and np.mean(trace["loss"][-5:]) < np.mean(trace["loss"][:5])
    assert out.shape == prepared.mask.shape and np.isfinite(out).all()
    assert all(torch.equal(before[k], v) for k, v in engine.model.state_dict().items())  # restored
    single = prepare({"T1": small_subject.volumes["T1"]})
    assert adapt_generator(engine.model, single) == {"steps": 0, "loss": []}  # one input: nothing to learn from
