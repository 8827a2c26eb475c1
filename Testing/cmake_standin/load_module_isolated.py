"""Loads a MRSynth.py the way Slicer does, in an interpreter that cannot see the repository's editable
install, and prints one JSON line of what it found (Testing/test_extension_install.py asserts on it).

Run as ``python -S -E -B load_module_isolated.py SITE_DIRS MRSYNTH_PY WORK_DIR REPO_ROOT MODE`` from a
folder holding copies of this file, slicer_gui_fakes.py and slicer_module_harness.py: ``-S`` skips
``site``, so the venv's ``.pth`` files (among them ``__editable__.mrsynth-0.1.0.pth``) are never read and
only what MRSynth.py itself puts on sys.path can provide ``MRSynthLib``. MODE: ``setup`` (load and set up
the panel), ``synthesize`` (also synthesize a phantom with the default model) or ``selftest`` (in Slicer's
testing mode: run the module's self-test on the shipped sample, then edit the engine and the Slicer lib in
place and press *Reload*: this edits the files under MRSYNTH_PY's folder, so give it a copy).
"""

from __future__ import annotations

import os
import sys

SITE, MODULE_PY, WORK, REPO, MODE = sys.argv[1:6]
sys.path.extend(SITE.split(os.pathsep))  # the venv's packages (slicer-core, vtk, numpy, ...), not its .pth files

import importlib.util  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
import types  # noqa: E402
from pathlib import Path  # noqa: E402


def synthesize_phantom(lib: types.ModuleType) -> dict:
    """FLAIR from T1 + T2 of a small simulated subject, with the registry's default model."""
    import numpy as np

    subject = lib.simulate_subject(seed=2, shape=(40, 48, 40))
    start = time.perf_counter()
    out = lib.synthesize({"T1": subject.volumes["T1"], "T2": subject.volumes["T2"]}, target="FLAIR")
    truth = subject.volumes["FLAIR"].array
    brain = truth > 0
    return {"seconds": round(time.perf_counter() - start, 2), "shape": list(out.array.shape),
            "truth_shape": list(truth.shape), "finite": bool(np.isfinite(out.array).all()),
            "corr": float(np.corrcoef(out.array[brain], truth[brain])[0, 1]),
            "descrip": str(out.metadata.get("descrip", ""))}


def self_test_then_reload(mod, gui, harness, mp, widget) -> dict:
    """The self-test in testing mode, then *Reload* after editing a file of each Lib package."""
    import MRSynthLib

    result = harness.run_self_test(mod, mp, Path(WORK) / "sample-cache")
    failure = (result.errors + result.failures)[0][1][-3000:] if not result.wasSuccessful() else ""
    lib, slicerlib = Path(MRSynthLib.__file__).parent, Path(sys.modules["MRSynthSlicerLib"].__file__).parent
    with open(lib / "contrasts.py", "a", encoding="utf-8") as f:
        f.write('\nGADOLINIUM_NOTE = "edited before Reload"\n')
    with open(slicerlib / "UserErrors.py", "a", encoding="utf-8") as f:
        f.write("\nEDITED_BEFORE_RELOAD = True\n")
    old = {n: m for n, m in sys.modules.items() if n.partition(".")[0] in ("MRSynthLib", "MRSynthSlicerLib")}
    widget.onReload()
    new = harness.WIDGETS[-1]
    return {"self_test": failure or "passed", "installs": gui.installer.calls,
            "note_after_reload": new.ui.gadoliniumNoteLabel.text,
            "slicerlib_edit_seen": hasattr(sys.modules["MRSynthSlicerLib.UserErrors"], "EDITED_BEFORE_RELOAD"),
            "stale_after_reload": sorted(n for n, m in old.items() if sys.modules.get(n) is m),
            "new_panel": new is not widget}


def main() -> dict:
    if importlib.util.find_spec("MRSynthLib") is not None:
        raise SystemExit("MRSynthLib is importable before MRSynth.py ran: the interpreter is not isolated")
    import pytest
    import slicer_gui_fakes as fakes
    import slicer_module_harness as harness

    module = Path(MODULE_PY)
    fakes.MODULE, fakes.UI = module, module.parent / "Resources" / "UI" / "MRSynth.ui"
    mp = pytest.MonkeyPatch()
    try:
        mod, slicer, gui = harness.load_module(mp, Path(WORK), testing=MODE == "selftest")
        asked_ui: list[str] = []
        fake_load = slicer.util.loadUI
        mp.setattr(slicer.util, "loadUI", lambda path: (asked_ui.append(str(path)), fake_load(path))[1])
        import MRSynthLib
        from MRSynthLib import process, registry

        default = registry.load_registry()["default"]
        widget = harness.make_widget(mod)
        report = {
            "mrsynthlib": MRSynthLib.__file__, "slicerlib": sys.modules["MRSynthSlicerLib"].__file__,
            "resources": str(registry.resources_dir()), "default": default,
            "models": [m["id"] for m in registry.list_models()],
            "default_bundle": str(registry.resolve_model(None).folder),  # every ONNX graph hashed
            "model_labels": [widget.ui.modelComboBox.itemText(i) for i in range(widget.ui.modelComboBox.count)],
            "child_pythonpath": process.module_pythonpath(), "ui": asked_ui,
            "default_in_panel": widget.ui.modelComboBox.findData(default) >= 0,
            "sys_path": list(sys.path),
        }
        if MODE == "synthesize":
            report["synth"] = synthesize_phantom(MRSynthLib)
        if MODE == "selftest":
            report["selftest"] = self_test_then_reload(mod, gui, harness, mp, widget)
        harness.close_widgets()
    finally:
        mp.undo()
    files = [getattr(m, "__file__", None) or "" for m in list(sys.modules.values())]
    repo = str(Path(REPO)) + os.sep
    site = tuple(str(Path(p)) + os.sep for p in SITE.split(os.pathsep))  # the venv may lie inside the repository
    report["from_repo"] = sorted({f for f in files if f.startswith(repo) and not f.startswith(site)})
    return report


if __name__ == "__main__":
    print(json.dumps(main()))
