"""The panel's .ui against the module code: every widget the code uses exists, with a class that fits.

Slicer's own widget classes (qMRMLNodeComboBox, ctkSliderWidget…) are not available here; PySide6's
QUiLoader falls back to the base class the .ui declares, and the declared class is read from the XML.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import sys
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import pytest

from MRSynthLib.contrasts import CONTRASTS
from MRSynthLib.request import SynthesisRequest

ROOT = Path(__file__).resolve().parents[1]
UI = ROOT / "MRSynth" / "Resources" / "UI" / "MRSynth.ui"
MODULE = ROOT / "MRSynth" / "MRSynth.py"
PARAMETERS = ROOT / "MRSynth" / "MRSynthSlicerLib" / "Parameters.py"

# what a method call on self.ui.<name> requires of the widget's declared class
METHOD_CLASSES = {
    "currentNode": {"qMRMLNodeComboBox"}, "setCurrentNode": {"qMRMLNodeComboBox"},
    "currentNodeChanged": {"qMRMLNodeComboBox"}, "setMRMLScene": {"qMRMLNodeComboBox", "qMRMLWidget"},
    "currentText": {"QComboBox"}, "currentData": {"QComboBox"}, "addItems": {"QComboBox"},
    "addItem": {"QComboBox"}, "currentTextChanged": {"QComboBox"}, "itemText": {"QComboBox"},
    "count": {"QComboBox"}, "model": {"QComboBox"},
    "valueChanged": {"ctkSliderWidget", "QSpinBox"}, "toggled": {"QCheckBox"}, "checked": {"QCheckBox", "QRadioButton"},
    "autoExclusive": {"QRadioButton"}, "currentPath": {"ctkPathLineEdit"},
    "clicked": {"QPushButton"}, "appendPlainText": {"QPlainTextEdit"}, "clear": {"QPlainTextEdit", "QComboBox"},
    "setVisible": {"QLabel"}, "setText": {"QLabel"},
    "value": {"QProgressBar", "ctkSliderWidget", "QSpinBox"}, "text": {"QPushButton", "QLabel", "QLineEdit"},
    "enabled": {"QPushButton", "QCheckBox", "QComboBox", "QRadioButton", "QSpinBox", "QLineEdit"},
    "toolTip": {"QPushButton"},
    "currentIndexChanged": {"QComboBox"}, "findData": {"QComboBox"}, "blockSignals": {"QComboBox"},
}
# parameters whose choices are only known at run time, kept in sync by the Widget instead of a binding
MANUALLY_BOUND = {"model": "modelComboBox"}
PARAM_CLASSES = {"node": {"qMRMLNodeComboBox"}, "float": {"ctkSliderWidget"}, "bool": {"QCheckBox"},
                 "int": {"QSpinBox"}, "choice": {"QComboBox"}, "str": {"QComboBox"}}


@pytest.fixture(scope="module")
def ui_xml():
    tree = ET.parse(UI)
    widgets = {w.get("name"): w.get("class") for w in tree.iter("widget")}
    extends = {c.findtext("class"): c.findtext("extends") for c in tree.iter("customwidget")}
    return tree, widgets, extends


@pytest.fixture(scope="module")
def code_names():
    """The Widget's code: MRSynth.py and its mixins in MRSynthSlicerLib (e.g. ModelPanel.py)."""
    text = "\n".join(f.read_text(encoding="utf-8") for f in [MODULE, *sorted((MODULE.parent / "MRSynthSlicerLib").glob("*.py"))])
    names = set(re.findall(r"self\.ui\.(\w+)", text))
    if 'f"input{contrast}Selector"' in text:
        names |= {f"input{c}Selector" for c in CONTRASTS}
    calls = set(re.findall(r"self\.ui\.(\w+)\.(\w+)", text))
    return text, names, calls


def _parameters(text: str) -> dict[str, str]:
    """Fields of the @parameterNodeWrapper class and their kind (node, float, bool, int, choice)."""
    tree = ast.parse(text)
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef)
               and any(getattr(d, "id", None) == "parameterNodeWrapper" for d in n.decorator_list))
    out = {}
    for stmt in cls.body:
        if isinstance(stmt, ast.AnnAssign):
            src = ast.unparse(stmt.annotation)
            kind = ("node" if "vtkMRML" in src else "choice" if "Choice" in src else "float" if "float" in src
                    else "int" if "int" in src else "bool" if "bool" in src else src)
            out[stmt.target.id] = kind
    return out


