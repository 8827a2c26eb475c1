"""Install-side logic of the MRSynth module: dependencies, Slicer version, device check, model cache.

Kept out of ``MRSynth.py`` so the module file stays a thin Module/Widget/Logic/Test. Dependencies are the
ranges of ``Resources/requirements.txt``, installed only after the user agrees, with Slicer's own
installer; in testing mode (Slicer's build server, *Reload and Test*) they are installed without asking,
because the self-test needs them. Inside Slicer the module runs ONNX Runtime only; it never installs or
imports torch.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import inspect
import shutil
import sys
from pathlib import Path

import slicer

REQUIREMENTS_FILE = Path(__file__).resolve().parent.parent / "Resources" / "requirements.txt"
MIN_PYTHON = (3, 11)  # onnxruntime's current wheels and numpy 2
MIN_SLICER = (5, 10)  # the first Slicer release whose Python is >= 3.11 (3.12)
GPU_RUNTIME = "onnxruntime-gpu"  # same Python module as onnxruntime, with the CUDA provider


def requirements() -> dict[str, str]:
    """Python module → requirement line of ``Resources/requirements.txt`` (comments and pip options skipped,
    as Slicer's ``load_requirements`` does); the distribution names are the module names here."""
    from packaging.requirements import Requirement

    out = {}
    for line in REQUIREMENTS_FILE.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "-")):
            out[Requirement(line).name.replace("-", "_")] = line
    return out


def _slicerVersion() -> tuple[int, int] | None:
    app = getattr(slicer, "app", None)
    major, minor = getattr(app, "majorVersion", None), getattr(app, "minorVersion", None)
    return (int(major), int(minor)) if major is not None and minor is not None else None


def versionProblem(python: tuple[int, int] | None = None, slicerVersion: tuple[int, int] | None = None) -> str:
    """One line when this Slicer is too old for MRSynth's dependencies, else "" (defaults: this Slicer)."""
    python = tuple(python or sys.version_info[:2])
    slicerVersion = slicerVersion or _slicerVersion()
    if python >= MIN_PYTHON and (slicerVersion is None or tuple(slicerVersion) >= MIN_SLICER):
        return ""
    this = f"Slicer {slicerVersion[0]}.{slicerVersion[1]}, " if slicerVersion else ""
    return (f"MRSynth needs Slicer {MIN_SLICER[0]}.{MIN_SLICER[1]} or newer, whose Python is "
            f"{MIN_PYTHON[0]}.{MIN_PYTHON[1]} or newer (onnxruntime needs it); this is {this}Python "
            f"{python[0]}.{python[1]}. Install a current Slicer from https://download.slicer.org")


def _testingEnabled() -> bool:
    app = getattr(slicer, "app", None)
    return bool(app is not None and hasattr(app, "testingEnabled") and app.testingEnabled())


