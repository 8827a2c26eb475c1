"""The extension as Slicer gets it: built, installed and packaged by real CMake, then run without the repository.

No Slicer build exists here, so ``Testing/cmake_standin`` stands in for the ``SlicerConfig.cmake`` an
extension build finds; its macros place files as Slicer's and CTK's do (its README says what it leaves
out). The install tree is checked where Slicer looks, and holds what Slicer runs only: the registry's
default model as ONNX graphs and card (no torch weights, no other model), the module, the engine and the
sample brain. Its MRSynth.py is then loaded in an interpreter that cannot import the repository
(``python -S``: no editable install, no source tree on sys.path) — set up, synthesize, the self-test in
Slicer's testing mode, *Reload* after an edit — and so is the source tree's MRSynth.py, as after
"Add module path".
"""

from __future__ import annotations

import filecmp
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TESTING = ROOT / "Testing"
STANDIN = TESTING / "cmake_standin"
MODULE_DIR = ROOT / "MRSynth"
SCRIPTED = "lib/Slicer-5.10/qt-scripted-modules"  # Slicer_INSTALL_QTSCRIPTEDMODULES_LIB_DIR (stand-in: 5.10)
SHARE = "share/Slicer-5.10"


@dataclass
class Extension:
    prefix: Path  # the install tree (what the Extension Manager unpacks)
    build: Path
    package: set[str]  # files of the CPack archive, its top folder stripped
    tests: set[str]  # ctest names registered by the build


def _run(cmd: list[str], cwd: Path | None = None) -> str:
    out = subprocess.run(cmd, capture_output=True, text=True, encoding="utf-8", cwd=cwd, timeout=300)
    assert out.returncode == 0, f"{' '.join(cmd)} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out.stdout


