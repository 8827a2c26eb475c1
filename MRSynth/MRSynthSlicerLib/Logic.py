"""The module's Logic: all the work, callable from Slicer's Python console without the panel.

``slicer.util.getModuleLogic("MRSynth").synthesize({"T1": t1, "T2": t2}, target="FLAIR")`` blocks and
returns the output node; the panel uses ``startBackground``/``loadResult`` instead so Slicer never
freezes. Install, preview and reader-study work are mixed in from ``InstallLogic``, ``PreviewLogic`` and
``ReaderStudyLogic``.
"""

from __future__ import annotations

import shutil
import sys

import slicer
from slicer.ScriptedLoadableModule import ScriptedLoadableModuleLogic

from .InstallLogic import InstallLogic
from .Parameters import MRSynthParameterNode
from .PreviewLogic import PreviewLogic
from .ReaderStudyLogic import ReaderStudyLogic


class MRSynthLogic(ScriptedLoadableModuleLogic, InstallLogic, PreviewLogic, ReaderStudyLogic):
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
        """The onnxruntime backend for (model, device), loaded once (inside Slicer: ONNX Runtime only); it
        carries its model's id and card settings."""
        from MRSynthLib.registry import load_backend, resolve_model

        key = (model, device)
        if key in self._engines:
            return self._engines[key]
        generation = self._engineGeneration  # the preview's worker may load while Clear runs
        engine = load_backend(resolve_model(model), "onnx", device)
        if generation == self._engineGeneration:
            self._engines[key] = engine
        return engine

    # --- synthesis -------------------------------------------------------------------------------
    def autoFill(self) -> dict:
        from MRSynthLib.mrml import autofill, scene_volumes

        return autofill(scene_volumes(slicer.mrmlScene))

    def synthesize(self, inputs, target: str | None = None, progress=None, **options):
        """Blocking synthesis for the console and scripts; returns the new (or given) output node.

        ``logic.synthesize({"T1": t1, "T2": t2}, target="FLAIR", style_reference=ref, style_alpha=0.5)``:
        the options are :class:`MRSynthLib.request.SynthesisRequest`'s fields (nodes for the images), or
        pass one ``SynthesisRequest``."""
        from MRSynthLib.errors import MRSynthError
        from MRSynthLib.mrml import synthesize_nodes
        from MRSynthLib.request import SynthesisRequest

        request = SynthesisRequest.of(inputs, target, **options)
        if request.backend != "onnx":
            raise MRSynthError("inside Slicer MRSynth runs the model in ONNX Runtime only (no backend='torch' or amp)")
        self.ensureDependencies(confirm=True)
        return synthesize_nodes(request, engine=self.engine(request.model, request.device), progress=progress,
                                scene=slicer.mrmlScene)

    def startBackground(self, request, workdir: str):
        """Check the request (its output may not be an input, the reference or the mask), write its nodes
        to ``workdir`` and start ``mrsynth synthesize`` in PythonSlicer; returns the process."""
        from MRSynthLib.mrml import job_request
        from MRSynthLib.process import SynthesisProcess

        process = SynthesisProcess(python=shutil.which("PythonSlicer") or sys.executable)
        process.start(job_request(request, workdir))
        return process

    def loadResult(self, process, request):
        """Write a finished run into ``request.output`` (or a new node); never into a node it read. Its
        uncertainty map, when asked for, becomes a node of its own (``MRSynthLib.mrml.uncertainty_node``)."""
        from MRSynthLib.mrml import protected_nodes, write_output_node, write_uncertainty_node

        output = write_output_node(process.result(), request.first, output=request.output, scene=slicer.mrmlScene,
                                   protected=protected_nodes(request))
        sd = process.uncertainty()
        if sd is not None:  # the map asked for with the request (confidence=True)
            write_uncertainty_node(sd, output)
        return output
