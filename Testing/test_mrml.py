"""MRML adapter on a real vtkMRMLScene (slicer-core wheel): geometry, labels, cancel, bad inputs, CLI parity."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("slicer")
import slicer  # noqa: E402
import slicer.util  # noqa: E402
import vtk  # noqa: E402

from MRSynthLib.errors import CancelledError, MRSynthError  # noqa: E402
from MRSynthLib.mrml import (  # noqa: E402
    autofill,
    ijk_to_world,
    scene_volumes,
    synthesize_nodes,
    volume_from_node,
)
from MRSynthLib.request import SynthesisRequest  # noqa: E402


def run_nodes(inputs=None, target=None, engine=None, scene=None, progress=None, **options):
    """The console's form: a request made from nodes and options, synthesized into a node."""
    return synthesize_nodes(SynthesisRequest(inputs, target, **options), engine=engine, progress=progress,
                            scene=scene)


def _rotation(seed: int) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    return Rotation.from_euler("xyz", np.random.default_rng(seed).uniform(-30, 30, 3), degrees=True).as_matrix()


def geometry(case: str, shape_kji: tuple[int, int, int]) -> tuple[np.ndarray, tuple[int, ...], list[bool]]:
    """IJK→RAS matrix, plus the array transpose/flips that store the *same* physical image that way.

    The reference storage is axis-aligned: i→L... in RAS: i → -x (R→L is +L = -R), j → -y, k → +z.
    """
    spacing = np.array([1.1, 0.9, 1.3])
    base = np.diag([-1.0, -1.0, 1.0])
    axes, flips = (0, 1, 2), [False, False, False]  # numpy axes of the reference [k, j, i] array
    if case == "axis":
        cols = base
    elif case == "permuted":  # index i runs along S, j along L, k along P (a sagittal-like storage)
        axes = (1, 2, 0)  # new [k, j, i] = old [j, i, k]: new k = old j, new j = old i, new i = old k
        cols = np.stack([base[:, 2], base[:, 0], base[:, 1]], axis=1)
        spacing = spacing[[2, 0, 1]]
    elif case == "oblique":
        cols = _rotation(5) @ base
    elif case == "lefthanded":  # k runs inferior: same points, array flipped along k
        cols = base.copy()
        cols[:, 2] *= -1
        flips = [True, False, False]
    else:
        raise ValueError(case)
    m = np.eye(4)
    m[:3, :3] = cols * spacing
    m[:3, 3] = [10.0, -20.0, 5.0]
    if case == "lefthanded":  # origin at the other end of k so the voxels sit where they did
        m[:3, 3] += base[:, 2] * spacing[2] * (shape_kji[0] - 1)
    return m, axes, flips


def store(array: np.ndarray, axes, flips) -> np.ndarray:
    out = np.transpose(array, axes)
    for ax, f in enumerate(flips):
        if f:
            out = np.flip(out, axis=ax)
    return np.ascontiguousarray(out)


def add_volume(scene, name: str, array: np.ndarray, ijk_to_ras: np.ndarray):
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
    node.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(ijk_to_ras))
    slicer.util.updateVolumeFromArray(node, np.ascontiguousarray(array, dtype=np.float32))
    return node


def matrix(node) -> np.ndarray:
    m = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(m)
    return slicer.util.arrayFromVTKMatrix(m)


@pytest.fixture(scope="module")
def engine(tiny_bundle):
    from MRSynthLib.registry import load_backend, resolve_model

    return load_backend(resolve_model(str(tiny_bundle)), "onnx", "cpu")


def subject_scene(small_subject, case: str, contrasts=("T1", "T2")):
    scene = slicer.vtkMRMLScene()
    shape = small_subject.volumes["T1"].array.shape
    m, axes, flips = geometry(case, shape)
    nodes = {c: add_volume(scene, f"sub01 {c}", store(small_subject.volumes[c].array, axes, flips), m)
             for c in contrasts}
    return scene, nodes, (axes, flips)


@pytest.mark.parametrize("case", ["axis", "permuted", "oblique", "lefthanded"])
def test_output_lies_exactly_on_first_input(small_subject, engine, case):
    scene, nodes, _ = subject_scene(small_subject, case)
    out = run_nodes(nodes, "FLAIR", engine=engine, scene=scene)
    first = nodes["T1"]
    assert np.array_equal(matrix(out), matrix(first))
    assert out.GetImageData().GetDimensions() == first.GetImageData().GetDimensions()
    assert out.GetName() == "sub01 T1 FLAIR (synthetic)"
    arr = slicer.util.arrayFromVolume(out)
    assert arr.dtype == np.float32 and arr.max() > 0