def _files(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def _default_model_files() -> list[str]:
    """What Slicer runs of the models: the registry's default model's card and ONNX graphs."""
    registry = json.loads((ROOT / "Resources" / "Models.json").read_text(encoding="utf-8"))
    entry = next(m for m in registry["models"] if m["id"] == registry["default"])
    return [entry["card"]["name"], *(f["name"] for f in entry["files"].values() if f["name"].endswith(".onnx"))]


def _sources() -> dict[str, Path]:
    """Install-tree path → source file for every file the extension must ship, taken from the disk and the
    registry (not from the CMake lists): a file left out of a list shows up as not installed."""
    def under(folder: Path, base: Path, pattern: str) -> dict[str, Path]:
        return {f"{SCRIPTED}/{p.relative_to(base).as_posix()}": p for p in folder.rglob(pattern)
                if p.is_file() and "__pycache__" not in p.parts}

    models = ROOT / "Resources" / "Models"  # resources_dir(): <MRSynthLib>/../Resources
    return (under(MODULE_DIR, MODULE_DIR, "*.py") | under(ROOT / "MRSynthLib", ROOT, "*.py")
            | under(MODULE_DIR / "Resources", MODULE_DIR, "*")  # resourcePath(): <dir of MRSynth.py>/Resources
            | {f"{SCRIPTED}/Resources/Models/{n}": models / n for n in _default_model_files()}
            | {f"{SCRIPTED}/Resources/Models.json": ROOT / "Resources" / "Models.json"})


@pytest.fixture(scope="module")
def extension(tmp_path_factory: pytest.TempPathFactory) -> Extension:
    """Configure, build, install and package the extension against the stand-in Slicer."""
    cmake, cpack, ctest = (shutil.which(t) for t in ("cmake", "cpack", "ctest"))
    if cmake is None or cpack is None or ctest is None:
        pytest.skip("cmake/cpack/ctest are not on PATH: the extension's CMake cannot be run")
    work = tmp_path_factory.mktemp("extension").resolve()
    build, prefix = work / "build", work / "install"
    generator = ["-G", "Ninja"] if shutil.which("ninja") else []
    _run([cmake, "-S", str(ROOT), "-B", str(build), *generator, f"-DSlicer_DIR={STANDIN}",
          f"-DPYTHON_EXECUTABLE={sys.executable}", f"-DCMAKE_INSTALL_PREFIX={prefix}"])
    _run([cmake, "--build", str(build)])
    _run([cmake, "--install", str(build), "--prefix", str(prefix)])
    _run([cpack, "-G", "TGZ"], cwd=build)
    (archive,) = build.glob("*.tar.gz")
    with tarfile.open(archive) as tar:
        package = {m.name.split("/", 1)[1] for m in tar.getmembers() if m.isfile()}
    listed = json.loads(_run([ctest, "--show-only=json-v1"], cwd=build))
    return Extension(prefix, build, package, {t["name"] for t in listed["tests"]})


def test_install_tree_holds_every_file_where_slicer_looks(extension: Extension) -> None:
    """Each script, the .ui, the icon, the requirements, the sample brain, Models.json and the default model,
    byte for byte, at the path Slicer (module scan, resourcePath) and MRSynthLib.registry look at; nothing
    else (no Testing/, training/)."""
    installed, sources = _files(extension.prefix), _sources()
    missing = sorted(set(sources) - installed)
    assert not missing, f"not installed (left out of MRSynth/CMakeLists.txt?): {missing}"
    compiled = {f"{p}c" for p in sources if p.endswith(".py")}  # CTK byte-compiles each script beside it
    extra = sorted(installed - set(sources) - compiled - {f"{SHARE}/MRSynth.s4ext"})
    assert not extra, f"installed but not part of the module: {extra}"
    assert not [p for p in installed if {"Testing", "training", "mrsynth_train"} & set(p.split("/"))
                or p.rsplit("/", 1)[-1].startswith(("test_", "conftest"))]
    changed = [p for p, src in sources.items() if not filecmp.cmp(extension.prefix / p, src, shallow=False)]
    assert not changed, f"installed copy differs from its source: {changed}"
    qt = extension.prefix / SCRIPTED
    # Slicer registers every top-level .py of a module path as a module: only MRSynth.py may be there
    assert sorted(p.name for p in qt.glob("*.py")) == ["MRSynth.py"]
    assert "category Image Synthesis" in (extension.prefix / SHARE / "MRSynth.s4ext").read_text(encoding="utf-8")


def test_package_is_the_install_tree(extension: Extension) -> None:
    """What the Extension Manager downloads (the CPack archive) holds exactly the install tree."""
    assert extension.package == _files(extension.prefix)


def test_package_ships_what_slicer_runs_and_nothing_else(extension: Extension) -> None:
    """Of the models, the default's ONNX graphs and card only (read from Models.json by CMake): no torch
    weights, no superseded model (it stays downloadable through the registry), no training code."""
    registry = json.loads((ROOT / "Resources" / "Models.json").read_text(encoding="utf-8"))
    models = {p.rsplit("/", 1)[1] for p in extension.package if p.startswith(f"{SCRIPTED}/Resources/Models/")}
    assert models == set(_default_model_files()) and any(m.endswith(".onnx") for m in models)
    assert not [p for p in extension.package if p.endswith((".pt", ".pth", ".ckpt"))]
    others = [m for m in registry["models"] if m["id"] != registry["default"]]
    for entry in others:
        assert not ({entry["card"]["name"], *(f["name"] for f in entry["files"].values())} & models)
    assert not [p for p in extension.package if {"training", "mrsynth_train", "Testing"} & set(p.split("/"))]
    sample = {p.rsplit("/", 1)[1] for p in extension.package if p.startswith(f"{SCRIPTED}/Resources/SampleData/")}
    assert "README.md" in sample and len([s for s in sample if s.endswith(".nii.gz")]) == 4
    assert f"{SCRIPTED}/Resources/requirements.txt" in extension.package


def test_build_registers_the_module_tests(extension: Extension) -> None:
    """BUILD_TESTING (on by default in an extension build): MRSynth.py's unittest and Slicer's generic test."""
    assert extension.tests == {"py_MRSynth", "py_nomainwindow_qSlicerMRSynthModuleGenericTest"}
    assert not (extension.prefix / SCRIPTED / "qSlicerMRSynthModuleGenericTest.py").exists()


def _load_isolated(module_py: Path, work: Path, mode: str) -> dict:
    """Run cmake_standin/load_module_isolated.py under ``python -S -E -B`` from a copy beside copies of the
    GUI fakes, so that neither the editable install nor any folder of the repository is on sys.path."""
    driver = work / "driver"
    driver.mkdir()
    for f in (STANDIN / "load_module_isolated.py", TESTING / "slicer_gui_fakes.py", TESTING / "slicer_module_harness.py"):
        shutil.copy(f, driver / f.name)
    paths = sysconfig.get_paths()
    site = os.pathsep.join(dict.fromkeys((paths["purelib"], paths["platlib"])))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "MRSYNTH_"))}
    env["OMP_NUM_THREADS"] = "2"
    cmd = [sys.executable, "-S", "-E", "-B", str(driver / "load_module_isolated.py"), site, str(module_py),
           str(work / "home"), str(ROOT), mode]
    out = subprocess.run(cmd, capture_output=True, text=True, encoding="utf-8", cwd=driver, env=env, timeout=600)
    assert out.returncode == 0, f"loading {module_py} failed:\n{out.stderr[-4000:]}"
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_installed_module_runs_on_its_own(extension: Extension, tmp_path: Path) -> None:
    """The installed MRSynth.py, loaded as Slicer loads it, takes MRSynthLib, the registry and the default
    model from the install tree, sets up its panel and synthesizes; nothing comes from the repository."""
    pytest.importorskip("slicer")
    qt = extension.prefix / SCRIPTED
    report = _load_isolated(qt / "MRSynth.py", tmp_path, "synthesize")
    assert report["mrsynthlib"] == str(qt / "MRSynthLib" / "__init__.py")
    assert report["slicerlib"] == str(qt / "MRSynthSlicerLib" / "__init__.py")
    assert report["resources"] == str(qt / "Resources")
    assert report["default_bundle"] == str(qt / "Resources" / "Models")  # every graph hashed against Models.json
    assert report["default"] in report["models"] and report["default_in_panel"]
    others = [m for m in report["models"] if m != report["default"]]  # not shipped: the panel says Download
    assert [label for label in report["model_labels"] if "not installed: Download" in label] == [
        label for label in report["model_labels"] if label.split(" ")[0] in others]
    assert report["ui"] == [str(qt / "Resources" / "UI" / "MRSynth.ui")] and Path(report["ui"][0]).is_file()
    assert report["child_pythonpath"] == str(qt)  # the background `python -m MRSynthLib.cli` finds it too
    assert report["from_repo"] == [] and str(ROOT) not in report["sys_path"]
    synth = report["synth"]
    assert synth["shape"] == synth["truth_shape"] and synth["finite"]
    assert synth["corr"] > 0.1, f"the synthesized FLAIR does not follow the phantom's: {synth}"
    assert report["default"] in synth["descrip"] and synth["descrip"].startswith("SYNTHETIC FLAIR")
    assert synth["seconds"] < 15


