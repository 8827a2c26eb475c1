"""How the panel shows a result: over the user's own background, never instead of it.

The synthetic volume becomes the *foreground* of every slice view at half opacity, so the acquired image
the user was looking at stays underneath (the views' fade slider compares the two); a view with no
background gets the first input. Its window/level is set from its own voxels, because its units are not
the inputs': the network's normalized scale (about 0…1), or the reference's units after histogram
matching. Only MRML nodes are touched (the slice composite nodes, the display node).
"""

from __future__ import annotations

import numpy as np

FOREGROUND_OPACITY = 0.5


def displayRange(array: np.ndarray) -> tuple[float, float]:
    """(min, max) to display: from 0 (or the lowest value, when negative) to the 99.5th percentile of the
    finite non-zero voxels; (0, 1) for an empty result (a preview before its first slice)."""
    values = array[np.isfinite(array) & (array != 0)]
    if values.size == 0:
        return 0.0, 1.0
    low, high = np.percentile(values, (0.5, 99.5))
    low = min(0.0, float(low))
    return low, float(high) if high > low else low + 1.0


def setWindowLevel(node) -> None:
    """Window/level of ``node`` from its voxels (automatic window/level off, so it is kept)."""
    import slicer.util

    display = node.GetDisplayNode()
    if display is None:
        node.CreateDefaultDisplayNodes()
        display = node.GetDisplayNode()
    low, high = displayRange(slicer.util.arrayFromVolume(node))
    display.AutoWindowLevelOff()
    display.SetWindowLevelMinMax(low, high)


def sliceComposites(scene) -> list:
    """The slice views' composite nodes of ``scene`` itself (``slicer.util.getNodesByClass`` reads
    ``slicer.mrmlScene`` whatever scene it is given)."""
    nodes = scene.GetNodesByClass("vtkMRMLSliceCompositeNode")
    return [nodes.GetItemAsObject(i) for i in range(nodes.GetNumberOfItems())]


def showAsForeground(node, background=None) -> None:
    """``node`` as the foreground of every slice view, over the view's background; a view without one (or
    showing ``node`` itself there) gets ``background``."""
    for composite in sliceComposites(node.GetScene()):
        current = composite.GetBackgroundVolumeID()
        if background is not None and (not current or current == node.GetID()):
            composite.SetBackgroundVolumeID(background.GetID())
        composite.SetForegroundVolumeID(node.GetID())
        composite.SetForegroundOpacity(FOREGROUND_OPACITY)


def showOverBackground(node, background=None) -> None:
    """Window/level for its units, then foreground of every view over the user's background."""
    setWindowLevel(node)
    showAsForeground(node, background)


UNCERTAINTY_OPACITY = 0.4


def showUncertaintyOverlay(uncertainty, result) -> None:
    """The uncertainty map as a colour overlay on the result: the result becomes every view's background,
    the map its foreground (its colour table: dark = small expected error, bright = large), with a colour
    legend where Slicer has them. The fade slider goes from the result to the map."""
    import slicer

    setWindowLevel(result)
    setWindowLevel(uncertainty)
    for composite in sliceComposites(uncertainty.GetScene()):
        composite.SetBackgroundVolumeID(result.GetID())
        composite.SetForegroundVolumeID(uncertainty.GetID())
        composite.SetForegroundOpacity(UNCERTAINTY_OPACITY)
    colors = getattr(getattr(slicer, "modules", None), "colors", None)  # the Colors module: the desktop app only
    if colors is not None:
        legend = colors.logic().AddDefaultColorLegendDisplayNode(uncertainty)
        legend.SetTitleText("expected |error|")
