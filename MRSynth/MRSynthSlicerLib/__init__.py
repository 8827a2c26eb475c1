"""Slicer-side helpers of the MRSynth module (need ``slicer``; the engine is ``MRSynthLib``)."""

from .InstallLogic import SAMPLE_FILES, InstallLogic, registerSampleData
from .PreviewLogic import PreviewLogic

__all__ = ["SAMPLE_FILES", "InstallLogic", "PreviewLogic", "registerSampleData"]
