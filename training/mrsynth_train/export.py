"""Export a trained run to a model bundle (ONNX graphs + card) that ``mrsynth synthesize --model`` runs.

The unified recipe also ships its torch weights; the other recipes' graphs come from ``export_graphs``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from MRSynthLib.contrasts import CONTRASTS
from MRSynthLib.io import write_bytes_atomic
from MRSynthLib.preprocess import PERCENTILE
from MRSynthLib.registry import sha256

from .runs import load_run, load_run_model, run_config, run_environment
from .sites import subject_sources
from .templates import read_templates

OPSET = 17


def unified_arch(cfg: dict) -> dict:
    """The unified network's architecture from a resolved run config: the model section plus the 2.5D
    context, which lives in the data section (the sampler makes the neighbours the network reads)."""
    return {**cfg["model"], "context": int(cfg.get("data", {}).get("context", 0))}


def plane(axis: str) -> str:
    """The card's plane: the run's slice axis (``data.axis``), which the module should slice along."""
    return f"{axis} (any plane works; trained on {axis} slices)"


def export_onnx(model, gen_path: Path, style_path: Path) -> None:
    import torch

    c, s = model.cfg.n_contrasts, model.cfg.style_dim
    images, avail, style = torch.rand(2, model.cfg.image_channels, 64, 64), torch.ones(2, c), torch.zeros(2, s)
    from .export_graphs import quiet_export

    # a scale head (the uncertainty map's own method) is a second output of the same graph: one pass gives both
    outputs = ["synthetic", "log_scale"] if model.cfg.scale_head else ["synthetic"]
    generator = WithScale(model.generator) if model.cfg.scale_head else model.generator
    with quiet_export():
        torch.onnx.export(generator, (images, avail, style), str(gen_path), dynamo=False, opset_version=OPSET,
                          input_names=["images", "available", "style"], output_names=outputs,
                          dynamic_axes={"images": {0: "n", 2: "h", 3: "w"}, "available": {0: "n"},
                                        "style": {0: "n"}, **{o: {0: "n", 2: "h", 3: "w"} for o in outputs}})
        torch.onnx.export(model.style_encoder, (torch.rand(2, 1, 64, 64),), str(style_path), dynamo=False,
                          opset_version=OPSET, input_names=["reference"], output_names=["style"],
                          dynamic_axes={"reference": {0: "n", 2: "h", 3: "w"}, "style": {0: "n"}})


def WithScale(generator):  # noqa: N802 - a class made on first use, so importing this module needs no torch
    """The generator as a module whose forward is ``forward_with_scale`` (ONNX traces ``forward``)."""
    from torch import nn

    class _WithScale(nn.Module):
        def __init__(self, g) -> None:
            super().__init__()
            self.g = g

        def forward(self, images, available, style):
            return self.g.forward_with_scale(images, available, style)

    return _WithScale(generator).eval()


def _card_common(run: Path, mid: str, version: str, cfg: dict) -> dict:
    summary = json.loads((run / "summary.json").read_text(encoding="utf-8")) if (run / "summary.json").exists() else {}
    validation = json.loads((run / "validation.json").read_text(encoding="utf-8")) if (run / "validation.json").exists() else None
    real = (summary.get("data") or {}).get("real") or []
    env = run_environment(run)
    subjects = subject_sources(real)
    licences = sorted({f"{s['site']}: {s['license']}" for s in subjects})
    return {
        "id": mid,
        "version": version,
        "recipe": cfg["recipe"],
        "contrasts": list(CONTRASTS),
        "normalization": f"each input divided by its {PERCENTILE}th percentile inside the brain mask, clipped to [0, 1]",
        "output": "target contrast in the same convention, [0, 1]",
        "training": {"data": summary.get("data"), "steps": summary.get("steps"), "wall_s": summary.get("wall_s"),
                     "cpu_s": summary.get("cpu_s"), "device": env.get("device"), "cpu": env.get("cpu"),
                     "gpu": env.get("gpu"), "threads": env.get("threads"), "real_subjects": subjects, "config": cfg},
        "validation": validation,
        "intensity_templates": read_templates(run),
        "license": ("Apache-2.0 (weights); trained on " + ("; ".join(licences) + " and " if licences else "")
                    + "simulated subjects; cite the sources in training.real_subjects"),
    }


def _export_other(run: Path, out: Path, mid: str) -> dict:
    """One-hot and pairwise recipes: graphs + the card fields that describe them (no torch weights:
    their networks live in the training package, which the module does not ship)."""
    import dataclasses

    from .export_graphs import (
        export_onehot,
        export_pairwise,
        interface_of,
        onehot_macs,
        pairwise_directions,
        pairwise_macs,
    )

    recipe, cfg = load_run(run)
    module = recipe.inference_module()
    interface = interface_of(cfg.recipe)
    if interface == "onehot":
        gen = out / f"{mid}.onnx"
        export_onehot(module, gen)
        files, macs = {"generator": gen}, onehot_macs(module)
        input_doc = "one per contrast in the order of 'contrasts', zeros where missing, plus availability"
    else:
        files, macs = export_pairwise(module, out, mid), pairwise_macs(module)
        input_doc = "one source contrast per graph <SRC>_to_<TGT>; the source is the target's first partner given"
    card = {
        "interface": interface,
        "arch": {"options": dataclasses.asdict(recipe.opt)} if hasattr(recipe, "opt") else {},
        "input": {"plane": plane(cfg.data.axis), "size": "any H×W, multiples of 4", "channels": input_doc},
        "generator_params": int(sum(p.numel() for p in module.parameters())),
        "gmac_per_256_slice": round(macs / 1e9, 3),
        "mean_styles": np.eye(len(CONTRASTS)).tolist(),  # the style input is the target's one-hot code
    }
    if interface == "pairwise":
        card["pairs"] = [[CONTRASTS[a], CONTRASTS[b]] for a, b in module.pairs]
        card["directions"] = [f"{CONTRASTS[s]}_to_{CONTRASTS[t]}" for s, t in pairwise_directions(module)]
    card["files"] = {role: {"name": p.name, "sha256": sha256(p)} for role, p in files.items()}
    return card


def read_error_model(path: Path | None) -> dict | None:
    """The uncertainty map's error model for the card (``mrsynth-train validate-confidence``'s
    ``error_model.json``), checked as the engine will read it."""
    if path is None:
        return None
    from MRSynthLib.confidence import parse_error_model

    raw = json.loads(Path(path).read_text(encoding="utf-8"))
    parse_error_model(raw, str(path))
    return raw


def export_run(run: Path, out: Path, model_id: str | None = None, version: str = "1.0.0",
               confidence: Path | None = None) -> dict:
    """Write the bundle into ``out``: the card ``<id>.json`` and its files. Unified: ``<id>.onnx``,
    ``<id>-style.onnx``, ``<id>.pt``; one-hot recipes: ``<id>.onnx``; pairwise: ``<id>-<SRC>_to_<TGT>.onnx``.
    ``confidence``: an ``error_model.json`` fitted on this recipe's site folds, kept in the card."""
    from .nets.cost import count_macs

    cfg = run_config(run)
    mid = model_id or f"mrsynth-{cfg['recipe']}"
    out.mkdir(parents=True, exist_ok=True)
    error_model = {"confidence": read_error_model(confidence)} if confidence else {}
    if cfg["recipe"] != "unified":
        card = _card_common(run, mid, version, cfg) | error_model | _export_other(run, out, mid)
        write_bytes_atomic(json.dumps(card, indent=1).encode("utf-8"), out / f"{mid}.json")
        return card
    model, cfg = load_run_model(run)
    gen, sty, pt = out / f"{mid}.onnx", out / f"{mid}-style.onnx", out / f"{mid}.pt"
    export_onnx(model, gen, sty)
    shutil.copyfile(run / "model.pt", pt)
    params = sum(p.numel() for p in model.generator.parameters())
    card = _card_common(run, mid, version, cfg) | error_model | {
        "interface": "unified",
        "arch": unified_arch(cfg) | {"n_contrasts": len(CONTRASTS)},
        "input": {"plane": plane(cfg.get("data", {}).get("axis", "axial")), "size": "any H×W, multiples of 4",
                  "channels": "one per contrast in the order of 'contrasts', zeros where missing, plus availability"
                  + (f"; then each contrast's {model.cfg.context} neighbouring slices on either side (2.5D, "
                     "arch.context)" if model.cfg.context else "")},
        "generator_params": int(params),
        "gmac_per_256_slice": round(count_macs(model.generator, 256, 256) / 1e9, 3),
        "mean_styles": np.round(model.mean_styles.detach().numpy(), 6).tolist(),
        "files": {role: {"name": p.name, "sha256": sha256(p)} for role, p in
                  (("generator", gen), ("style", sty), ("weights", pt))},
    }
    write_bytes_atomic(json.dumps(card, indent=1).encode("utf-8"), out / f"{mid}.json")
    return card


