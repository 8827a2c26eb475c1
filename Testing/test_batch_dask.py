"""``mrsynth synthesize-batch --dask`` / ``--scheduler``: the batch's cases on a real Dask cluster (worker
processes on this machine), with the thread path's manifest, resume and atomic outputs. Real parts only:
simulated subjects written as NIfTI, the tiny exported model, real ``LocalCluster`` workers, a real SIGKILL."""

from __future__ import annotations

import csv
import gzip
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest
from test_batch import assert_synthetic, manifest, mrsynth, tree, write

from MRSynthLib.io import file_stamp

distributed = pytest.importorskip("distributed", reason="dask[distributed] is in requirements-dev.txt")


@pytest.fixture(scope="module")
def cluster():
    """A real 2-worker cluster of processes (1 thread each), started by the test, as a user's would be."""
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
                                  silence_logs=logging.ERROR) as c, distributed.Client(c) as client:
        yield c, client


def brats_cohort(v, root: Path) -> dict[str, str]:
    """Two BraTS cases (one with a label file); the outputs expected, relative to OUT → like (input)."""
    a, b = "BraTS-GLI-00001-000", "BraTS-GLI-00002-000"
    write(v["T1"], root / a / f"{a}-t1n.nii.gz")
    write(v["FLAIR"], root / a / f"{a}-t2f.nii.gz")
    write(v["T1"], root / a / f"{a}-seg.nii.gz")
    for mod, c in (("t1n", "T1"), ("t1c", "T1Gd"), ("t2w", "T2")):
        write(v[c], root / b / f"{b}-{mod}.nii.gz")
    return {f"{a}/{a}-t2w.nii.gz": f"{a}/{a}-t1n.nii.gz", f"{b}/{b}-t2f.nii.gz": f"{b}/{b}-t1n.nii.gz"}


def bids_cohort(v, root: Path) -> dict[str, str]:
    """A BIDS dataset: one subject with a session, one without."""
    s1 = "sub-01/ses-1/anat/sub-01_ses-1"
    write(v["T1"], root / f"{s1}_T1w.nii.gz")
    write(v["FLAIR"], root / f"{s1}_FLAIR.nii.gz")
    write(v["T1"], root / "sub-02/anat/sub-02_T1w.nii.gz")
    write(v["T2"], root / "sub-02/anat/sub-02_T2w.nii.gz")
    (root / "dataset_description.json").write_text('{"Name": "raw", "BIDSVersion": "1.9.0"}')
    return {"sub-01/ses-1/anat/sub-01_ses-1_desc-synthetic_T2w.nii.gz": f"{s1}_T1w.nii.gz",
            "sub-01/ses-1/anat/sub-01_ses-1_desc-synthetic_PDw.nii.gz": f"{s1}_T1w.nii.gz",
            "sub-02/anat/sub-02_desc-synthetic_FLAIR.nii.gz": "sub-02/anat/sub-02_T1w.nii.gz",
            "sub-02/anat/sub-02_desc-synthetic_PDw.nii.gz": "sub-02/anat/sub-02_T1w.nii.gz"}


def images(out: Path) -> list[str]:
    return sorted(p.relative_to(out).as_posix() for p in out.rglob("*.nii.gz") if not p.name.startswith("."))


def without_seconds(out: Path) -> dict:
    return {k: {f: x for f, x in r.items() if f != "seconds"} for k, r in manifest(out).items()}


