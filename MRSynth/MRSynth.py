"""MRSynth: synthesize a missing brain MR contrast from the ones you have (3D Slicer scripted module).

Thin by design: the Widget wires ``Resources/UI/MRSynth.ui`` to the Logic, the Logic delegates to
``MRSynthLib`` (``mrml`` for nodes, ``preview`` for the live slice, ``process`` for the background run).
Nothing heavy is imported when Slicer starts; onnxruntime is installed on first use, after asking.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from typing import Annotated

import qt
import slicer
from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

_SOURCE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if os.path.isdir(os.path.join(_SOURCE_ROOT, "MRSynthLib")) and _SOURCE_ROOT not in sys.path:
    sys.path.insert(0, _SOURCE_ROOT)  # "Add module path" on the source tree: MRSynthLib sits beside MRSynth/

from MRSynthSlicerLib import InstallLogic, PreviewLogic, registerSampleData  # noqa: E402
from MRSynthSlicerLib.SelfTest import MRSynthTest  # noqa: E402, F401 - Slicer looks the test up here

from MRSynthLib.contrasts import GADOLINIUM_NOTE  # noqa: E402 - Qt-free, imports nothing heavy

CONTRASTS = ("T1", "T1Gd", "T2", "PD", "FLAIR")
NO_SECOND = "(none)"


class MRSynth(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "MRSynth"
        self.parent.categories = ["Image Synthesis"]
        self.parent.contributors = ["MRSynth contributors"]
        self.parent.helpText = (
            "Synthesize a missing MR contrast (T1, T1Gd, T2, PD, FLAIR) from any subset of the others. "
            "Outputs are marked SYNTHETIC and are not acquired images. "
            '<a href="https://github.com/MRSynth/SlicerMRSynth">Documentation</a>.')
        self.parent.acknowledgementText = (
            "Built on ideas from CollaGAN, MM-GAN, Hyper-GAN and MIST GAN; see the README for citations.")
        slicer.app.connect("startupCompleted()", registerSampleData)


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

    def inputs(self) -> dict:
        return {c: getattr(self, f"input{c}") for c in CONTRASTS if getattr(self, f"input{c}") is not None}


class MRSynthWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._process = None
        self._workdir = None

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/MRSynth.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = MRSynthLogic()
        self.pollTimer = qt.QTimer()
        self.pollTimer.setInterval(200)
        self.pollTimer.timeout.connect(self.onPoll)
        self.previewTimer = qt.QTimer()
        self.previewTimer.setSingleShot(True)
        self.previewTimer.setInterval(100)  # debounce: re-synthesize 100 ms after the slider stops
        self.previewTimer.timeout.connect(self.onPreview)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.ui.applyButton.clicked.connect(self.onApplyButton)
        self.ui.autoFillButton.clicked.connect(self.onAutoFill)
        self.ui.styleAlphaSlider.valueChanged.connect(lambda _v: self.schedulePreview())
        self.ui.livePreviewCheckBox.toggled.connect(lambda _on: self.schedulePreview())
        self.ui.matchHistogramCheckBox.toggled.connect(lambda _on: self.schedulePreview())
        self.ui.calibrateCheckBox.toggled.connect(lambda _on: self.schedulePreview())
        self.ui.targetComboBox.currentTextChanged.connect(self.updateGuiState)
        self.ui.deviceComboBox.currentTextChanged.connect(self.updateDeviceWarning)
        self.ui.openCacheButton.clicked.connect(lambda: qt.QDesktopServices.openUrl(
            qt.QUrl.fromLocalFile(str(self.logic.cacheFolder(create=True)))))
        self.ui.clearCacheButton.clicked.connect(self.onClearCache)
        self.ui.importModelButton.clicked.connect(self.onImportModel)
        for c in CONTRASTS:
            self.inputSelector(c).currentNodeChanged.connect(lambda _n: self.updateGuiState())
        self.ui.deviceComboBox.addItems(["auto", "cpu", "cuda:0", "cuda:1"])
        self.refreshModels()
        self.initializeParameterNode()
        self.updateGuiState()

    def inputSelector(self, contrast: str):
        return getattr(self.ui, f"input{contrast}Selector")

    def cleanup(self) -> None:
        self.removeObservers()
        if self._process is not None:
            self._process.cancel()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None

    def onSceneStartClose(self, caller, event) -> None:
        self.setParameterNode(None)
        self.logic.resetPreview()

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.inputs():
            self.onAutoFill()

    def setParameterNode(self, parameterNode) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
        self._parameterNode = parameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)

    # --- state -----------------------------------------------------------------------------------
    def updateGuiState(self, *_args) -> None:
        if self._parameterNode is None:
            return
        given = set(self._parameterNode.inputs())
        model = self.ui.targetComboBox.model()
        for row in range(self.ui.targetComboBox.count):  # only contrasts not given as input can be targets
            item = model.item(row) if hasattr(model, "item") else None
            if item is not None:
                item.setEnabled(self.ui.targetComboBox.itemText(row) not in given)
        target = self.ui.targetComboBox.currentText
        self.ui.gadoliniumNoteLabel.setText(GADOLINIUM_NOTE)
        self.ui.gadoliniumNoteLabel.setVisible(target == "T1Gd")
        self.ui.matchHistogramCheckBox.enabled = self._parameterNode.referenceVolume is not None
        running = self._process is not None
        self.ui.applyButton.text = "Cancel" if running else "Apply"
        self.ui.applyButton.enabled = running or (bool(given) and target not in given)
        self.ui.applyButton.toolTip = ("Stop the running synthesis" if running else
                                       "Select at least one input and a target that is not an input"
                                       if not self.ui.applyButton.enabled else f"Synthesize {target}")

    def updateDeviceWarning(self, *_args) -> None:
        message = self.logic.deviceWarning(self.ui.deviceComboBox.currentText)
        self.ui.deviceWarningLabel.setText(message)
        self.ui.deviceWarningLabel.setVisible(bool(message))

    def refreshModels(self) -> None:
        self.ui.modelComboBox.clear()
        for model_id, label in self.logic.availableModels():
            self.ui.modelComboBox.addItem(label, model_id)
        self.ui.cacheLabel.setText(str(self.logic.cacheFolder()))

    def log(self, text: str) -> None:
        self.ui.logTextEdit.appendPlainText(text)

    def options(self) -> dict:
        p = self._parameterNode
        return dict(model=self.ui.modelComboBox.currentData or None, device=self.ui.deviceComboBox.currentText,
                    batchSize=p.batchSize, register=p.registerInputs, mask=p.maskVolume,
                    matchHistogram=p.matchHistogram and p.referenceVolume is not None,
                    calibrate=p.calibrateIntensities,
                    secondTarget=None if p.secondTarget == NO_SECOND else p.secondTarget)

    # --- actions ---------------------------------------------------------------------------------
    def onAutoFill(self) -> None:
        for contrast, node in self.logic.autoFill().items():
            if getattr(self._parameterNode, f"input{contrast}") is None:
                setattr(self._parameterNode, f"input{contrast}", node)
        self.updateGuiState()

    def onApplyButton(self) -> None:
        if self._process is not None:
            self._process.cancel()
            self.log("Cancelled: the background process and its children were stopped; nothing was written.")
            self.finishRun()
            return
        if not self.logic.ensureDependencies(confirm=True):
            self.log("Dependencies not installed; nothing was run.")
            return
        p = self._parameterNode
        self._workdir = tempfile.mkdtemp(prefix="MRSynth-")
        with slicer.util.tryWithErrorDisplay("MRSynth could not start.", waitCursor=True):
            try:
                self._process = self.logic.startBackground(p.inputs(), p.target, self._workdir, p.referenceVolume,
                                                           p.styleAlpha, **self.options())
            except Exception:
                self.finishRun()
                raise
            self.ui.logTextEdit.clear()
            self.log(f"Synthesizing {p.target} from {', '.join(p.inputs())} in a background process…")
            self.ui.progressBar.value = 0
            self.pollTimer.start()
        self.updateGuiState()

    def onPoll(self) -> None:
        status = self._process.poll()
        for line in status.log:
            self.log(line)
        if status.percent is not None:
            self.ui.progressBar.value = status.percent
        if status.state == "running":
            return
        process = self._process
        if status.state == "finished":
            p = self._parameterNode
            with slicer.util.tryWithErrorDisplay("MRSynth could not load the result.", waitCursor=True):
                out = self.logic.loadResult(process, p.inputs(), p.outputVolume)
                p.outputVolume = out
                slicer.util.setSliceViewerLayers(background=out, fit=False)
                self.log(f"Done: '{out.GetName()}' (marked SYNTHETIC; intensity calibration: "
                         f"{out.GetAttribute('MRSynth.Calibration') or 'off'}).")
        elif status.state == "failed":
            self.log(f"Error: {status.error}")
            slicer.util.errorDisplay(f"MRSynth failed: {status.error}")
        self.finishRun()

    def finishRun(self) -> None:
        self.pollTimer.stop()
        self._process = None
        if self._workdir:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None
        self.updateGuiState()

    def schedulePreview(self) -> None:
        if self.ui.livePreviewCheckBox.checked and self._process is None:
            self.previewTimer.start()  # restarts: only the last value within 100 ms is synthesized

    def onPreview(self) -> None:
        p = self._parameterNode
        if p is None or not p.inputs() or p.target in p.inputs():
            return
        if not self.logic.ensureDependencies(confirm=True):
            self.ui.livePreviewCheckBox.checked = False
            return
        red = slicer.app.layoutManager().sliceWidget("Red").mrmlSliceNode().GetSliceToRAS()
        ras = tuple(red.GetElement(r, 3) for r in range(3))
        try:
            out = self.logic.previewSlice(p.inputs(), p.target, p.styleAlpha, ras, reference=p.referenceVolume,
                                          output=p.outputVolume, **self.options())
        except Exception as exc:  # one line in the panel, never a traceback dialog while dragging
            self.log(f"Preview: {exc}")
            return
        if p.outputVolume is not out:
            p.outputVolume = out
            slicer.util.setSliceViewerLayers(background=out, fit=False)

    def onClearCache(self) -> None:
        if slicer.util.confirmOkCancelDisplay(f"Delete all models in {self.logic.cacheFolder()}?"):
            self.logic.clearCache()
            self.refreshModels()

    def onImportModel(self) -> None:
        path = qt.QFileDialog.getOpenFileName(None, "Import MRSynth model card", "", "Model card (*.json)")
        if path:
            with slicer.util.tryWithErrorDisplay("Could not import the model.", waitCursor=True):
                self.log(f"Imported model '{self.logic.importModel(path)}' into the cache.")
                self.refreshModels()


class MRSynthLogic(ScriptedLoadableModuleLogic, InstallLogic, PreviewLogic):
    """All the work, callable from the Python console without the panel."""

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        self.resetPreview()
        self._engines: dict = {}

    def getParameterNode(self):
        return MRSynthParameterNode(super().getParameterNode())

    def clearCache(self) -> None:
        InstallLogic.clearCache(self)
        self._engines.clear()
        self.resetPreview()

    def engine(self, model=None, device: str = "auto"):
        from MRSynthLib.registry import load_backend, resolve_model

        key = (model, device)
        if key not in self._engines:
            bundle = resolve_model(model)
            self._engines[key] = (load_backend(bundle, "onnx", device), bundle.id)
        return self._engines[key]

    # --- synthesis -------------------------------------------------------------------------------
    def autoFill(self) -> dict:
        from MRSynthLib.mrml import autofill, scene_volumes

        return autofill(scene_volumes(slicer.mrmlScene))

    def synthesize(self, inputs: dict, target: str, reference=None, styleAlpha: float = 0.0, output=None,
                   model=None, device: str = "auto", secondTarget=None, mask=None, batchSize: int = 8,
                   register: bool = False, progress=None, matchHistogram: bool = False, calibrate: bool = True):
        """Blocking synthesis for the console and scripts; returns the new (or given) output node."""
        from MRSynthLib.mrml import synthesize_nodes

        if not self.ensureDependencies(confirm=True):
            from MRSynthLib.errors import MRSynthError

            raise MRSynthError(f"missing dependencies: {', '.join(self.missingDependencies())}")
        engine, model_id = self.engine(model, device)
        out = synthesize_nodes(inputs, target, output=output, reference=reference, style_alpha=styleAlpha,
                               second_target=secondTarget, mask=mask, register=register, batch_size=batchSize,
                               progress=progress, engine=engine, scene=slicer.mrmlScene,
                               match_histogram=matchHistogram, calibrate=calibrate)
        out.SetAttribute("MRSynth.Model", model_id)
        return out

    def startBackground(self, inputs: dict, target: str, workdir: str, reference=None, styleAlpha: float = 0.0,
                        model=None, device: str = "auto", secondTarget=None, mask=None, batchSize: int = 8,
                        register: bool = False, matchHistogram: bool = False, calibrate: bool = True):
        """Write the nodes to ``workdir`` and start ``mrsynth synthesize`` in PythonSlicer; returns the process."""
        from MRSynthLib.mrml import job_parameters
        from MRSynthLib.process import SynthesisProcess

        params = job_parameters(inputs, target, workdir, reference=reference, mask=mask, model=model,
                                device=device, style_alpha=styleAlpha, style_target=secondTarget,
                                register=register, batch_size=batchSize, match_histogram=matchHistogram,
                                calibrate=calibrate)
        process = SynthesisProcess(python=shutil.which("PythonSlicer") or sys.executable)
        process.start(params)
        return process

    def loadResult(self, process, inputs: dict, output=None):
        from MRSynthLib.mrml import write_output_node

        first = next(iter(inputs.values()))
        return write_output_node(process.result(), first, output=output, scene=slicer.mrmlScene)
