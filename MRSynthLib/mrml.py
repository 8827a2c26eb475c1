"""MRML adapter: volume nodes ↔ :class:`Volume`, and synthesis from nodes to a new, labelled node.

Geometry always comes from the node (its IJK→RAS matrix, composed with a linear parent transform),
never from a file written and read back: a left-handed volume round-tripped through NIfTI comes back
K-flipped with a different, equivalent matrix. Nothing here imports Qt; ``slicer`` and ``vtk`` are
imported inside the functions so that the engine stays importable without Slicer.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from . import orientation
from .contrasts import CONTRASTS, GADOLINIUM_NOTE, canonical, detect, synthetic_description
from .errors import MRSynthError
from .io import check_voxels
from .request import SynthesisRequest
from .synthesis import Progress, run_request_with_confidence
from .volume import Volume

PREVIEW_NOTE = ("LIVE PREVIEW: slices were synthesized one at a time as they were viewed, at varying style "
                "settings; press Apply for a consistent whole volume.")


def _matrix_to_array(vtk_matrix) -> np.ndarray:
    return np.array([[vtk_matrix.GetElement(r, c) for c in range(4)] for r in range(4)], dtype=float)


def node_label(node) -> str:
    """Node name for messages (``'T1 brain'``), robust to a missing node."""
    return f"'{node.GetName()}'" if node is not None else "(no volume)"


def ijk_to_world(node) -> np.ndarray:
    """4×4 IJK→RAS of ``node`` in world coordinates (linear parent transforms included)."""
    import vtk

    m = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(m)
    ijk_to_ras = _matrix_to_array(m)
    parent = node.GetParentTransformNode()
    if parent is not None:
        if not parent.IsTransformToWorldLinear():
            raise MRSynthError(f"volume {node_label(node)} is under a non-linear transform; harden it first")
        to_world = vtk.vtkMatrix4x4()
        parent.GetMatrixTransformToWorld(to_world)
        ijk_to_ras = _matrix_to_array(to_world) @ ijk_to_ras
    return ijk_to_ras


def volume_from_node(node, role: str = "input", check: bool = True) -> Volume:
    """Copy a scalar volume node into a :class:`Volume` (the node's voxels are never modified)."""
    import slicer.util

    if node is None:
        raise MRSynthError(f"no volume selected for {role}")
    if not node.IsA("vtkMRMLScalarVolumeNode"):
        raise MRSynthError(f"{role} {node_label(node)} is a {node.GetClassName()}, not a scalar volume")
    image = node.GetImageData()
    if image is None or image.GetPointData() is None or image.GetPointData().GetScalars() is None:
        raise MRSynthError(f"{role} {node_label(node)} has no image data")
    if image.GetNumberOfScalarComponents() != 1:
        raise MRSynthError(f"{role} {node_label(node)} has {image.GetNumberOfScalarComponents()} components; "
                           "a scalar (grayscale) volume is needed")
    dims = image.GetDimensions()
    if min(dims) < 2:
        raise MRSynthError(f"{role} {node_label(node)} is a single slice {dims}; a 3D volume is needed")
    array = np.array(slicer.util.arrayFromVolume(node), copy=True)
    if check:
        check_voxels(array, f"{role} {node_label(node)}")
    volume = Volume.from_affine_ras(array, ijk_to_world(node))
    volume.metadata["source_path"] = f"{role} {node_label(node)}"
    return volume


def grid_of(node) -> Volume:
    """The node's grid as a :class:`Volume` with an empty (unallocated) array, for geometry checks."""
    dims = node.GetImageData().GetDimensions()
    return Volume.from_affine_ras(np.empty(dims[::-1], dtype=np.uint8), ijk_to_world(node))


def array_on_grid(result: Volume, like: Volume) -> np.ndarray:
    """Voxels of ``result`` in the index order of ``like`` when both sample the same points.

    Exact (a permutation/flip, no interpolation); used for results read back from a file, whose index
    order may differ from the node's (left-handed matrices come back K-flipped from NIfTI).
    """
    if result.same_grid(like):
        return result.array
    arr = orientation.from_canonical(orientation.to_canonical(result), like)
    lo_r, hi_r = result.world_bounds()
    lo_l, hi_l = like.world_bounds()
    same_points = (arr.shape == like.array.shape and np.allclose(lo_r, lo_l, atol=1e-3)
                   and np.allclose(hi_r, hi_l, atol=1e-3)
                   and np.allclose(sorted(result.spacing), sorted(like.spacing), atol=1e-4))
    if not same_points:
        raise MRSynthError("the synthetic volume does not lie on the first input's grid")
    return arr


def _place_in_study(scene, node, like) -> None:
    """Put ``node`` in the subject-hierarchy folder (study) of ``like``; silently skip without one."""
    try:
        import slicer

        sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
        if sh is None:
            return
        like_item = sh.GetItemByDataNode(like)
        if not like_item:
            return
        parent = sh.GetItemParent(like_item)
        item = sh.GetItemByDataNode(node)
        if not item:  # the app's plugin logic adds data nodes to the hierarchy; a bare scene does not
            sh.CreateItem(parent, node)
        else:
            sh.SetItemParent(item, parent)
    except (AttributeError, ImportError):  # subject hierarchy not available in this build
        return


def subject_name(node) -> str | None:
    """Name of the subject-hierarchy patient (subject) that holds ``node``, if any."""
    if node.GetScene() is None:
        return None
    try:
        import slicer

        sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(node.GetScene())
        patient = slicer.vtkMRMLSubjectHierarchyConstants.GetDICOMLevelPatient()
    except (AttributeError, ImportError):  # subject hierarchy not in this build
        return None
    item = sh.GetItemByDataNode(node) if sh is not None else 0
    while item and item != sh.GetSceneItemID():
        if sh.GetItemLevel(item) == patient:
            return sh.GetItemName(item) or None
        item = sh.GetItemParent(item)
    return None


def default_output_name(first, target: str) -> str:
    """``<subject> FLAIR (synthetic)``: the subject-hierarchy subject, else the first input's name."""
    return f"{subject_name(first) or first.GetName()} {canonical(target)} (synthetic)"


def check_output(output, protected: dict[str, object]) -> None:
    """Refuse an ``output`` that is one of ``protected`` (role → node): inputs are never overwritten."""
    if output is None:
        return
    for role, node in protected.items():
        if node is not None and (node is output or (node.GetID() is not None and node.GetID() == output.GetID())):
            raise MRSynthError(f"the output {node_label(output)} is the {role} volume; "
                               "choose another output or 'Create new volume' (inputs are never overwritten)")


def write_output_node(result: Volume, first, output=None, scene=None, name: str | None = None,
                      protected: dict[str, object] | None = None):
    """Create (or fill) the output node on ``first``'s exact geometry, labelled as synthetic.

    ``result`` must lie on ``first``'s grid (any index order); the IJK→RAS matrix and parent transform are
    copied from ``first`` itself, so the output overlays its first input exactly. ``output`` may be
    neither ``first`` nor any of ``protected`` (role → node: the other inputs, reference, mask), checked
    here too because a background run's result arrives long after the request was checked.
    """
    import slicer.util
    import vtk

    check_output(output, {**(protected or {}), "first input": first})
    scene = scene or first.GetScene()
    array = np.ascontiguousarray(array_on_grid(result, grid_of(first)), dtype=np.float32)
    target = result.metadata.get("MRSynth.Contrast", "")
    if output is None:
        output = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode",
                                         scene.GenerateUniqueName(name or default_output_name(first, target)))
    m = vtk.vtkMatrix4x4()
    first.GetIJKToRASMatrix(m)
    output.SetIJKToRASMatrix(m)
    output.SetAndObserveTransformNodeID(first.GetTransformNodeID())
    slicer.util.updateVolumeFromArray(output, array)
    for key, value in result.metadata.items():
        if key.startswith("MRSynth."):
            output.SetAttribute(key, str(value))
    output.SetAttribute("MRSynth.Synthetic", "1")
    output.RemoveAttribute("MRSynth.Preview")  # a full result; mark_preview() sets it again for a preview
    description = synthetic_description(target, result.metadata.get("MRSynth.Model", "?"),
                                        result.metadata.get("MRSynth.Inputs", "?"))
    warning = result.metadata.get("MRSynth.UncertaintyWarning")
    output.SetDescription(description + (" " + GADOLINIUM_NOTE if target == "T1Gd" else "")
                          + (f" Warning: {warning}." if warning else ""))
    if output.GetDisplayNode() is None:
        try:
            output.CreateDefaultDisplayNodes()
        except Exception:  # noqa: BLE001 - a bare scene may lack the default color tables
            pass
    _place_in_study(scene, output, first)
    mark_dicom(output, result.metadata, first)
    return output


