"""MRSynthLib: the Qt-free engine of MRSynth (multi-contrast brain MR synthesis).

The public API is imported lazily, so ``import MRSynthLib`` stays instant inside Slicer and never pulls
torch or onnxruntime::

    import MRSynthLib
    flair = MRSynthLib.synthesize({"T1": MRSynthLib.read_volume("t1.nii.gz")}, target="FLAIR")
    MRSynthLib.write_volume(flair, "FLAIR_synthetic.nii.gz")
    flair, sd = MRSynthLib.synthesize({"T1": t1}, target="FLAIR", confidence=True)  # + the uncertainty map
"""

from __future__ import annotations

__version__ = "0.1.0"

_LAZY = {
    "synthesize": ("synthesis", "synthesize"),
    "synthesize_with_confidence": ("synthesis", "synthesize_with_confidence"),
    "Synthesis": ("synthesis", "Synthesis"),
    "read_volume": ("io", "read_volume"),
    "write_volume": ("io", "write_volume"),
    "Volume": ("volume", "Volume"),
    "evaluate_arrays": ("evaluation", "evaluate_arrays"),
    "simulate_subject": ("phantom", "simulate_subject"),
    "MRSynthError": ("errors", "MRSynthError"),
    "CONTRASTS": ("contrasts", "CONTRASTS"),
}
__all__ = [*_LAZY, "__version__"]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(f"{__name__}.{module}"), attr)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
