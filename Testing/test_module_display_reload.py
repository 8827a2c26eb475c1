"""The panel in a real MRML scene (slicer-core): how a result is shown, and what *Reload* reloads.

Only Slicer's GUI process is imitated (``slicer_module_harness``); the slice composite nodes, display
nodes, volumes, the background ``mrsynth`` process and the model are real.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import pytest

pytest.importorskip("slicer")

from slicer_module_harness import (  # noqa: E402
    WIDGETS,
    centre_of,
    close_widgets,
    finish_preparation,
    load_module,
    make_widget,
    move_red,
    subject_nodes,
    use_model,
)

PACKAGES = ("MRSynthLib", "MRSynthSlicerLib")


@pytest.fixture()
def module(monkeypatch, tmp_path):
    yield load_module(monkeypatch, tmp_path)
    close_widgets()


def _views(slicer, backgrounds: dict) -> dict:
    """The three slice views' composite nodes, as Slicer's scene holds them; ``backgrounds``: view → node."""
    views = {}
    for name in ("Red", "Yellow", "Green"):
        composite = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSliceCompositeNode")
        composite.SetLayoutName(name)
        if backgrounds.get(name) is not None:
            composite.SetBackgroundVolumeID(backgrounds[name].GetID())
        views[name] = composite
    return views


def _apply_and_wait(widget) -> None:
    widget.ui.applyButton.click()
    deadline = time.monotonic() + 120
    while widget.run is not None:  # Qt's 200 ms timer, delivered by hand until the run ends
        assert time.monotonic() < deadline, "the background run never ended"
        time.sleep(0.05)
        widget.pollTimer.fire()


def test_result_is_shown_over_the_users_background_with_its_own_window(module, small_subject, tiny_bundle):
    """Apply's result is every view's foreground (half opacity) over the background the user chose, which
    stays; a view showing nothing gets the first input underneath. Its window/level fits its own units (the
    network's ~0…1 scale), not the auto window of a mostly empty volume or the inputs' scanner units."""
    mod, slicer, gui = module
    nodes = subject_nodes(slicer, small_subject)
    views = _views(slicer, {"Red": nodes["T2"], "Yellow": nodes["T1"]})
    widget = make_widget(mod)
    use_model(widget, tiny_bundle)
    _apply_and_wait(widget)
    out = widget._parameterNode.outputVolume
    assert out is not None and out.GetAttribute("MRSynth.Synthetic") == "1"
    assert {n: v.GetBackgroundVolumeID() for n, v in views.items()} == {
        "Red": nodes["T2"].GetID(), "Yellow": nodes["T1"].GetID(), "Green": nodes["T1"].GetID()}
    assert all(v.GetForegroundVolumeID() == out.GetID() and v.GetForegroundOpacity() == 0.5 for v in views.values())
    assert gui.layers == []  # nothing replaced the views' layers wholesale
    display = out.GetVolumeDisplayNode()
    values = slicer.util.arrayFromVolume(out)
    brain = values[values != 0]
    assert not display.GetAutoWindowLevel()
    assert display.GetWindowLevelMin() == 0.0
    assert display.GetWindowLevelMax() == pytest.approx(np.percentile(brain, 99.5), rel=1e-5)
    assert display.GetWindowLevelMax() <= 1.0  # the network's scale, not the inputs' scanner units
    assert "shown over the views' background" in widget.ui.logTextEdit.lines[-1]


def test_live_preview_output_is_shown_the_same_way(module, small_subject, tiny_bundle):
    """The volume the live preview creates is shown like Apply's result: foreground over the background."""
    mod, slicer, gui = module
    nodes = subject_nodes(slicer, small_subject)
    views = _views(slicer, {"Red": nodes["T2"]})
    widget = make_widget(mod)
    use_model(widget, tiny_bundle)
    move_red(widget.redSliceNode(), centre_of(small_subject.volumes["T1"]))
    widget.ui.livePreviewCheckBox.checked = True
    widget.previewTimer.fire()
    finish_preparation(widget)
    out = widget._parameterNode.outputVolume
    assert out is not None and slicer.util.arrayFromVolume(out).any()
    assert views["Red"].GetBackgroundVolumeID() == nodes["T2"].GetID()
    assert all(v.GetForegroundVolumeID() == out.GetID() for v in views.values()) and gui.layers == []
    assert not out.GetVolumeDisplayNode().GetAutoWindowLevel()


@pytest.fixture()
def engine_modules():
    """Reload replaces the engine's modules in ``sys.modules``; put the ones the other tests imported back."""
    kept = {n: m for n, m in sys.modules.items() if n.partition(".")[0] in PACKAGES}
    yield
    for name in [n for n in sys.modules if n.partition(".")[0] in PACKAGES]:
        del sys.modules[name]
    sys.modules.update(kept)


def test_reload_reimports_both_lib_packages(engine_modules, module, small_subject, tiny_bundle):
    """*Reload* (Slicer re-runs MRSynth.py and builds a new panel) re-imports every module of
    MRSynthSlicerLib and MRSynthLib too, so edited code is what runs afterwards; the old panel is cleaned
    up and the new one works."""
    mod, slicer, _ = module
    subject_nodes(slicer, small_subject)
    old = make_widget(mod)
    before = {n: m for n, m in sys.modules.items() if n.partition(".")[0] in PACKAGES}
    assert {"MRSynthLib.registry", "MRSynthSlicerLib.Logic", "MRSynthSlicerLib.InstallLogic"} <= set(before)
    old.onReload()
    new = WIDGETS[-1]
    after = {n: m for n, m in sys.modules.items() if n.partition(".")[0] in PACKAGES}
    stale = sorted(n for n in before if after.get(n) is before[n])
    assert not stale, f"still the modules loaded before the reload: {stale}"
    assert {"MRSynthLib", "MRSynthSlicerLib.Logic"} <= set(after)  # the rest is imported afresh when used
    assert new is not old and old not in WIDGETS and not old.pollTimer.active  # Slicer's cleanup() ran
    assert type(new.logic) is after["MRSynthSlicerLib.Logic"].MRSynthLogic
    use_model(new, tiny_bundle)
    _apply_and_wait(new)  # the reloaded panel runs end to end
    assert new._parameterNode.outputVolume.GetAttribute("MRSynth.Model") == "tiny-test"
    assert not [n for n in before if sys.modules.get(n) is before[n]]  # nor did the run bring an old one back


def test_a_result_in_another_scene_changes_that_scenes_views_only(module, small_subject):
    """The views are those of the result's own scene (Slicer's ``getNodesByClass`` would read the global one)."""
    import slicer as real_slicer
    import slicer.util
    from MRSynthSlicerLib.Display import showAsForeground, showUncertaintyOverlay

    _mod, slicer_mod, _ = module
    other = real_slicer.vtkMRMLScene()
    volume = small_subject.volumes["T1"]
    nodes = []
    for name in ("result", "map"):
        node = other.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
        slicer.util.updateVolumeFromArray(node, np.ascontiguousarray(volume.array))
        nodes.append(node)
    mine = other.AddNewNodeByClass("vtkMRMLSliceCompositeNode")
    global_view = slicer_mod.mrmlScene.AddNewNodeByClass("vtkMRMLSliceCompositeNode")
    showAsForeground(nodes[0])
    assert mine.GetForegroundVolumeID() == nodes[0].GetID() and global_view.GetForegroundVolumeID() is None
    showUncertaintyOverlay(nodes[1], nodes[0])
    assert (mine.GetBackgroundVolumeID(), mine.GetForegroundVolumeID()) == (nodes[0].GetID(), nodes[1].GetID())
    assert global_view.GetBackgroundVolumeID() is None and global_view.GetForegroundVolumeID() is None
