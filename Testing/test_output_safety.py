"""The output is written whole or not at all, by one run, where it can be written: SIGTERM during the final
write leaves no temp file; a second run cannot silently replace the first one's output; a folder no file can
be made in is refused before the work, under the output's name (the bundled ONNX model runs)."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from MRSynthLib.cli import main
from MRSynthLib.io import read_volume, write_volume

# the real CLI, its final write slowed down: the image is written to the temp file, then the writer waits
SLOW_WRITE = """
import sys, time
import SimpleITK as sitk
real = sitk.WriteImage
def slow(image, path, *args, **kw):
    real(image, path, *args, **kw)
    print("WRITTEN", path, flush=True)
    time.sleep(120)
sitk.WriteImage = slow
from MRSynthLib.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture(scope="module")
def case(tmp_path_factory, small_subject):
    d = tmp_path_factory.mktemp("safety")
    for c in ("T1", "T2"):
        write_volume(small_subject.volumes[c], d / f"{c}.nii.gz")
    return d


def _without_uncertainty(err: str) -> list[str]:
    """stderr's lines but the bundled model's high-uncertainty warning (it fires on simulated subjects)."""
    return [ln for ln in err.strip().splitlines() if "warning: high uncertainty" not in ln]


def _args(case: Path, out: Path, *extra: str) -> list[str]:
    return ["synthesize", "--input", f"T1={case / 'T1.nii.gz'}", "--input", f"T2={case / 'T2.nii.gz'}",
            "--target", "FLAIR", "--output", str(out), "--quiet", *extra]


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM is a POSIX signal")
def test_sigterm_during_the_final_write_leaves_no_temp_file(case, tmp_path):
    out = tmp_path / "out.nii.gz"
    proc = subprocess.Popen([sys.executable, "-c", SLOW_WRITE, *_args(case, out)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, encoding="utf-8")
    try:
        line = proc.stdout.readline()
        assert line.startswith("WRITTEN "), (line, proc.stderr.read() if proc.poll() is not None else "")
        tmp = Path(line.split(" ", 1)[1].strip())
        assert tmp.parent == tmp_path and tmp.name.startswith(".out.nii.gz.") and tmp.exists()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert _without_uncertainty(err) == ["mrsynth: terminated"]
    assert not out.exists() and not list(tmp_path.iterdir())  # no output, no hidden temp file


@pytest.mark.parametrize("when", ["second-finishes-during-the-final-write", "second-replaces-during-the-work"])
def test_a_second_run_cannot_silently_replace_the_first_runs_output(when, case, tmp_path, capsys, monkeypatch):
    """Run A starts; run B (same output) finishes before A's write commits. A must be refused, B's file kept.

    Without --force: B finishes while A writes its temp file (after A's last look for an existing output).
    With --force: the output existed; B replaces it while A works; A may overwrite that version only."""
    import SimpleITK as sitk

    import MRSynthLib.synthesis

    out = tmp_path / "out.nii.gz"
    force = ["--force"] if when == "second-replaces-during-the-work" else []
    if force:
        write_volume(read_volume(case / "T2.nii.gz"), out)  # the version A was asked to replace
    b_argv = _args(case, out, "--force", "--no-calibrate")  # B's output differs from A's
    b_result: list[int] = []

    def run_b_once() -> None:
        if not b_result:
            b_result.append(-1)  # B's own write must not start a third run
            b_result[0] = main(b_argv)

    if force:
        real_run = MRSynthLib.synthesis.run_request_with_confidence  # what the CLI runs

        def synthesize_then_b(*args, **kw):
            result = real_run(*args, **kw)
            run_b_once()
            return result

        monkeypatch.setattr(MRSynthLib.synthesis, "run_request_with_confidence", synthesize_then_b)
    else:
        real_write = sitk.WriteImage

        def write_then_b(image, path, *args, **kw):
            real_write(image, path, *args, **kw)
            run_b_once()

        monkeypatch.setattr(sitk, "WriteImage", write_then_b)
    rc_a = main(_args(case, out, *force))
    err = capsys.readouterr().err
    assert b_result == [0]
    b_written = read_volume(out).array.copy()
    assert rc_a == 2, err
    message = "output appeared while this run worked" if not force else "output was replaced while this run worked"
    assert _without_uncertainty(err) == [f"mrsynth: error: {out}: {message} (another run?); not overwriting it"]
    assert (read_volume(out).array == b_written).all()
    assert [p.name for p in tmp_path.iterdir()] == ["out.nii.gz"]  # no temp file left


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc")
def test_an_output_under_proc_is_refused_before_the_work_naming_the_output(case, capsys, monkeypatch):
    import MRSynthLib.registry

    def no_work(*_args, **_kw):
        raise AssertionError("the model was loaded: the output should have been refused first")

    monkeypatch.setattr(MRSynthLib.registry, "load_backend", no_work)
    out = Path("/proc/mrsynth-out.nii.gz")
    rc = main(_args(case, out))
    err = capsys.readouterr().err
    assert rc == 2 and err.strip().splitlines() == [
        f"mrsynth: error: {out}: cannot write the output there (creating a file in /proc failed: "
        f"{err.split('failed: ')[-1].strip()}"], err
    assert ".tmp" not in err
