"""Slicer-side helpers of the MRSynth module (need ``slicer``; the engine is ``MRSynthLib``)."""

from .InstallLogic import InstallLogic
from .PreviewLogic import PreviewLogic
from .SampleBrain import SAMPLE_FILES, SAMPLE_NAME, registerSampleData

__all__ = ["SAMPLE_FILES", "SAMPLE_NAME", "InstallLogic", "PreviewLogic", "registerSampleData"]
