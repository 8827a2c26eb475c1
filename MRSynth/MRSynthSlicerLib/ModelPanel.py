"""The panel's *Advanced → Model* part: model box, cache folder, Download, Import, Clear.

A mixin of ``MRSynthWidget`` (kept apart so MRSynth.py stays a thin Widget). It uses the Widget's ``ui``,
``logic``, ``log`` and ``_parameterNode``. Downloading runs in a worker thread (``WorkerThread``) polled by
``downloadTimer``, so a slow hospital network never freezes Slicer; the progress bar follows each file's bytes.
"""

from __future__ import annotations

import qt
import slicer

from .UserErrors import reportErrors
from .WorkerThread import WorkerThread


class ModelPanel:
    """Model choice and the per-user model cache."""

    download: tuple | None = None  # (model id, WorkerThread) while a download runs
    downloadProgress: tuple = (0, 0, "")  # (bytes done, bytes of the file, file name), written by the worker

    def setupModelPanel(self) -> None:
        self.downloadTimer = qt.QTimer()
        self.downloadTimer.setInterval(200)
        self.downloadTimer.timeout.connect(self.onDownloadPoll)
        self.ui.modelComboBox.currentIndexChanged.connect(self.onModelSelected)
        self.ui.openCacheButton.clicked.connect(lambda: qt.QDesktopServices.openUrl(
            qt.QUrl.fromLocalFile(str(self.logic.cacheFolder(create=True)))))
        self.ui.clearCacheButton.clicked.connect(self.onClearCache)
        self.ui.importModelButton.clicked.connect(self.onImportModel)
        self.ui.downloadModelButton.clicked.connect(self.onDownloadModel)
        self.refreshModels()

    def selectModel(self, modelId: str) -> None:
        """Show ``modelId`` in the model box without writing it back to the parameter node."""
        combo = self.ui.modelComboBox
        index = combo.findData(modelId or "")
        if index >= 0 and index != combo.currentIndex:
            wasBlocked = combo.blockSignals(True)
            combo.currentIndex = index
            combo.blockSignals(wasBlocked)

    def restoreModel(self) -> None:
        """The model saved with the scene, or the default (with a line) when it is not available here."""
        p = self._parameterNode
        if p is None:
            return
        if p.model and self.ui.modelComboBox.findData(p.model) < 0:
            self.log(f"Model '{p.model}' (saved with the scene) is not available here; using the default.")
            p.model = ""
        self.selectModel(p.model)

    def onModelSelected(self, _index: int) -> None:
        if self._parameterNode is not None:
            self._parameterNode.model = self.ui.modelComboBox.currentData or ""

    def refreshModels(self) -> None:
        combo = self.ui.modelComboBox
        wasBlocked = combo.blockSignals(True)  # refilling must not overwrite the saved choice
        combo.clear()
        for model_id, label in self.logic.availableModels():
            combo.addItem(label, model_id)
        combo.blockSignals(wasBlocked)
        self.ui.cacheLabel.setText(str(self.logic.cacheFolder()))
        self.restoreModel()

    def setCacheButtonsEnabled(self, enabled: bool) -> None:
        for button in (self.ui.downloadModelButton, self.ui.importModelButton, self.ui.clearCacheButton):
            button.enabled = enabled

    def onClearCache(self) -> None:
        if self.download is not None:
            return
        if self.logic.previewPreparing():  # its worker is loading a model from that folder
            self.log("The live preview is preparing from the model cache; clear it when that is done.")
            return
        if slicer.util.confirmOkCancelDisplay(f"Delete all models in {self.logic.cacheFolder()}?"):
            self.logic.clearCache()
            self.refreshModels()

    def onDownloadModel(self) -> None:
        """The selected registered model (or the registry's default) into the cache, in a worker thread."""
        from MRSynthLib.registry import load_registry

        if self.download is not None:
            return
        with reportErrors("Could not download the model", self.log):
            modelId = self._parameterNode.model or load_registry().get("default", "")
            self.downloadProgress = (0, 0, "")

            def progress(done: int, total: int, name: str) -> None:
                self.downloadProgress = (done, total, name)

            self.download = (modelId, WorkerThread(lambda: self.logic.downloadModel(modelId, progress=progress),
                                                   "MRSynth download"))
            self.setCacheButtonsEnabled(False)  # Clear or Import would pull the folder from under the worker
            self.log(f"Downloading model '{modelId}'...")
            self.downloadTimer.start()

    def onDownloadPoll(self) -> None:
        """Progress while the worker runs; then one line (and the model in the box), or the error."""
        modelId, worker = self.download
        done, total, _name = self.downloadProgress
        if worker.alive:
            if self.run is None and total:
                self.ui.progressBar.value = int(100 * done / total)
            return
        self.downloadTimer.stop()
        self.download = None
        self.setCacheButtonsEnabled(True)
        with reportErrors("Could not download the model", self.log):
            self.log(f"Downloaded model '{modelId}' into {worker.result()} (SHA256-checked).")
            self.refreshModels()

    def onImportModel(self) -> None:
        path = qt.QFileDialog.getOpenFileName(None, "Import MRSynth model card", "", "Model card (*.json)")
        if path:
            with reportErrors("Could not import the model", self.log, waitCursor=True):
                self.log(f"Imported model '{self.logic.importModel(path)}' into the cache.")
                self.refreshModels()