def beats(validation: dict | None, other: str, alpha: float = 0.05) -> tuple[bool, str]:
    """Whether a site-validation report shows the product better than ``other`` on mean masked PSNR and
    SSIM with a paired Wilcoxon p < ``alpha`` for both; (decision, reason when not)."""
    tests = (validation or {}).get("wilcoxon_product_vs", {})
    if f"{other}@unseen:PSNR" in tests:  # on the subjects the compared model never saw: a fair comparison
        other = f"{other}@unseen"
    for metric in ("PSNR", "SSIM"):
        t = tests.get(f"{other}:{metric}")
        if t is None:
            return False, f"the run's validation has no paired {metric} test against '{other}'"
        if t["mean_difference"] <= 0 or t["p_value"] >= alpha:
            return False, (f"{metric} vs {other}: mean difference {t['mean_difference']:+.3f}, "
                           f"p = {t['p_value']:.3g} (needs > 0 and p < {alpha})")
    return True, ""


def register_bundle(card_path: Path, registry_path: Path, url: str = "", default: bool = True) -> dict:
    """Add or replace the card's entry in ``Models.json`` (ids unique, SHA256 of card and files)."""
    card = json.loads(card_path.read_text(encoding="utf-8"))
    registry = json.loads(registry_path.read_text(encoding="utf-8")) if registry_path.exists() else {"schema": 1, "models": []}
    entry = {"id": card["id"], "version": card["version"], "card": {"name": card_path.name, "sha256": sha256(card_path)},
             "files": card["files"], "contrasts": card["contrasts"], "license": card["license"].split(" ")[0],
             "url": url, "size_bytes": sum((card_path.parent / f["name"]).stat().st_size for f in card["files"].values())}
    registry["models"] = [m for m in registry["models"] if m["id"] != card["id"]] + [entry]
    if default:
        registry["default"] = card["id"]
    write_bytes_atomic((json.dumps(registry, indent=1) + "\n").encode("utf-8"), registry_path)
    return entry
