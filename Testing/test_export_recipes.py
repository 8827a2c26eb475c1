"""Every recipe exports to ONNX that ``mrsynth synthesize --model`` runs, matching the recipe's torch
``predict`` to 1e-4; models without a style encoder or without the needed source refuse clearly."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import TINY_RECIPE_OPTIONS as TINY

from mrsynth_train.config import TrainConfig, from_dict
from mrsynth_train.evaluate import RecipeBackend
from mrsynth_train.export import export_run
from mrsynth_train.runs import load_run
from mrsynth_train.templates import run_settings
from mrsynth_train.trainer import train
from MRSynthLib.contrasts import CONTRASTS
from MRSynthLib.errors import MRSynthError
from MRSynthLib.registry import load_backend, resolve_model
from MRSynthLib.synthesis import synthesize


@pytest.fixture(scope="module")
def bundles(tmp_path_factory) -> dict:
    """Each recipe trained 2 steps on a tiny simulated subject and exported."""
    root = tmp_path_factory.mktemp("export")
    out = {}
    for name, options in TINY.items():
        cfg = from_dict(TrainConfig, {
            "recipe": name, "steps": 2, "batch_size": 2, "lr": 1e-3, "checkpoint_every": 2, "log_every": 1,
            "threads": 2, "options": options,
            "data": {"real_weight": 0.0, "simulated": 1, "simulated_shape": [40, 48, 40], "patch": 32}})
        torch.manual_seed(0)
        train(cfg, root / name, progress=False)
        card = export_run(root / name, root / f"{name}-bundle", model_id=f"tiny-{name}")
        out[name] = (root / name, root / f"{name}-bundle" / f"tiny-{name}.json", card)
    return out


@pytest.mark.parametrize("name", sorted(TINY))
def test_exported_graph_matches_torch_predict(name, bundles, small_subject):
    run, card_path, card = bundles[name]
    engine = load_backend(resolve_model(str(card_path)), "onnx", "cpu")
    recipe, _ = load_run(run)
    reference = RecipeBackend(recipe, run_settings(run, calibrate=False))
    assert engine.intensity_templates is not None  # the run's templates reached the card
    inputs = {c: small_subject.volumes[c] for c in ("T1", "T2")}  # each default pair has a partner here
    for target in ("T1Gd", "FLAIR"):
        reference.target = CONTRASTS.index(target)
        # the graphs, compared before calibration (a quantile map can amplify 1e-5 float differences)
        a = synthesize(inputs, target, engine=engine, calibrate=False).array
        b = synthesize(inputs, target, engine=reference).array
        assert a.shape == small_subject.volumes["T1"].array.shape
        assert np.abs(a).max() > 0  # something was synthesized inside the brain
        assert np.abs(a - b).max() < 1e-4, f"{name} → {target}"
    assert card["interface"] == ("pairwise" if name in ("cyclegan", "unit", "supervised", "simple") else "onehot")
    assert card["gmac_per_256_slice"] > 0 and card["generator_params"] > 0


def test_onehot_graph_accepts_any_input_subset(bundles, small_subject):
    """The traced Hyper-GAN graph encodes every contrast: a different subset must still match torch."""
    run, card_path, _ = bundles["hypergan"]
    engine = load_backend(resolve_model(str(card_path)), "onnx", "cpu")
    recipe = load_run(run)[0]
    reference = RecipeBackend(recipe, run_settings(run, calibrate=False))
    reference.target = CONTRASTS.index("T2")
    inputs = {"FLAIR": small_subject.volumes["FLAIR"]}
    a = synthesize(inputs, "T2", engine=engine, calibrate=False).array
    b = synthesize(inputs, "T2", engine=reference).array
    assert np.abs(a - b).max() < 1e-4
    calibrated = RecipeBackend(recipe, run_settings(run))  # the run's templates: the same postprocessing
    calibrated.target = reference.target
    c = synthesize(inputs, "T2", engine=calibrated).array
    assert np.abs(synthesize(inputs, "T2", engine=engine).array - c).max() < 1e-2


def test_pairwise_model_refuses_a_target_without_its_partner(bundles, small_subject):
    _, card_path, _ = bundles["cyclegan"]
    engine = load_backend(resolve_model(str(card_path)), "onnx", "cpu")
    with pytest.raises(MRSynthError, match="synthesizes T1Gd from T1, which is not among the inputs"):
        synthesize({"T2": small_subject.volumes["T2"]}, "T1Gd", engine=engine)
    with pytest.raises(MRSynthError, match="cannot synthesize PD"):
        synthesize({"T1": small_subject.volumes["T1"]}, "PD", engine=engine)


def test_style_reference_needs_a_style_encoder(bundles, small_subject):
    _, card_path, _ = bundles["collagan"]
    engine = load_backend(resolve_model(str(card_path)), "onnx", "cpu")
    inputs = {"T1": small_subject.volumes["T1"]}
    with pytest.raises(MRSynthError, match="no style encoder"):
        synthesize(inputs, "FLAIR", engine=engine, style_reference=small_subject.volumes["FLAIR"], style_alpha=1.0)
    # histogram matching to a reference needs no style encoder
    out = synthesize(inputs, "FLAIR", engine=engine, style_reference=small_subject.volumes["FLAIR"],
                     style_alpha=1.0, match_histogram=True)
    assert out.metadata["MRSynth.Synthetic"] == "1"


def test_any_graph_file_of_a_bundle_resolves_to_its_card(bundles):
    _, card_path, card = bundles["cyclegan"]
    graph = card_path.parent / card["files"]["T2_to_FLAIR"]["name"]
    assert graph.name == "tiny-cyclegan-T2_to_FLAIR.onnx"
    assert resolve_model(str(graph)).card["id"] == "tiny-cyclegan"


def test_every_direction_graph_is_hashed(bundles, tmp_path):
    import shutil

    _, card_path, card = bundles["unit"]
    copy = tmp_path / "bundle"
    shutil.copytree(card_path.parent, copy)
    graph = copy / card["files"]["FLAIR_to_T2"]["name"]
    graph.write_bytes(graph.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(MRSynthError, match="SHA256 mismatch"):
        resolve_model(str(copy / card_path.name))


def test_torch_backend_refuses_a_non_unified_bundle(bundles):
    _, card_path, _ = bundles["supervised"]
    with pytest.raises(MRSynthError, match="onnxruntime only"):
        load_backend(resolve_model(str(card_path)), "torch", "cpu")


def test_cli_runs_an_exported_pairwise_model(bundles, small_subject, tmp_path):
    from conftest import write_nifti

    _, card_path, _ = bundles["supervised"]
    t2 = write_nifti(small_subject.volumes["T2"], tmp_path / "T2.nii.gz")
    out = tmp_path / "flair_synthetic.nii.gz"
    proc = subprocess.run([sys.executable, "-m", "MRSynthLib.cli", "synthesize", "--input", f"T2={t2}",
                           "--target", "FLAIR", "--output", str(out), "--model", str(card_path), "--quiet"],
                          capture_output=True, text=True, encoding="utf-8")
    assert proc.returncode == 0, proc.stderr
    assert out.exists()
    bad = subprocess.run([sys.executable, "-m", "MRSynthLib.cli", "synthesize", "--input", f"T2={t2}",
                          "--target", "T1", "--output", str(tmp_path / "x.nii.gz"), "--model", str(card_path)],
                         capture_output=True, text=True, encoding="utf-8")
    assert bad.returncode == 2 and "synthesizes T1 from T1Gd" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x.nii.gz").exists()


def test_preview_session_refuses_what_the_model_cannot_do(bundles, small_subject):
    from MRSynthLib.preview import PreviewSession
    from MRSynthLib.request import SynthesisRequest

    engine = load_backend(resolve_model(str(bundles["cyclegan"][1])), "onnx", "cpu")
    with pytest.raises(MRSynthError, match="synthesizes T1Gd from T1"):
        PreviewSession(engine, SynthesisRequest({"T2": small_subject.volumes["T2"]}, "T1Gd"))
    session = PreviewSession(engine, SynthesisRequest({"T1": small_subject.volumes["T1"]}, "T1Gd"))
    assert session.synthesize_slice(0.0, session.n_slices // 2).max() > 0


def test_exported_graphs_use_opset_17_or_newer(bundles):
    import onnx

    for name, (_, card_path, card) in bundles.items():
        for entry in card["files"].values():
            model = onnx.load(str(card_path.parent / entry["name"]))
            opset = max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
            assert opset >= 17, (name, entry["name"], opset)


def test_card_records_the_plane_the_run_trained_on(bundles, tmp_path):
    """``data.axis`` of the run, not a fixed "axial" (the module slices along the card's plane)."""
    import json
    import shutil

    run = tmp_path / "run"
    shutil.copytree(bundles["cyclegan"][0], run)
    record = json.loads((run / "config.json").read_text(encoding="utf-8"))
    record["config"]["data"]["axis"] = "sagittal"
    (run / "config.json").write_text(json.dumps(record), encoding="utf-8")
    assert export_run(run, tmp_path / "bundle", model_id="plane")["input"]["plane"].startswith("sagittal ")
    assert bundles["cyclegan"][2]["input"]["plane"].startswith("axial ")
    from MRSynthLib.nets.unified import UnifiedConfig, UnifiedModel

    arch, unified = {"ngf": 4, "n_blocks": 1, "style_dim": 4}, tmp_path / "unified"
    unified.mkdir()
    torch.save(UnifiedModel(UnifiedConfig(**arch)).state_dict(), unified / "model.pt")
    (unified / "config.json").write_text(json.dumps({"config": {"recipe": "unified", "model": arch,
                                                                "data": {"axis": "coronal"}}}), encoding="utf-8")
    assert export_run(unified, tmp_path / "u", model_id="u")["input"]["plane"].startswith("coronal ")
