"""The module's live preview on a real MRML scene (slicer-core): the Red view's slice, the worker thread
that prepares a subject, the labels of a volume the preview writes into, and when the preview stops.

Only Slicer's GUI process is imitated (``slicer_gui_fakes``); the scene, nodes, threads and model are real.
"""

from __future__ import annotations

import threading
from dataclasses import replace

import numpy as np
import pytest

from MRSynthLib.request import SynthesisRequest

pytest.importorskip("slicer")

from slicer_module_harness import (  # noqa: E402
    add_node,
    centre_of,
    close_widgets,
    finish_preparation,
    load_module,
    make_widget,
    move_red,
    subject_nodes,
    use_model,
)


@pytest.fixture()
def module(monkeypatch, tmp_path):
    yield load_module(monkeypatch, tmp_path)
    close_widgets()


def test_live_preview_follows_the_red_view(module, small_subject, tiny_bundle):
    mod, slicer, _ = module
    nodes = subject_nodes(slicer, small_subject)
    widget = make_widget(mod)
    use_model(widget, tiny_bundle)
    red = widget.redSliceNode()
    centre = centre_of(small_subject.volumes["T1"])
    move_red(red, centre)
    assert not widget.previewTimer.active  # live preview is off
    widget.ui.livePreviewCheckBox.checked = True
    widget.previewTimer.fire()
    finish_preparation(widget)
    out = widget._parameterNode.outputVolume
    first = slicer.util.arrayFromVolume(out).copy()
    assert out is not None and first.any() and out is not nodes["T1"]
    red.SetFieldOfView(300.0, 300.0, 1.0)  # zooming leaves the slice where it is: no new preview
    assert not widget.previewTimer.active
    move_red(red, centre + np.array([0.0, 0.0, 8.0]))  # scroll the Red view
    assert widget.previewTimer.active
    widget.previewTimer.fire()  # same subject: drawn at once, no new preparation
    assert not widget.previewPrepTimer.active
    second = slicer.util.arrayFromVolume(out)
    changed = second != first
    assert changed.any() and not first[changed].any()  # a new slice was drawn where there was none


def test_a_new_subject_is_prepared_off_the_main_thread(module, small_subject, tiny_bundle, monkeypatch):
    """Preparing a subject (~1 s) runs in a worker thread: the slot returns at once, the user can go on
    scrolling meanwhile without a second worker starting, and what is drawn at the end is the Red view's
    slice *now*; a failed preparation is one line in the panel."""
    import MRSynthLib.preview as preview
    from MRSynthLib.errors import MRSynthError

    mod, slicer, gui = module
    nodes = subject_nodes(slicer, small_subject)
    widget = make_widget(mod)
    use_model(widget, tiny_bundle)
    release, entered, workers = threading.Event(), threading.Event(), []

    class HeldSession(preview.PreviewSession):  # the real session, started only when the test says so
        def __init__(self, *args, **kwargs) -> None:
            workers.append(threading.current_thread())
            entered.set()
            assert release.wait(30)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(preview, "PreviewSession", HeldSession)
    red, centre = widget.redSliceNode(), centre_of(small_subject.volumes["T1"])
    move_red(red, centre)
    widget.ui.livePreviewCheckBox.checked = True
    widget.previewTimer.fire()
    assert widget.logic.previewPreparing() and widget.previewPrepTimer.active
    assert entered.wait(30)  # the worker is inside the preparation, held there
    assert widget._parameterNode.outputVolume is None
    assert widget.ui.logTextEdit.lines[-1].startswith("Preparing the live preview")
    moved = centre + np.array([0.0, 0.0, 8.0])
    move_red(red, moved)  # the user scrolls on while it prepares
    widget.previewTimer.fire()
    widget.previewPrepTimer.fire()  # still preparing: nothing drawn, no second worker
    assert widget._parameterNode.outputVolume is None and widget.previewPrepTimer.active
    widget.ui.clearCacheButton.click()  # the worker loads from the cache: Clear waits, with a line
    assert widget.ui.logTextEdit.lines[-1].startswith("The live preview is preparing from the model cache")
    assert widget.logic.cacheFolder().exists()
    widget.logic.resetPreview()  # e.g. a scene close while it prepares: that worker is dropped...
    widget.previewTimer.start()
    widget.previewTimer.fire()
    live = [t for t in threading.enumerate() if t.name == "MRSynth preview"]
    assert len(workers) == 1 and len(live) == 1  # ...but still counts: no second worker alongside it
    release.set()
    finish_preparation(widget)  # the dropped one ends; the poll starts the preparation for the panel
    finish_preparation(widget)
    assert len(workers) == 2 and workers[0] is not threading.main_thread()
    assert not widget.previewPrepTimer.active
    drawn = slicer.util.arrayFromVolume(widget._parameterNode.outputVolume).copy()
    fresh = mod.MRSynthLogic()  # the blocking console path, prepared from scratch, at the moved slice
    expected = slicer.util.arrayFromVolume(fresh.previewSlice(replace(widget.request(), output=None),
                                                              tuple(moved)))
    assert drawn.any() and np.array_equal(drawn, expected)

    def failing(*args, **kwargs):
        raise MRSynthError("model 'x' cannot make FLAIR")

    monkeypatch.setattr(preview, "PreviewSession", failing)
    nodes["T2"].GetImageData().Modified()  # new voxels: prepared again
    widget.previewTimer.start()
    widget.previewTimer.fire()
    finish_preparation(widget)
    assert widget.ui.logTextEdit.lines[-1] == "Preview: model 'x' cannot make FLAIR" and gui.dialogs == []
    assert widget.ui.livePreviewCheckBox.checked and not widget.previewPrepTimer.active
    lines = list(widget.ui.logTextEdit.lines)
    move_red(red, centre)  # the same request again: no new worker, no new line per slider move
    widget.previewTimer.fire()
    assert not widget.logic.previewPreparing() and not widget.previewPrepTimer.active
    assert widget.ui.logTextEdit.lines == lines