@pytest.mark.parametrize("layout", ["brats", "bids"])
def test_a_local_cluster_completes_a_cohort_as_the_threads_do(layout, small_subject, tiny_bundle, tmp_path,
                                                               capsys):
    """``--dask`` (a LocalCluster of 2 worker processes): the same files, byte for byte, and the same
    manifest (but the seconds) as the thread path; then a rerun resumes (nothing to do)."""
    root = tmp_path / layout
    expected = (brats_cohort if layout == "brats" else bids_cohort)(small_subject.volumes, root)
    before = tree(root)
    assert mrsynth(root, "--out", tmp_path / "threads", "--model", tiny_bundle) == 0
    capsys.readouterr()
    out = tmp_path / "dask"
    assert mrsynth(root, "--out", out, "--model", tiny_bundle, "--dask", "--jobs", "2") == 0
    err = capsys.readouterr().err
    assert "local Dask cluster: 2 worker processes" in err and f"{len(expected)} done" in err
    assert images(out) == sorted(expected)
    rows = manifest(out)
    for name, like in expected.items():
        row = next(r for r in rows.values() if r["output"] == name)
        assert_synthetic(out / name, row["target"], root / like)
    assert {k: v for k, v in tree(out).items() if not k.startswith("manifest.")} == \
        {k: v for k, v in tree(tmp_path / "threads").items() if not k.startswith("manifest.")}
    assert without_seconds(out) == without_seconds(tmp_path / "threads")
    assert {r["status"] for r in manifest(out).values()} == {"done"}
    assert tree(root) == before

    stamps = {p: file_stamp(out / p) for p in expected}
    assert mrsynth(root, "--out", out, "--model", tiny_bundle, "--dask") == 0  # resume: nothing to run
    assert {r["status"] for r in manifest(out).values()} == {"skipped-exists"}
    assert {p: file_stamp(out / p) for p in expected} == stamps


def test_a_worker_killed_mid_run_loses_nothing_and_writes_nothing_twice(cluster, small_subject, tiny_bundle,
                                                                        tmp_path):
    """Six cases × three targets on the 2-worker cluster; when the first output exists, the worker busy with
    a case is killed (SIGKILL: no cleanup can run). The scheduler reruns its case on the other worker (the
    nanny restarts the dead one): every output exists once, outputs finished before the kill are kept as they
    were, no temp file is left, every (case, target) is one 'done' row, and every image is valid."""
    from MRSynthLib.batch import run_batch
    from MRSynthLib.batch_dask import DaskCases

    c, client = cluster
    root, out = tmp_path / "cohort", tmp_path / "out"
    cases = [f"S{i}" for i in range(6)]
    for s in cases:
        write(small_subject.volumes["T1"], root / s / "T1.nii.gz")
    finished, record = threading.Event(), {}

    def kill_a_busy_worker() -> None:
        try:
            while not images(out) and not finished.is_set():
                time.sleep(0.01)
            if finished.is_set():
                return
            first_case = images(out)[0].split("/")[0]  # prefer the worker still busy with that case
            running = client.run(lambda dask_worker: [str(ts.key) for ts in dask_worker.state.executing])
            busy = sorted((not k.endswith(f"-{first_case}"), w, k) for w, keys in running.items() for k in keys)
            if busy:
                _, worker, key = busy[0]
                pid = client.run(os.getpid)[worker]
                record.update(case=key.rsplit("-", 1)[1], stamps={p: file_stamp(out / p) for p in images(out)})
                os.kill(pid, signal.SIGKILL)
        except Exception as exc:  # reported by the assertion below
            record["error"] = repr(exc)

    killer = threading.Thread(target=kill_a_busy_worker, daemon=True)
    killer.start()
    try:
        result = run_batch(root, out, model=str(tiny_bundle), executor=DaskCases(scheduler=c.scheduler_address))
    finally:
        finished.set()
        killer.join()

    assert "case" in record, f"nothing was killed: {record.get('error', 'no worker was busy')}"
    assert result.exit_code == 0 and result.counts["done"] == 18, result.rows
    with (out / "manifest.csv").open(newline="") as fh:
        keys = [(r["case"], r["target"], r["status"]) for r in csv.DictReader(fh)]
    assert sorted(keys) == sorted((s, t, "done") for s in cases for t in ("T2", "PD", "FLAIR"))  # once each
    assert images(out) == sorted(f"{s}/{t}.nii.gz" for s in cases for t in ("T2", "PD", "FLAIR"))
    assert [p.name for p in out.rglob(".*")] == []  # no temp file of the killed writer
    for name in images(out):
        assert_synthetic(out / name, name.split("/")[1].split(".")[0], root / name.split("/")[0] / "T1.nii.gz")
    assert {p: file_stamp(out / p) for p in record["stamps"]} == record["stamps"]  # not written again
    rows = manifest(out)
    for name in record["stamps"]:
        case, target = name.split("/")[0], name.split("/")[1].split(".")[0]
        if case == record["case"]:  # the killed case's outputs finished before the kill: kept by the rerun
            assert "earlier attempt" in rows[(case, target)]["message"]


