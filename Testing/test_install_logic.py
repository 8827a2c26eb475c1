"""Installing the inference dependencies inside Slicer: the ranges of ``Resources/requirements.txt``, with
Slicer's installer when it has one, else ``slicer.util.pip_install``; a Slicer too old, a declined install
or a pip failure is one line, never a traceback; onnxruntime-gpu is offered where an NVIDIA GPU is.

Slicer's installer and dialogs cannot run here: ``slicer`` is replaced by a small fake module object
inside InstallLogic, and ``slicer.packaging`` by a fake in ``sys.modules`` (or removed).
"""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

pytest.importorskip("slicer")

from MRSynthLib.errors import MRSynthError  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
REQUIREMENTS = ROOT / "MRSynth" / "Resources" / "requirements.txt"
PIN = next(line for line in REQUIREMENTS.read_text(encoding="utf-8").splitlines() if line.startswith("onnxruntime"))


def _req(line: str) -> str:
    """What ``pip_ensure`` receives (a packaging Requirement), as text."""
    from packaging.requirements import Requirement

    return str(Requirement(line))


@pytest.fixture()
def install(monkeypatch):
    """InstallLogic's module with a fake ``slicer`` (no ``packaging`` attribute: never imported there)
    and onnxruntime reported missing until something installs it."""
    monkeypatch.syspath_prepend(str(ROOT / "MRSynth"))
    module = importlib.import_module("MRSynthSlicerLib.InstallLogic")  # the package exports the class by that name

    calls = types.SimpleNamespace(confirm=[], pip=[], ensure=[], answer=True, pip_error=None, installs=True)
    missing = [PIN]

    def pip_install(spec, **_kw):
        calls.pip.append(spec)
        if calls.pip_error:
            raise calls.pip_error
        if calls.installs:
            missing.clear()

    fake = types.SimpleNamespace(util=types.SimpleNamespace(
        confirmOkCancelDisplay=lambda text, *a, **k: (calls.confirm.append(text), calls.answer)[1],
        confirmYesNoDisplay=lambda text, *a, **k: (calls.confirm.append(text), calls.answer)[1],
        pip_install=pip_install), app=types.SimpleNamespace(testingEnabled=lambda: calls.testing))
    calls.testing = False
    monkeypatch.setattr(module, "slicer", fake)
    monkeypatch.setattr(module, "_nvidiaDriver", lambda: False)
    monkeypatch.setattr(module.InstallLogic, "missingDependencies", staticmethod(lambda: list(missing)))
    return module, calls, missing


def _packaging(monkeypatch, calls, declined: bool, name: str = "slicer.packaging"):
    def pip_ensure(requirements, prompt_install=True, requester=None, skip_in_testing=True, **_kw):
        calls.ensure.append(([str(r) for r in requirements], prompt_install, requester))
        calls.skip_in_testing = skip_in_testing
        if declined:
            raise RuntimeError("User declined package installation")

    monkeypatch.setitem(sys.modules, name, types.SimpleNamespace(pip_ensure=pip_ensure))


def test_slicer_installer_is_found_even_when_not_imported_as_an_attribute(install, monkeypatch):
    module, calls, _ = install
    _packaging(monkeypatch, calls, declined=True)
    with pytest.raises(MRSynthError) as err:
        module.InstallLogic().ensureDependencies(confirm=True)
    assert calls.ensure == [([_req(PIN)], True, "MRSynth")] and not calls.pip
    assert str(err.value) == (f"installation of {PIN} did not complete (User declined package installation); "
                              "nothing was run")
    assert err.value.__suppress_context__  # no pip/dialog traceback chained to it


def test_slicer_pydeps_is_used_where_a_build_names_the_installer_so(install, monkeypatch):
    """Some Slicer 5.11 preview builds call the installer ``slicer.pydeps`` (same ``pip_ensure``)."""
    module, calls, _ = install
    monkeypatch.setitem(sys.modules, "slicer.packaging", types.SimpleNamespace())  # an older package form
    _packaging(monkeypatch, calls, declined=False, name="slicer.pydeps")
    with pytest.raises(MRSynthError, match="still missing after installation"):  # the fake installs nothing
        module.InstallLogic().ensureDependencies(confirm=False)
    assert calls.ensure == [([_req(PIN)], False, "MRSynth")] and not calls.pip


def test_fallback_pip_install_declined_failed_or_done(install, monkeypatch):
    module, calls, missing = install
    monkeypatch.setitem(sys.modules, "slicer.packaging", None)  # an older Slicer: no slicer.packaging
    monkeypatch.setitem(sys.modules, "slicer.pydeps", None)
    logic = module.InstallLogic()
    calls.answer = False
    with pytest.raises(MRSynthError, match=f"installation of {re.escape(PIN)} was declined; nothing was run"):
        logic.ensureDependencies(confirm=True)
    assert len(calls.confirm) == 1 and not calls.pip
    calls.answer, calls.pip_error = True, subprocess.CalledProcessError(1, ["pip", "install", PIN])
    with pytest.raises(MRSynthError) as err:
        logic.ensureDependencies(confirm=True)
    assert "did not complete (Command '['pip', 'install'" in str(err.value) and "\n" not in str(err.value)
    calls.pip_error, calls.installs = None, False
    with pytest.raises(MRSynthError, match="still missing after installation; restart Slicer"):
        logic.ensureDependencies(confirm=True)
    calls.installs = True
    assert logic.ensureDependencies(confirm=True) is None and calls.pip[-1] == [PIN] and not missing