def test_same_physical_image_gives_same_output_whatever_the_storage(small_subject, engine):
    """Storage order must not matter: permuted/left-handed copies of one image give the same voxels."""
    results = {}
    for case in ("axis", "permuted", "lefthanded"):
        scene, nodes, (axes, flips) = subject_scene(small_subject, case)
        out = slicer.util.arrayFromVolume(run_nodes(nodes, "FLAIR", engine=engine, scene=scene))
        results[case] = out
        expected_storage = store(results["axis"], axes, flips)
        np.testing.assert_allclose(out, expected_storage, atol=1e-5)


def test_node_is_labelled_synthetic_and_placed_in_the_study(small_subject, engine):
    scene, nodes, _ = subject_scene(small_subject, "axis")
    sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    patient = sh.CreateSubjectItem(sh.GetSceneItemID(), "sub01")
    study = sh.CreateStudyItem(patient, "MR study")
    for node in nodes.values():  # what Slicer's hierarchy plugins do when data is loaded into a study
        sh.CreateItem(study, node)
    out = run_nodes(nodes, "t2f", engine=engine, scene=scene, style_alpha=0.5, style_target="T1")
    assert out.GetAttribute("MRSynth.Synthetic") == "1"
    assert out.GetAttribute("MRSynth.Contrast") == "FLAIR"
    assert out.GetAttribute("MRSynth.Inputs") == "T1,T2"
    assert "not an acquired image" in out.GetDescription()
    assert "gadolinium" not in out.GetDescription()
    assert sh.GetItemParent(sh.GetItemByDataNode(out)) == study
    # a second run never overwrites the first result: a new unique name
    again = run_nodes(nodes, "FLAIR", engine=engine, scene=scene)
    assert again.GetID() != out.GetID() and again.GetName() != out.GetName()


def test_style_alpha_changes_output_and_existing_output_is_filled(small_subject, engine):
    scene, nodes, _ = subject_scene(small_subject, "axis")
    out = run_nodes(nodes, "FLAIR", engine=engine, scene=scene)
    before = slicer.util.arrayFromVolume(out).copy()
    n_nodes = scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode")
    same = run_nodes(nodes, "FLAIR", output=out, engine=engine, scene=scene, style_alpha=1.0,
                            style_target="PD")
    assert same is out and scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode") == n_nodes
    assert np.abs(slicer.util.arrayFromVolume(out) - before).max() > 1e-3


def test_histogram_matching_from_nodes_equals_the_library_path(small_subject, engine):
    """The panel's 'match the reference's histogram' box: node path = MRSynthLib path, voxel for voxel."""
    from MRSynthLib.synthesis import synthesize

    scene, nodes, _ = subject_scene(small_subject, "axis")
    ref = add_volume(scene, "other FLAIR", small_subject.volumes["PD"].array.copy(), matrix(nodes["T1"]))
    out = run_nodes(nodes, "FLAIR", engine=engine, scene=scene, style_reference=ref, style_alpha=1.0,
                           match_histogram=True)
    plain = run_nodes(nodes, "FLAIR", engine=engine, scene=scene, style_reference=ref, style_alpha=1.0)
    volumes = {c: volume_from_node(n, c) for c, n in nodes.items()}
    lib = synthesize(volumes, "FLAIR", engine=engine, style_reference=volume_from_node(ref, "reference"),
                     style_alpha=1.0, match_histogram=True)
    np.testing.assert_allclose(slicer.util.arrayFromVolume(out), lib.array, atol=1e-6)
    assert np.abs(slicer.util.arrayFromVolume(out) - slicer.util.arrayFromVolume(plain)).max() > 1e-2


def test_cancel_mid_run_leaves_no_node(small_subject, engine):
    scene, nodes, _ = subject_scene(small_subject, "axis")
    count = scene.GetNumberOfNodes()
    calls = []

    def progress(done, total, _msg):
        calls.append(done)
        return done < total // 2  # stop half-way

    with pytest.raises(CancelledError):
        run_nodes(nodes, "FLAIR", engine=engine, scene=scene, progress=progress, batch_size=2)
    assert len(calls) >= 2 and scene.GetNumberOfNodes() == count