def test_the_cli_runs_on_a_separately_started_cluster(cluster, small_subject, tiny_bundle, tmp_path, capsys):
    """``--scheduler ADDRESS``: the cluster's workers run the cases, each loading the model once (not per
    case); ``--jobs`` with ``--scheduler``, or a scheduler that cannot be reached, is one line, exit 2, nothing
    written."""
    import dask

    from MRSynthLib import batch_dask

    c, client = cluster
    root, out = tmp_path / "brats", tmp_path / "out"
    expected = brats_cohort(small_subject.volumes, root)
    for i in range(3, 7):  # six cases in all: several per worker
        case = f"BraTS-GLI-0000{i}-000"
        write(small_subject.volumes["T1"], root / case / f"{case}-t1n.nii.gz")
        expected |= {f"{case}/{case}-{m}.nii.gz": f"{case}/{case}-t1n.nii.gz" for m in ("t2w", "t2f")}
    before = client.run(batch_dask.engine_loads)
    assert mrsynth(root, "--out", out, "--model", tiny_bundle, "--scheduler", c.scheduler_address) == 0
    err = capsys.readouterr().err
    assert f"Dask scheduler {c.scheduler_address}: 2 workers" in err and "10 done" in err
    assert images(out) == sorted(expected)
    rows = manifest(out)
    assert len(rows) == 10 and {r["status"] for r in rows.values()} == {"done"}
    for name, like in expected.items():
        row = next(r for r in rows.values() if r["output"] == name)
        assert_synthetic(out / name, row["target"], root / like)
    loads = client.run(batch_dask.engine_loads)
    assert all(n - before.get(w, 0) <= 1 for w, n in loads.items()), (before, loads)  # once per worker
    assert all(n <= 1 for n in loads.values()), loads

    assert mrsynth(root, "--out", tmp_path / "o2", "--scheduler", c.scheduler_address, "--jobs", "2") == 2
    assert "--jobs sets the size of --dask's local cluster" in capsys.readouterr().err
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        assert mrsynth(root, "--out", tmp_path / "o3", "--scheduler", "tcp://127.0.0.1:9") == 2
    assert "error: tcp://127.0.0.1:9: cannot reach the Dask scheduler" in capsys.readouterr().err
    assert not (tmp_path / "o2").exists() and not (tmp_path / "o3").exists()


