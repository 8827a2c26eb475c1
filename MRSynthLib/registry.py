"""Model registry (``Resources/Models.json``), the user cache folder and SHA256 checks.

A model is a *bundle*: a card (JSON: architecture, contrasts, normalization, metrics, mean styles)
next to its files (generator ONNX, style-encoder ONNX, torch weights). Every file is hashed before
use; a mismatch is refused, so a tampered or truncated model never runs.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from .errors import MRSynthError


def resources_dir() -> Path:
    """``Resources/`` of the source tree, of the Slicer extension or of the installed package."""
    env = os.environ.get("MRSYNTH_RESOURCES")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "Resources", here / "Resources"):
        if (candidate / "Models.json").exists():
            return candidate
    import importlib.util  # installed copy (pip install .): the data package mrsynth_resources

    spec = importlib.util.find_spec("mrsynth_resources")
    for location in (spec.submodule_search_locations or []) if spec else []:
        if (Path(location) / "Models.json").exists():
            return Path(location)
    return here.parent / "Resources"


def user_cache_base() -> Path:
    """The platform's per-user cache folder for MRSynth: ``%LOCALAPPDATA%\\MRSynth\\Cache`` on Windows,
    ``~/Library/Caches/MRSynth`` on macOS, ``$XDG_CACHE_HOME/mrsynth`` (default ``~/.cache/mrsynth``) elsewhere."""
    if sys.platform == "win32":
        local = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(local) / "MRSynth" / "Cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "MRSynth"
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    return (Path(xdg) if os.path.isabs(xdg) else Path.home() / ".cache") / "mrsynth"  # XDG: relative = unset


def cache_dir() -> Path:
    """Per-user folder for downloaded or imported models (``MRSYNTH_CACHE`` overrides the platform's)."""
    env = os.environ.get("MRSYNTH_CACHE")
    return (Path(env) if env else user_cache_base()) / "models"


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_registry() -> dict:
    path = resources_dir() / "Models.json"
    if not path.exists():
        raise MRSynthError("model registry not found", str(path))
    return json.loads(path.read_text(encoding="utf-8"))


def list_models() -> list[dict]:
    return list(load_registry().get("models", []))


@dataclass(frozen=True)
class ModelBundle:
    card: dict
    folder: Path
    card_path: Path | None = None  # for error messages: the card is what the user must fix

    def file(self, role: str) -> Path:
        if role not in self.card["files"]:
            raise MRSynthError(f"model card lists no '{role}' file", self.card_name)
        return self.folder / self.card["files"][role]["name"]

    @property
    def id(self) -> str:
        return str(self.card.get("id", self.folder.name))

    @property
    def card_name(self) -> str:
        return str(self.card_path or self.folder / f"{self.id}.json")

    def require(self, *keys: str) -> None:
        """Refuse a card without ``keys`` with one line naming the card (not a KeyError later)."""
        missing = [k for k in keys if k not in self.card]
        if missing:
            raise MRSynthError(f"model card has no {', '.join(repr(k) for k in missing)}", self.card_name)


def _check(path: Path, expected: str) -> None:
    if not path.exists():
        raise MRSynthError("model file missing", str(path))
    actual = sha256(path)
    if actual != expected:
        raise MRSynthError(f"SHA256 mismatch (expected {expected[:12]}…, got {actual[:12]}…); "
                           "the model file is corrupt or was tampered with, refusing to load", str(path))


def backend_roles(backend: str) -> tuple[str, ...] | None:
    """The files a backend reads (and so hashes): torch the weights, onnxruntime every graph (None)."""
    return ("weights",) if backend == "torch" else None


def _read_card(card_path: Path) -> dict:
    """The card as a dict whose ``files`` entries all have a name and a SHA256; one line otherwise
    (``--model weights.pt`` reads a binary file: not a card)."""
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise MRSynthError("not a model card (binary, not JSON text); pass the card (.json), its ONNX "
                           "file or a registered id", str(card_path)) from None
    except (OSError, json.JSONDecodeError) as exc:
        raise MRSynthError(f"unreadable model card ({exc.__class__.__name__})", str(card_path)) from None
    if not isinstance(card, dict) or not isinstance(card.get("files"), dict):
        raise MRSynthError("not a model card (no 'files')", str(card_path))
    for role, entry in card["files"].items():
        if not (isinstance(entry, dict) and isinstance(entry.get("name"), str)
                and isinstance(entry.get("sha256"), str)):
            raise MRSynthError(f"model card entry files.{role} needs a 'name' and a 'sha256'", str(card_path))
    return card


def _bundle_from_card(card_path: Path, expected: dict | None = None,
                      roles: tuple[str, ...] | None = ()) -> ModelBundle:
    card = _read_card(card_path)
    files = expected or card["files"]
    if roles is None:  # every ONNX graph of the bundle: unified, one-hot or one per direction
        roles = tuple(r for r in files if r != "weights")
    for role in roles or tuple(files):
        if role in files:
            _check(card_path.parent / files[role]["name"], files[role]["sha256"])
    return ModelBundle(card, card_path.parent, card_path)


def resolve_model(spec: str | None = None, roles: tuple[str, ...] | None = None) -> ModelBundle:
    """``None`` → registry default; an id → the registry entry (bundled or cached);
    a path → a card JSON, or an ONNX file next to ``<stem>.json``. Only ``roles`` are hashed
    (None: every file but the torch weights; (): all)."""
    registry = load_registry()
    name = spec or registry.get("default")
    for entry in registry.get("models", []):
        if entry["id"] == name:
            for folder in (resources_dir() / "Models", cache_dir()):
                card_path = folder / entry["card"]["name"]
                if card_path.exists():
                    _check(card_path, entry["card"]["sha256"])
                    return _bundle_from_card(card_path, entry["files"], roles)
            raise MRSynthError(f"model '{name}' is registered but not installed: `mrsynth models --download "
                               f"{name}` fetches it into {cache_dir()} (SHA256-checked), or import its files")
    path = Path(str(name))
    if path.suffix == ".onnx":  # any graph of a bundle names its card: <id>.onnx, <id>-style.onnx, <id>-T1_to_T2.onnx
        stem = re.sub(r"-(style|[A-Za-z0-9]+_to_[A-Za-z0-9]+)$", "", path.name.removesuffix(".onnx"))
        path = path.with_name(stem + ".json")
    if path.is_dir():
        cards = sorted(path.glob("*.json"))
        if len(cards) != 1:
            raise MRSynthError("folder must hold exactly one model card (*.json)", str(path))
        path = cards[0]
    if not path.exists():
        known = ", ".join(e["id"] for e in registry.get("models", []))
        raise MRSynthError(f"unknown model (not a registered id — known: {known} — nor an existing file)", str(name))
    return _card_at_path(path, registry, roles)


def _card_at_path(card_path: Path, registry: dict, roles: tuple[str, ...] | None) -> ModelBundle:
    """A card given by path. One that claims a registered id must be that registered card, byte for byte
    (SHA256 in the registry), and its files are checked against the registry: an edited card or file
    keeping a registered id is refused, so no output is ever labelled as a registered model it is not."""
    claimed = ModelBundle(_read_card(card_path), card_path.parent, card_path).id
    entry = next((e for e in registry.get("models", []) if e.get("id") == claimed), None)
    if entry is None:
        return _bundle_from_card(card_path, None, roles)  # a custom model, under its own id
    if sha256(card_path) != entry["card"]["sha256"]:
        raise MRSynthError(f"model card claims the registered id '{claimed}' but is not its registered card "
                           "(SHA256 differs from Models.json: edited, or another model); give a custom model "
                           "its own 'id'", str(card_path))
    return _bundle_from_card(card_path, entry["files"], roles)


INTERFACES = ("unified", "onehot", "pairwise")


def model_settings(bundle: ModelBundle):
    """The card's settings for a backend: id, 2.5D context (``arch.context``: neighbouring slices per side;
    0 for older cards), intensity templates and calibrated targets (``MRSynthLib.calibration``), the uncertainty map's error model
    (``MRSynthLib.confidence``)."""
    from .backends import ModelSettings
    from .calibration import parse_calibrate_strength, parse_calibrate_targets, parse_templates
    from .confidence import parse_error_model

    raw = bundle.card.get("intensity_templates") or {}
    try:
        return ModelSettings(model_id=bundle.id, context=int(bundle.card.get("arch", {}).get("context", 0)),
                             intensity_templates=parse_templates(raw.get("contrasts")),
                             calibrate_targets=parse_calibrate_targets(raw),
                             calibrate_strength=parse_calibrate_strength(raw),
                             error_model=parse_error_model(bundle.card.get("confidence"), f"model {bundle.id}"))
    except MRSynthError as exc:
        raise MRSynthError(str(exc), bundle.card_name) from None


def load_backend(bundle: ModelBundle, backend: str = "onnx", device: str = "auto", amp: bool = False,
                 threads: int | None = None):
    """Instantiate the chosen backend for a bundle.

    The card's ``interface`` says what the ONNX graphs expect: ``unified`` (style code + style encoder),
    ``onehot`` (a multi-input generator steered by a one-hot target: CollaGAN, Hyper-GAN, MIST) or
    ``pairwise`` (one single-source graph per direction: CycleGAN, UNIT, supervised, simple).
    ``threads``: onnxruntime's intra-op threads (None: its default, one per core)."""
    import numpy as np

    interface = bundle.card.get("interface", "unified")
    if interface not in INTERFACES:
        raise MRSynthError(f"unknown model interface '{interface}' (known: {', '.join(INTERFACES)})",
                           bundle.card_name)
    if backend == "onnx":
        from .backends.onnx_backend import OnnxBackend, PairwiseOnnxBackend

        bundle.require("mean_styles")
        try:
            mean_styles = np.asarray(bundle.card["mean_styles"], dtype=np.float32)
        except (TypeError, ValueError):
            raise MRSynthError("model card 'mean_styles' is not a numeric table", bundle.card_name) from None
        if interface == "pairwise":
            graphs = {key: bundle.file(key) for key in bundle.card["files"] if "_to_" in key}
            return PairwiseOnnxBackend(graphs, mean_styles, model_settings(bundle), device=device,
                                       threads=threads)
        style = bundle.file("style") if "style" in bundle.card["files"] else None
        return OnnxBackend(bundle.file("generator"), style, mean_styles, model_settings(bundle), device=device,
                           threads=threads)
    if backend == "torch" and interface != "unified":
        raise MRSynthError(f"model '{bundle.id}' ({bundle.card.get('recipe')}) is exported for onnxruntime only; "
                           "use --backend onnx")
    if backend == "torch":
        from .backends.torch_backend import TorchBackend

        bundle.require("arch")
        _check(bundle.file("weights"), bundle.card["files"]["weights"]["sha256"])
        return TorchBackend(bundle.file("weights"), bundle.card["arch"], model_settings(bundle), device=device,
                            amp=amp)
    raise MRSynthError(f"unknown backend '{backend}' (use onnx or torch)")