def test_every_widget_the_code_uses_exists_with_a_fitting_class(ui_xml, code_names):
    _, widgets, _ = ui_xml
    _, names, calls = code_names
    missing = sorted(n for n in names if n not in widgets)
    assert not missing, f"used by MRSynth.py but not in MRSynth.ui: {missing}"
    wrong = [(n, m, widgets[n]) for n, m in calls if m in METHOD_CLASSES and widgets[n] not in METHOD_CLASSES[m]]
    assert not wrong, f"method used on a widget of the wrong class: {wrong}"
    assert len(names) >= 20


def test_panel_structure(ui_xml):
    tree, widgets, _ = ui_xml
    root = tree.getroot().find("widget")
    assert root.get("class") == "qMRMLWidget"
    sections = [(w.get("name"), w.find("property[@name='text']/string").text)
                for w in tree.iter("widget") if w.get("class") == "ctkCollapsibleButton"]
    assert [t for _, t in sections] == ["Inputs", "Target & style", "Output", "Advanced", "Reader study"]
    for c in CONTRASTS:
        assert widgets[f"input{c}Selector"] == "qMRMLNodeComboBox"
    assert widgets["styleAlphaSlider"] == "ctkSliderWidget"
    slider = next(w for w in tree.iter("widget") if w.get("name") == "styleAlphaSlider")
    assert slider.findtext("property[@name='minimum']/double") == "0.0"
    assert slider.findtext("property[@name='maximum']/double") == "1.0"
    combos = {n for n, c in widgets.items() if c == "qMRMLNodeComboBox"}
    connected = {c.findtext("receiver") for c in tree.iter("connection")
                 if c.findtext("signal") == "mrmlSceneChanged(vtkMRMLScene*)"}
    assert combos == connected, "every node combo box must receive the scene"


def test_parameter_bindings_match_the_parameter_node(ui_xml, code_names):
    """Every field of the parameter node (so: saved with the scene) has its widget, and the model and
    device choices are among them."""
    tree, widgets, _ = ui_xml
    params = _parameters(PARAMETERS.read_text(encoding="utf-8"))
    bound = {}
    for w in tree.iter("widget"):
        p = w.find("property[@name='SlicerParameterName']")
        if p is not None:
            bound[p.findtext("string")] = w.get("class")
    assert not set(bound) & set(MANUALLY_BOUND)
    bound |= {name: widgets[widget] for name, widget in MANUALLY_BOUND.items()}
    assert set(bound) == set(params), f"unbound {set(params) - set(bound)}, unknown {set(bound) - set(params)}"
    assert params["styleAlpha"] == "float" and params["target"] == "choice" and params["device"] == "choice"
    assert params["model"] == "str" and bound["model"] == bound["device"] == "QComboBox"
    for name, kind in params.items():
        assert bound[name] in PARAM_CLASSES[kind], (name, kind, bound[name])
    for widget in MANUALLY_BOUND.values():  # read and written by the Widget (tested in test_module_widget.py)
        assert f"self.ui.{widget}.currentIndexChanged.connect" in code_names[0]


def test_slicer_docs_console_api_names_every_argument_of_synthesize():
    """docs/slicer.md's console section lists every option of ``logic.synthesize``: its own arguments and
    the request fields Slicer runs (not backend/amp: inside Slicer it is ONNX Runtime only)."""
    from dataclasses import fields

    tree = ast.parse((ROOT / "MRSynth" / "MRSynthSlicerLib" / "Logic.py").read_text(encoding="utf-8"))
    fn = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "synthesize")
    names = [a.arg for a in fn.args.args if a.arg not in ("self", "inputs")]
    names += [f.name for f in fields(SynthesisRequest) if f.name not in ("inputs", "target", "extras", "backend", "amp")]
    readme = (ROOT / "docs" / "slicer.md").read_text(encoding="utf-8")
    section = readme.split("### Console and script API", 1)[1].split("\n### ", 1)[0]
    missing = [n for n in names if f"`{n}`" not in section and f"{n}=" not in section]
    assert "calibrate" in names and not missing, f"docs/slicer.md console API does not mention {missing}"


