"""Odd volumes and options that would be silently ignored: one line naming the file, exit 2, nothing
written; an input that covers only part of the first one's field of view is said, and the output is 0 there.

The runs use the bundled ONNX model (the registry's default); the pairwise case a small hand-built
pairwise bundle (identity graphs through the real ``PairwiseOnnxBackend``), as no pairwise model is bundled.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from MRSynthLib.cli import main
from MRSynthLib.io import read_volume, write_volume
from MRSynthLib.volume import Volume


@pytest.fixture(scope="module")
def case(tmp_path_factory, small_subject):
    d = tmp_path_factory.mktemp("odd")
    for c in ("T1", "T2", "PD"):
        write_volume(small_subject.volumes[c], d / f"{c}.nii.gz")
    return d


@pytest.fixture(scope="module")
def pairwise_bundle(tmp_path_factory):
    """A pairwise card with T2→FLAIR and FLAIR→T2 graphs (identity: image in, synthetic out)."""
    import onnx
    from onnx import TensorProto, helper

    from MRSynthLib.registry import sha256

    d = tmp_path_factory.mktemp("pairwise")
    files = {}
    for key in ("T2_to_FLAIR", "FLAIR_to_T2"):
        graph = helper.make_graph([helper.make_node("Identity", ["image"], ["synthetic"])], key,
                                  [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 1, "H", "W"])],
                                  [helper.make_tensor_value_info("synthetic", TensorProto.FLOAT, ["N", 1, "H", "W"])])
        path = d / f"pair-test-{key}.onnx"
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(path))
        files[key] = {"name": path.name, "sha256": sha256(path)}
    card = {"id": "pair-test", "interface": "pairwise", "mean_styles": np.eye(5).tolist(), "files": files}
    (d / "pair-test.json").write_text(json.dumps(card))
    return d / "pair-test.json"


def _like(ref: Volume, arr: np.ndarray) -> Volume:
    return Volume(arr.astype(np.float32), ref.spacing, ref.origin, ref.direction)


def _run(capsys, argv: list[str]) -> tuple[int, list[str]]:
    rc = main(argv)
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    return rc, [ln for ln in err.strip().splitlines() if ln]


PROBLEMS = ["constant", "single-nonzero-voxel", "single-voxel-volume", "all-negative", "smaller-than-network",
            "negative-inside-brain", "same-file-twice", "same-file-by-link", "style-ref-and-style-target",
            "style-target-is-target", "batch-size-0", "batch-size-negative", "pairwise-extra-input"]


@pytest.mark.parametrize("problem", PROBLEMS)
def test_odd_input_or_ignored_option_is_one_line_naming_it(problem, case, pairwise_bundle, tmp_path, capsys,
                                                         small_subject):
    t1 = small_subject.volumes["T1"]
    out = tmp_path / "out.nii.gz"
    inputs = {"T1": case / "T1.nii.gz", "T2": case / "T2.nii.gz"}
    target, extra = "FLAIR", []

    def image(name: str, vol: Volume):
        write_volume(vol, tmp_path / name)
        return tmp_path / name

    if problem == "constant":
        inputs["T2"] = image("const.nii.gz", _like(t1, np.full(t1.array.shape, 5.0)))
        expect = "const.nii.gz: is constant (every voxel is 5): no contrast"
    elif problem == "single-nonzero-voxel":
        arr = np.zeros(t1.array.shape)
        arr[20, 20, 20] = 300.0
        inputs["T1"] = image("dot.nii.gz", _like(t1, arr))
        expect = "dot.nii.gz: has a single non-zero voxel"
    elif problem == "single-voxel-volume":
        import nibabel as nib

        nib.save(nib.Nifti1Image(np.full((1, 1, 1), 7.0, np.float32), np.eye(4)), str(tmp_path / "one.nii.gz"))
        inputs["T2"], expect = tmp_path / "one.nii.gz", "one.nii.gz: is a single voxel"
    elif problem == "all-negative":
        inputs["T2"] = image("neg.nii.gz", _like(t1, -small_subject.volumes["T2"].array - 1.0))
        expect = "neg.nii.gz: has no positive voxel"
    elif problem == "smaller-than-network":
        small = np.random.default_rng(0).uniform(1, 2, (4, 4, 4))
        inputs = {"T1": image("tiny.nii.gz", Volume(small.astype(np.float32)))}
        expect = "tiny.nii.gz: is 4×4×4 voxels, too small for the network"
    elif problem == "negative-inside-brain":  # positive only in a corner outside the brain
        arr = -np.abs(small_subject.volumes["T2"].array)
        arr[:3, :3, :3] = np.arange(1, 28).reshape(3, 3, 3)
        inputs["T2"] = image("inverted.nii.gz", _like(t1, arr))
        expect = "inverted.nii.gz: is zero or negative in almost all of the brain mask"
    elif problem == "same-file-twice":
        inputs["T2"] = case / ".." / case.name / "T1.nii.gz"
        expect = "T1.nii.gz: given as both T1 and T2"
    elif problem == "same-file-by-link":
        os.symlink(case / "T1.nii.gz", tmp_path / "t2_link.nii.gz")
        inputs["T2"], expect = tmp_path / "t2_link.nii.gz", "t2_link.nii.gz: given as both T1 and T2"
    elif problem == "style-ref-and-style-target":
        extra = ["--style-ref", str(case / "PD.nii.gz"), "--style-target", "PD"]
        expect = "give --style-reference or --style-target, not both"
    elif problem == "style-target-is-target":
        extra, expect = ["--style-target", "t2f"], "--style-target FLAIR is the target itself"
    elif problem.startswith("batch-size"):
        n = "0" if problem.endswith("0") else "-3"
        extra, expect = ["--batch-size", n], f"--batch-size must be at least 1, got {n}"
    elif problem == "pairwise-extra-input":
        extra = ["--model", str(pairwise_bundle)]
        expect = (f"{case / 'T1.nii.gz'}: model 'pair-test' is a pairwise translator: it makes FLAIR from T2 alone "
                  "and does not read T1; drop that input")
    before = {p: p.stat().st_mtime_ns for p in case.iterdir()}
    argv = ["synthesize", *sum((["--input", f"{c}={p}"] for c, p in inputs.items()), []), "--target", target,
            "--output", str(out), "--quiet", *extra]
    rc, lines = _run(capsys, argv)
    assert rc == 2 and len(lines) == 1, lines
    assert lines[0].startswith("mrsynth: error: ") and expect in lines[0], lines[0]
    assert not out.exists() and not list(tmp_path.glob(".*"))
    assert {p: p.stat().st_mtime_ns for p in case.iterdir()} == before  # inputs untouched


def test_a_pairwise_model_runs_from_the_one_input_it_reads(case, pairwise_bundle, tmp_path, capsys):
    out = tmp_path / "flair.nii.gz"
    rc, lines = _run(capsys, ["synthesize", "--input", f"T2={case / 'T2.nii.gz'}", "--target", "FLAIR",
                              "--output", str(out), "--model", str(pairwise_bundle), "--quiet"])
    assert rc == 0 and out.exists(), lines


def test_an_input_covering_part_of_the_field_of_view_is_said_and_the_output_is_zero_there(
        case, tmp_path, capsys, small_subject):
    """T2 cut to the first half of the grid (i < 24): no seam where it ends, a 0 output and one warning."""
    t2 = small_subject.volumes["T2"]
    half = Volume(t2.array[:, :, :24].copy(), t2.spacing, t2.origin, t2.direction)
    write_volume(half, tmp_path / "T2_half.nii.gz")
    out = tmp_path / "flair.nrrd"  # NRRD keeps the MRSynth.* keys
    rc, lines = _run(capsys, ["synthesize", "--input", f"T1={case / 'T1.nii.gz'}", "--input",
                              f"T2={tmp_path / 'T2_half.nii.gz'}", "--target", "FLAIR", "--output", str(out), "--quiet"])
    assert rc == 0, lines
    warning = [ln for ln in lines if ln.startswith("mrsynth: warning:") and "high uncertainty" not in ln]
    assert len(warning) == 1, lines
    assert f"{tmp_path / 'T2_half.nii.gz'}: covers only " in warning[0]
    assert "% of the brain in the output's field of view; the output is 0 where it has no data" in warning[0]
    pct = int(warning[0].split("covers only ")[1].split("%")[0])
    assert 30 <= pct <= 70
    result = read_volume(out, check_content=False)
    assert result.array[:, :, 25:].max() == 0.0  # no data there: nothing made up
    assert result.array[:, :, :23].max() > 0.1
    from MRSynthLib.process import read_labels

    assert "covers only" in read_labels(out)["MRSynth.Notes"]


def test_an_input_covering_all_of_the_brain_gives_no_warning(case, tmp_path, capsys, small_subject):
    """The same T2 on a coarser grid over the same field of view: nothing to say."""
    from MRSynthLib.resample import resample_to

    t2 = small_subject.volumes["T2"]
    coarse = Volume(np.zeros((24, 28, 24), np.float32), tuple(s * 2 for s in t2.spacing), t2.origin, t2.direction)
    write_volume(resample_to(coarse, t2), tmp_path / "T2_coarse.nii.gz")
    rc, lines = _run(capsys, ["synthesize", "--input", f"T1={case / 'T1.nii.gz'}", "--input",
                              f"T2={tmp_path / 'T2_coarse.nii.gz'}", "--target", "FLAIR", "--output",
                              str(tmp_path / "o.nii.gz"), "--quiet"])
    assert rc == 0 and not [ln for ln in lines if "warning: high uncertainty" not in ln], lines  # (see docs/confidence.md)


def test_the_python_api_refuses_one_scan_under_two_contrast_names(small_subject):
    """In memory (Python console, Slicer nodes) there is no path to compare: identical voxels on one grid."""
    from MRSynthLib.errors import MRSynthError
    from MRSynthLib.synthesis import prepare

    t1 = small_subject.volumes["T1"]
    copy = Volume(t1.array.copy(), t1.spacing, t1.origin, t1.direction)
    with pytest.raises(MRSynthError, match="T2 input: given as both T1 and T2"):
        prepare({"T1": t1, "T2": copy})
