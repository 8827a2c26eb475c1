"""The module's Widget on a real MRML scene (slicer-core): what the panel shows and does after each action.

Only Slicer's GUI process is imitated (``slicer_gui_fakes``: widgets of MRSynth.ui, qt timers fired by
hand, dialogs recorded); volumes, the parameter node's storage and events, the Red slice node, the
background ``mrsynth`` process and the model are real.
"""

from __future__ import annotations

import os
import time
import warnings

import numpy as np
import pytest

from MRSynthLib.contrasts import CONTRASTS

pytest.importorskip("slicer")

from slicer_module_harness import (  # noqa: E402
    add_node,
    close_widgets,
    finish_download,
    load_module,
    make_widget,
    subject_nodes,
    use_model,
)


@pytest.fixture()
def module(monkeypatch, tmp_path):
    yield load_module(monkeypatch, tmp_path)
    close_widgets()


def _target_enabled(ui) -> dict:
    return {ui.targetComboBox.itemText(r): ui.targetComboBox.model().item(r).enabled
            for r in range(ui.targetComboBox.count)}


def test_panel_follows_each_selection_at_once(module, small_subject):
    """The panel redraws from the parameter node's ModifiedEvent, so a selection is never one behind."""
    mod, slicer, _ = module
    a, b = (add_node(slicer, name, small_subject.volumes["T1"]) for name in ("volume A", "volume B"))
    widget = make_widget(mod)
    ui, p = widget.ui, widget._parameterNode
    assert not p.inputs() and not ui.applyButton.enabled  # nothing auto-filled from these names
    ui.inputT1Selector.setCurrentNode(a)
    assert p.inputT1 is a and ui.applyButton.enabled and ui.applyButton.toolTip == "Synthesize FLAIR"
    assert _target_enabled(ui) == {"T1": False, "T1Gd": True, "T2": True, "PD": True, "FLAIR": True}
    ui.targetComboBox.setCurrentText("T1")
    assert p.target == "T1" and not ui.applyButton.enabled
    ui.targetComboBox.setCurrentText("T1Gd")
    assert ui.applyButton.enabled and ui.gadoliniumNoteLabel.visible
    assert not ui.matchHistogramCheckBox.enabled and ui.secondTargetComboBox.enabled
    ui.referenceSelector.setCurrentNode(b)
    assert ui.matchHistogramCheckBox.enabled and not ui.secondTargetComboBox.enabled
    ui.referenceSelector.setCurrentNode(None)
    assert not ui.matchHistogramCheckBox.enabled and ui.secondTargetComboBox.enabled
    p.inputT1 = None  # from the console: the panel follows too
    assert ui.inputT1Selector.currentNode() is None and not ui.applyButton.enabled
    ui.deviceComboBox.setCurrentText("cuda:1")  # CPU-only onnxruntime here: the warning shows at once
    assert p.device == "cuda:1" and ui.deviceWarningLabel.visible and "CUDA" in ui.deviceWarningLabel.text
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "already has observer" / "does not have observer"
        widget.exit()
        widget.exit()
        widget.enter()
        widget.enter()
    ui.inputT2Selector.setCurrentNode(b)  # bound again, once
    assert widget._parameterNode.inputT2 is b and ui.applyButton.enabled


def test_output_set_to_an_input_is_refused_with_one_line(module, small_subject):
    mod, slicer, gui = module
    nodes = subject_nodes(slicer, small_subject)
    before = slicer.util.arrayFromVolume(nodes["T2"]).copy()
    widget = make_widget(mod)
    assert widget._parameterNode.inputs() == nodes  # auto-filled from the names
    count = slicer.mrmlScene.GetNumberOfNodes()
    widget.ui.outputSelector.setCurrentNode(nodes["T2"])
    widget.ui.applyButton.click()
    assert widget.run is None and not widget.pollTimer.active
    [line] = widget.ui.logTextEdit.lines
    assert line.startswith("MRSynth could not start: the output 'sub-01_T2w' is the T2 volume")
    assert gui.dialogs == [("warning", line)]  # a warning, no traceback dialog
    assert slicer.mrmlScene.GetNumberOfNodes() == count
    assert np.array_equal(slicer.util.arrayFromVolume(nodes["T2"]), before)


def test_an_unexpected_error_keeps_slicers_error_display(module, small_subject, monkeypatch):
    """Only bugs get Slicer's error dialog (with the traceback in its details) and propagate."""
    mod, slicer, gui = module
    subject_nodes(slicer, small_subject)
    widget = make_widget(mod)

    def broken(*args, **kwargs):
        raise ValueError("a bug")

    monkeypatch.setattr(widget.logic, "startBackground", broken)
    with pytest.raises(ValueError, match="a bug"):
        widget.ui.applyButton.click()
    assert gui.dialogs == [("error", "MRSynth could not start: unexpected error.\n\na bug")]
    assert widget.run is None and not widget.pollTimer.active


