"""The ``mrsynth`` command-line contract, and one clear line for every bad input (nothing written)."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from MRSynthLib.cli import main
from MRSynthLib.io import read_volume, write_volume
from MRSynthLib.volume import Volume


@pytest.fixture(scope="module")
def case(tmp_path_factory, small_subject, tiny_bundle):
    d = tmp_path_factory.mktemp("case")
    for c in ("T1", "T2", "PD", "FLAIR"):
        write_volume(small_subject.volumes[c], d / f"{c}.nii.gz")
    return d


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def _synth_args(case: Path, model: Path, out: Path, *extra: str) -> list[str]:
    return ["synthesize", "--input", f"T1={case / 'T1.nii.gz'}", "--input", f"t2w={case / 'T2.nii.gz'}",
            "--target", "FLAIR", "--output", str(out), "--model", str(model), "--quiet", *extra]


def test_synthesize_writes_the_first_inputs_grid(case, tiny_bundle, tmp_path, capsys):
    out = tmp_path / "FLAIR_synthetic.nii.gz"
    rc, stdout, err = _run(capsys, *_synth_args(case, tiny_bundle, out))
    assert rc == 0, err
    first, result = read_volume(case / "T1.nii.gz"), read_volume(out)
    assert result.array.shape == first.array.shape
    assert np.allclose(result.affine_lps, first.affine_lps, atol=1e-5)
    import nibabel as nib

    assert b"SYNTHETIC" in nib.load(str(out)).header["descrip"].tobytes()


def test_console_script_shows_progress_on_stderr(case, tiny_bundle, tmp_path):
    exe = Path(sys.executable).parent / "mrsynth"
    out = tmp_path / "o.nii.gz"
    args = [a for a in _synth_args(case, tiny_bundle, out) if a != "--quiet"]
    proc = subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "slice" in proc.stderr and out.exists()


def test_evaluate_prints_json(case, capsys):
    rc, stdout, _ = _run(capsys, "evaluate", "--pred", str(case / "T2.nii.gz"), "--truth", str(case / "T2.nii.gz"))
    assert rc == 0
    metrics = json.loads(stdout)
    assert metrics["MAE"] == 0.0 and metrics["SSIM"] == pytest.approx(1.0)


def test_models_lists_the_registry(capsys):
    rc, stdout, _ = _run(capsys, "models")
    assert rc == 0 and "default" in stdout


def _corrupt(d: Path) -> Path:
    p = d / "corrupt.nii.gz"
    p.write_bytes(b"this is not an image at all" * 10)
    return p


def _truncated(d: Path, case: Path) -> Path:
    raw = gzip.decompress((case / "T1.nii.gz").read_bytes())
    p = d / "truncated.nii.gz"
    p.write_bytes(gzip.compress(raw[: len(raw) // 2]))
    return p


def _image(d: Path, name: str, arr: np.ndarray, like: Volume | None = None) -> Path:

    p = d / name
    if arr.ndim != 3:
        import nibabel as nib

        nib.save(nib.Nifti1Image(arr, np.eye(4)), str(p))
        return p
    vol = Volume(arr, like.spacing, like.origin, like.direction) if like is not None else Volume(arr)
    write_volume(vol, p)
    return p


@pytest.mark.parametrize("problem", [
    "missing", "corrupt", "truncated", "2d", "4d", "all-zero", "nan", "unknown-contrast", "target-as-input",
    "no-inputs", "no-overlap", "output-is-input", "output-exists", "tampered-model", "bad-pair",
])
def test_bad_input_gives_one_line_and_writes_nothing(problem, case, tiny_bundle, tmp_path, capsys, small_subject):
    like = small_subject.volumes["T1"]
    out = tmp_path / "out.nii.gz"
    t1 = str(case / "T1.nii.gz")
    model = str(tiny_bundle)
    extra: list[str] = []
    inputs = [f"T1={t1}", f"T2={case / 'T2.nii.gz'}"]
    target = "FLAIR"
    expect = None
    if problem == "missing":
        inputs[1], expect = f"T2={tmp_path / 'nope.nii.gz'}", "nope.nii.gz: file not found"
    elif problem == "corrupt":
        inputs[1], expect = f"T2={_corrupt(tmp_path)}", "corrupt.nii.gz: cannot read image"
    elif problem == "truncated":
        inputs[1], expect = f"T2={_truncated(tmp_path, case)}", "truncated.nii.gz: cannot read image"
    elif problem == "2d":
        inputs[1], expect = f"T2={_image(tmp_path, 'flat.nii.gz', np.ones((20, 20), np.float32))}", "flat.nii.gz: is 2D"
    elif problem == "4d":
        inputs[1], expect = f"T2={_image(tmp_path, 'f.nii.gz', np.ones((3, 8, 8, 8), np.float32))}", "f.nii.gz: is 4D"
    elif problem == "all-zero":
        p = _image(tmp_path, "zero.nii.gz", np.zeros(like.array.shape, np.float32), like)
        inputs[1], expect = f"T2={p}", "zero.nii.gz: is all zero"
    elif problem == "nan":
        arr = like.array.copy()
        arr[5, 5, 5] = np.nan
        inputs[1], expect = f"T2={_image(tmp_path, 'nan.nii.gz', arr, like)}", "nan.nii.gz: contains 1 NaN/Inf"
    elif problem == "unknown-contrast":
        inputs[1], expect = f"DWI={case / 'T2.nii.gz'}", "unknown contrast 'DWI'"
    elif problem == "target-as-input":
        target, expect = "t2w", "target T2 is also given as an input"
    elif problem == "no-inputs":
        inputs, expect = [], "no inputs given"
    elif problem == "no-overlap":
        far = Volume(like.array, like.spacing, tuple(o + 1000.0 for o in like.origin), like.direction)
        write_volume(far, tmp_path / "far.nii.gz")
        inputs[1], expect = f"T2={tmp_path / 'far.nii.gz'}", "far.nii.gz: does not overlap"
    elif problem == "output-is-input":
        out, expect = case / "T1.nii.gz", "output path is also an input"
    elif problem == "output-exists":
        out.write_bytes(b"keep me")
        expect = "output exists; pass --force"
    elif problem == "tampered-model":
        bundle = tmp_path / "bundle"
        shutil.copytree(Path(model).parent, bundle)
        onnx = bundle / "tiny-test.onnx"
        data = bytearray(onnx.read_bytes())
        data[-10] ^= 0xFF
        onnx.write_bytes(bytes(data))
        model, expect = str(bundle / "tiny-test.json"), "SHA256 mismatch"
    elif problem == "bad-pair":
        inputs[1], expect = "T2", "--input must be CONTRAST=PATH"
    before = {p: p.stat().st_mtime_ns for p in case.iterdir()}
    argv = ["synthesize", *sum((["--input", i] for i in inputs), []), "--target", target, "--output", str(out),
            "--model", model, "--quiet", *extra]
    rc, stdout, err = _run(capsys, *argv)
    assert rc == 2
    lines = [ln for ln in err.strip().splitlines() if ln]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert expect in lines[0], lines[0]
    if problem == "output-exists":
        assert out.read_bytes() == b"keep me"
    elif problem != "output-is-input":
        assert not out.exists()
    assert {p: p.stat().st_mtime_ns for p in case.iterdir()} == before  # inputs untouched
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]  # no temp files


def test_onnx_path_runs_without_torch(case, tiny_bundle, tmp_path):
    """The default onnxruntime path must work on a machine without PyTorch: make `import torch` fail."""
    import os

    blocker = tmp_path / "blocker" / "torch"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('torch is blocked for this test')\n", encoding="utf-8")
    out = tmp_path / "o.nii.gz"
    env = dict(os.environ, PYTHONPATH=str(blocker.parent))
    proc = subprocess.run([sys.executable, "-m", "MRSynthLib.cli", *_synth_args(case, tiny_bundle, out)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert out.exists()
    proc = subprocess.run([sys.executable, "-m", "MRSynthLib.cli", *_synth_args(case, tiny_bundle, tmp_path / "t.nii.gz"),
                           "--backend", "torch"], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 2 and "needs PyTorch" in proc.stderr


def test_a_synthetic_t1gd_comes_with_the_enhancement_caveat(case, tiny_bundle, tmp_path, capsys):
    out = tmp_path / "T1Gd_synthetic.nii.gz"
    args = ["synthesize", "--input", f"T1={case / 'T1.nii.gz'}", "--input", f"T2={case / 'T2.nii.gz'}",
            "--target", "T1Gd", "--output", str(out), "--model", str(tiny_bundle), "--quiet"]
    rc, stdout, err = _run(capsys, *args)
    assert rc == 0 and out.exists()
    assert "gadolinium enhancement cannot truly be synthesized" in err
    rc, stdout, err = _run(capsys, *_synth_args(case, tiny_bundle, tmp_path / "FLAIR.nii.gz"))
    assert rc == 0 and "gadolinium" not in err