def test_volume_selectors_offer_scalar_volumes_only(ui_xml):
    """Inputs, reference and output list scalar volumes, not their subclasses (label maps); the mask may
    be a label map."""
    tree, widgets, _ = ui_xml
    for w in tree.iter("widget"):
        if w.get("class") == "qMRMLNodeComboBox" and w.get("name") != "maskSelector":
            assert w.findtext("property[@name='showChildNodeTypes']/bool") == "false", w.get("name")
            assert [s.text for s in w.findall("property[@name='nodeTypes']/stringlist/string")] == [
                "vtkMRMLScalarVolumeNode"]
    output = next(w for w in tree.iter("widget") if w.get("name") == "outputSelector")
    prop = {p.get("name"): (p.findtext("bool") or p.findtext("string")) for p in output.findall("property")}
    # one way to get a new volume: the None entry ("Create new volume"), named by the module on Apply;
    # the selector's own "Create new Volume" entry would add a second one with a generic name
    assert (prop["noneEnabled"], prop["addEnabled"], prop["noneDisplay"]) == ("true", "false", "Create new volume")


def test_ui_loads_offscreen_with_base_class_fallback(ui_xml, code_names):
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    QtUiTools = pytest.importorskip("PySide6.QtUiTools")
    from PySide6.QtCore import QFile
    from PySide6.QtWidgets import QApplication, QWidget

    app = QApplication.instance() or QApplication([])
    _, widgets, extends = ui_xml
    f = QFile(str(UI))
    assert f.open(QFile.ReadOnly)
    root = QtUiTools.QUiLoader().load(f)
    f.close()
    assert root is not None and root.objectName() == "MRSynth"
    for name in code_names[1]:
        child = root.findChild(QWidget, name)
        assert child is not None, name
        declared = widgets[name]
        assert child.inherits(extends.get(declared, declared)), (name, declared, child.metaObject().className())
    assert root.findChild(QWidget, "styleAlphaSlider").property("SlicerParameterName") == "styleAlpha"
    root.deleteLater()
    app.processEvents()


# --- the module's Logic on a real MRML scene; only the Slicer GUI process (qt, app, base classes) is faked ---
@pytest.fixture()
def module(monkeypatch, tmp_path):
    pytest.importorskip("slicer")
    from slicer_module_harness import load_module

    mod, slicer, _ = load_module(monkeypatch, tmp_path)
    return mod, slicer


def _scene_inputs(slicer, subject):
    import numpy as np

    nodes = {}
    for c in ("T1", "T2"):
        node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", f"sub-01_{c}w")
        node.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(subject.volumes[c].affine_ras))
        slicer.util.updateVolumeFromArray(node, np.ascontiguousarray(subject.volumes[c].array))
        nodes[c] = node
    return nodes


def test_logic_console_api_background_and_preview_agree(module, small_subject, tiny_bundle, tmp_path):
    import numpy as np

    mod, slicer = module
    logic = mod.MRSynthLogic()
    nodes = _scene_inputs(slicer, small_subject)
    assert set(logic.autoFill()) == {"T1", "T2"}
    assert logic.missingDependencies() == []
    console = logic.synthesize({"T1": nodes["T1"], "T2": nodes["T2"]}, target="FLAIR", style_reference=None,
                               model=str(tiny_bundle), device="cpu")
    assert console.GetName() == "sub-01_T1w FLAIR (synthetic)" and console.GetAttribute("MRSynth.Model") == "tiny-test"
    request = SynthesisRequest(nodes, "FLAIR", model=str(tiny_bundle), device="cpu")
    process = logic.startBackground(request, str(tmp_path))
    assert process.wait(timeout=120).state == "finished"
    panel = logic.loadResult(process, request)
    np.testing.assert_allclose(slicer.util.arrayFromVolume(panel), slicer.util.arrayFromVolume(console), atol=1e-6)
    # live preview: the slice through the volume centre, written into the existing output node
    centre = small_subject.volumes["T1"].affine_ras @ np.r_[np.array(small_subject.volumes["T1"].size_ijk) / 2, 1]
    out = logic.previewSlice(replace(request, output=panel), tuple(centre[:3]))
    assert out is panel
    np.testing.assert_allclose(slicer.util.arrayFromVolume(panel), slicer.util.arrayFromVolume(console), atol=1e-6)
    out = logic.previewSlice(replace(request, output=panel, style_target="PD", style_alpha=1.0), tuple(centre[:3]))
    changed = np.abs(slicer.util.arrayFromVolume(panel) - slicer.util.arrayFromVolume(console)) > 1e-4
    assert changed.any() and len(np.unique(np.nonzero(changed)[0])) == 1  # exactly one axial slice redrawn


