"""The ``mrsynth`` command-line contract, and one clear line for every bad input (nothing written)."""

from __future__ import annotations

import gzip
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from MRSynthLib.cli import main
from MRSynthLib.io import read_volume, write_volume
from MRSynthLib.volume import Volume

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


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
    proc = subprocess.run([str(exe), *args], capture_output=True, text=True, encoding="utf-8", timeout=300)
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


def _as_non_root(monkeypatch) -> None:
    """root reads and writes through any permission bits: make ``os.access`` answer as a user would."""
    import os
    import stat

    if os.geteuid() != 0:
        return
    real = os.access

    def access(path, mode, *args, **kw):
        bits = {os.R_OK: stat.S_IRUSR, os.W_OK: stat.S_IWUSR, os.X_OK: stat.S_IXUSR}
        st = os.stat(path).st_mode
        return real(path, mode, *args, **kw) and all(st & b for m, b in bits.items() if mode & m)

    monkeypatch.setattr(os, "access", access)


@pytest.mark.parametrize("problem", [
    "missing", "corrupt", "truncated", "2d", "4d", "all-zero", "nan", "inf", "unreadable", "unknown-contrast",
    "target-as-input", "no-inputs", "no-overlap", "output-is-input", "output-exists", "tampered-model",
    "bad-pair", "output-is-folder", "output-folder-readonly", "output-extension", "output-is-inputs-data",
    "model-is-weights", "alpha-without-reference", "amp-with-onnx", "amp-on-cpu",
])
def test_bad_input_gives_one_line_and_writes_nothing(problem, case, tiny_bundle, tmp_path, capsys, small_subject,
                                                     monkeypatch):
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
    elif problem in ("nan", "inf"):
        arr = like.array.copy()
        arr[5, 5, 5] = np.nan if problem == "nan" else -np.inf
        p = _image(tmp_path, f"{problem}.nii.gz", arr, like)
        inputs[1], expect = f"T2={p}", f"{problem}.nii.gz: contains 1 NaN/Inf"
    elif problem == "unreadable":
        p = tmp_path / "locked.nii.gz"
        shutil.copy(case / "T2.nii.gz", p)
        p.chmod(0)
        _as_non_root(monkeypatch)
        inputs[1], expect = f"T2={p}", "locked.nii.gz: permission denied"
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
    elif problem == "output-is-folder":
        out = tmp_path / "folder.nii.gz"
        out.mkdir()
        extra, expect = ["--force"], "folder.nii.gz: output path is a folder"
    elif problem == "output-folder-readonly":
        (tmp_path / "ro").mkdir()
        (tmp_path / "ro").chmod(0o555)
        _as_non_root(monkeypatch)
        out, expect = tmp_path / "ro" / "out.nii.gz", f"ro/out.nii.gz: output folder {tmp_path / 'ro'} is not writable"
    elif problem == "output-extension":  # refused before any input is read (T2 is missing too)
        inputs[1], out, expect = f"T2={tmp_path / 'nope.nii.gz'}", tmp_path / "out.png", "unsupported output extension"
    elif problem == "output-is-inputs-data":  # b.nhdr would write b.raw: the voxels of input b.mhd
        write_volume(like, tmp_path / "b.mhd")
        inputs[1], out = f"T2={tmp_path / 'b.mhd'}", tmp_path / "b.nhdr"
        extra, expect = ["--force"], "output path is also an input"
    elif problem == "model-is-weights":
        model, expect = str(Path(model).with_suffix(".pt")), "tiny-test.pt: not a model card"
    elif problem == "alpha-without-reference":
        extra, expect = ["--style-alpha", "0.5"], "--style-alpha needs --style-reference or --style-target"
    elif problem == "amp-with-onnx":
        extra, expect = ["--amp"], "--amp needs --backend torch"
    elif problem == "amp-on-cpu":
        extra, expect = ["--amp", "--backend", "torch", "--device", "cpu"], "--amp works on CUDA only"
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
    elif problem == "output-is-folder":
        assert out.is_dir() and not any(out.iterdir())
    elif problem not in ("output-is-input", "output-is-inputs-data"):
        assert not out.exists()
    assert {p: p.stat().st_mtime_ns for p in case.iterdir()} == before  # inputs untouched
    assert not [p for p in tmp_path.rglob(".*")]  # no temp files
    if problem == "output-is-inputs-data":
        assert read_volume(tmp_path / "b.mhd").array.tobytes() == like.array.astype(np.float32).tobytes()


def test_an_os_error_while_writing_is_one_line(case, tiny_bundle, tmp_path, capsys, monkeypatch):
    """What no pre-check can foresee (disk full, folder made read-only mid-run) still gives one line."""
    import MRSynthLib.io

    def fail(_volume, path, overwrite=False, replaces=None):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(MRSynthLib.io, "write_volume", fail)
    out = tmp_path / "o.nii.gz"
    rc, _, err = _run(capsys, *_synth_args(case, tiny_bundle, out))
    assert rc == 2 and err.strip() == f"mrsynth: error: {out}: Permission denied", err


def test_empty_dicom_folder_is_one_line_without_itk_warnings(case, tiny_bundle, tmp_path, capfd):
    folder = tmp_path / "dicom"
    folder.mkdir()
    (folder / "notes.txt").write_text("no images here")
    rc = main(["synthesize", "--input", f"T1={case / 'T1.nii.gz'}", "--input", f"T2={folder}", "--target", "FLAIR",
               "--output", str(tmp_path / "o.nii.gz"), "--model", str(tiny_bundle), "--quiet"])
    err = capfd.readouterr().err
    assert rc == 2 and err.strip().splitlines() == [f"mrsynth: error: {folder}: folder holds no DICOM series"], err
    import SimpleITK as sitk

    assert sitk.ProcessObject.GetGlobalWarningDisplay()  # restored after the scan