def _input_dicom_tags(first) -> dict[str, str]:
    """The first input's patient, study and frame of reference (keyword → value): its own ``DICOM.*``
    attributes, else its subject-hierarchy items' (where Slicer's DICOM loader keeps them; a study item's
    DICOM UID is its StudyInstanceUID)."""
    from .dicom_output import CARRIED, PREFIX

    found: dict[str, str] = {}
    try:
        import slicer

        sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(first.GetScene())
    except (AttributeError, ImportError, TypeError):  # no subject hierarchy in this build, or no scene
        sh = None
    item = sh.GetItemByDataNode(first) if sh is not None else 0
    while item and item != sh.GetSceneItemID():  # the input's series item, then its study and patient
        found.update({k: v for k in CARRIED if k not in found and (v := sh.GetItemAttribute(item, PREFIX + k))})
        study = sh.GetItemLevel(item) == slicer.vtkMRMLSubjectHierarchyConstants.GetDICOMLevelStudy()
        if study and "StudyInstanceUID" not in found and sh.GetItemUID(item, "DICOM"):
            found["StudyInstanceUID"] = sh.GetItemUID(item, "DICOM")
        item = sh.GetItemParent(item)
    return {**found, **{k: v for k in CARRIED if (v := first.GetAttribute(PREFIX + k))}}