def test_logic_model_cache_and_device_warning(module, tiny_bundle, monkeypatch):
    from MRSynthLib.errors import MRSynthError

    mod, _ = module
    logic = mod.MRSynthLogic()
    assert logic.availableModels()[0] == ("", "default")
    assert logic.importModel(str(tiny_bundle)) == "tiny-test"
    assert any(label == "tiny-test (imported)" for _, label in logic.availableModels())
    cached = logic.cacheFolder() / tiny_bundle.name
    assert logic.importModel(str(cached)) == "tiny-test"  # a card already in the cache: no SameFileError
    (logic.cacheFolder() / "blocked").mkdir()
    shutil.copy2(tiny_bundle, logic.cacheFolder() / "blocked" / tiny_bundle.name)
    for spec in json.loads(tiny_bundle.read_text(encoding="utf-8"))["files"].values():
        (logic.cacheFolder() / spec["name"]).unlink()
        (logic.cacheFolder() / spec["name"] / spec["name"]).mkdir(parents=True)  # folders where the file must go
        shutil.copy2(tiny_bundle.parent / spec["name"], logic.cacheFolder() / "blocked" / spec["name"])
    with pytest.raises(MRSynthError, match="could not copy .* into the model cache"):
        logic.importModel(str(logic.cacheFolder() / "blocked" / tiny_bundle.name))
    logic.clearCache()
    assert not logic.cacheFolder().exists()
    import onnxruntime

    has_cuda = "CUDAExecutionProvider" in onnxruntime.get_available_providers()
    assert bool(logic.deviceWarning("cuda:0")) != has_cuda and logic.deviceWarning("cpu") == ""
    install_logic = sys.modules["MRSynthSlicerLib.InstallLogic"]
    for gpu in (False, True):  # 'auto' on a machine with an NVIDIA driver but a CPU-only onnxruntime
        monkeypatch.setattr(shutil, "which", lambda name, gpu=gpu: "/usr/bin/nvidia-smi" if gpu else None)
        install_logic._nvidiaDriver.cache_clear()  # asked once per session in the panel
        warning = logic.deviceWarning("auto")
        assert bool(warning) == (gpu and not has_cuda), warning
        assert not warning or "runs on the CPU" in warning
    install_logic._nvidiaDriver.cache_clear()


def test_an_engine_loaded_while_the_cache_is_cleared_is_not_kept(module, tiny_bundle, monkeypatch):
    """The preview's worker may be loading a model when Clear runs: it may use it once, never cache it."""
    import threading

    import MRSynthLib.registry as registry

    mod, _ = module
    logic = mod.MRSynthLogic()
    card = str(tiny_bundle)  # outside the cache, so the load itself succeeds after Clear
    loading, release, real = threading.Event(), threading.Event(), registry.load_backend

    def held(*args, **kwargs):
        loading.set()
        assert release.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(registry, "load_backend", held)
    loaded = []
    worker = threading.Thread(target=lambda: loaded.append(logic.engine(card, "cpu")))
    worker.start()
    assert loading.wait(30)
    logic.clearCache()
    release.set()
    worker.join(30)
    assert loaded and loaded[0].model_id == "tiny-test"  # the worker got its engine...
    assert logic._engines == {}  # not put back: the cleared model cannot be used from the cache again
    monkeypatch.setattr(registry, "load_backend", real)


# --- the module's own ScriptedLoadableModuleTest, on slicer-core, in Slicer's testing mode ---------------
def test_module_self_test_passes_in_testing_mode(monkeypatch, tmp_path):
    """MRSynthTest itself, as Slicer's build server runs it: testing mode (``testingEnabled()`` True), the
    inference packages not installed yet, and ``pip_ensure`` skipping installs there unless told not to.
    The sample brain comes from the files shipped in the module's Resources (``file://``, SHA256-checked,
    no network); the full path runs: console API, labels, geometry, a synthetic FLAIR that follows the
    acquired one, background process = in-process voxels, preview slice = full run's slice."""
    pytest.importorskip("slicer")
    from slicer_module_harness import load_module, run_self_test

    mod, slicer, gui = load_module(monkeypatch, tmp_path, testing=True)
    result = run_self_test(mod, monkeypatch, tmp_path / "SampleDataCache")
    assert result.wasSuccessful(), (result.errors + result.failures)[0][1][-1500:]
    assert gui.installer.calls and gui.installer.calls[0]["skip_in_testing"] is False
    assert gui.installer.calls[0]["prompt_install"] is False and gui.dialogs == []  # nobody to answer there
    from MRSynthSlicerLib import SAMPLE_FILES

    assert {p.name for p in (tmp_path / "SampleDataCache").iterdir()} == {f for f, _ in SAMPLE_FILES.values()}
    out = [n for n in slicer.util.getNodesByClass("vtkMRMLScalarVolumeNode") if n.GetAttribute("MRSynth.Synthetic")]
    assert len(out) == 4  # the console run, the background run, the uncalibrated run and the preview
