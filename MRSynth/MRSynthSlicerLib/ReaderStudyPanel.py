"""The panel's *Reader study* section (a mixin of ``MRSynthWidget``, kept apart so MRSynth.py stays thin).

The reader picks the study folder and types their name, presses *Start / Resume*, and sees one case at a time
under its neutral name with their progress; for each they choose real or synthetic, a quality and a confidence
(1–5; the spin boxes start at "choose" so no score is given by default) and an optional comment, then *Record
and next*. *Pause* takes the case away; every rating is already saved, and *Start / Resume* goes on with the
next unrated case. All work is the Logic's (``ReaderStudyLogic``); errors are one line in the section.
"""

from __future__ import annotations

from .UserErrors import reportErrors

PAUSED = "Paused: every rating so far is saved. Start / Resume goes on with the next case."


class ReaderStudyPanel:
    """Wires the section's widgets to ``logic.startReaderStudy`` / ``recordReaderRating`` / ``pauseReaderStudy``."""

    def setupReaderStudyPanel(self) -> None:
        self.ui.readerStartButton.clicked.connect(self.onReaderStart)
        self.ui.readerRecordButton.clicked.connect(self.onReaderRecord)
        self.ui.readerPauseButton.clicked.connect(self.onReaderPause)
        self.updateReaderStudyGui()

    def readerMessage(self, line: str) -> None:
        self.ui.readerMessageLabel.setText(line)

    def readerCall(self) -> str:
        if self.ui.readerRealRadioButton.checked:
            return "real"
        return "synthetic" if self.ui.readerSyntheticRadioButton.checked else ""

    def onReaderStart(self) -> None:
        self.readerMessage("")
        with reportErrors("Reader study", self.readerMessage, waitCursor=True):
            self.logic.startReaderStudy(self.ui.readerStudyPathLineEdit.currentPath,
                                        self.ui.readerNameLineEdit.text.strip())
        self.clearReaderRating()
        self.updateReaderStudyGui()

    def onReaderRecord(self) -> None:
        with reportErrors("Rating not recorded", self.readerMessage, waitCursor=True) as outcome:
            self.logic.recordReaderRating(self.readerCall(), self.ui.readerQualitySpinBox.value,
                                          self.ui.readerConfidenceSpinBox.value, self.ui.readerCommentLineEdit.text)
        if outcome.ok:
            self.readerMessage("")
            self.clearReaderRating()
        self.updateReaderStudyGui()

    def onReaderPause(self) -> None:
        self.logic.pauseReaderStudy()
        self.readerMessage(PAUSED)
        self.updateReaderStudyGui()

    def clearReaderRating(self) -> None:
        """Nothing chosen for the next case (an exclusive radio button unchecks only with exclusivity off)."""
        for button in (self.ui.readerRealRadioButton, self.ui.readerSyntheticRadioButton):
            button.autoExclusive = False
            button.checked = False
            button.autoExclusive = True
        self.ui.readerQualitySpinBox.value = 0  # the spin boxes' special value "choose"
        self.ui.readerConfidenceSpinBox.value = 0
        self.ui.readerCommentLineEdit.text = ""

    def updateReaderStudyGui(self) -> None:
        state = self.logic.readerStudyState()
        showing = state is not None and state[0] is not None
        if state is None:
            text = "No case shown: choose the study folder, type your reader name, press Start / Resume."
        elif state[0] is None:
            text = f"All {state[2]} cases rated: thank you."
        else:
            text = f"{state[0]}   ({state[1] + 1} / {state[2]})"
        self.ui.readerCaseLabel.setText(text)
        for widget in (self.ui.readerRecordButton, self.ui.readerPauseButton, self.ui.readerRealRadioButton,
                       self.ui.readerSyntheticRadioButton, self.ui.readerQualitySpinBox,
                       self.ui.readerConfidenceSpinBox, self.ui.readerCommentLineEdit):
            widget.enabled = showing
