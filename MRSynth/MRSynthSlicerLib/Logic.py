"""The module's Logic: all the work, callable from Slicer's Python console without the panel.

``slicer.util.getModuleLogic("MRSynth").synthesize({"T1": t1, "T2": t2}, target="FLAIR")`` blocks and
returns the output node; the panel uses ``startBackground``/``loadResult`` instead so Slicer never
freezes. Install and preview work are mixed in from ``InstallLogic`` and ``PreviewLogic``.
"""

from __future__ import annotations

import shutil
import sys

import slicer
from slicer.ScriptedLoadableModule import ScriptedLoadableModuleLogic

from .InstallLogic import InstallLogic
from .Parameters import MRSynthParameterNode
from .PreviewLogic import PreviewLogic


class MRSynthLogic(ScriptedLoadableModuleLogic, InstallLogic, PreviewLogic):
    """All the work, callable from the Python console without the panel."""

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        self.resetPreview()
        self._engines: dict = {}
        self._engineGeneration = 0  # bumped by clearCache: an engine loaded meanwhile is not cached

    def getParameterNode(self):
        return MRSynthParameterNode(super().getParameterNode())

    def clearCache(self) -> None:
        InstallLogic.clearCache(self)
        self._engineGeneration += 1
        self._engines.clear()
        self.resetPreview()

    def engine(self, model=None, device: str = "auto"):
        """The onnxruntime backend for (model, device), loaded once (inside Slicer: ONNX Runtime only)."""
        from MRSynthLib.registry import load_backend, resolve_model

        key = (model, device)
        if key in self._engines:
            return self._engines[key]
        generation = self._engineGeneration  # the preview's worker may load while Clear runs
        bundle = resolve_model(model)
        made = (load_backend(bundle, "onnx", device), bundle.id)
        if generation == self._engineGeneration:
            self._engines[key] = made
        return made

    # --- synthesis -------------------------------------------------------------------------------
    def autoFill(self) -> dict:
        from MRSynthLib.mrml import autofill, scene_volumes

        return autofill(scene_volumes(slicer.mrmlScene))

    def synthesize(self, inputs: dict, target: str, reference=None, styleAlpha: float = 0.0, output=None,
                   model=None, device: str = "auto", secondTarget=None, mask=None, batchSize: int = 8,
                   register: bool = False, progress=None, matchHistogram: bool = False, calibrate: bool = True):
        """Blocking synthesis for the console and scripts; returns the new (or given) output node."""
        from MRSynthLib.mrml import synthesize_nodes

        self.ensureDependencies(confirm=True)
        engine, model_id = self.engine(model, device)
        out = synthesize_nodes(inputs, target, output=output, reference=reference, style_alpha=styleAlpha,
                               second_target=secondTarget, mask=mask, register=register, batch_size=batchSize,
                               progress=progress, engine=engine, scene=slicer.mrmlScene,
                               match_histogram=matchHistogram, calibrate=calibrate)
        out.SetAttribute("MRSynth.Model", model_id)
        return out

    def startBackground(self, inputs: dict, target: str, workdir: str, reference=None, styleAlpha: float = 0.0,
                        output=None, model=None, device: str = "auto", secondTarget=None, mask=None,
                        batchSize: int = 8, register: bool = False, matchHistogram: bool = False,
                        calibrate: bool = True):
        """Check the request (``output`` may not be an input, the reference or the mask), write the nodes
        to ``workdir`` and start ``mrsynth synthesize`` in PythonSlicer; returns the process."""
        from MRSynthLib.mrml import job_parameters
        from MRSynthLib.process import SynthesisProcess

        params = job_parameters(inputs, target, workdir, reference=reference, mask=mask, output_node=output,
                                model=model, device=device, style_alpha=styleAlpha, style_target=secondTarget,
                                register=register, batch_size=batchSize, match_histogram=matchHistogram,
                                calibrate=calibrate)
        process = SynthesisProcess(python=shutil.which("PythonSlicer") or sys.executable)
        process.start(params)
        return process

    def loadResult(self, process, inputs: dict, output=None, reference=None, mask=None):
        """Write a finished run into ``output`` (or a new node); never into an input, reference or mask."""
        from MRSynthLib.mrml import write_output_node

        first = next(iter(inputs.values()))
        return write_output_node(process.result(), first, output=output, scene=slicer.mrmlScene,
                                 protected={**inputs, "reference": reference, "mask": mask})
