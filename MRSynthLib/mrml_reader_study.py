"""A reader study in an MRML scene: one case at a time, in a volume node that carries its neutral name only.

The Slicer module's *Reader study* section and its console API (``logic.startReaderStudy``) are this class
plus fitting the slice views. The node gets the case's voxels and geometry (read from the blinded file, no
storage node, no description), the study's window/level on its display node (automatic window/level off,
so every case is shown by the same rule), and is the background of every slice view with no foreground or
label layer over it (a synthetic result the user made earlier must not sit on top of a case). Nothing here
imports Qt; ``slicer`` is imported inside the functions so that the engine stays importable without Slicer.
"""

from __future__ import annotations

import os

import numpy as np

from .reader_session import Rating, ReaderSession
from .reader_study import Study

ATTRIBUTE = "MRSynth.ReaderStudy"
"""Set to the study id on every case node (the same for both classes): finds and removes case nodes."""


def case_node(scene, volume, name: str, window: float, level: float, study_id: str):
    """A scalar volume node named ``name`` holding ``volume`` shown at (window, level)."""
    import slicer.util

    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
    node.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(volume.affine_ras))
    slicer.util.updateVolumeFromArray(node, np.ascontiguousarray(volume.array))
    node.SetAttribute(ATTRIBUTE, study_id)
    try:
        node.CreateDefaultDisplayNodes()
    except Exception:  # noqa: BLE001 - a bare scene may lack the default color tables
        pass
    display = node.GetDisplayNode()
    if display is None:
        display = scene.AddNewNodeByClass("vtkMRMLScalarVolumeDisplayNode")
        node.SetAndObserveDisplayNodeID(display.GetID())
    display.AutoWindowLevelOff()
    display.SetWindowLevel(window, level)
    return node


def show_in_views(node) -> None:
    """``node`` as every slice view's background, alone (no foreground, no label map). The node's own scene
    is asked (``slicer.util.getNodesByClass`` reads ``slicer.mrmlScene`` whatever scene it is given)."""
    composites = node.GetScene().GetNodesByClass("vtkMRMLSliceCompositeNode")
    for composite in (composites.GetItemAsObject(i) for i in range(composites.GetNumberOfItems())):
        composite.SetBackgroundVolumeID(node.GetID())
        composite.SetForegroundVolumeID(None)
        composite.SetLabelVolumeID(None)


def remove_case_nodes(scene) -> None:
    """Remove every reader-study case node (and its display nodes) from ``scene``."""
    nodes = scene.GetNodesByClass("vtkMRMLScalarVolumeNode")
    for node in [nodes.GetItemAsObject(i) for i in range(nodes.GetNumberOfItems())]:
        if node.GetAttribute(ATTRIBUTE) is not None:
            for i in range(node.GetNumberOfDisplayNodes()):
                display = node.GetNthDisplayNode(i)
                if display is not None:
                    scene.RemoveNode(display)
            scene.RemoveNode(node)


class ReaderStudyViewer:
    """One reader's pass through a study in ``scene``: :meth:`show_next` puts the next unrated case in a
    node, :meth:`record` saves the rating of the case shown and shows the next, :meth:`pause` takes the case
    away (its rating file already holds everything: a new viewer resumes where this one stopped)."""

    def __init__(self, scene, study: str | os.PathLike | Study, reader: str) -> None:
        self.scene = scene
        self.session = ReaderSession(study, reader)
        self.case: str | None = None
        self.node = None

    @property
    def progress(self) -> tuple[int, int]:
        """(cases rated, cases in the study)."""
        return self.session.progress

    def show_next(self):
        """The next unrated case as a node, shown in every slice view; None (and no node) when all are rated."""
        self.pause()
        case = self.session.next_case()
        if case is None:
            return None
        window, level = self.session.window_level(case)
        self.node = case_node(self.scene, self.session.load(case), case, window, level, self.session.study.study_id)
        self.case = case
        show_in_views(self.node)
        return self.node

    def record(self, call: str, quality: int, confidence: int, comment: str = "") -> Rating:
        """Save the rating of the case shown (checked first: a refused rating keeps the case on screen), then
        show the next case."""
        from .errors import MRSynthError

        if self.case is None:
            raise MRSynthError("no case is shown: press Start / Resume first")
        rating = self.session.record(self.case, call, quality, confidence, comment)
        self.show_next()
        return rating

    def pause(self) -> None:
        """Take the case off the screen (and out of the scene); nothing else to save."""
        remove_case_nodes(self.scene)
        self.case, self.node = None, None
