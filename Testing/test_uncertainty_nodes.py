"""The uncertainty map in Slicer's terms (real MRML nodes, slicer-core): the console's node path, the panel's
background process and the panel's overlay all give the same map, as its own node referenced by the result."""

from __future__ import annotations

import time

import numpy as np
import pytest

pytest.importorskip("slicer")

from slicer_module_harness import close_widgets, load_module, make_widget, subject_nodes, use_model  # noqa: E402

from MRSynthLib.request import SynthesisRequest  # noqa: E402


@pytest.fixture()
def module(monkeypatch, tmp_path):
    yield load_module(monkeypatch, tmp_path)
    close_widgets()


def _matrix(node) -> np.ndarray:
    import vtk

    m = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(m)
    return np.array([[m.GetElement(i, j) for j in range(4)] for i in range(4)])


def test_console_and_background_maps_are_one_node_on_the_results_grid(module, small_subject, tiny_bundle, tmp_path):
    from MRSynthLib.mrml import uncertainty_node

    mod, slicer, _ = module
    logic = mod.MRSynthLogic()
    nodes = subject_nodes(slicer, small_subject)
    console = logic.synthesize(nodes, target="FLAIR", model=str(tiny_bundle), device="cpu", confidence=True)
    sd = uncertainty_node(console)
    assert sd is not None and sd.GetName() == f"{console.GetName()} uncertainty"
    assert sd.GetAttribute("MRSynth.Uncertainty") == "1" and sd.GetAttribute("MRSynth.Synthetic") is None
    assert "1.96" in sd.GetDescription() and np.array_equal(_matrix(sd), _matrix(console))
    values = slicer.util.arrayFromVolume(sd)
    assert values.shape == slicer.util.arrayFromVolume(console).shape and values.max() > 0 and values.min() >= 0
    n_nodes = slicer.mrmlScene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode")
    again = logic.synthesize(nodes, target="FLAIR", model=str(tiny_bundle), device="cpu", confidence=True,
                             output=console)  # a rerun into the same output refills its map
    assert again is console and uncertainty_node(again) is sd
    assert slicer.mrmlScene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode") == n_nodes
    assert uncertainty_node(logic.synthesize(nodes, target="FLAIR", model=str(tiny_bundle), device="cpu")) is None

    request = SynthesisRequest(nodes, "FLAIR", model=str(tiny_bundle), device="cpu", confidence=True)
    process = logic.startBackground(request, str(tmp_path))
    assert process.request.confidence == str(tmp_path / "FLAIR_uncertainty.nrrd")
    assert process.wait(timeout=120).state == "finished"
    panel = logic.loadResult(process, request)
    np.testing.assert_allclose(slicer.util.arrayFromVolume(uncertainty_node(panel)), values, rtol=1e-5, atol=1e-6)
    assert uncertainty_node(panel).GetAttribute("MRSynth.UncertaintyMethod") == sd.GetAttribute(
        "MRSynth.UncertaintyMethod")


def test_the_panel_shows_the_map_in_colour_over_the_result(module, small_subject, tiny_bundle):
    from MRSynthLib.mrml import uncertainty_node

    mod, slicer, _ = module
    nodes = subject_nodes(slicer, small_subject)
    for name in ("Red", "Yellow", "Green"):  # the slice views' composite nodes, as Slicer's scene holds them
        composite = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSliceCompositeNode")
        composite.SetLayoutName(name)
        composite.SetBackgroundVolumeID(nodes["T2"].GetID())
    widget = make_widget(mod)
    use_model(widget, tiny_bundle)
    widget._parameterNode.uncertaintyMap = True
    assert widget.request().confidence is True
    widget.ui.applyButton.click()
    deadline = time.monotonic() + 120
    while widget.run is not None:  # Qt's timer, delivered by hand until the run ends
        assert time.monotonic() < deadline, "the background run never ended"
        time.sleep(0.05)
        widget.pollTimer.fire()
    out = widget._parameterNode.outputVolume
    sd = uncertainty_node(out)
    assert sd is not None
    composites = slicer.util.getNodesByClass("vtkMRMLSliceCompositeNode", slicer.mrmlScene)
    assert len(composites) == 3 and all(c.GetBackgroundVolumeID() == out.GetID() and c.GetForegroundVolumeID() == sd.GetID()
                              for c in composites)
    assert widget.ui.logTextEdit.lines[-1].startswith(f"Uncertainty map: '{sd.GetName()}'")
    low, high = sd.GetDisplayNode().GetWindowLevelMin(), sd.GetDisplayNode().GetWindowLevelMax()
    assert 0 <= low < high  # its own window/level, from its voxels


def test_a_high_uncertainty_warning_reaches_the_nodes_description(module, small_subject, tiny_bundle, tmp_path):
    import json
    import shutil

    mod, slicer, _ = module
    for f in tiny_bundle.parent.iterdir():
        shutil.copy(f, tmp_path / f.name)
    card = json.loads(tiny_bundle.read_text())
    card["confidence"] = {"bins": [0.0, 1.0], "error_model": {"*": [0.5]}, "warn_mean_sd": 0.0}
    (tmp_path / tiny_bundle.name).write_text(json.dumps(card))
    nodes = subject_nodes(slicer, small_subject)
    out = mod.MRSynthLogic().synthesize(nodes, target="FLAIR", model=str(tmp_path / tiny_bundle.name), device="cpu")
    assert out.GetDescription().endswith("Warning: high uncertainty: the expected error of this synthetic FLAIR "
                                         "(mean σ 0.500 of its 99.5th percentile) is in the range where validation "
                                         "found the largest errors (≥ 0.000); check it against the acquired images "
                                         "before use.")
    assert "high uncertainty" in out.GetAttribute("MRSynth.Notes")