def test_add_module_path_on_the_source_tree(tmp_path: Path) -> None:
    """"Add module path" <repo>/MRSynth: MRSynth.py puts the repository root on sys.path, so MRSynthLib
    and Resources/ beside MRSynth/ are used, and the panel sets up on a fresh scene."""
    pytest.importorskip("slicer")
    report = _load_isolated(MODULE_DIR / "MRSynth.py", tmp_path, "setup")
    assert report["mrsynthlib"] == str(ROOT / "MRSynthLib" / "__init__.py")
    assert report["slicerlib"] == str(MODULE_DIR / "MRSynthSlicerLib" / "__init__.py")
    assert report["sys_path"][:2] == [str(ROOT), str(MODULE_DIR)]  # root inserted by MRSynth.py, before the module dir
    assert report["resources"] == str(ROOT / "Resources")
    assert report["default"] in report["models"] and report["default_in_panel"]
    assert report["ui"] == [str(MODULE_DIR / "Resources" / "UI" / "MRSynth.ui")]
    assert report["child_pythonpath"] == str(ROOT)


def test_installed_module_self_tests_in_testing_mode_and_reloads(extension: Extension, tmp_path: Path) -> None:
    """On a copy of the install tree, as Slicer's build server runs it: the module's self-test in testing
    mode passes (the dependencies installed there too, the sample brain read from the extension itself, no
    network); then a file of MRSynthLib and one of MRSynthSlicerLib are edited and *Reload* is pressed: the
    new panel runs the edited code (no module of either package is the one loaded before)."""
    pytest.importorskip("slicer")
    copy = tmp_path / "install"
    shutil.copytree(extension.prefix, copy)
    report = _load_isolated(copy / SCRIPTED / "MRSynth.py", tmp_path, "selftest")
    run = report["selftest"]
    assert run["self_test"] == "passed", run["self_test"]
    assert run["installs"] and run["installs"][0]["skip_in_testing"] is False
    assert run["note_after_reload"] == "edited before Reload" and run["slicerlib_edit_seen"]
    assert run["stale_after_reload"] == [] and run["new_panel"]
    assert report["from_repo"] == [] and str(ROOT) not in report["sys_path"]
