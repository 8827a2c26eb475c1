"""Extension packaging: the CMake lists match the files on disk, metadata is complete, imports stay light."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODULE_DIR = ROOT / "MRSynth"


def _cmake_sets(path: Path) -> dict[str, list[str]]:
    """``set(NAME a b c)`` blocks of a CMake file (comments dropped, ${MODULE_NAME} expanded)."""
    text = "\n".join(line.split("#", 1)[0] for line in path.read_text(encoding="utf-8").splitlines())
    module = re.search(r"set\(MODULE_NAME\s+(\w+)\)", text)
    out = {}
    for name, body in re.findall(r"set\((\w+)\s+([^)]*)\)", text, flags=re.S):
        values = body.split()
        if module:
            values = [v.replace("${MODULE_NAME}", module.group(1)) for v in values]
        out[name] = values
    return out


def test_module_scripts_and_resources_match_the_disk():
    sets = _cmake_sets(MODULE_DIR / "CMakeLists.txt")
    listed_scripts, listed_resources = set(sets["MODULE_PYTHON_SCRIPTS"]), set(sets["MODULE_PYTHON_RESOURCES"])
    on_disk_py = {p.relative_to(MODULE_DIR).as_posix() for p in MODULE_DIR.rglob("*.py") if "__pycache__" not in p.parts}
    on_disk_res = {p.relative_to(MODULE_DIR).as_posix() for p in (MODULE_DIR / "Resources").rglob("*") if p.is_file()}
    assert listed_scripts == on_disk_py, (f"not listed: {on_disk_py - listed_scripts}; "
                                          f"listed but missing: {listed_scripts - on_disk_py}")
    assert listed_resources == on_disk_res, (f"not listed: {on_disk_res - listed_resources}; "
                                             f"listed but missing: {listed_resources - on_disk_res}")


def test_engine_is_packaged_completely():
    sets = _cmake_sets(MODULE_DIR / "CMakeLists.txt")
    listed = set(sets["MRSYNTHLIB_PYTHON_SCRIPTS"])
    lib = ROOT / "MRSynthLib"
    on_disk = {p.relative_to(ROOT).as_posix() for p in lib.rglob("*.py") if "__pycache__" not in p.parts}
    assert listed == on_disk, f"not listed: {on_disk - listed}; listed but missing: {listed - on_disk}"
    data = {p.relative_to(ROOT).as_posix() for p in lib.rglob("*")
            if p.is_file() and p.suffix != ".py" and "__pycache__" not in p.parts and p.suffix != ".pyc"}
    resources = set(sets["MRSYNTHLIB_RESOURCES"])
    assert data <= resources, f"engine data files not packaged: {data - resources}"
    assert "Resources/Models.json" in resources and (ROOT / "Resources" / "Models.json").exists()
    cmake = (MODULE_DIR / "CMakeLists.txt").read_text(encoding="utf-8")
    # the models shipped are read from the registry (test_extension_install.py checks which files)
    assert "string(JSON" in cmake and "Resources/Models.json" in cmake and "SOURCE_DIR ${CMAKE_CURRENT_SOURCE_DIR}/.." in cmake
    for value in resources - {"${MRSYNTH_MODEL_FILES}"}:
        assert (ROOT / value).exists(), value


def test_extension_metadata_is_complete():
    text = (ROOT / "CMakeLists.txt").read_text(encoding="utf-8")
    meta = dict(re.findall(r'set\((EXTENSION_\w+)\s+"([^"]*)"\)', text))
    for key in ("HOMEPAGE", "CATEGORY", "CONTRIBUTORS", "DESCRIPTION", "ICONURL", "SCREENSHOTURLS", "DEPENDS"):
        assert meta.get(f"EXTENSION_{key}"), key
    assert meta["EXTENSION_CATEGORY"] == "Image Synthesis"
    assert "add_subdirectory(MRSynth)" in text and "Slicer_EXTENSION_CPACK" in text
    assert meta["EXTENSION_ICONURL"].endswith("MRSynth/Resources/Icons/MRSynth.png")
    prefix = "https://raw.githubusercontent.com/MRSynth/SlicerMRSynth/main/"
    for url in (meta["EXTENSION_ICONURL"], *meta["EXTENSION_SCREENSHOTURLS"].split()):
        assert url.startswith(prefix) and (ROOT / url.removeprefix(prefix)).is_file(), f"{url}: no such file here"
    entry = json.loads((ROOT / "MRSynth.json").read_text(encoding="utf-8"))
    assert re.search(r"catalog-entry-schema-v1\.0\.\d+\.json", entry["$schema"])
    allowed = {"$schema", "category", "scm_url", "scm_revision", "scm_type", "build_dependencies",
               "build_subdirectory", "enabled", "tier"}  # the schema has additionalProperties: false
    assert set(entry) <= allowed, set(entry) - allowed
    assert entry["category"] == meta["EXTENSION_CATEGORY"]
    assert entry["scm_url"].startswith("https://") and entry["scm_revision"] and entry["build_subdirectory"]
    assert isinstance(entry["build_dependencies"], list) and entry["tier"] in (1, 3, 5)
    assert "slicerMacroBuildScriptedModule" in (MODULE_DIR / "CMakeLists.txt").read_text(encoding="utf-8")


def test_icon_is_128_square():
    from PIL import Image

    with Image.open(MODULE_DIR / "Resources" / "Icons" / "MRSynth.png") as im:
        assert im.size == (128, 128)


def test_engine_imports_stay_light():
    """Slicer starts fast and works without torch: no heavy or GUI import when the engine is imported."""
    code = ("import sys, MRSynthLib.mrml, MRSynthLib.preview, MRSynthLib.process, MRSynthLib.cli, "
            "MRSynthLib.mrml_reader_study, MRSynthLib.reader_study_score; "
            "print([m for m in ('torch', 'onnxruntime', 'PySide6', 'qt', 'slicer', 'vtk', 'SimpleITK') "
            "if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, encoding="utf-8", cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