def test_preview_never_writes_unlabelled_slices(module, small_subject, tiny_bundle):
    """Live preview into an acquired volume rewrites it whole and labels it synthetic + preview; into an
    Apply's result it writes the one slice and says the volume is no longer one consistent result."""
    mod, slicer, _ = module
    nodes = subject_nodes(slicer, small_subject)
    logic = make_widget(mod).logic
    acquired = add_node(slicer, "acquired FLAIR", small_subject.volumes["FLAIR"])
    centre = tuple(centre_of(small_subject.volumes["T1"]))
    request = SynthesisRequest(nodes, "FLAIR", model=str(tiny_bundle), device="cpu")
    out = logic.previewSlice(replace(request, output=acquired), centre)
    assert out is acquired and acquired.GetAttribute("MRSynth.Synthetic") == "1"
    assert acquired.GetAttribute("MRSynth.Preview") == "1" and "LIVE PREVIEW" in acquired.GetDescription()
    assert "SYNTHETIC FLAIR" in acquired.GetDescription()
    full = logic.synthesize(nodes, "FLAIR", model=str(tiny_bundle), device="cpu")
    assert full.GetAttribute("MRSynth.Preview") is None and "LIVE PREVIEW" not in full.GetDescription()
    before = slicer.util.arrayFromVolume(full).copy()
    logic.previewSlice(replace(request, output=full, style_target="PD", style_alpha=1.0), centre)
    after = slicer.util.arrayFromVolume(full)
    changed = np.argwhere((after != before).any(axis=(1, 2)))
    assert len(changed) <= 1 and after.any()  # one slice re-synthesized, the rest of Apply's volume kept
    assert full.GetAttribute("MRSynth.Preview") == "1" and full.GetDescription().count("LIVE PREVIEW") == 1
    logic.previewSlice(replace(request, output=full), centre)
    assert full.GetDescription().count("LIVE PREVIEW") == 1  # labelled once


def test_leaving_the_module_or_reloading_it_stops_the_preview(module, small_subject, tiny_bundle):
    """In another module, scrolling the Red view must not synthesize; after Reload the old panel must not
    follow the parameter node (two panels would prepare and write previews at once)."""
    mod, slicer, _ = module
    subject_nodes(slicer, small_subject)
    widget = make_widget(mod)
    use_model(widget, tiny_bundle)
    red, centre = widget.redSliceNode(), centre_of(small_subject.volumes["T1"])
    widget.ui.livePreviewCheckBox.checked = True
    widget.previewTimer.stop()
    widget.exit()
    move_red(red, centre + np.array([0.0, 0.0, 4.0]))
    assert not widget.previewTimer.active
    widget.enter()
    assert widget.previewTimer.active  # back in the module: what exit() cut short is picked up again
    widget.previewTimer.stop()
    move_red(red, centre)
    assert widget.previewTimer.active  # and the preview follows the Red view again
    widget.previewTimer.stop()
    widget.cleanup()  # Reload: the old panel is cleaned up, a new one made on the same parameter node
    again = make_widget(mod)
    again.ui.styleAlphaSlider.value = 0.3
    assert again.previewTimer.active and not widget.previewTimer.active
    assert widget.ui.styleAlphaSlider.value != 0.3  # the old panel no longer mirrors the parameter node


def test_autofill_picks_a_missing_target_and_preview_says_its_limits_once(module, small_subject, tiny_bundle):
    mod, slicer, _ = module
    for c in ("T1", "T2", "FLAIR"):
        add_node(slicer, f"sub-01_{c.lower()}", small_subject.volumes[c])
    widget = make_widget(mod)  # auto-fill on entering: FLAIR is an input, so the target cannot stay FLAIR
    p = widget._parameterNode
    assert set(p.inputs()) == {"T1", "T2", "FLAIR"} and p.target == "PD" and widget.ui.applyButton.enabled
    use_model(widget, tiny_bundle)
    p.inputFLAIR, p.target = None, "FLAIR"
    red = widget.redSliceNode()
    red.SetSliceToRASByNTP(1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0)  # a sagittal Red view
    p.registerInputs = True
    widget.ui.livePreviewCheckBox.checked = True
    widget.previewTimer.fire()
    finish_preparation(widget)
    assert p.outputVolume is not None  # drawn (an axial slice), with the notes below
    widget.previewTimer.start()
    widget.previewTimer.fire()  # prepared already: drawn at once, the notes not repeated
    notes = [line for line in widget.ui.logTextEdit.lines if line.startswith("Live preview ")]
    assert notes == ["Live preview draws axial slices (the model's plane): set the Red view to Axial to see them.",
                     "Live preview does not register the inputs; Apply will."]
