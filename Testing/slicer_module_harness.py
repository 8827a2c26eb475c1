"""Loads ``MRSynth/MRSynth.py`` on a real, fresh MRML scene with only Slicer's GUI process imitated
(see ``slicer_gui_fakes``), and builds its Widget the way Slicer does (``__init__`` then ``setup``).

``load_module(..., testing=True)`` is Slicer in testing mode (its build server, *Reload and Test*):
``slicer.app.testingEnabled()`` is True, the inference packages are missing until installed, and the
installer behaves as Slicer's ``pip_ensure`` does there (it skips unless told ``skip_in_testing=False``).
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
import time
import types
import unittest
import urllib.request
from pathlib import Path

import numpy as np
import slicer_gui_fakes as fakes


class Timer:
    """qt.QTimer that the test fires by hand (``fire``); ``active`` tells whether it would fire."""

    def __init__(self) -> None:
        self.timeout, self.active, self.single, self.interval, self.starts = fakes.Signal(), False, False, 0, 0

    def setInterval(self, ms: int) -> None:
        self.interval = ms

    def setSingleShot(self, single: bool) -> None:
        self.single = single

    def start(self) -> None:
        self.active, self.starts = True, self.starts + 1

    def stop(self) -> None:
        self.active = False

    def isActive(self) -> bool:
        return self.active

    def fire(self) -> None:
        assert self.active, "fired a timer that is not running"
        self.active = not self.single
        self.timeout.emit()


class Gui:
    """What the user sees besides the panel: dialogs shown, the file the next file dialog returns."""

    def __init__(self) -> None:
        self.dialogs: list[tuple[str, str]] = []
        self.confirm = True
        self.open_file = ""
        self.layers: list = []

    def record(self, kind: str, result=None):
        return lambda text, *a, **k: (self.dialogs.append((kind, text)), result)[1]


def _fake_qt(gui: Gui) -> types.ModuleType:
    qt = types.ModuleType("qt")
    qt.QTimer = Timer
    qt.Qt = types.SimpleNamespace(WaitCursor=3)
    qt.QUrl = types.SimpleNamespace(fromLocalFile=lambda p: p)
    qt.QDesktopServices = types.SimpleNamespace(openUrl=lambda url: True)
    qt.QFileDialog = types.SimpleNamespace(getOpenFileName=lambda *a: gui.open_file)
    return qt


def _fake_scripted_module(module_dir: Path) -> types.ModuleType:
    import slicer

    slm = types.ModuleType("slm")

    class Base:
        def __init__(self, *args, **kwargs) -> None:
            pass

    class Widget(Base):
        def __init__(self, parent=None) -> None:
            self.parent = parent or types.SimpleNamespace(isEntered=True)
            self.layout = types.SimpleNamespace(addWidget=lambda w: None)

        def setup(self) -> None:
            pass

        def onReload(self) -> None:
            """``slicer.util.reloadScriptedModule``: run the module file afresh (as the module it was loaded
            as), ``cleanup()`` this panel, then make and set up the new file's panel."""
            name = next(n for n, m in list(sys.modules.items()) if getattr(m, "MRSynthWidget", None) is type(self))
            spec = importlib.util.spec_from_file_location(name, fakes.MODULE)
            reloaded = importlib.util.module_from_spec(spec)
            sys.modules[name] = reloaded
            spec.loader.exec_module(reloaded)
            self.cleanup()
            if self in WIDGETS:
                WIDGETS.remove(self)
            make_widget(reloaded, self.parent)

        def resourcePath(self, relative: str) -> str:
            return str(module_dir / "Resources" / relative)

    class Logic(Base):
        def getParameterNode(self):
            """The scene's one parameter node of the module, as Slicer's ScriptedLoadableModuleLogic makes it:
            a singleton (tag = module name), so loading a saved scene fills *this* node in place."""
            scene = slicer.mrmlScene
            node = scene.GetSingletonNode("MRSynth", "vtkMRMLScriptedModuleNode")
            if node is None:
                node = scene.CreateNodeByClass("vtkMRMLScriptedModuleNode")
                node.UnRegister(None)
                node.SetSingletonTag("MRSynth")
                node.SetAttribute("ModuleName", "MRSynth")
                node = scene.AddNode(node)
            return node

    class Test(unittest.TestCase):  # Slicer's ScriptedLoadableModuleTest is a unittest.TestCase
        def delayDisplay(self, message, msec=1000) -> None:
            pass

    slm.ScriptedLoadableModule, slm.ScriptedLoadableModuleTest = type("ScriptedLoadableModule", (Base,), {}), Test
    slm.ScriptedLoadableModuleWidget, slm.ScriptedLoadableModuleLogic = Widget, Logic
    return slm