def mark_dicom(node, metadata, first) -> None:
    """Set the ``DICOM.*`` attributes Slicer's DICOM export reads (from the series' subject-hierarchy item:
    Modality, SeriesDescription, Manufacturer, Model, FrameOfReferenceUID) on the node and its item, with
    what its exporter cannot write (ImageType, DerivationDescription, ImageComments, BurnedInAnnotation) and
    the first input's patient and study. An input's SeriesInstanceUID or instance UIDs are never copied (the
    exporter makes a new series), and removed from a reused output node."""
    from .dicom_output import NEVER_CARRIED, PREFIX, carried_tags, synthetic_series_tags

    series = synthetic_series_tags(metadata)
    carried = {**carried_tags(metadata), **_input_dicom_tags(first)}
    for key in NEVER_CARRIED:
        node.RemoveAttribute(PREFIX + key)
    for key, value in {**carried, **series}.items():
        node.SetAttribute(PREFIX + key, value)
    try:
        import slicer

        sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(node.GetScene())
        item = sh.GetItemByDataNode(node) if sh is not None else 0
    except (AttributeError, ImportError, TypeError):
        item = 0
    if not item:
        return
    for key in NEVER_CARRIED:
        sh.RemoveItemAttribute(item, PREFIX + key)
    frame = {"FrameOfReferenceUID": carried["FrameOfReferenceUID"]} if "FrameOfReferenceUID" in carried else {}
    for key, value in {**series, **frame}.items():
        sh.SetItemAttribute(item, PREFIX + key, value)


def mark_preview(node) -> None:
    """Label a node the live preview wrote into: synthetic *and* not one consistent result (once)."""
    if node.GetAttribute("MRSynth.Preview") != "1":
        node.SetAttribute("MRSynth.Preview", "1")
        node.SetDescription(f"{node.GetDescription()} {PREVIEW_NOTE}")


def takes_preview_slices(node, first, target: str) -> bool:
    """True when the live preview may write single slices into ``node``: a synthetic volume of this target
    (a preview or an Apply's result) on ``first``'s exact grid. Anything else — an acquired volume, another
    target or grid — is rewritten whole and relabelled, so no synthetic slice lands in a volume labelled
    otherwise."""
    if node is None or node.GetImageData() is None or node.GetAttribute("MRSynth.Synthetic") != "1":
        return False
    if node.GetAttribute("MRSynth.Contrast") != target or node.GetTransformNodeID() != first.GetTransformNodeID():
        return False
    if node.GetImageData().GetDimensions() != first.GetImageData().GetDimensions():
        return False
    import vtk

    a, b = vtk.vtkMatrix4x4(), vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(a)
    first.GetIJKToRASMatrix(b)
    return np.array_equal(_matrix_to_array(a), _matrix_to_array(b))


def check_nodes(request: SynthesisRequest) -> None:
    """One node per contrast, and an output (``request.output``) that is none of the images read."""
    seen: dict[str, str] = {}
    for c, node in request.inputs.items():
        if node.GetID() in seen:
            raise MRSynthError(f"volume {node_label(node)} is given as both {seen[node.GetID()]} and {c}")
        seen[node.GetID()] = c
    check_output(request.output, protected_nodes(request))


def protected_nodes(request: SynthesisRequest) -> dict[str, object]:
    """Role → node of every node a request reads: never written into."""
    return {**request.inputs, "reference": request.style_reference, "mask": request.mask}


def node_volume(node, role: str) -> Volume:
    """A request's node as a Volume (a mask's voxels are not checked as an image's are)."""
    return volume_from_node(node, role, check=role != "mask")


