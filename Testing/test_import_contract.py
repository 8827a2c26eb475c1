"""The import contract (#14): the engine ``MRSynthLib`` sits below the training package and the Slicer
module and imports neither; no module of ``MRSynthLib`` or ``mrsynth_train`` is in an import cycle
(import-linter's contracts in pyproject.toml, function-level imports counted); and no module imports
another module's private (underscore) name."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = (ROOT / "MRSynthLib", ROOT / "training" / "mrsynth_train")
LINT = ("import sys; from importlinter.cli import lint_imports; "
        "sys.exit(lint_imports(config_filename=sys.argv[1], no_cache=True, no_logo=True))")


def _lint(config: Path, cwd: Path, path: list[str]) -> subprocess.CompletedProcess:
    pytest.importorskip("importlinter", reason="import-linter is in requirements-dev.txt: run `make venv`")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path), "NO_COLOR": "1"}
    return subprocess.run([sys.executable, "-c", LINT, str(config)], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def test_engine_is_below_and_nothing_is_circular():
    done = _lint(ROOT / "pyproject.toml", ROOT, [str(ROOT / "training"), str(ROOT), *sys.path])
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_contract_sees_a_cycle_made_by_a_function_level_import(tmp_path):
    """Guard on the guard: a cycle whose one half is an import inside a function still breaks it."""
    pkg = tmp_path / "loop"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .b import B\n\nA = 1\n")
    (pkg / "b.py").write_text("def later():\n    from .a import A\n    return A\n\n\nB = 2\n")
    (tmp_path / "contract.toml").write_text(textwrap.dedent("""\
        [tool.importlinter]
        root_packages = ["loop"]

        [[tool.importlinter.contracts]]
        name = "no cycles"
        type = "acyclic_siblings"
        ancestors = ["loop"]
        """))
    done = _lint(tmp_path / "contract.toml", tmp_path, [str(tmp_path), *sys.path])
    assert done.returncode != 0 and ".b -> .a" in done.stdout + done.stderr, done.stdout + done.stderr


def private_imports(files, root: Path = ROOT) -> list[str]:
    """``file:line NAME`` for every import of an underscore name (``_x``, not ``__x__``) from another
    module, or of a private module, anywhere in the file (functions included)."""
    private = lambda name: name.startswith("_") and not name.endswith("__")  # noqa: E731
    found = []
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.ImportFrom):
                module = "." * node.level + (node.module or "")
                names = [f"{module}.{a.name}" for a in node.names if private(a.name)]
                names += [module] if any(private(part) for part in module.lstrip(".").split(".")) else []
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names if any(private(part) for part in a.name.split("."))]
            else:
                continue
            found += [f"{path.relative_to(root)}:{node.lineno} {name}" for name in names]
    return found


def test_no_module_imports_another_modules_private_names():
    files = [p for package in PACKAGES for p in sorted(package.rglob("*.py"))]
    assert len(files) > 60
    assert private_imports(files) == []


def test_the_private_name_check_reads_imports_inside_functions(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from .cli import _tqdm_progress\n    import pkg._impl\n", encoding="utf-8")
    ok = tmp_path / "ok.py"
    ok.write_text("from __future__ import annotations\nfrom .x import public as _alias\n", encoding="utf-8")
    assert private_imports([bad, ok], tmp_path) == ["bad.py:2 .cli._tqdm_progress", "bad.py:3 pkg._impl"]
