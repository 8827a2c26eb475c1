"""The reader study in MRML and in the module's panel, on real MRML scenes (slicer-core): each case in a volume
node named only by its neutral name, with the study's window/level, alone in the slice views; ratings recorded
from the panel's widgets; pause and resume. Only Slicer's GUI process is imitated (``slicer_gui_fakes``: the
widgets of MRSynth.ui, dialogs recorded); the .ui itself is checked in test_module_ui.py.
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("slicer")
import slicer  # noqa: E402
import slicer.util  # noqa: E402
from slicer_module_harness import close_widgets, load_module, make_widget  # noqa: E402

from MRSynthLib.errors import MRSynthError  # noqa: E402
from MRSynthLib.mrml_reader_study import ATTRIBUTE, ReaderStudyViewer  # noqa: E402
from MRSynthLib.reader_study import build_study, load_study, read_case  # noqa: E402


@pytest.fixture(scope="module")
def built(reader_cohort, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("panel") / "study"
    build_study([reader_cohort / "real"], [reader_cohort / "synthetic"], out, seed=11)
    return out


@pytest.fixture()
def study(built, tmp_path) -> Path:
    return Path(shutil.copytree(built, tmp_path / "study"))


def _case_nodes(scene) -> list:
    nodes = scene.GetNodesByClass("vtkMRMLScalarVolumeNode")
    return [n for n in (nodes.GetItemAsObject(i) for i in range(nodes.GetNumberOfItems()))
            if n.GetAttribute(ATTRIBUTE) is not None]


def _matrix(node) -> np.ndarray:
    import vtk

    m = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(m)
    return np.array([[m.GetElement(r, c) for c in range(4)] for r in range(4)])


def _ratings(study: Path, reader: str) -> list[dict]:
    path = study / "ratings" / f"{reader}.csv"
    return list(csv.DictReader(open(path, encoding="utf-8"))) if path.exists() else []


def test_viewer_shows_each_case_in_a_neutral_node_with_the_study_window_level(study):
    scene = slicer.vtkMRMLScene()
    composite = scene.AddNewNodeByClass("vtkMRMLSliceCompositeNode")
    earlier = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "sub-01 FLAIR (synthetic)")
    composite.SetForegroundVolumeID(earlier.GetID())  # a result the user looked at before must not cover a case
    info = load_study(study)
    viewer = ReaderStudyViewer(scene, study, "alice")
    node = viewer.show_next()
    case = info.cases[0]
    assert node.GetName() == case == viewer.case and node.IsA("vtkMRMLScalarVolumeNode")
    image = read_case(info.case_file(case))
    assert np.array_equal(slicer.util.arrayFromVolume(node), image.array)
    assert np.allclose(_matrix(node), image.affine_ras, atol=1e-6)
    display = node.GetDisplayNode()
    assert not display.GetAutoWindowLevel()
    assert (display.GetWindow(), display.GetLevel()) == pytest.approx(info.window_level[case])
    names = list(node.GetAttributeNames())
    assert names == [ATTRIBUTE] and node.GetAttribute(ATTRIBUTE) == info.study_id  # the same for every case
    assert not node.GetDescription() and node.GetStorageNode() is None
    assert composite.GetBackgroundVolumeID() == node.GetID()
    assert composite.GetForegroundVolumeID() is None and composite.GetLabelVolumeID() is None
    with pytest.raises(MRSynthError, match="quality must be"):
        viewer.record("real", 9, 3)
    assert viewer.case == case and _case_nodes(scene) == [node]  # a refused rating keeps the case on screen
    viewer.record("synthetic", 2, 4, "blurry")
    assert viewer.case == info.cases[1] and [n.GetName() for n in _case_nodes(scene)] == [info.cases[1]]
    assert scene.GetNodeByID(node.GetID()) is None  # the previous case is gone, display node too
    viewer.pause()
    assert _case_nodes(scene) == [] and viewer.case is None
    resumed = ReaderStudyViewer(scene, study, "alice")
    assert resumed.show_next().GetName() == info.cases[1] and resumed.progress == (1, 6)
    for _ in range(5):
        resumed.record("real", 4, 3)
    assert resumed.case is None and resumed.node is None and _case_nodes(scene) == []
    assert [r["case"] for r in _ratings(study, "alice")] == list(info.cases)
    assert resumed.show_next() is None


@pytest.fixture()
def module(monkeypatch, tmp_path):
    yield load_module(monkeypatch, tmp_path)
    close_widgets()


def test_panel_section_rates_pauses_and_resumes(module, study):
    mod, slicer_, gui = module
    widget = make_widget(mod)
    ui = widget.ui
    info = load_study(study)
    assert not ui.readerRecordButton.enabled and "No case shown" in ui.readerCaseLabel.text
    ui.readerStartButton.click()  # no folder chosen
    assert ui.readerMessageLabel.text == "Reader study: choose the reader study's folder first"
    ui.readerStudyPathLineEdit.currentPath = str(study.parent)  # not a study
    ui.readerNameLineEdit.text = " bob "
    ui.readerStartButton.click()
    assert "not a reader study (no cases.json)" in ui.readerMessageLabel.text and widget.logic.readerViewer is None
    ui.readerStudyPathLineEdit.currentPath = str(study)
    ui.readerStartButton.click()
    first = info.cases[0]
    assert ui.readerMessageLabel.text == "" and ui.readerCaseLabel.text == f"{first}   (1 / 6)"
    node = gui.layers[-1]["background"]
    assert node.GetName() == first and gui.layers[-1]["foreground"] is None and gui.layers[-1]["fit"]
    assert ui.readerRecordButton.enabled and ui.readerQualitySpinBox.enabled
    # nothing chosen yet: refused with one line, nothing recorded
    ui.readerRecordButton.click()
    assert ui.readerMessageLabel.text.startswith("Rating not recorded: call must be 'real' or 'synthetic'")
    assert gui.dialogs[-1] == ("warning", ui.readerMessageLabel.text) and _ratings(study, "bob") == []
    ui.readerSyntheticRadioButton.checked = True
    ui.readerQualitySpinBox.value = 4
    ui.readerRecordButton.click()
    assert "confidence must be a whole number from 1 to 5, got 0" in ui.readerMessageLabel.text
    ui.readerConfidenceSpinBox.value = 2
    ui.readerCommentLineEdit.text = "waxy cortex"
    ui.readerRecordButton.click()
    row = _ratings(study, "bob")[0]
    assert (row["case"], row["call"], row["quality"], row["confidence"], row["comment"]) == (
        first, "synthetic", "4", "2", "waxy cortex")
    assert ui.readerMessageLabel.text == "" and ui.readerCaseLabel.text == f"{info.cases[1]}   (2 / 6)"
    assert not ui.readerSyntheticRadioButton.checked and not ui.readerRealRadioButton.checked
    assert (ui.readerQualitySpinBox.value, ui.readerConfidenceSpinBox.value, ui.readerCommentLineEdit.text) == (0, 0, "")
    assert [n.GetName() for n in _case_nodes(slicer_.mrmlScene)] == [info.cases[1]]
    # pause: the case goes away; resume: the next unrated case again
    ui.readerPauseButton.click()
    assert _case_nodes(slicer_.mrmlScene) == [] and not ui.readerRecordButton.enabled
    assert "every rating so far is saved" in ui.readerMessageLabel.text
    ui.readerStartButton.click()
    assert ui.readerCaseLabel.text == f"{info.cases[1]}   (2 / 6)"
    for _ in range(5):
        ui.readerRealRadioButton.checked = True
        ui.readerQualitySpinBox.value = ui.readerConfidenceSpinBox.value = 3
        ui.readerRecordButton.click()
    assert ui.readerCaseLabel.text == "All 6 cases rated: thank you." and not ui.readerRecordButton.enabled
    assert len(_ratings(study, "bob")) == 6 and _case_nodes(slicer_.mrmlScene) == []