def test_background_run_writes_what_was_asked_when_apply_was_pressed(module, small_subject, tiny_bundle):
    mod, slicer, gui = module
    nodes = subject_nodes(slicer, small_subject)
    before = slicer.util.arrayFromVolume(nodes["T2"]).copy()
    widget = make_widget(mod)
    use_model(widget, tiny_bundle)
    ui, p = widget.ui, widget._parameterNode
    ui.applyButton.click()
    run = widget.run
    workdir = run.workdir
    assert run is not None and os.path.isdir(workdir) and widget.pollTimer.active and ui.applyButton.text == "Cancel" and ui.applyButton.enabled
    frozen = [*(widget.inputSelector(c) for c in CONTRASTS), ui.targetComboBox, ui.referenceSelector,
              ui.secondTargetComboBox, ui.outputSelector, ui.maskSelector, ui.autoFillButton]
    assert not any(w.enabled for w in frozen)
    p.inputT1, p.inputT2, p.outputVolume = None, None, nodes["T2"]  # changed from the console meanwhile
    deadline = time.monotonic() + 120
    while widget.run is not None:  # Qt's 200 ms timer, delivered by hand until the run ends
        assert time.monotonic() < deadline, "the background run never ended"
        time.sleep(0.05)
        widget.pollTimer.fire()
    assert run.process.poll().state == "finished"
    out = p.outputVolume
    assert out is not nodes["T2"] and out.GetName() == "sub-01_T1w FLAIR (synthetic)"
    assert out.GetAttribute("MRSynth.Model") == "tiny-test" and out.GetAttribute("MRSynth.Synthetic") == "1"
    assert slicer.util.arrayFromVolume(out).shape == slicer.util.arrayFromVolume(nodes["T1"]).shape
    assert np.array_equal(slicer.util.arrayFromVolume(nodes["T2"]), before)
    assert widget.run is None and not widget.pollTimer.active and not os.path.exists(workdir)
    assert all(w.enabled for w in frozen if w is not ui.secondTargetComboBox) and ui.applyButton.text == "Apply"
    done = next(line for line in reversed(ui.logTextEdit.lines) if line.startswith("Done: "))  # then its notes
    assert done.startswith("Done: 'sub-01_T1w FLAIR (synthetic)'") and not gui.dialogs
    assert gui.layers == []  # shown over the views' own background (test_module_display_reload.py)
    # which device really ran is said twice: the process's own line in the log, and on the node
    assert "mrsynth: running on cpu (onnxruntime)" in ui.logTextEdit.lines
    assert out.GetAttribute("MRSynth.Device") == "cpu (onnxruntime)" and "ran on cpu (onnxruntime)" in done


def test_a_failed_run_is_one_line_and_a_warning(module, small_subject):
    mod, slicer, gui = module
    subject_nodes(slicer, small_subject)
    widget = make_widget(mod)
    widget._parameterNode.model = "/nowhere/missing-model.json"
    widget._parameterNode.device = "cpu"
    widget.ui.applyButton.click()
    assert widget.run.process.wait(timeout=120).state == "failed"
    widget.pollTimer.fire()
    line = widget.ui.logTextEdit.lines[-1]
    assert line.startswith("MRSynth failed: ") and "missing-model.json" in line and "Traceback" not in line
    assert gui.dialogs == [("warning", line)] and widget.run is None


def test_scene_close_and_cleanup_cancel_the_run(module, small_subject, tiny_bundle):
    mod, slicer, _ = module
    subject_nodes(slicer, small_subject)
    widget = make_widget(mod)
    use_model(widget, tiny_bundle)
    widget.ui.applyButton.click()
    run = widget.run
    workdir = run.workdir
    slicer.mrmlScene.InvokeEvent(slicer.vtkMRMLScene.StartCloseEvent)
    assert widget.run is None and run.process.poll().state == "cancelled" and not os.path.exists(workdir)
    assert not widget.pollTimer.active and widget.ui.logTextEdit.lines[-1].startswith("Cancelled: the scene was closed")
    slicer.mrmlScene.InvokeEvent(slicer.vtkMRMLScene.EndCloseEvent)  # the panel binds to the scene again
    widget.ui.applyButton.click()
    run = widget.run
    workdir = run.workdir
    widget.cleanup()  # module reload / Slicer exit
    assert run.process.poll().state == "cancelled" and not os.path.exists(workdir)
    assert not widget.pollTimer.active and not widget.previewTimer.active and not widget.previewPrepTimer.active
    assert not widget.Observations


def test_model_and_device_are_restored_from_the_parameter_node(module, small_subject, tiny_bundle):
    mod, slicer, _ = module
    subject_nodes(slicer, small_subject)
    widget = make_widget(mod)
    assert [widget.ui.deviceComboBox.itemText(i) for i in range(2)] == ["auto", "cpu"]
    use_model(widget, tiny_bundle)
    p = widget._parameterNode
    assert p.model.endswith("tiny-test.json") and p.device == "cpu"
    widget.refreshModels()  # refilling the box keeps the choice
    assert p.model.endswith("tiny-test.json")
    again = make_widget(mod)  # a new panel on the same scene (e.g. after loading the saved scene)
    assert again.ui.modelComboBox.currentData == p.model and again.ui.deviceComboBox.currentText == "cpu"
    assert again.request().model == p.model and again.request().device == "cpu"
    again.logic.clearCache()
    again.refreshModels()  # the saved model is gone: the default, with a line saying so
    assert p.model == "" and again.ui.modelComboBox.currentText == "default"
    assert "is not available here; using the default" in again.ui.logTextEdit.lines[-1]


