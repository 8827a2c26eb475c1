"""Test-time adaptation (issue #13 item 3's idea, as an experiment): before synthesizing the missing contrast,
fine-tune the network for a few steps on the patient's *own* contrasts, each predicted from the others
(CollaGAN's cycle idea), so it moves onto that scanner's tone and look.

A patient with inputs {A, B, C} gives pseudo-tasks {B, C}→A, {A, C}→B, {A, B}→C on its own brain slices:
a masked L1 against the acquired image, the target's mean style, Adam on the generator. Nothing but the
inputs is read (never the missing contrast). Needs torch (the Slicer module runs ONNX only): measured here
first, with :func:`adapted_predictions` beside the plain product in ``Testing/bench/adapt_experiment.py``.
"""

from __future__ import annotations

import copy

import numpy as np

from MRSynthLib.contrasts import CONTRASTS
from MRSynthLib.slice_runner import brain_crop, pad_to_multiple

STEPS = 30
LR = 1e-4
BATCH = 8


def adapt_generator(model, prepared, steps: int = STEPS, lr: float = LR, batch: int = BATCH, seed: int = 0,
                    layers: tuple[str, ...] | None = None) -> dict:
    """Fine-tune ``model.generator`` in place on ``prepared``'s inputs (≥ 2 needed); returns the loss trace.
    ``layers``: only parameters whose names start with one of these (``("enc0",)``: the input side, where a
    scanner's tone enters); None: all."""
    import torch

    inputs = [CONTRASTS.index(c) for c in prepared.inputs]
    if len(inputs) < 2:
        return {"steps": 0, "loss": []}
    rng = np.random.default_rng(seed)
    brain = np.flatnonzero(prepared.mask.any(axis=(1, 2)))
    rows, cols = brain_crop(prepared.mask.any(axis=0))
    stack = prepared.stack[:, :, rows, cols]
    mask = prepared.mask[:, rows, cols]
    gen = model.generator.train()
    params = [p for n, p in gen.named_parameters() if p.requires_grad and (layers is None or n.startswith(layers))]
    opt = torch.optim.Adam(params, lr=lr)
    trace = []
    for _ in range(steps):
        zs = rng.choice(brain, size=min(batch, brain.size), replace=False)
        pseudo = rng.choice(inputs, size=zs.size)  # each slice: one of the patient's inputs is the target
        images = np.stack([stack[:, z] for z in zs]).astype(np.float32)  # (N, C, a, b)
        truth = images[np.arange(zs.size), pseudo][:, None].copy()
        available = np.zeros((zs.size, len(CONTRASTS)), np.float32)
        available[:, inputs] = 1.0
        available[np.arange(zs.size), pseudo] = 0.0
        images[np.arange(zs.size), pseudo] = 0.0
        weight = mask[zs][:, None].astype(np.float32)
        images, _ = pad_to_multiple(images)
        truth, _ = pad_to_multiple(truth)
        weight, _ = pad_to_multiple(weight)
        style = model.mean_styles[torch.as_tensor(pseudo)].detach()
        pred = gen(torch.from_numpy(images), torch.from_numpy(available), style)
        w = torch.from_numpy(weight)
        loss = ((pred - torch.from_numpy(truth)).abs() * w).sum() / w.sum().clamp(min=1.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        trace.append(float(loss.item()))
    gen.eval()
    return {"steps": steps, "loss": trace}


def adapted_predictions(engine, prepared, target: str, steps: int = STEPS, lr: float = LR,
                        calibrate: bool = True, layers: tuple[str, ...] | None = None) -> tuple[np.ndarray, dict]:
    """The product's canonical output for ``target`` after adapting ``engine.model`` (a TorchBackend) to
    ``prepared``; the model's weights are restored afterwards."""
    from MRSynthLib.postprocess import output_mapping
    from MRSynthLib.synthesis import run_slices, style_code

    saved = copy.deepcopy(engine.model.state_dict())
    try:
        trace = adapt_generator(engine.model, prepared, steps=steps, lr=lr, layers=layers)
        raw = run_slices(engine, prepared, style_code(engine, target))
    finally:
        engine.model.load_state_dict(saved)
        engine.model.eval()
    mapped = output_mapping(engine, prepared, target, calibrate=calibrate).apply(raw, prepared.mask, 0.0)
    return mapped, trace
