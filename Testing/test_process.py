"""Background process with the real ``mrsynth`` CLI: argv, progress parsing, result, failure, cancel."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from MRSynthLib.cli import build_parser
from MRSynthLib.errors import MRSynthError
from MRSynthLib.io import write_volume
from MRSynthLib.process import SynthesisParameters, SynthesisProcess, parse_progress


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


def test_arg_list_round_trips_through_the_cli_parser():
    params = SynthesisParameters(inputs={"T1": "/a/t1.nrrd", "T2": "/a/t2 w.nrrd"}, target="FLAIR",
                                 output="/o/out.nrrd", model="tiny", device="cpu", mask="/a/m.nrrd",
                                 style_ref="/a/ref.nrrd", style_alpha=0.25, style_target="PD", register=True,
                                 batch_size=3)
    ns = build_parser().parse_args(params.as_arg_list())
    assert ns.input == ["T1=/a/t1.nrrd", "T2=/a/t2 w.nrrd"] and ns.target == "FLAIR"
    assert (ns.model, ns.device, ns.mask, ns.style_ref, ns.style_target) == ("tiny", "cpu", "/a/m.nrrd",
                                                                            "/a/ref.nrrd", "PD")
    assert ns.style_alpha == 0.25 and ns.register and ns.batch_size == 3 and ns.force
    plain = build_parser().parse_args(SynthesisParameters({"T1": "x"}, "T2", "o.nrrd", force=False).as_arg_list())
    assert plain.mask is None and plain.style_ref is None and not plain.register and not plain.force
    assert not plain.match_histogram and not plain.no_calibrate  # calibrated by default, as in the CLI
    raw = SynthesisParameters({"T1": "x"}, "T2", "o.nrrd", calibrate=False)
    assert build_parser().parse_args(raw.as_arg_list()).no_calibrate
    matched = SynthesisParameters({"T1": "x"}, "T2", "o.nrrd", style_ref="r.nrrd", match_histogram=True)
    assert build_parser().parse_args(matched.as_arg_list()).match_histogram


def test_parse_progress_reads_tqdm_redraws():
    assert parse_progress("FLAIR (onnxruntime/cpu):  42%|████▏     | 21/50 [00:01<00:01]") == 42
    assert parse_progress("0slice [00:00, ?slice/s]") is None
    assert parse_progress("x:  10%|█ | 1/10\rx:  60%|██████ | 6/10") == 60
    assert parse_progress("100%|██████████| 50/50") == 100


def test_run_reports_progress_and_result(case, tiny_bundle, small_subject, tmp_path):
    out = tmp_path / "FLAIR.nrrd"
    params = SynthesisParameters({"T1": str(case / "T1.nrrd"), "T2": str(case / "T2.nrrd")}, "FLAIR", str(out),
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
    params = SynthesisParameters({"T1": str(case / "T1.nrrd")}, "T1", str(tmp_path / "o.nrrd"),
                                 model=str(tiny_bundle))
    proc = SynthesisProcess()
    proc.start(params)
    st = proc.wait(timeout=120)
    assert st.state == "failed" and "also given as an input" in st.error
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
    params = SynthesisParameters({"T1": str(subject / "T1.nii.gz"), "T2": str(subject / "T2.nii.gz")}, "FLAIR",
                                 str(out), model=str(tiny_bundle), device="cpu", batch_size=1)
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
    params = SynthesisParameters({"T1": str(case / "T1.nrrd")}, "FLAIR", str(tmp_path / "o.nrrd"),
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
