"""Install-side logic of the MRSynth module: dependencies, device check, model cache, sample data.

Kept out of ``MRSynth.py`` so the module file stays a thin Module/Widget/Logic/Test. Dependencies are
installed only after the user agrees, with Slicer's own installer. Inside Slicer the module runs ONNX
Runtime only; it never installs or imports torch.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import os
import shutil

import slicer

# onnxruntime is pinned to the version the tests run with; an onnxruntime already present (for example
# onnxruntime-gpu, which installs the same module) is used as it is.
REQUIREMENTS = {"onnxruntime": "onnxruntime==1.31.1", "tqdm": "tqdm>=4.60", "nibabel": "nibabel>=5.0"}
# Placeholder URL until the release assets are published; checksums are of the files `mrsynth demo` writes.
SAMPLE_URL = "https://github.com/MRSynth/SlicerMRSynth/releases/download/sample-data-v1/"
SAMPLE_FILES = {  # simulate_subject(7, shape=(144, 176, 144)), written by MRSynthLib.io.write_volume
    "T1": ("sim_T1_input.nii.gz",
           "SHA256:3af7cb7101f4100e77f2aef937bc94d224441a89ede9d99e07897d848fe19c09"),
    "T1Gd": ("sim_T1Gd_input.nii.gz",
           "SHA256:aa09c9d5678653d78ad360d1b64ebda18a7fb6a167b7b1be8c7c11aa53ab062a"),
    "T2": ("sim_T2_input.nii.gz",
           "SHA256:03a9d2e607b46e2c515ace63c81dcddf9a5508865b7866cf78b4444a4c80fcf1"),
}


def registerSampleData():
    """Add "MRSynth sample brain" (a simulated subject: T1, T1Gd, T2) to the Sample Data module."""
    import SampleData

    icons = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "Resources", "Icons")
    SampleData.SampleDataLogic.registerCustomSampleDataSource(
        category="MRSynth", sampleName="MRSynth sample brain",
        thumbnailFileName=os.path.join(icons, "MRSynth.png"),
        uris=[SAMPLE_URL + f for f, _ in SAMPLE_FILES.values()], fileNames=[f for f, _ in SAMPLE_FILES.values()],
        nodeNames=[f"MRSynthSample_{c}" for c in SAMPLE_FILES], checksums=[s for _, s in SAMPLE_FILES.values()],
        loadFileTypes=["VolumeFile"] * len(SAMPLE_FILES))


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
        return [req for module, req in REQUIREMENTS.items() if importlib.util.find_spec(module) is None]

    def ensureDependencies(self, confirm: bool = True) -> None:
        """Install the missing inference dependencies with Slicer's own installer, after asking.

        A declined install or a pip failure raises one-line ``MRSynthError`` (the panel shows it as a
        line and a warning, the console as the error), never a pip traceback.
        """
        from MRSynthLib.errors import MRSynthError

        missing = self.missingDependencies()
        if not missing:
            return
        names = ", ".join(missing)
        try:
            installer = _slicerPackaging()
            if installer is not None:
                installer.pip_ensure(_requirements(missing), prompt_install=confirm, requester="MRSynth")
            else:
                if confirm and not slicer.util.confirmOkCancelDisplay(
                        f"MRSynth needs {names} (CPU inference, about 20 MB). Install now?"):
                    raise MRSynthError(f"installation of {names} was declined; nothing was run")
                slicer.util.pip_install(" ".join(missing))
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
        from MRSynthLib.errors import MRSynthError
        from MRSynthLib.registry import list_models

        try:
            models = [(m["id"], f"{m['id']} (v{m.get('version', '?')})") for m in list_models()]
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