class Installer:
    """``slicer.packaging`` of Slicer 5.11 (what its ``pip_ensure`` decides; pip itself is not run): in
    testing mode it skips unless ``skip_in_testing=False``; "installing" makes the packages importable."""

    def __init__(self, testing: bool) -> None:
        self.testing, self.installed, self.calls = testing, False, []

    def pip_ensure(self, requirements, constraints=None, skip_packages=None, prompt_install=True,
                   prompt_restart=True, requester=None, skip_in_testing=True, show_progress=True):
        self.calls.append(dict(requirements=[str(r) for r in requirements], prompt_install=prompt_install,
                               skip_in_testing=skip_in_testing))
        if skip_in_testing and self.testing:
            return None  # Slicer: "Testing mode is enabled: skipping pip_ensure"
        self.installed = True
        return None


def _missing_until_installed(monkeypatch, installer: Installer) -> None:
    """The module's requirements are missing (as on a fresh Slicer) until ``installer`` installs them."""
    install = sys.modules["MRSynthSlicerLib.InstallLogic"]
    monkeypatch.setitem(sys.modules, "slicer.packaging", installer)
    monkeypatch.setattr(install.InstallLogic, "missingDependencies", staticmethod(
        lambda: [] if installer.installed else list(install.requirements().values())))


def load_module(monkeypatch, tmp_path, testing: bool = False):
    """(MRSynth module, slicer, Gui): MRSynth.py imported afresh against a new real scene; ``testing``:
    Slicer's testing mode, with the packages missing until ``gui.installer`` installs them."""
    import slicer
    import slicer.util

    gui = Gui()
    pnw = types.ModuleType("pnw")
    pnw.parameterNodeWrapper, pnw.Choice, pnw.WithinRange = (fakes.parameterNodeWrapper, fakes.Choice,
                                                              fakes.WithinRange)
    for name, mod in {"qt": _fake_qt(gui), "slicer.ScriptedLoadableModule": _fake_scripted_module(fakes.MODULE.parent),
                      "slicer.parameterNodeWrapper": pnw}.items():
        monkeypatch.setitem(sys.modules, name, mod)
    for name in [n for n in sys.modules if n.startswith("MRSynthSlicerLib")]:
        monkeypatch.delitem(sys.modules, name)  # re-imported against these fakes
    scene = slicer.vtkMRMLScene()
    red = scene.AddNewNodeByClass("vtkMRMLSliceNode", "Red")
    red.SetLayoutName("Red")
    layout = types.SimpleNamespace(sliceWidget=lambda name: types.SimpleNamespace(mrmlSliceNode=lambda: red)
                                   if name == "Red" else None)
    app = types.SimpleNamespace(layoutManager=lambda: layout, testingEnabled=lambda: testing,
                                setOverrideCursor=lambda c: None, restoreOverrideCursor=lambda: None)
    monkeypatch.setattr(slicer, "mrmlScene", scene, raising=False)
    monkeypatch.setattr(slicer, "app", app, raising=False)
    for name, kind in (("warningDisplay", "warning"), ("errorDisplay", "error"), ("infoDisplay", "info")):
        monkeypatch.setattr(slicer.util, name, gui.record(kind))
    monkeypatch.setattr(slicer.util, "confirmOkCancelDisplay", lambda text, *a, **k: gui.confirm)
    monkeypatch.setattr(slicer.util, "confirmYesNoDisplay", lambda text, *a, **k: gui.confirm)
    monkeypatch.setattr(slicer.util, "loadUI", lambda path: fakes.Widget("MRSynth"))
    monkeypatch.setattr(slicer.util, "childWidgetVariables", lambda root: fakes.ui_widgets())
    monkeypatch.setattr(slicer.util, "setSliceViewerLayers", lambda **kw: gui.layers.append(kw))
    monkeypatch.syspath_prepend(str(fakes.MODULE.parent))
    monkeypatch.setenv("MRSYNTH_CACHE", str(tmp_path / "cache"))
    spec = importlib.util.spec_from_file_location("MRSynth_under_test", fakes.MODULE)
    mod = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, mod)
    spec.loader.exec_module(mod)
    if testing:
        gui.installer = Installer(testing=True)
        _missing_until_installed(monkeypatch, gui.installer)
    return mod, slicer, gui


WIDGETS: list = []  # made by make_widget; close_widgets() ends them as Slicer does on exit


def make_widget(mod, parent=None):
    """The module's Widget after ``setup`` (Slicer creates it, then calls setup)."""
    widget = mod.MRSynthWidget(parent)
    widget.setup()
    WIDGETS.append(widget)
    return widget


def close_widgets() -> None:
    """``cleanup()`` every widget made: no process left running, no observer left on a scene."""
    while WIDGETS:
        WIDGETS.pop().cleanup()


# --- what a test does with the panel, as a user (or Qt's timers) would ---------------------------
def add_node(slicer, name, volume):
    node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
    node.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(volume.affine_ras))
    slicer.util.updateVolumeFromArray(node, np.ascontiguousarray(volume.array, dtype=np.float32))
    return node


