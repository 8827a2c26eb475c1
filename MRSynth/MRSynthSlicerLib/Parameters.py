"""The panel's state as a typed parameter node, so every choice saves and restores with the scene.

Widgets in ``Resources/UI/MRSynth.ui`` bind to these fields through their ``SlicerParameterName``
property; ``model`` is the one field kept in sync by the Widget instead, because its choices (the
registry and the imported models) are only known at run time.
"""

from __future__ import annotations

from typing import Annotated

import slicer
from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper

from MRSynthLib.contrasts import CONTRASTS
from MRSynthLib.request import SynthesisRequest

NO_SECOND = "(none)"
TARGET_PREFERENCE = ("FLAIR", "T2", "T1", "PD", "T1Gd")  # auto-fill's target when FLAIR is an input; T1Gd
# last: gadolinium enhancement cannot really be synthesized (CollaGAN), so it is never the default
DEVICES = ("auto", "cpu", "cuda:0", "cuda:1", "cuda:2", "cuda:3")


@parameterNodeWrapper
class MRSynthParameterNode:
    inputT1: slicer.vtkMRMLScalarVolumeNode
    inputT1Gd: slicer.vtkMRMLScalarVolumeNode
    inputT2: slicer.vtkMRMLScalarVolumeNode
    inputPD: slicer.vtkMRMLScalarVolumeNode
    inputFLAIR: slicer.vtkMRMLScalarVolumeNode
    target: Annotated[str, Choice(list(CONTRASTS))] = "FLAIR"
    referenceVolume: slicer.vtkMRMLScalarVolumeNode
    secondTarget: Annotated[str, Choice([NO_SECOND, *CONTRASTS])] = NO_SECOND
    styleAlpha: Annotated[float, WithinRange(0, 1)] = 0.0
    matchHistogram: bool = False
    livePreview: bool = False
    outputVolume: slicer.vtkMRMLScalarVolumeNode
    maskVolume: slicer.vtkMRMLScalarVolumeNode
    batchSize: Annotated[int, WithinRange(1, 64)] = 8
    registerInputs: bool = False
    calibrateIntensities: bool = True
    model: str = ""  # model id or imported card path; "" = the default model (synced by the Widget)
    device: Annotated[str, Choice(list(DEVICES))] = "auto"
    uncertaintyMap: bool = False  # also the per-voxel uncertainty map (request field ``confidence``)

    def inputs(self) -> dict:
        """Contrast → selected node, for the contrasts that have one (in CONTRASTS order)."""
        return {c: getattr(self, f"input{c}") for c in CONTRASTS if getattr(self, f"input{c}") is not None}

    def request(self) -> SynthesisRequest:
        """The panel's choices as one engine request: the one place the parameter node's names (saved with
        scenes, so kept) meet the engine's. A reference replaces the second contrast; α counts only when
        it has somewhere to go (a reference or a second contrast)."""
        hasReference = self.referenceVolume is not None
        second = None if hasReference or self.secondTarget == NO_SECOND else self.secondTarget
        return SynthesisRequest(
            inputs=self.inputs(), target=self.target, style_reference=self.referenceVolume, style_target=second,
            style_alpha=self.styleAlpha if hasReference or second else None,
            match_histogram=self.matchHistogram and hasReference, mask=self.maskVolume, register=self.registerInputs,
            calibrate=self.calibrateIntensities, model=self.model or None, device=self.device,
            batch_size=self.batchSize, output=self.outputVolume, confidence=True if self.uncertaintyMap else None)