def test_bad_inputs_give_one_clear_line_and_leave_inputs_untouched(small_subject, engine):
    scene, nodes, _ = subject_scene(small_subject, "axis")
    arrays = {c: slicer.util.arrayFromVolume(n).copy() for c, n in nodes.items()}
    empty = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "nothing")
    zeros = add_volume(scene, "zeros", np.zeros((8, 9, 10)), np.eye(4))
    count = scene.GetNumberOfNodes()
    cases = [
        (dict(inputs=nodes, target="T2"), "also given as an input"),
        (dict(inputs={"T1": nodes["T1"], "PD": nodes["T1"]}, target="FLAIR"), "given as both T1 and PD"),
        (dict(inputs=nodes, target="FLAIR", output=nodes["T2"]), "inputs are never overwritten"),
        (dict(inputs={"T1": nodes["T1"], "T2": empty}, target="FLAIR"), "has no image data"),
        (dict(inputs={"T1": nodes["T1"], "T2": zeros}, target="FLAIR"), "all zero"),
        (dict(inputs={"T1": nodes["T1"], "T2": None}, target="FLAIR"), "no volume selected for T2"),
        (dict(inputs={}, target="FLAIR"), "no inputs"),
        (dict(inputs=nodes, target="T3"), "unknown contrast 'T3'"),
        (dict(inputs=nodes, target="FLAIR", style_target="PD", style_alpha=1.5), "must lie in [0, 1]"),
        (dict(inputs=nodes, target="FLAIR", style_alpha=0.5), "--style-alpha needs"),
    ]
    for kwargs, message in cases:
        with pytest.raises(MRSynthError) as err:
            run_nodes(engine=engine, scene=scene, **kwargs)
        assert message in str(err.value) and "\n" not in str(err.value)
    assert scene.GetNumberOfNodes() == count
    for c, node in nodes.items():
        assert np.array_equal(slicer.util.arrayFromVolume(node), arrays[c])


def test_linear_parent_transform_is_part_of_the_geometry(small_subject):
    scene, nodes, _ = subject_scene(small_subject, "axis")
    t = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
    shift = np.eye(4)
    shift[:3, 3] = [5.0, 0.0, -2.0]
    t.SetMatrixTransformToParent(slicer.util.vtkMatrixFromArray(shift))
    nodes["T1"].SetAndObserveTransformNodeID(t.GetID())
    np.testing.assert_allclose(ijk_to_world(nodes["T1"]), shift @ matrix(nodes["T1"]))
    vol = volume_from_node(nodes["T1"])
    np.testing.assert_allclose(vol.affine_ras, shift @ matrix(nodes["T1"]), atol=1e-9)


def test_autofill_maps_names_and_skips_synthetic_outputs():
    scene = slicer.vtkMRMLScene()
    names = ["BraTS-GLI-001_t1c", "sub-01_T2w", "BraTS-GLI-001_t2f", "sub-01_T1w", "Volume", "old FLAIR"]
    nodes = [add_volume(scene, n, np.ones((4, 4, 4)), np.eye(4)) for n in names]
    nodes[-1].SetAttribute("MRSynth.Synthetic", "1")
    found = autofill(scene_volumes(scene))
    assert {c: n.GetName() for c, n in found.items()} == {
        "T1Gd": "BraTS-GLI-001_t1c", "T2": "sub-01_T2w", "FLAIR": "BraTS-GLI-001_t2f", "T1": "sub-01_T1w"}


@pytest.mark.parametrize("case", ["axis", "lefthanded"])
@pytest.mark.parametrize("model", ["tiny_bundle", "calibrated_bundle"])
def test_panel_console_and_cli_give_the_same_voxels(small_subject, request, model, tmp_path, case):
    """The node path and the `mrsynth synthesize` CLI on the same inputs give the same voxels (with and
    without a card that calibrates intensities)."""
    tiny_bundle = request.getfixturevalue(model)
    from MRSynthLib.cli import main
    from MRSynthLib.io import read_volume, write_volume
    from MRSynthLib.mrml import array_on_grid, grid_of

    scene, nodes, _ = subject_scene(small_subject, case)
    for c, node in nodes.items():  # what the panel hands to the background process
        write_volume(volume_from_node(node), tmp_path / f"{c}.nii.gz")
    out_file = tmp_path / "FLAIR.nii.gz"
    rc = main(["synthesize", "--input", f"T1={tmp_path / 'T1.nii.gz'}", "--input", f"T2={tmp_path / 'T2.nii.gz'}",
               "--target", "FLAIR", "--output", str(out_file), "--model", str(tiny_bundle), "--quiet",
               "--device", "cpu"])
    assert rc == 0
    node_out = slicer.util.arrayFromVolume(run_nodes(nodes, "FLAIR", model=str(tiny_bundle), scene=scene,
                                                            device="cpu"))
    cli_out = array_on_grid(read_volume(out_file), grid_of(nodes["T1"]))
    np.testing.assert_allclose(node_out, cli_out, atol=1e-6)


