"""The Logic's reader study (a mixin of ``MRSynthLogic``): one case at a time in the scene, for the panel's
*Reader study* section and the Python console::

    logic = slicer.util.getModuleLogic("MRSynth")
    node = logic.startReaderStudy("/data/study", "alice")     # the next unrated case, shown; None: all rated
    node = logic.recordReaderRating("synthetic", quality=3, confidence=4, comment="too smooth")  # then the next
    logic.pauseReaderStudy()                                   # ratings are saved as given: start again to resume

The work is ``MRSynthLib.mrml_reader_study.ReaderStudyViewer`` (Qt-free, real MRML); this adds fitting the
slice views to the case.
"""

from __future__ import annotations

import slicer


class ReaderStudyLogic:
    """Start, rate, pause; the state is ``readerViewer`` (None when no study is open)."""

    readerViewer = None

    def startReaderStudy(self, study: str, reader: str):
        """Open ``study`` for ``reader`` (a bad folder or name is refused before anything changes) and show
        the first case they have not rated; returns its node, or None when every case is rated."""
        from MRSynthLib.errors import MRSynthError
        from MRSynthLib.mrml_reader_study import ReaderStudyViewer

        if not study:
            raise MRSynthError("choose the reader study's folder first")
        viewer = ReaderStudyViewer(slicer.mrmlScene, study, reader)
        self.pauseReaderStudy()
        self.readerViewer = viewer
        return self._fitReaderCase(viewer.show_next())

    def recordReaderRating(self, call: str, quality: int, confidence: int, comment: str = ""):
        """Save the rating of the case shown ('real' or 'synthetic', quality and confidence 1–5), then show
        the next case; returns its node (None when all are rated). A refused rating changes nothing."""
        from MRSynthLib.errors import MRSynthError

        if self.readerViewer is None:
            raise MRSynthError("no reader study is open: press Start / Resume first")
        self.readerViewer.record(call, quality, confidence, comment)
        return self._fitReaderCase(self.readerViewer.node)

    def pauseReaderStudy(self) -> None:
        """Take the case off the screen and close the study (every rating given is already saved)."""
        if self.readerViewer is not None:
            self.readerViewer.pause()
            self.readerViewer = None

    def readerStudyState(self):
        """(case shown or None, cases rated, cases in the study), or None when no study is open."""
        if self.readerViewer is None:
            return None
        return (self.readerViewer.case, *self.readerViewer.progress)

    @staticmethod
    def _fitReaderCase(node):
        if node is not None:  # the case alone in every view, the views fitted to it
            slicer.util.setSliceViewerLayers(background=node, foreground=None, label=None, fit=True)
        return node