def test_a_style_reference_or_target_alone_is_used(case, tiny_bundle, tmp_path, capsys):
    """--style-alpha defaults to 1 with --style-ref / --style-target (it was 0: the option did nothing)."""
    def synth(name: str, *extra: str) -> np.ndarray:
        rc, _, err = _run(capsys, *_synth_args(case, tiny_bundle, tmp_path / name, *extra))
        assert rc == 0, err
        return read_volume(tmp_path / name).array

    ref = ["--style-ref", str(case / "PD.nii.gz"), "--no-calibrate"]
    plain, alone, one = synth("plain.nii.gz", "--no-calibrate"), synth("ref.nii.gz", *ref), \
        synth("ref1.nii.gz", *ref, "--style-alpha", "1")
    assert np.abs(alone - plain).max() > 1e-3 and np.array_equal(alone, one)
    walk = synth("walk.nii.gz", "--no-calibrate", "--style-target", "T1")
    assert np.abs(walk - plain).max() > 1e-3


def _metrics(capsys, *argv: str) -> tuple[int, dict | None, str]:
    rc, out, err = _run(capsys, "evaluate", *argv)
    strict = json.loads(out, parse_constant=lambda c: pytest.fail(f"not strict JSON: {c}")) if rc == 0 else None
    return rc, strict, err


def test_evaluate_prints_strict_json_with_a_null_infinite_psnr(case, capsys):
    rc, metrics, _ = _metrics(capsys, "--pred", str(case / "T2.nii.gz"), "--truth", str(case / "T2.nii.gz"))
    assert rc == 0 and metrics["PSNR"] is None and metrics["MAE"] == 0.0


@pytest.mark.parametrize("what", ["origin", "spacing", "direction", "mask-origin", "small"])
def test_evaluate_refuses_other_grids_and_tiny_volumes(what, case, tmp_path, capsys, small_subject):
    t2 = small_subject.volumes["T2"]
    moved = {"origin": Volume(t2.array, t2.spacing, tuple(o + 2.0 for o in t2.origin), t2.direction),
             "spacing": Volume(t2.array, tuple(s * 1.1 for s in t2.spacing), t2.origin, t2.direction),
             "direction": Volume(t2.array, t2.spacing, t2.origin, t2.direction[:, [1, 0, 2]])}
    truth, argv = str(case / "T2.nii.gz"), []
    if what in moved:
        write_volume(moved[what], tmp_path / "p.nii.gz")
        argv, expect = ["--pred", str(tmp_path / "p.nii.gz")], f"p.nii.gz: grid {what}"
    elif what == "mask-origin":
        write_volume(moved["origin"], tmp_path / "m.nii.gz")
        argv, expect = ["--pred", truth, "--mask", str(tmp_path / "m.nii.gz")], "m.nii.gz: mask grid origin"
    else:
        small = Volume(t2.array[:8, :20, :20].copy(), t2.spacing, t2.origin, t2.direction)
        truth = str(write_volume(small, tmp_path / "small.nii.gz"))
        argv, expect = ["--pred", truth], "too small for the protocol's 3D SSIM"
    rc, _, err = _metrics(capsys, *argv, "--truth", truth)
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 1 and expect in lines[0], err


def test_demo_without_nilearn_names_the_extra(tmp_path):
    blocker = tmp_path / "blocker" / "nilearn"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('nilearn is blocked for this test', name='nilearn')\n")
    env = dict(__import__("os").environ, PYTHONPATH=str(blocker.parent))
    out = tmp_path / "demo"
    proc = subprocess.run([sys.executable, "-m", "MRSynthLib.cli", "demo", "--out", str(out), "--quiet"],
                          capture_output=True, text=True, encoding="utf-8", env=env, timeout=300)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        "mrsynth: error: the phantom simulator needs nilearn: pip install 'mrsynth[phantom]'"], proc.stderr
    assert not out.exists()


def test_mrsynth_train_without_its_extra_names_it(capsys, monkeypatch):
    from mrsynth_train.cli import launch

    assert re.search(r'^mrsynth-train = "mrsynth_train\.cli:launch"', PYPROJECT.read_text(), re.M)
    monkeypatch.setitem(sys.modules, "yaml", None)  # as if pyyaml were not installed
    assert launch() == 2
    assert capsys.readouterr().err.strip() == "mrsynth-train: error: needs pyyaml: pip install 'mrsynth[train]'"


def test_build_requirement_supports_the_spdx_licence_string():
    """``license = "Apache-2.0"`` (PEP 639) needs setuptools ≥ 77; an older one fails ``pip install .``."""
    text = PYPROJECT.read_text()
    assert re.search(r'^license = "Apache-2.0"', text, re.M)
    assert int(re.search(r'^requires = \["setuptools>=(\d+)', text, re.M).group(1)) >= 77


def test_onnx_path_runs_without_torch(case, tiny_bundle, tmp_path):
    """The default onnxruntime path must work on a machine without PyTorch: make `import torch` fail."""
    import os

    blocker = tmp_path / "blocker" / "torch"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('torch is blocked for this test')\n", encoding="utf-8")
    out = tmp_path / "o.nii.gz"
    env = dict(os.environ, PYTHONPATH=str(blocker.parent))
    proc = subprocess.run([sys.executable, "-m", "MRSynthLib.cli", *_synth_args(case, tiny_bundle, out)],
                          capture_output=True, text=True, encoding="utf-8", env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert out.exists()
    proc = subprocess.run([sys.executable, "-m", "MRSynthLib.cli", *_synth_args(case, tiny_bundle, tmp_path / "t.nii.gz"),
                           "--backend", "torch"], capture_output=True, text=True, encoding="utf-8", env=env, timeout=300)
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