@pytest.mark.parametrize(("case", "model"), [("oblique", "tiny_bundle"), ("lefthanded", "tiny_bundle"),
                                             ("oblique", "calibrated_bundle")])
def test_panel_background_path_gives_the_same_voxels(small_subject, request, model, tmp_path, case):
    """Panel Apply: nodes → NRRD → `mrsynth` process → output node, equal to the in-process node path,
    and labelled with what was done to the intensities."""
    tiny_bundle = request.getfixturevalue(model)
    from MRSynthLib.mrml import job_request, write_output_node
    from MRSynthLib.process import SynthesisProcess

    scene, nodes, _ = subject_scene(small_subject, case)
    params = job_request(SynthesisRequest(nodes, "FLAIR", model=str(tiny_bundle), device="cpu", style_alpha=0.3,
                                          style_target="PD"), tmp_path)
    for path in params.inputs.values():  # written on Slicer's main thread: raw, not gzip (~20× faster)
        assert b"encoding: raw" in Path(path).read_bytes()[:1000]
    proc = SynthesisProcess()
    proc.start(params)
    status = proc.wait(timeout=120)
    assert status.state == "finished", status.error
    panel = write_output_node(proc.result(), nodes["T1"], scene=scene)
    console = run_nodes(nodes, "FLAIR", model=str(tiny_bundle), scene=scene, device="cpu", style_alpha=0.3,
                               style_target="PD")
    assert np.array_equal(matrix(panel), matrix(nodes["T1"]))
    assert panel.GetAttribute("MRSynth.Model") == "tiny-test" and panel.GetAttribute("MRSynth.Synthetic") == "1"
    calibration = panel.GetAttribute("MRSynth.Calibration")
    assert calibration == console.GetAttribute("MRSynth.Calibration")
    assert calibration.startswith("tone exponent") if model == "calibrated_bundle" else calibration == "off"
    np.testing.assert_allclose(slicer.util.arrayFromVolume(panel), slicer.util.arrayFromVolume(console), atol=1e-6)


def test_a_synthetic_t1gd_says_it_shows_no_real_enhancement(small_subject, engine):
    scene, nodes, _ = subject_scene(small_subject, "axis")
    out = run_nodes({"T1": nodes["T1"], "T2": nodes["T2"]}, "T1Gd", engine=engine, scene=scene)
    assert "gadolinium enhancement cannot truly be synthesized" in out.GetDescription()


def test_background_path_never_writes_into_an_input(small_subject, engine, tmp_path):
    """Apply's two steps refuse an input (or reference/mask) as output: before the job is written, and
    again when the result is written back (the selection may have changed while the process ran)."""
    from MRSynthLib.mrml import job_request, write_output_node

    scene, nodes, _ = subject_scene(small_subject, "axis")
    reference = add_volume(scene, "ref", small_subject.volumes["FLAIR"].array, matrix(nodes["T1"]))
    before = {c: slicer.util.arrayFromVolume(n).copy() for c, n in nodes.items()}
    for output, role in ((nodes["T2"], "T2"), (reference, "reference")):
        with pytest.raises(MRSynthError, match=f"is the {role} volume.*inputs are never overwritten"):
            job_request(SynthesisRequest(nodes, "FLAIR", style_reference=reference, output=output), tmp_path)
    assert not list(tmp_path.iterdir())  # refused before any file was written
    result = volume_from_node(nodes["T1"])
    for output, protected in ((nodes["T1"], None), (nodes["T2"], nodes), (reference, {"reference": reference})):
        with pytest.raises(MRSynthError, match="inputs are never overwritten"):
            write_output_node(result, nodes["T1"], output=output, scene=scene, protected=protected)
    for c, node in nodes.items():
        assert np.array_equal(slicer.util.arrayFromVolume(node), before[c])


def test_default_output_name_uses_the_subject_of_the_subject_hierarchy(small_subject, engine):
    scene, nodes, _ = subject_scene(small_subject, "axis")
    assert run_nodes(nodes, "FLAIR", engine=engine, scene=scene).GetName() == "sub01 T1 FLAIR (synthetic)"
    sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    study = sh.CreateStudyItem(sh.CreateSubjectItem(sh.GetSceneItemID(), "Patient 7"), "MR brain")
    for node in nodes.values():
        sh.CreateItem(study, node)
    out = run_nodes(nodes, "FLAIR", engine=engine, scene=scene)
    assert out.GetName() == "Patient 7 FLAIR (synthetic)"
    assert sh.GetItemParent(sh.GetItemByDataNode(out)) == study
