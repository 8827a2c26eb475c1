"""MRSynth: synthesize a missing brain MR contrast from the ones you have (3D Slicer scripted module).

Thin by design: the Widget wires ``Resources/UI/MRSynth.ui`` to the Logic (``MRSynthSlicerLib/Logic.py``),
which delegates to ``MRSynthLib`` (``mrml`` for nodes, ``preview`` for the live slice, ``process`` for the
background run, ``mrml_reader_study`` for the *Reader study* section). The panel's state is a parameter node
(``MRSynthSlicerLib/Parameters.py``) and the panel redraws from its ModifiedEvent, so it never lags a
selection behind. Nothing heavy is imported when Slicer starts; onnxruntime is installed on first use,
after asking.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys

import qt
import slicer
import vtk
from slicer.ScriptedLoadableModule import ScriptedLoadableModule, ScriptedLoadableModuleWidget
from slicer.util import VTKObservationMixin

_SOURCE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if os.path.isdir(os.path.join(_SOURCE_ROOT, "MRSynthLib")) and _SOURCE_ROOT not in sys.path:
    sys.path.insert(0, _SOURCE_ROOT)  # "Add module path" on the source tree: MRSynthLib sits beside MRSynth/

from MRSynthSlicerLib import registerSampleData  # noqa: E402
from MRSynthSlicerLib.BackgroundRun import BackgroundRun  # noqa: E402
from MRSynthSlicerLib.Display import showOverBackground, showUncertaintyOverlay  # noqa: E402
from MRSynthSlicerLib.InstallLogic import versionProblem  # noqa: E402
from MRSynthSlicerLib.Logic import MRSynthLogic  # noqa: E402 - also `from MRSynth import MRSynthLogic`
from MRSynthSlicerLib.ModelPanel import ModelPanel  # noqa: E402
from MRSynthSlicerLib.Parameters import (  # noqa: E402, F401
    CONTRASTS,
    NO_SECOND,
    TARGET_PREFERENCE,
    MRSynthParameterNode,
)
from MRSynthSlicerLib.ReaderStudyPanel import ReaderStudyPanel  # noqa: E402
from MRSynthSlicerLib.SelfTest import MRSynthTest  # noqa: E402, F401 - Slicer looks the test up here
from MRSynthSlicerLib.UserErrors import reportErrors, reportUserError  # noqa: E402

from MRSynthLib.contrasts import GADOLINIUM_NOTE  # noqa: E402 - Qt-free, imports nothing heavy
from MRSynthLib.errors import MRSynthError  # noqa: E402


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


class MRSynthWidget(ScriptedLoadableModuleWidget, VTKObservationMixin, ModelPanel, ReaderStudyPanel):
    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self.run: BackgroundRun | None = None  # the Apply in progress
        self._redOrigin = None
        self._previewNotes: set[str] = set()  # what the preview does differently from Apply, said once
        self._lastPreviewError = ""  # the same preview error is logged once, not at every slider move

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
        self.previewTimer.setInterval(100)  # debounce: re-synthesize 100 ms after the slider or Red view stops
        self.previewTimer.timeout.connect(self.onPreview)
        self.previewPrepTimer = qt.QTimer()  # polls the worker thread that prepares a new subject's preview
        self.previewPrepTimer.setInterval(50)
        self.previewPrepTimer.timeout.connect(self.onPreviewPrepared)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.ui.applyButton.clicked.connect(self.onApplyButton)
        self.ui.autoFillButton.clicked.connect(self.onAutoFill)
        self.ui.styleAlphaSlider.valueChanged.connect(lambda _v: self.schedulePreview())
        self.ui.livePreviewCheckBox.toggled.connect(lambda _on: self.schedulePreview())
        self.ui.matchHistogramCheckBox.toggled.connect(lambda _on: self.schedulePreview())
        self.ui.calibrateCheckBox.toggled.connect(lambda _on: self.schedulePreview())
        self.setupModelPanel()
        self.setupReaderStudyPanel()
        self.initializeParameterNode()
        self.observeRedSlice()
        if versionProblem():  # said before the first Apply, not only when the installation is refused
            self.log(versionProblem())

    def onReload(self) -> None:
        """*Reload*: re-import MRSynthSlicerLib and MRSynthLib too, as SlicerNNUnet and MONAIAuto3DSeg do for
        their Lib packages; Slicer's reload re-runs only this file, so their code stayed stale until a restart.
        Every submodule is dropped from ``sys.modules`` (no hand-kept list to forget one), then this file's
        re-execution imports each afresh; the old panel's ``cleanup()`` still runs (Slicer calls it)."""
        for name in [n for n in sys.modules if n.partition(".")[0] in ("MRSynthSlicerLib", "MRSynthLib")]:
            del sys.modules[name]
        importlib.invalidate_caches()
        ScriptedLoadableModuleWidget.onReload(self)

    def inputSelector(self, contrast: str):
        return getattr(self.ui, f"input{contrast}Selector")

    def cleanup(self) -> None:
        """Module reload or Slicer exit: stop the process tree, timers and observers; remove the work folder."""
        if self.run is not None:
            self.run.cancel()
            self.run = None
        self.pollTimer.stop()
        self.previewTimer.stop()
        self.previewPrepTimer.stop()
        self.downloadTimer.stop()
        self.logic.resetPreview()
        self.logic.pauseReaderStudy()  # the case node goes; the ratings are saved as given
        self.unbindParameterNode()  # a reloaded module's old panel must not follow the parameter node
        self._parameterNode = None
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()
        self.observeRedSlice()
        self.schedulePreview()  # a preparation cut short by exit() is picked up again

    def exit(self) -> None:
        """Another module is shown: stop following the parameter node and the Red view (no preview runs
        behind the user's back); an Apply in progress goes on and its result is still loaded."""
        self.unbindParameterNode()
        self.previewTimer.stop()
        self.previewPrepTimer.stop()
        red = self.redSliceNode()
        if red is not None and self.hasObserver(red, vtk.vtkCommand.ModifiedEvent, self.onRedSliceModified):
            self.removeObserver(red, vtk.vtkCommand.ModifiedEvent, self.onRedSliceModified)

    def onSceneStartClose(self, caller, event) -> None:
        """The run's nodes are about to disappear: cancel it (nothing is written)."""
        self.stopRun("Cancelled: the scene was closed; nothing was written.")
        self.previewTimer.stop()
        self.previewPrepTimer.stop()
        self.setParameterNode(None)
        self.logic.resetPreview()
        self.logic.pauseReaderStudy()
        self.updateReaderStudyGui()

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.inputs():
            self.onAutoFill()

    def unbindParameterNode(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            if self.hasObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateGuiState):
                self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateGuiState)

    def setParameterNode(self, parameterNode) -> None:
        """Bind the panel to ``parameterNode`` and redraw the panel on each of its ModifiedEvents."""
        self.unbindParameterNode()
        self._parameterNode = parameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateGuiState)
            self.restoreModel()
        self.updateGuiState()

    # --- state ---------------------------------------------------------------------------------------
    def updateGuiState(self, *_args) -> None:
        """Redraw from the parameter node (on its ModifiedEvent), never from another widget: a widget's own
        signal can arrive before the binding has written its value, which left the panel one step behind."""
        p, running = self._parameterNode, self.run is not None
        self.ui.applyButton.text = "Cancel" if running else "Apply"
        for widget in (*(self.inputSelector(c) for c in CONTRASTS), self.ui.autoFillButton, self.ui.targetComboBox,
                       self.ui.referenceSelector, self.ui.outputSelector, self.ui.maskSelector):
            widget.enabled = not running  # the request was taken at Apply: changing it now would mislead
        if p is None:
            self.ui.applyButton.enabled = running
            return
        given = set(p.inputs())
        model = self.ui.targetComboBox.model()
        for row in range(self.ui.targetComboBox.count):  # only contrasts not given as input can be targets
            item = model.item(row) if hasattr(model, "item") else None
            if item is not None:
                item.setEnabled(self.ui.targetComboBox.itemText(row) not in given)
        self.ui.gadoliniumNoteLabel.setText(GADOLINIUM_NOTE)
        self.ui.gadoliniumNoteLabel.setVisible(p.target == "T1Gd")
        hasReference = p.referenceVolume is not None
        self.ui.matchHistogramCheckBox.enabled = hasReference  # histogram matching needs a reference
        self.ui.secondTargetComboBox.enabled = not running and not hasReference  # a reference replaces it
        self.ui.applyButton.enabled = running or (bool(given) and p.target not in given)
        self.ui.applyButton.toolTip = ("Stop the running synthesis" if running else
                                       "Select at least one input and a target that is not an input"
                                       if not self.ui.applyButton.enabled else f"Synthesize {p.target}")
        message = self.logic.deviceWarning(p.device)
        self.ui.deviceWarningLabel.setText(message)
        self.ui.deviceWarningLabel.setVisible(bool(message))
        self.selectModel(p.model)

    def log(self, text: str) -> None:
        self.ui.logTextEdit.appendPlainText(text)

    def request(self):
        """The panel's choices now, as one engine request (see ``MRSynthParameterNode.request``)."""
        return self._parameterNode.request()

    # --- actions ---------------------------------------------------------------------------------
    def onAutoFill(self) -> None:
        """Fill empty input selectors from node names; if the target is now an input, pick a missing one."""
        p = self._parameterNode
        for contrast, node in self.logic.autoFill().items():
            if getattr(p, f"input{contrast}") is None:
                setattr(p, f"input{contrast}", node)
        given = p.inputs()
        if p.target in given:
            missing = [c for c in TARGET_PREFERENCE if c not in given]
            if missing:
                p.target = missing[0]

    def onApplyButton(self) -> None:
        if self.run is not None:
            self.stopRun("Cancelled: the background process and its children were stopped; nothing was written.")
            return
        self.ui.logTextEdit.clear()
        self.ui.progressBar.value = 0
        with reportErrors("MRSynth needs its dependencies", self.log) as outcome:
            self.logic.ensureDependencies(confirm=True)
        if not outcome.ok:
            return
        with reportErrors("MRSynth could not start", self.log, waitCursor=True):
            request = self.request()
            self.run = BackgroundRun(self.logic, request)
            self.log(f"Synthesizing {request.target} from {', '.join(request.inputs)} in a background process…")
            self.pollTimer.start()
        self.updateGuiState()

    def onPoll(self) -> None:
        run = self.run
        if run is None:
            self.pollTimer.stop()
            return
        status = run.poll()
        for line in status.log:
            self.log(line)
        if status.percent is not None:
            self.ui.progressBar.value = status.percent
        if status.state == "running":
            return
        try:
            if status.state == "finished":
                with reportErrors("MRSynth could not load the result", self.log, waitCursor=True):
                    self.showResult(run.load(), run.request.first)
            elif status.state == "failed":
                reportUserError("MRSynth failed", status.error or "the background process failed", self.log)
        finally:
            self.finishRun()

    def showResult(self, out, first=None) -> None:
        """The result as every view's foreground over the user's background, window/level for its units."""
        if self._parameterNode is not None:
            self._parameterNode.outputVolume = out
        showOverBackground(out, background=first)
        self.log(f"Done: '{out.GetName()}' (marked SYNTHETIC; ran on {out.GetAttribute('MRSynth.Device') or '?'}; "
                 f"intensity calibration: {out.GetAttribute('MRSynth.Calibration') or 'off'}; shown over the "
                 "views' background: their fade slider compares).")
        for note in filter(None, (out.GetAttribute("MRSynth.Notes") or "").split(" | ")):
            self.log(f"Note: {note}")  # e.g. the brain was extracted from a head, an input covers only part
        from MRSynthLib.mrml import uncertainty_node

        uncertainty = uncertainty_node(out)
        if uncertainty is not None and self._parameterNode is not None and self._parameterNode.uncertaintyMap:
            showUncertaintyOverlay(uncertainty, out)
            self.log(f"Uncertainty map: '{uncertainty.GetName()}', shown in colour over the result (bright = larger "
                     "expected error; |error| within 1.96 x its value on ~95 % of brain voxels at unseen sites; "
                     "it ranks errors only weakly: docs/confidence.md).")

    def stopRun(self, message: str) -> None:
        """Cancel the Apply in progress, if any: kills the process tree, nothing is written."""
        if self.run is not None:
            self.run.cancel()
            self.log(message)
            self.finishRun()

    def finishRun(self) -> None:
        self.pollTimer.stop()
        if self.run is not None:
            self.run.close()
            self.run = None
        self.updateGuiState()

    # --- live preview ----------------------------------------------------------------------------
    def redSliceNode(self):
        layoutManager = slicer.app.layoutManager()
        sliceWidget = layoutManager.sliceWidget("Red") if layoutManager is not None else None
        return sliceWidget.mrmlSliceNode() if sliceWidget is not None else None

    @staticmethod
    def sliceOrigin(sliceNode) -> tuple:
        m = sliceNode.GetSliceToRAS()
        return tuple(m.GetElement(r, 3) for r in range(3))

    def observeRedSlice(self) -> None:
        """Scrolling the Red view re-previews its new slice, debounced like the slider."""
        node = self.redSliceNode()
        if node is not None and not self.hasObserver(node, vtk.vtkCommand.ModifiedEvent, self.onRedSliceModified):
            self._redOrigin = self.sliceOrigin(node)
            self.addObserver(node, vtk.vtkCommand.ModifiedEvent, self.onRedSliceModified)

    def onRedSliceModified(self, caller, event) -> None:
        origin = self.sliceOrigin(caller)
        if origin != self._redOrigin:  # zoom or a new background layer leave the slice where it was
            self._redOrigin = origin
            self.schedulePreview()

    def schedulePreview(self) -> None:
        if self.ui.livePreviewCheckBox.checked and self.run is None:
            self.previewTimer.start()  # restarts: only the last value within 100 ms is synthesized

    def onPreview(self) -> None:
        """Draw the Red view's slice; a new subject is first prepared in a worker thread (never freezes)."""
        p, red = self._parameterNode, self.redSliceNode()
        if p is None or red is None or self.run is not None or not p.inputs() or p.target in p.inputs():
            return
        with reportErrors("Live preview needs its dependencies", self.log) as outcome:
            self.logic.ensureDependencies(confirm=True)
        if not outcome.ok:
            self.ui.livePreviewCheckBox.checked = False
            return
        self.notePreviewLimits(p, red)
        try:
            request = self.request()
            if not self.logic.preparePreview(request, background=True):
                if not self.previewPrepTimer.isActive():
                    self.log("Preparing the live preview for these inputs (once, about a second)...")
                    self.previewPrepTimer.start()
                return
            out = self.logic.previewSlice(request, self.sliceOrigin(red))
        except MRSynthError as exc:  # one line in the panel (once, not per slider move), never a dialog
            line = f"Preview: {exc}"
            if line != self._lastPreviewError:
                self._lastPreviewError = line
                self.log(line)
            return
        except Exception as exc:  # a bug: one line here, the traceback in the Python console, preview off
            logging.exception("MRSynth live preview failed")
            self.log(f"Preview stopped (unexpected error, see the Python console): {exc}")
            self.ui.livePreviewCheckBox.checked = False
            return
        self._lastPreviewError = ""
        if p.outputVolume is not out:
            p.outputVolume = out
            showOverBackground(out, background=next(iter(p.inputs().values())))

    def notePreviewLimits(self, p, red) -> None:
        """Say once where the preview differs from Apply, so a user never takes the difference for a bug."""
        notes = []
        normal = [red.GetSliceToRAS().GetElement(r, 2) for r in range(3)]
        if abs(normal[2]) < 0.99:  # the Red view is not axial (sagittal, coronal or oblique)
            notes.append("Live preview draws axial slices (the model's plane): set the Red view to Axial to see them.")
        if p.registerInputs:
            notes.append("Live preview does not register the inputs; Apply will.")
        for note in notes:
            if note not in self._previewNotes:
                self._previewNotes.add(note)
                self.log(note)

    def onPreviewPrepared(self) -> None:
        """The worker is done: draw the slice for the panel's *current* state (it may have moved meanwhile)."""
        if self.logic.previewPreparing():
            return
        self.previewPrepTimer.stop()
        if self.ui.livePreviewCheckBox.checked:
            self.onPreview()