def test_download_button_fetches_the_selected_registered_model(served, module):
    """*Download* puts the registry's model into the cache over HTTP (SHA256-checked) in a worker thread,
    the button off meanwhile; a failure (the server gone) is one line and a warning, no traceback."""
    mod, slicer, gui = module
    widget = make_widget(mod)
    assert widget._parameterNode.model == ""  # the registry's default: 'tiny-test', not installed yet
    widget.ui.downloadModelButton.click()
    assert widget.download is not None and widget.downloadTimer.active
    assert not (widget.ui.downloadModelButton.enabled or widget.ui.clearCacheButton.enabled
                or widget.ui.importModelButton.enabled)  # nothing may pull the cache from under the worker
    assert widget.ui.logTextEdit.lines[-1] == "Downloading model 'tiny-test'..."
    finish_download(widget)
    assert "Downloaded model 'tiny-test'" in widget.ui.logTextEdit.lines[-1]
    assert widget.downloadProgress[0] == widget.downloadProgress[1] > 0  # the worker reported the bytes
    assert (widget.logic.cacheFolder() / "tiny-test.json").exists() and gui.dialogs == []
    assert widget.ui.downloadModelButton.enabled and widget.ui.clearCacheButton.enabled
    assert not widget.downloadTimer.active and widget.download is None
    site, _ = served
    for f in site.iterdir():
        f.unlink()  # the release is gone: 404 for every file
    widget.logic.clearCache()
    widget.ui.downloadModelButton.click()
    finish_download(widget)
    line = widget.ui.logTextEdit.lines[-1]
    assert line.startswith("Could not download the model: could not download") and gui.dialogs == [("warning", line)]
    assert not (widget.logic.cacheFolder() / "tiny-test.json").exists()
    assert widget.ui.downloadModelButton.enabled


def test_panel_state_survives_saving_and_reopening_the_scene(module, small_subject, tiny_bundle, tmp_path):
    """File > Save, Close, then load the .mrml: a real vtkMRMLScene XML round trip of the parameter node
    (singleton, as Slicer makes it). The reopened panel shows the same inputs, target, style, model and
    device — and Apply would run what was saved."""
    mod, slicer, _ = module
    nodes = subject_nodes(slicer, small_subject)
    widget = make_widget(mod)
    use_model(widget, tiny_bundle)
    ui, p = widget.ui, widget._parameterNode
    ui.targetComboBox.setCurrentText("PD")
    ui.secondTargetComboBox.setCurrentText("FLAIR")
    ui.styleAlphaSlider.value = 0.7
    ui.batchSizeSpinBox.value = 3
    ui.calibrateCheckBox.checked = False
    saved = widget.request()
    scene = slicer.mrmlScene
    scene.SetRootDirectory(str(tmp_path))
    scene.SetURL(str(tmp_path / "session.mrml"))
    assert scene.Commit()
    scene.Clear(False)  # File > Close: StartClose/EndClose reach the panel, which rebinds to a fresh node
    assert widget._parameterNode.inputs() == {} and widget._parameterNode.target == "FLAIR"
    scene.SetURL(str(tmp_path / "session.mrml"))
    assert scene.Import()
    p = widget._parameterNode
    loaded = {c: n.GetName() for c, n in p.inputs().items()}
    assert loaded == {c: n.GetName() for c, n in nodes.items()}
    assert (p.target, p.secondTarget, p.styleAlpha, p.batchSize, p.calibrateIntensities) == ("PD", "FLAIR", 0.7, 3, False)
    assert p.model == saved.model and p.device == "cpu"
    assert ui.targetComboBox.currentText == "PD" and ui.styleAlphaSlider.value == 0.7  # the panel shows it
    assert ui.modelComboBox.currentText == "tiny-test (imported)" and ui.deviceComboBox.currentText == "cpu"
    again = widget.request()
    assert (again.target, again.style_alpha, again.style_target, again.calibrate) == \
        (saved.target, saved.style_alpha, saved.style_target, saved.calibrate) == ("PD", 0.7, "FLAIR", False)


def test_the_results_notes_reach_the_panels_log(module, small_subject):
    """What the engine said about the run (a head's brain extracted, an input covering part of the view)
    is kept on the node as MRSynth.Notes; the panel shows each note, not only the CLI."""
    mod, slicer, _ = module
    widget = make_widget(mod)
    out = add_node(slicer, "result", small_subject.volumes["T1"])
    out.SetAttribute("MRSynth.Notes", "t1.nii.gz: not skull-stripped (…); brain extracted | T2 covers only 80%")
    widget.showResult(out)
    lines = widget.ui.logTextEdit.lines
    assert lines[-2:] == ["Note: t1.nii.gz: not skull-stripped (…); brain extracted", "Note: T2 covers only 80%"]