def _slicerPackaging():
    """Slicer's installer module with ``pip_ensure``: ``slicer.packaging`` (Slicer 5.11+), or
    ``slicer.pydeps`` (its name in some 5.11 preview builds); None on older Slicers. Imported by name:
    ``getattr(slicer, "packaging")`` would be None until something imported the submodule."""
    for name in ("slicer.packaging", "slicer.pydeps"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if hasattr(module, "pip_ensure"):
            return module
    return None


@functools.cache
def _nvidiaDriver() -> bool:
    """An NVIDIA driver on this machine (its ``nvidia-smi``); asked once: the panel redraws often."""
    return shutil.which("nvidia-smi") is not None


@functools.cache
def _onnxProviders() -> tuple[str, ...] | None:
    """onnxruntime's execution providers, or None when it is not installed yet (asked once)."""
    if importlib.util.find_spec("onnxruntime") is None:
        return None
    import onnxruntime

    return tuple(onnxruntime.get_available_providers())


def _requirements(specs: list[str]) -> list:
    """``pip_ensure`` takes ``packaging`` Requirement objects."""
    from packaging.requirements import Requirement

    return [Requirement(spec) for spec in specs]


class InstallLogic:
    """Dependencies, devices and the model cache: everything that touches the user's installation."""

    # --- dependencies ----------------------------------------------------------------------------
    @staticmethod
    def missingDependencies() -> list[str]:
        """Requirement lines whose module cannot be imported (an onnxruntime already installed — e.g.
        onnxruntime-gpu, same module — is used as it is)."""
        return [req for module, req in requirements().items() if importlib.util.find_spec(module) is None]

    @staticmethod
    def _withGpuRuntime(missing: list[str], confirm: bool) -> list[str]:
        """Offer onnxruntime-gpu (same range) instead of onnxruntime when an NVIDIA driver is present."""
        runtime = requirements()["onnxruntime"]
        if runtime not in missing or not confirm or not _nvidiaDriver():
            return missing
        if not slicer.util.confirmYesNoDisplay(
                "This computer has an NVIDIA GPU. Install onnxruntime-gpu, which runs MRSynth on the GPU "
                "(about 300 MB; needs the CUDA 12 and cuDNN 9 runtime libraries), instead of the CPU-only "
                "onnxruntime (about 20 MB)?", windowTitle="MRSynth"):
            return missing
        gpu = GPU_RUNTIME + runtime.removeprefix("onnxruntime")
        return [gpu if req == runtime else req for req in missing]

    def ensureDependencies(self, confirm: bool = True) -> None:
        """Install the missing inference dependencies with Slicer's own installer, after asking.

        A Slicer too old for them, a declined install or a pip failure raises one-line ``MRSynthError``
        (the panel shows it as a line and a warning, the console as the error), never a pip traceback.
        In testing mode nothing is asked and the installer is told not to skip (its default there).
        """
        from MRSynthLib.errors import MRSynthError

        missing = self.missingDependencies()
        if not missing:
            return
        problem = versionProblem()
        if problem:
            raise MRSynthError(problem)
        confirm = confirm and not _testingEnabled()  # nobody answers dialogs on a build server
        missing = self._withGpuRuntime(missing, confirm)
        names = ", ".join(missing)
        try:
            installer = _slicerPackaging()
            if installer is not None:
                options = {"prompt_install": confirm, "requester": "MRSynth"}
                if "skip_in_testing" in inspect.signature(installer.pip_ensure).parameters:
                    options["skip_in_testing"] = False  # the self-test needs them: install in testing mode too
                installer.pip_ensure(_requirements(missing), **options)
            else:
                if confirm and not slicer.util.confirmOkCancelDisplay(
                        f"MRSynth needs {names} (CPU inference, about 20 MB). Install now?"):
                    raise MRSynthError(f"installation of {names} was declined; nothing was run")
                slicer.util.pip_install(missing)  # a list: each item one argument (a range holds "<")
        except MRSynthError:
            raise
        except Exception as exc:  # noqa: BLE001 - pip, the dialog or a declined prompt: one line, no traceback
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise MRSynthError(f"installation of {names} did not complete ({reason}); nothing was run") from None
        importlib.invalidate_caches()  # pip ran in another process: let find_spec see what it installed
        _onnxProviders.cache_clear()
        still = self.missingDependencies()
        if still:
            raise MRSynthError(f"{', '.join(still)} still missing after installation; restart Slicer and try again")

    @staticmethod
    def deviceWarning(device: str) -> str:
        """The panel's device line: CUDA asked for but impossible, or (``auto``) an NVIDIA GPU on this machine
        that the installed onnxruntime cannot use — so the GPU is never left unused without a word."""
        gpuHere = device == "auto" and _nvidiaDriver()
        if not device.startswith("cuda") and not gpuHere:
            return ""
        providers = _onnxProviders()
        if providers is None or "CUDAExecutionProvider" in providers:
            return ""
        if gpuHere:
            return ("This machine has an NVIDIA GPU but this onnxruntime has no CUDA provider: 'auto' runs on "
                    "the CPU. Install onnxruntime-gpu to use the GPU.")
        return ("CUDA requested but this onnxruntime has no CUDA provider: the run will refuse to start. "
                "Choose 'cpu' or 'auto', or install onnxruntime-gpu.")

    # --- models ----------------------------------------------------------------------------------
    @staticmethod
    def cacheFolder(create: bool = False):
        from MRSynthLib.registry import cache_dir

        folder = cache_dir()
        if create:
            folder.mkdir(parents=True, exist_ok=True)
        return folder

    @staticmethod
    def availableModels() -> list[tuple[str, str]]:
        """(model spec, label) for the model box: the default, each registered model (those neither shipped
        nor in the cache are labelled for *Download*), then the imported cards."""
        from MRSynthLib.errors import MRSynthError
        from MRSynthLib.registry import list_models, resources_dir

        folders = (resources_dir() / "Models", InstallLogic.cacheFolder())
        try:
            models = [(m["id"], f"{m['id']} (v{m.get('version', '?')}"
                       + ("" if any((f / m["card"]["name"]).exists() for f in folders) else "; not installed: Download")
                       + ")") for m in list_models()]
        except MRSynthError:
            models = []
        cached = sorted(InstallLogic.cacheFolder().glob("*.json")) if InstallLogic.cacheFolder().exists() else []
        models += [(str(p), f"{p.stem} (imported)") for p in cached if p.stem not in {m for m, _ in models}]
        return [("", "default"), *models]

    def importModel(self, card_path: str) -> str:
        """Copy a model card and its files into the cache after checking every SHA256."""
        from pathlib import Path

        from MRSynthLib.errors import MRSynthError
        from MRSynthLib.registry import resolve_model

        bundle = resolve_model(card_path, roles=())
        folder = self.cacheFolder(create=True)
        names = [spec["name"] for spec in bundle.card["files"].values()]
        sources = [(bundle.folder / n, folder / n) for n in names] + [(Path(card_path), folder / Path(card_path).name)]
        for source, dest in sources:
            if dest.exists() and source.resolve() == dest.resolve():
                continue  # the card already sits in the cache (copied there by hand): nothing to copy
            try:
                shutil.copy2(source, dest)
            except OSError as exc:
                raise MRSynthError(f"could not copy {source.name} into the model cache {folder}: "
                                   f"{exc.strerror or exc}") from None
        return bundle.id

    @staticmethod
    def downloadModel(modelId: str, progress=None) -> str:
        """Fetch a registered model into the cache (``MRSynthLib.download``: SHA256-checked, all or nothing);
        returns the card's path. ``progress(done, total, name)`` is called per chunk (from the caller's thread)."""
        from MRSynthLib.download import download_model

        return str(download_model(modelId, progress=progress))

    def clearCache(self) -> None:
        shutil.rmtree(self.cacheFolder(), ignore_errors=True)
