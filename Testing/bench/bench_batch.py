"""Cohort throughput benchmark (``make bench``): subjects per hour of ``mrsynth synthesize-batch`` against
running ``mrsynth synthesize`` once per subject (a user's shell loop), and the cost per subject as the
cohort grows. Prints a table; every ratio is measured in the same run, none is a pass/fail goal.

Each cohort (sizes 1, 2, 4, 8 by default) is made of simulated subjects (``MRSynthLib.phantom``: T1, T1Gd,
T2 on a ``--shape`` grid) in the ``<subject>/<CONTRAST>.nii.gz`` layout; every approach synthesizes FLAIR
for every subject with the shipped default model, each as a fresh command, so start-up and model loading
count as a user would pay them:

- ``batch``: ``mrsynth synthesize-batch ROOT --out OUT --target FLAIR --jobs 1`` (one process, one model);
- ``cli loop``: ``mrsynth synthesize --target FLAIR`` once per subject, one after the other;
- ``dask``: ``synthesize-batch --dask --jobs 2`` (a local cluster, 2 worker processes × 1 thread; skipped
  with ``--no-dask`` or without Dask).

Every command runs on THREADS (2) CPUs: its CPU affinity is set to that many cores where the system allows
(onnxruntime's own default is every core), and OMP_NUM_THREADS too. A first untimed command warms the disk
cache. Timings on a loaded machine are not meaningful; ratios measured together are the better guide.

    .venv/bin/python Testing/bench/bench_batch.py [--sizes 1 2 4 8] [--shape 112 136 112] [--no-dask]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

THREADS = 2
INPUTS = ("T1", "T1Gd", "T2")
TARGET = "FLAIR"
MRSYNTH = str(Path(sys.executable).parent / "mrsynth")


def make_cohorts(base: Path, sizes: list[int], shape: tuple[int, int, int]) -> dict[int, Path]:
    """One folder per cohort size; subject i is the same simulated subject (seed i) in every cohort."""
    from MRSynthLib.io import write_volume
    from MRSynthLib.phantom import simulate_subject

    subjects = base / "subjects"
    for i in range(max(sizes)):
        s = simulate_subject(seed=i, shape=shape, lesion=True, contrasts=INPUTS)
        (subjects / f"S{i:03d}").mkdir(parents=True)
        for c in INPUTS:
            write_volume(s.volumes[c], subjects / f"S{i:03d}" / f"{c}.nii.gz")
    cohorts = {}
    for n in sizes:
        root = base / f"cohort-{n}"
        for i in range(n):
            shutil.copytree(subjects / f"S{i:03d}", root / f"S{i:03d}")
        cohorts[n] = root
    return cohorts


def _pin() -> None:
    """In the child: run on THREADS cores (where CPU affinity can be set)."""
    if hasattr(os, "sched_setaffinity"):
        cores = sorted(os.sched_getaffinity(0))[:THREADS]
        os.sched_setaffinity(0, cores)


def timed(cmd: list[str]) -> float:
    env = dict(os.environ, OMP_NUM_THREADS=str(THREADS))
    t = time.perf_counter()
    subprocess.run(cmd, check=False, env=env, preexec_fn=_pin, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE).check_returncode()
    return time.perf_counter() - t


def cli_once(subject: Path, out: Path) -> list[str]:
    inputs = sum((["--input", f"{c}={subject / f'{c}.nii.gz'}"] for c in INPUTS), [])
    return [MRSYNTH, "synthesize", *inputs, "--target", TARGET, "--output", str(out), "--quiet", "--force"]


def batch(root: Path, out: Path, *extra: str) -> list[str]:
    return [MRSYNTH, "synthesize-batch", str(root), "--out", str(out), "--target", TARGET, "--quiet", *extra]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1, 2, 4, 8], help="cohort sizes (default 1 2 4 8)")
    ap.add_argument("--shape", type=int, nargs=3, default=[112, 136, 112], metavar=("I", "J", "K"),
                    help="voxels of each simulated subject (default 112 136 112)")
    ap.add_argument("--no-dask", action="store_true", help="skip the local Dask cluster")
    args = ap.parse_args(argv)
    try:
        import distributed  # noqa: F401

        dask = not args.no_dask
    except ImportError:
        dask = False
    results: dict[str, dict[int, float]] = {"batch": {}, "cli loop": {}, **({"dask": {}} if dask else {})}
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        t = time.perf_counter()
        cohorts = make_cohorts(base, sorted(set(args.sizes)), tuple(args.shape))
        print(f"cohorts made in {time.perf_counter() - t:.0f} s (not timed)", file=sys.stderr)
        first = cohorts[min(cohorts)] / "S000"
        timed(cli_once(first, base / "warm.nii.gz"))  # warm the disk cache: imports, model files
        for n, root in cohorts.items():
            subjects = sorted(p for p in root.iterdir() if p.is_dir())
            results["batch"][n] = timed(batch(root, base / f"batch-{n}", "--jobs", "1"))
            loop = base / f"loop-{n}"
            loop.mkdir()
            results["cli loop"][n] = sum(timed(cli_once(s, loop / f"{s.name}_{TARGET}.nii.gz")) for s in subjects)
            if dask:
                results["dask"][n] = timed(batch(root, base / f"dask-{n}", "--dask", "--jobs", "2"))
            print(f"size {n}: " + ", ".join(f"{k} {v[n]:.1f} s" for k, v in results.items()), file=sys.stderr)

    print(f"MRSynth cohort benchmark — {platform.processor() or platform.machine()}, {THREADS} threads, "
          f"{time.strftime('%Y-%m-%d')}, default model, {'×'.join(map(str, args.shape))} voxels, "
          f"{'+'.join(INPUTS)} → {TARGET}")
    print(f"  {'subjects':>8}  {'approach':<9}  {'wall s':>8}  {'s/subject':>9}  {'subjects/h':>10}  "
          f"{'vs cli loop':>11}")
    for n in sorted(cohorts):
        for name, times in results.items():
            s = times[n]
            ratio = results["cli loop"][n] / s
            print(f"  {n:>8}  {name:<9}  {s:>8.1f}  {s / n:>9.2f}  {3600 * n / s:>10.0f}  {ratio:>10.2f}×")
    print(json.dumps({name: {str(n): round(s, 2) for n, s in times.items()} for name, times in results.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
