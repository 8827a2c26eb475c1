"""Export a trained unified run to a model bundle: generator + style-encoder ONNX, torch weights, card."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from MRSynthLib.contrasts import CONTRASTS
from MRSynthLib.errors import MRSynthError
from MRSynthLib.preprocess import PERCENTILE
from MRSynthLib.registry import sha256

OPSET = 17


def load_run_model(run: Path):
    """Rebuild the unified model of a run folder from its resolved config and weights."""
    import torch  # noqa: PLC0415

    from MRSynthLib.nets.unified import UnifiedConfig, UnifiedModel  # noqa: PLC0415

    cfg_path, weights = run / "config.json", run / "model.pt"
    if not cfg_path.exists() or not weights.exists():
        raise MRSynthError("not a finished run folder (config.json and model.pt needed)", str(run))
    cfg = json.loads(cfg_path.read_text(encoding="utf-8"))["config"]
    model = UnifiedModel(UnifiedConfig(**cfg["model"]))
    model.load_state_dict(torch.load(str(weights), map_location="cpu", weights_only=True))
    return model.eval(), cfg


def export_onnx(model, gen_path: Path, style_path: Path) -> None:
    import torch  # noqa: PLC0415

    c, s = model.cfg.n_contrasts, model.cfg.style_dim
    images, avail, style = torch.rand(2, c, 64, 64), torch.ones(2, c), torch.zeros(2, s)
    with torch.no_grad():
        torch.onnx.export(model.generator, (images, avail, style), str(gen_path), dynamo=False, opset_version=OPSET,
                          input_names=["images", "available", "style"], output_names=["synthetic"],
                          dynamic_axes={"images": {0: "n", 2: "h", 3: "w"}, "available": {0: "n"},
                                        "style": {0: "n"}, "synthetic": {0: "n", 2: "h", 3: "w"}})
        torch.onnx.export(model.style_encoder, (torch.rand(2, 1, 64, 64),), str(style_path), dynamo=False,
                          opset_version=OPSET, input_names=["reference"], output_names=["style"],
                          dynamic_axes={"reference": {0: "n", 2: "h", 3: "w"}, "style": {0: "n"}})


def export_run(run: Path, out: Path, model_id: str | None = None, version: str = "1.0.0") -> dict:
    """Write ``<id>.onnx``, ``<id>-style.onnx``, ``<id>.pt`` and the card ``<id>.json`` into ``out``."""
    from MRSynthLib.nets.cost import count_macs  # noqa: PLC0415

    model, cfg = load_run_model(run)
    mid = model_id or f"mrsynth-{cfg['recipe']}"
    out.mkdir(parents=True, exist_ok=True)
    gen, sty, pt = out / f"{mid}.onnx", out / f"{mid}-style.onnx", out / f"{mid}.pt"
    export_onnx(model, gen, sty)
    shutil.copyfile(run / "model.pt", pt)
    summary = json.loads((run / "summary.json").read_text(encoding="utf-8")) if (run / "summary.json").exists() else {}
    validation = json.loads((run / "validation.json").read_text(encoding="utf-8")) if (run / "validation.json").exists() else None
    params = sum(p.numel() for p in model.generator.parameters())
    card = {
        "id": mid,
        "version": version,
        "recipe": cfg["recipe"],
        "arch": cfg["model"] | {"n_contrasts": len(CONTRASTS)},
        "contrasts": list(CONTRASTS),
        "input": {"plane": "axial (any plane works; trained on axial)", "size": "any H×W, multiples of 4",
                  "channels": "one per contrast in the order of 'contrasts', zeros where missing, plus availability"},
        "normalization": f"each input divided by its {PERCENTILE}th percentile inside the brain mask, clipped to [0, 1]",
        "output": "target contrast in the same convention, [0, 1]",
        "generator_params": int(params),
        "gmac_per_256_slice": round(count_macs(model.generator, 256, 256) / 1e9, 3),
        "mean_styles": np.round(model.mean_styles.detach().numpy(), 6).tolist(),
        "training": {"data": summary.get("data"), "steps": summary.get("steps"), "wall_s": summary.get("wall_s"),
                     "config": cfg},
        "validation": validation,
        "license": "Apache-2.0 (weights); trained on TCIA data (CC BY 3.0) and simulated subjects",
        "files": {role: {"name": p.name, "sha256": sha256(p)} for role, p in
                  (("generator", gen), ("style", sty), ("weights", pt))},
    }
    (out / f"{mid}.json").write_text(json.dumps(card, indent=1))
    return card


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
    registry_path.write_text(json.dumps(registry, indent=1) + "\n")
    return entry
