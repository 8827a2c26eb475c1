"""``mrsynth synthesize-batch ROOT --out OUT``: complete a cohort's missing contrasts (:mod:`MRSynthLib.batch`).

A bad command (ROOT missing, no subjects, OUT inside ROOT, an unknown model) is a :class:`MRSynthError`,
printed by ``mrsynth``'s ``main`` as one line with exit 2, before anything is written. Per-case trouble is
not: it is a manifest row, the batch goes on, and the exit status is 1 when any row failed, 0 otherwise.
``--dask`` / ``--scheduler`` run the subjects on a Dask cluster (:mod:`MRSynthLib.batch_dask`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .cohort import LAYOUTS
from .errors import MRSynthError

FAILURES_SHOWN = 10
"""Failed rows printed at the end (all of them are in the manifest)."""


def add_parser(subparsers) -> None:
    """Add the ``synthesize-batch`` subcommand to ``mrsynth``'s subparsers."""
    p = subparsers.add_parser(
        "synthesize-batch", help="synthesize every missing contrast of every subject of a cohort",
        description="For every subject under ROOT (layouts: ours <subject>/<CONTRAST>.nii.gz; BraTS "
        "<ID>/<ID>-t1n|t1c|t2w|t2f.nii.gz, or BraTS 2018-2021 <ID>/<ID>_t1|t1ce|t2|flair.nii.gz; BIDS sub-*/[ses-*/]anat/) synthesize each contrast it lacks from all "
        "those it has, into OUT in the same naming (BIDS: a derivatives dataset, desc-synthetic). Outputs "
        "already in OUT are skipped, so a stopped batch resumes where it was; OUT/manifest.csv and .json say "
        "what happened to each (subject, target). Exit status: 0 all well, 1 some rows failed, 2 bad command.",
        epilog="T1Gd is only synthesized with --target T1Gd: gadolinium enhancement cannot be synthesized "
        "from pre-contrast images. --jobs > 1 runs subjects in parallel threads sharing one model; each "
        "already uses every core, so it helps on many-core machines only. --dask runs subjects on a local "
        "Dask cluster of --jobs worker processes, --scheduler on a running cluster (SLURM, several machines): "
        "every worker needs MRSynth, and ROOT and OUT at the same paths (docs/cli.md).")
    p.add_argument("root", metavar="ROOT", help="the cohort: one folder per subject (never written to)")
    p.add_argument("--out", required=True, metavar="OUT", help="output folder, outside ROOT")
    p.add_argument("--layout", choices=("auto", *LAYOUTS), default="auto",
                   help="naming of ROOT (default: detected; an ambiguous ROOT is refused)")
    p.add_argument("--target", default=None, help="only this contrast (default: every one a subject lacks, "
                   "T1Gd excepted)")
    p.add_argument("--model", default=None, help="registry id or path to a model card / ONNX file")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--force", action="store_true", help="redo outputs that already exist (default: skip them)")
    p.add_argument("--jobs", type=int, default=None, metavar="N",
                   help="subjects at once: threads (default 1), or with --dask worker processes (default 2)")
    p.add_argument("--dask", action="store_true", help="run subjects on a local Dask cluster (worker processes, "
                   "1 thread each; needs dask[distributed])")
    p.add_argument("--scheduler", metavar="ADDRESS", default=None, help="run subjects on the Dask cluster whose "
                   "scheduler is at ADDRESS (tcp://host:8786); its workers need ROOT and OUT at the same paths")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_synthesize_batch)


def _say(line: str) -> None:
    print(f"mrsynth: {line}", file=sys.stderr)


def cmd_synthesize_batch(args: argparse.Namespace) -> int:
    """Run the batch; the manifest's path goes to stdout, a one-line summary to stderr."""
    from .batch import run_batch

    bar = None

    def start(total: int) -> None:
        nonlocal bar
        if not args.quiet and total:
            from tqdm import tqdm

            bar = tqdm(total=total, desc="synthesize-batch", unit="case", file=sys.stderr, dynamic_ncols=True)

    def on_case(case_id: str, rows) -> None:
        if bar is not None:
            bar.set_postfix_str(case_id, refresh=False)
            bar.update(1)

    executor = None
    if args.dask or args.scheduler:
        if args.scheduler and args.jobs is not None:
            raise MRSynthError("--jobs sets the size of --dask's local cluster; with --scheduler the cluster's "
                               "workers run the subjects (start more workers instead)")
        from .batch_dask import DaskCases

        executor = DaskCases(workers=2 if args.jobs is None else args.jobs, scheduler=args.scheduler)
    try:
        result = run_batch(Path(args.root), Path(args.out), layout=args.layout, target=args.target,
                           model=args.model, device=args.device, force=args.force,
                           jobs=1 if args.jobs is None else args.jobs, say=_say, on_case=on_case, start=start,
                           executor=executor)
    finally:
        if bar is not None:
            bar.close()
    failed = [r for r in result.rows if r.status == "failed"]
    for r in failed[:FAILURES_SHOWN]:
        _say(f"failed: {r.case} {r.target}: {r.message}")
    if len(failed) > FAILURES_SHOWN:
        _say(f"… and {len(failed) - FAILURES_SHOWN} more failed rows (see the manifest)")
    _say(result.summary())
    print(result.manifest)
    return result.exit_code