def synthesize_nodes(request: SynthesisRequest, engine=None, progress: Progress | None = None, scene=None,
                     name: str | None = None):
    """Synthesize a request on volume nodes; returns the output node (``request.output`` filled, or new).

    The output node is created (or filled) only after the run succeeded, so a cancel (``progress``
    returning ``False``) or an error leaves the scene as it was. Inputs are never modified.
    """
    check_nodes(request)
    result, sd = run_request_with_confidence(request.with_sources(node_volume), engine=engine, progress=progress)
    output = write_output_node(result, request.first, output=request.output, scene=scene, name=name,
                               protected=protected_nodes(request))
    if sd is not None:
        write_uncertainty_node(sd, output)
    return output


UNCERTAINTY_REFERENCE = "MRSynthUncertainty"  # output node → its uncertainty map node
UNCERTAINTY_COLORS = "vtkMRMLColorTableNodeInferno"  # dark = small expected error, bright = large


def write_uncertainty_node(sd: Volume, output):
    """The uncertainty map as its own node on the output's grid, referenced by the output (a rerun into the
    same output refills the same map node); labelled as a map, never as an image."""
    import slicer.util
    import vtk

    scene = output.GetScene()
    node = uncertainty_node(output)
    if node is None:
        node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", scene.GenerateUniqueName(f"{output.GetName()} uncertainty"))
        output.SetNodeReferenceID(UNCERTAINTY_REFERENCE, node.GetID())
    m = vtk.vtkMatrix4x4()
    output.GetIJKToRASMatrix(m)
    node.SetIJKToRASMatrix(m)
    node.SetAndObserveTransformNodeID(output.GetTransformNodeID())
    slicer.util.updateVolumeFromArray(node, np.ascontiguousarray(array_on_grid(sd, grid_of(output)), np.float32))
    for key, value in sd.metadata.items():
        if key.startswith("MRSynth."):
            node.SetAttribute(key, str(value))
    node.SetDescription(f"{sd.metadata.get('descrip', 'MRSynth uncertainty')}: "
                        f"{sd.metadata.get('MRSynth.UncertaintyInterval', '')}")
    if node.GetDisplayNode() is None:
        try:
            node.CreateDefaultDisplayNodes()
        except Exception:  # noqa: BLE001 - a bare scene may lack the default color tables
            pass
    display = node.GetDisplayNode()
    if display is not None and scene.GetNodeByID(UNCERTAINTY_COLORS) is not None:
        display.SetAndObserveColorNodeID(UNCERTAINTY_COLORS)
    return node


def uncertainty_node(output):
    """The uncertainty map node of an output node (None: no map was made)."""
    return output.GetNodeReference(UNCERTAINTY_REFERENCE) if output is not None else None


def autofill(nodes) -> dict[str, object]:
    """Map contrasts to nodes by name (``t1c`` → T1Gd, ``*_FLAIR`` → FLAIR); the first match wins,
    synthetic outputs are skipped so a previous result is never taken as an acquired input."""
    found: dict[str, object] = {}
    for node in nodes:
        if node is None or node.GetAttribute("MRSynth.Synthetic") == "1":
            continue
        contrast = detect(node.GetName() or "")
        if contrast in CONTRASTS and contrast not in found:
            found[contrast] = node
    return found


def scene_volumes(scene) -> list:
    """Scalar volume nodes of a scene (not label maps), in scene order."""
    nodes = scene.GetNodesByClass("vtkMRMLScalarVolumeNode")
    out = [nodes.GetItemAsObject(i) for i in range(nodes.GetNumberOfItems())]
    return [n for n in out if not n.IsA("vtkMRMLLabelMapVolumeNode")]


def job_request(request: SynthesisRequest, workdir) -> SynthesisRequest[str]:
    """Write a request's nodes to NRRD files in ``workdir`` for the background process; the same request
    on those files, its output a file there.

    ``request.output`` (where the result will go) is checked now, before any work: it may not be an
    input, the reference or the mask. NRRD keeps any direction matrix exactly (left-handed included), so
    the process sees the nodes' geometry; the result is mapped back onto the first node's grid by
    :func:`write_output_node`.
    """
    from pathlib import Path

    from .io import write_volume

    check_nodes(request)
    work = Path(workdir)

    def write(node, role: str) -> str:  # uncompressed: this runs on Slicer's main thread
        return str(write_volume(node_volume(node, role), work / f"{role}.nrrd", overwrite=True, compress=False))

    job = request.with_sources(write, output=str(work / f"{request.target}_synthetic.nrrd"))
    if request.confidence is not None:  # the map comes back as a file beside the output
        job = replace(job, confidence=str(work / f"{request.target}_uncertainty.nrrd"))
    return job