def test_a_killed_dask_batch_takes_its_workers_along_and_resumes(small_subject, tiny_bundle, tmp_path):
    """``mrsynth synthesize-batch --dask`` on a BIDS dataset killed with SIGKILL once the first image exists:
    its worker processes end too (no orphans), and the same command again completes the dataset: the images
    already there are skipped, the others done, each output once, no temp file left."""
    import subprocess

    import psutil

    root, out = tmp_path / "bids", tmp_path / "derivatives"
    subjects = [f"sub-0{i}" for i in range(1, 5)]
    for sub in subjects:
        write(small_subject.volumes["T1"], root / sub / "anat" / f"{sub}_T1w.nii.gz")
    expected = sorted(f"{sub}/anat/{sub}_desc-synthetic_{s}.nii.gz" for sub in subjects for s in ("T2w", "PDw", "FLAIR"))
    cmd = [sys.executable, "-m", "MRSynthLib.cli", "synthesize-batch", str(root), "--out", str(out), "--model",
           str(tiny_bundle), "--dask", "--quiet"]
    proc = subprocess.Popen(cmd, cwd=Path(__file__).resolve().parents[1], stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not images(out) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    children = psutil.Process(proc.pid).children(recursive=True)
    proc.kill()
    proc.wait()
    assert 0 < len(images(out)) < len(expected), "the batch was not killed mid-run"
    _, alive = psutil.wait_procs(children, timeout=60)
    assert alive == [], f"worker processes outlived the killed batch: {alive}"
    there = {p: file_stamp(out / p) for p in images(out)}

    assert mrsynth(root, "--out", out, "--model", tiny_bundle, "--dask") == 0
    assert images(out) == expected
    assert [p.name for p in out.rglob(".*")] == []
    rows = manifest(out)
    assert len(rows) == len(expected)
    assert {r["output"]: r["status"] for r in rows.values()} == {
        p: "skipped-exists" if p in there else "done" for p in expected}
    assert {p: file_stamp(out / p) for p in there} == there
    for name in expected:
        side = out / name.replace(".nii.gz", ".json")
        assert side.is_file() and '"Synthetic": true' in side.read_text()
        target = {"T2w": "T2", "PDw": "PD", "FLAIR": "FLAIR"}[name.split("_")[-1].split(".")[0]]
        assert_synthetic(out / name, target, root / name.split("/")[0] / "anat" / f"{name.split('/')[0]}_T1w.nii.gz")


def test_a_bad_subject_on_the_cluster_is_a_failed_row(cluster, small_subject, tiny_bundle, tmp_path, capsys):
    """B's T1 is truncated: on the cluster as in threads, its row fails naming the file, A is done, exit 1."""
    v = small_subject.volumes
    c, _ = cluster
    root, out = tmp_path / "cohort", tmp_path / "out"
    write(v["T1"], root / "A" / "T1.nii.gz")
    write(v["FLAIR"], root / "B" / "FLAIR.nii.gz")
    good = gzip.compress(gzip.decompress(write(v["T1"], tmp_path / "t1.nii.gz").read_bytes()))
    (root / "B" / "T1.nii.gz").write_bytes(good[: len(good) // 2])
    assert mrsynth(root, "--out", out, "--model", tiny_bundle, "--target", "T2",
                   "--scheduler", c.scheduler_address) == 1
    err = capsys.readouterr().err
    assert "1 done, 0 skipped (already there), 1 failed" in err
    assert f"failed: B T2: {root / 'B' / 'T1.nii.gz'}" in err
    rows = manifest(out)
    assert {k: r["status"] for k, r in rows.items()} == {("A", "T2"): "done", ("B", "T2"): "failed"}
    assert "cannot read image" in rows[("B", "T2")]["message"]
    assert images(out) == ["A/T2.nii.gz"]


def test_without_dask_the_command_says_how_to_install_it(small_subject, tiny_bundle, tmp_path, capsys,
                                                         monkeypatch):
    """Dask is optional: without it, ``--dask`` is one line naming the pip command, exit 2, nothing written;
    and importing the engine (batch_dask included) never imports Dask."""
    import subprocess

    write(small_subject.volumes["T1"], tmp_path / "cohort" / "A" / "T1.nii.gz")
    monkeypatch.setitem(sys.modules, "distributed", None)  # what `import distributed` meets when not installed
    for flag in (["--dask"], ["--scheduler", "tcp://127.0.0.1:8786"]):
        assert mrsynth(tmp_path / "cohort", "--out", tmp_path / "out", "--model", tiny_bundle, *flag) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.startswith("mrsynth: error:"), err
        assert 'pip install "dask[distributed]"' in err
    assert not (tmp_path / "out").exists()
    code = ("import sys, MRSynthLib.batch_dask, MRSynthLib.cli; "
            "print(sorted(m for m in ('dask', 'distributed') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stdout + done.stderr


def test_a_resume_removes_the_temp_files_of_a_killed_writer(small_subject, tiny_bundle, tmp_path):
    """A writer killed outright (SIGKILL: a batch, or a cluster worker mid-write) leaves its hidden temp file
    beside the output; the next batch removes those of its outputs, and nothing else."""
    from MRSynthLib.batch import run_batch

    root, out = tmp_path / "cohort", tmp_path / "out"
    write(small_subject.volumes["T1"], root / "A" / "T1.nii.gz")
    (out / "A").mkdir(parents=True)
    left = [out / "A" / ".T2.nii.gz.k1ll3d_x.tmp.nii.gz", out / "A" / ".FLAIR.nii.gz.a8_9zq0w.tmp.nii.gz"]
    for f in left:
        f.write_bytes(b"half an image")
    (out / "A" / ".PD.nii.gz.q7w8e9r0.tmp").mkdir()  # an .mhd writer's temp folder: removed as well
    keep = [out / "A" / ".notes", out / "A" / ".T1.nii.gz.x.tmp.nii.gz"]  # not a temp of this batch's outputs
    for f in keep:
        f.write_text("mine")
    result = run_batch(root, out, model=str(tiny_bundle))
    assert result.exit_code == 0 and images(out) == ["A/FLAIR.nii.gz", "A/PD.nii.gz", "A/T2.nii.gz"]
    assert sorted(p.name for p in (out / "A").iterdir() if p.name.startswith(".")) == sorted(p.name for p in keep)