def test_panel_reports_a_declined_install_as_one_line(monkeypatch, tmp_path, small_subject):
    from slicer_module_harness import close_widgets, load_module, make_widget

    mod, slicer, gui = load_module(monkeypatch, tmp_path)
    for c in ("T1", "T2"):
        node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", f"sub-01_{c}w")
        slicer.util.updateVolumeFromArray(node, small_subject.volumes[c].array)
    widget = make_widget(mod)
    monkeypatch.setattr(type(widget.logic), "missingDependencies", staticmethod(lambda: [PIN]))
    monkeypatch.setitem(sys.modules, "slicer.packaging", None)
    gui.confirm = False
    try:
        widget.ui.applyButton.click()
        assert widget.run is None
        line = f"MRSynth needs its dependencies: installation of {PIN} was declined; nothing was run"
        assert widget.ui.logTextEdit.lines == [line] and gui.dialogs == [("warning", line)]
        widget.ui.livePreviewCheckBox.checked = True
        widget.previewTimer.fire()  # the live preview turns itself off, with the same one line
        assert not widget.ui.livePreviewCheckBox.checked and not widget._parameterNode.livePreview
        assert widget.ui.logTextEdit.lines[-1].startswith("Live preview needs its dependencies: installation")
    finally:
        close_widgets()


def test_requirements_are_compatible_ranges_that_admit_what_is_tested(monkeypatch):
    """Resources/requirements.txt holds ranges (no exact pin: another extension's onnxruntime is kept when
    it fits), each admitting the version the tests run with; the module installs exactly these lines."""
    from importlib.metadata import version

    from packaging.requirements import Requirement

    monkeypatch.syspath_prepend(str(ROOT / "MRSynth"))
    module = importlib.import_module("MRSynthSlicerLib.InstallLogic")
    lines = module.requirements()
    assert set(lines) == {"onnxruntime", "tqdm", "nibabel", "nilearn"}  # nilearn: the skull stripping template
    for name, line in lines.items():
        req = Requirement(line)
        assert not any(s.operator in ("==", "===") for s in req.specifier), line
        assert req.specifier.contains(version(name)), f"{line} excludes the tested {name} {version(name)}"
    runtime = Requirement(lines["onnxruntime"]).specifier
    assert not runtime.contains("1.18.1") and not runtime.contains("2.0.0")  # numpy 2 / next major


def test_too_old_a_slicer_is_said_up_front(install, monkeypatch):
    """Before any installation: one line naming the Slicer and Python found and what is needed."""
    module, calls, _ = install
    _packaging(monkeypatch, calls, declined=False)
    assert module.versionProblem((3, 12), (5, 10)) == "" and module.versionProblem((3, 11), None) == ""
    line = module.versionProblem((3, 9), (5, 6))
    assert line.startswith("MRSynth needs Slicer 5.10 or newer, whose Python is 3.11 or newer")
    assert "this is Slicer 5.6, Python 3.9" in line
    monkeypatch.setattr(module.slicer.app, "majorVersion", 5, raising=False)
    monkeypatch.setattr(module.slicer.app, "minorVersion", 8, raising=False)
    with pytest.raises(MRSynthError, match=r"needs Slicer 5\.10 or newer.*this is Slicer 5\.8"):
        module.InstallLogic().ensureDependencies(confirm=True)
    assert not calls.ensure and not calls.pip and not calls.confirm  # nothing was tried


def test_onnxruntime_gpu_is_offered_where_an_nvidia_gpu_is(install, monkeypatch):
    module, calls, _ = install
    _packaging(monkeypatch, calls, declined=False)
    monkeypatch.setattr(module, "_nvidiaDriver", lambda: True)
    gpu = PIN.replace("onnxruntime", "onnxruntime-gpu")
    calls.answer = True
    with pytest.raises(MRSynthError, match="still missing"):  # the fake installs nothing
        module.InstallLogic().ensureDependencies(confirm=True)
    assert "NVIDIA GPU" in calls.confirm[-1] and calls.ensure[-1][0] == [_req(gpu)]
    calls.answer = False  # declined: the CPU onnxruntime
    with pytest.raises(MRSynthError, match="still missing"):
        module.InstallLogic().ensureDependencies(confirm=True)
    assert calls.ensure[-1][0] == [_req(PIN)]
    asked = len(calls.confirm)
    calls.testing = True  # testing mode: nothing asked, the CPU runtime, installed even there
    with pytest.raises(MRSynthError, match="still missing"):
        module.InstallLogic().ensureDependencies(confirm=True)
    assert len(calls.confirm) == asked and calls.ensure[-1] == ([_req(PIN)], False, "MRSynth")
    assert calls.skip_in_testing is False


def test_the_tested_onnxruntime_is_named_where_the_slicer_docs_and_dev_requirements_say_so():
    import onnxruntime

    tested = f"onnxruntime=={onnxruntime.__version__}"
    assert tested in (ROOT / "requirements-dev.txt").read_text(encoding="utf-8")
    readme = (ROOT / "docs" / "slicer.md").read_text(encoding="utf-8")
    assert PIN in readme and onnxruntime.__version__ in readme
