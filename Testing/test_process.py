"""Background process with the real ``mrsynth`` CLI: argv, progress parsing, result, failure, cancel."""

from __future__ import annotations

import os
import sys
import time
from dataclasses import fields, replace
from pathlib import Path

import pytest

from MRSynthLib.cli import build_parser
from MRSynthLib.errors import MRSynthError
from MRSynthLib.io import write_volume
from MRSynthLib.process import SynthesisProcess, parse_progress
from MRSynthLib.request import SynthesisRequest, request_from_args


def _poll_until(proc: SynthesisProcess, done, timeout: float = 120.0):
    seen, log = [], []
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        st = proc.poll()
        log += st.log
        if st.percent is not None:
            seen.append(st.percent)
        if done(st):
            return st, seen, log
        time.sleep(0.01)
    raise AssertionError(f"process did not reach the expected state; percents seen {seen}")


def _live_group_members(pgid: int) -> list[int]:
    """PIDs of non-zombie processes in a process group (Linux /proc)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text(encoding="utf-8").rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


@pytest.fixture(scope="module")
def case(tmp_path_factory, small_subject):
    d = tmp_path_factory.mktemp("proc")
    for c in ("T1", "T2"):
        write_volume(small_subject.volumes[c], d / f"{c}.nrrd")
    return d


def test_every_request_field_round_trips_through_the_cli_parser():
    """Request → argv → the CLI's own parser → request gives the same request, for every field: what the
    panel asks is what the background process runs (a new field without its flag fails here)."""
    full = SynthesisRequest(inputs={"T1": "/a/t1.nrrd", "T2": "/a/t2 w.nrrd"}, target="FLAIR", output="/o/out.nrrd",
                            model="tiny", device="cpu", mask="/a/m.nrrd", style_reference="/a/ref.nrrd",
                            style_alpha=0.25, match_histogram=True, register=True, n4=True, calibrate=False,
                            plane="coronal", batch_size=3, confidence="/o/out_sd.nrrd", extras={"force": True})
    walk = SynthesisRequest({"t1n": "x"}, "t2w", style_target="PD", style_alpha=0.5, skull_strip=False,
                            output="o_series", output_format="dicom", extras={"quiet": True})
    amped = SynthesisRequest({"T1": "x"}, "T2", backend="torch", device="cuda:1", amp=True, skull_strip=True,
                             output="o.nrrd")
    plain = SynthesisRequest({"T1": "x"}, "T2", output="o.nrrd")
    for request in (full, walk, amped, plain):
        back = request_from_args(build_parser().parse_args(request.to_argv()))
        extras = {"force": bool(request.extras.get("force")), "quiet": bool(request.extras.get("quiet"))}
        assert back == replace(request, style_alpha=request.alpha, extras=extras)
    defaults = SynthesisRequest({"T1": "x"}, "T2")
    for f in fields(SynthesisRequest):  # the cases above set every field away from its default
        assert any(getattr(r, f.name) != getattr(defaults, f.name) for r in (full, walk, amped)), f.name
    assert plain.to_argv().count("--skull-strip") == 0 and "--force" not in plain.to_argv()


def test_parse_progress_reads_tqdm_redraws():
    assert parse_progress("FLAIR (onnxruntime/cpu):  42%|████▏     | 21/50 [00:01<00:01]") == 42
    assert parse_progress("0slice [00:00, ?slice/s]") is None
    assert parse_progress("x:  10%|█ | 1/10\rx:  60%|██████ | 6/10") == 60
    assert parse_progress("100%|██████████| 50/50") == 100


def test_run_reports_progress_and_result(case, tiny_bundle, small_subject, tmp_path):
    out = tmp_path / "FLAIR.nrrd"
    params = SynthesisRequest({"T1": str(case / "T1.nrrd"), "T2": str(case / "T2.nrrd")}, "FLAIR", output=str(out),
                              model=str(tiny_bundle), device="cpu", batch_size=1)  # many progress lines: some land between polls
    proc = SynthesisProcess()
    proc.start(params)
    st, seen, log = _poll_until(proc, lambda s: s.state != "running")
    assert st.state == "finished", st.error
    assert st.percent == 100 and any(0 < p < 100 for p in seen), seen
    assert any(str(out) in line for line in log)  # the CLI prints the output path on stdout
    result = proc.result()
    assert result.same_grid(small_subject.volumes["T1"]) and result.array.max() > 0
    assert result.metadata["MRSynth.Synthetic"] == "1" and result.metadata["MRSynth.Contrast"] == "FLAIR"


def test_failure_gives_the_cli_message(case, tiny_bundle, tmp_path):
    params = SynthesisRequest({"T1": str(case / "T1.nrrd"), "T2": str(case / "gone.nrrd")}, "FLAIR",
                              output=str(tmp_path / "o.nrrd"), model=str(tiny_bundle))
    proc = SynthesisProcess()
    proc.start(params)
    st = proc.wait(timeout=120)
    assert st.state == "failed" and "gone.nrrd" in st.error and "\n" not in st.error
    with pytest.raises(MRSynthError, match="no result"):
        proc.result()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inspects /proc")
def test_cancel_kills_the_whole_tree_and_writes_nothing(tiny_bundle, tmp_path, real_root):
    """PythonSlicer is a launcher whose child does the work: a shell wrapper plays that role here."""
    subject = real_root / "TCGA-DU-7294"
    launcher = tmp_path / "launcher.sh"
    launcher.write_text(f'#!/bin/sh\n"{sys.executable}" "$@"\necho launcher-survived >&2\n')
    launcher.chmod(0o755)
    out = tmp_path / "FLAIR.nrrd"
    params = SynthesisRequest({"T1": str(subject / "T1.nii.gz"), "T2": str(subject / "T2.nii.gz")}, "FLAIR",
                              output=str(out), model=str(tiny_bundle), device="cpu", batch_size=1)
    proc = SynthesisProcess(python=str(launcher))
    proc.start(params)
    st, seen, _ = _poll_until(proc, lambda s: s.state != "running" or (s.percent or 0) > 0)
    assert st.state == "running", "finished before it could be cancelled"
    assert len(_live_group_members(proc.pid)) >= 2  # the launcher and its python child
    proc.cancel()
    assert proc.poll().state == "cancelled"
    time.sleep(0.2)
    assert _live_group_members(proc.pid) == []
    assert not out.exists() and not list(tmp_path.glob(".FLAIR.nrrd.*"))
    with pytest.raises(MRSynthError, match="cancelled"):
        proc.result()


def test_second_start_while_running_is_refused(case, tiny_bundle, tmp_path):
    params = SynthesisRequest({"T1": str(case / "T1.nrrd")}, "FLAIR", output=str(tmp_path / "o.nrrd"),
                              model=str(tiny_bundle))
    proc = SynthesisProcess(env={**os.environ, "PYTHONPATH": ""})
    proc.start(params)
    try:
        with pytest.raises(MRSynthError, match="already running"):
            proc.start(params)
    finally:
        proc.cancel()
    assert proc.poll().state == "cancelled"
    if sys.platform.startswith("linux"):
        assert _live_group_members(proc.pid) == []