def subject_nodes(slicer, subject):
    return {c: add_node(slicer, f"sub-01_{c}w", subject.volumes[c]) for c in ("T1", "T2")}


def use_model(widget, bundle, device="cpu"):
    """Import the tiny model into the cache and pick it and the device in the panel, as a user would."""
    widget.logic.importModel(str(bundle))
    widget.refreshModels()
    combo = widget.ui.modelComboBox
    combo.currentIndex = next(i for i in range(combo.count) if combo.itemText(i) == "tiny-test (imported)")
    widget.ui.deviceComboBox.setCurrentText(device)


def finish_preparation(widget, timeout: float = 60.0) -> None:
    """Let the preview's worker thread end, then deliver the poll Qt's timer would deliver."""
    deadline = time.monotonic() + timeout
    while widget.logic.previewPreparing():
        assert time.monotonic() < deadline, "the preview preparation never ended"
        time.sleep(0.01)
    widget.previewPrepTimer.fire()


def move_red(red, ras) -> None:
    m = red.GetSliceToRAS()
    for r in range(3):
        m.SetElement(r, 3, ras[r])
    red.UpdateMatrices()


def centre_of(volume) -> np.ndarray:
    return (volume.affine_ras @ np.r_[np.array(volume.size_ijk) / 2, 1])[:3]


def finish_download(widget, timeout: float = 60.0) -> None:
    """Let the download's worker thread end, then deliver the poll Qt's timer would deliver."""
    deadline = time.monotonic() + timeout
    while widget.download is not None and widget.download[1].alive:
        assert time.monotonic() < deadline, "the download never ended"
        time.sleep(0.01)
    widget.downloadTimer.fire()


# --- Sample Data and the module's self-test ------------------------------------------------------------
def sample_data_module(cache: Path) -> types.ModuleType:
    """Slicer's SampleData as the self-test uses it: ``registerCustomSampleDataSource`` with Slicer's
    parameter list (an unknown keyword fails here as there); ``downloadSamples`` fetches each URI with
    ``urllib.request.urlretrieve`` into ``cache`` (``file://`` included, as ``SampleDataLogic.downloadFile``
    does), checks its checksum and loads it as a volume node (``slicer.util.loadVolume``'s part)."""
    import slicer
    import slicer.util

    from MRSynthLib.io import read_volume

    sources = {}

    class SampleDataLogic:
        @staticmethod
        def registerCustomSampleDataSource(category="Custom", sampleName=None, uris=None, fileNames=None,
                                           nodeNames=None, customDownloader=None, thumbnailFileName=None,
                                           loadFileTypes=None, loadFiles=None, loadFileProperties=None,
                                           checksums=None, loadFileType=None):
            assert loadFileType is None, "loadFileType is deprecated: use loadFileTypes"
            sources[sampleName] = dict(category=category, uris=uris, fileNames=fileNames, nodeNames=nodeNames,
                                       checksums=checksums, loadFileTypes=loadFileTypes,
                                       thumbnailFileName=thumbnailFileName)

        def downloadSamples(self, name):
            src, nodes = sources[name], []
            cache.mkdir(parents=True, exist_ok=True)
            for uri, file_name, node_name, checksum in zip(src["uris"], src["fileNames"], src["nodeNames"],
                                                           src["checksums"], strict=True):
                path = cache / file_name
                urllib.request.urlretrieve(uri, path)
                algo, expected = checksum.split(":")
                assert hashlib.new(algo.lower(), path.read_bytes()).hexdigest() == expected, f"checksum of {uri}"
                vol = read_volume(path)
                node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", node_name)
                node.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(vol.affine_ras))
                slicer.util.updateVolumeFromArray(node, vol.array)
                nodes.append(node)
            return nodes

    module = types.ModuleType("SampleData")
    module.SampleDataLogic, module.sources = SampleDataLogic, sources
    return module


def run_self_test(mod, monkeypatch, cache: Path) -> unittest.TestResult:
    """The module's ``MRSynthTest`` as *Reload and Test* runs it, with Sample Data fetching into ``cache``."""
    import slicer

    monkeypatch.setitem(sys.modules, "SampleData", sample_data_module(cache))
    monkeypatch.setitem(sys.modules, "MRSynth", mod)
    monkeypatch.delitem(sys.modules, "MRSynthSlicerLib.SelfTest", raising=False)
    from MRSynthSlicerLib.SelfTest import MRSynthTest

    slicer.mrmlScene.Clear = lambda *a: None  # a fresh scene already; vtkMRMLScene.Clear needs an argument
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache.parent / "self-test.log", "w", encoding="utf-8") as log:
        return unittest.TextTestRunner(stream=log, verbosity=0).run(MRSynthTest("runTest"))
