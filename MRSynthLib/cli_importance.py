"""``mrsynth importance ROOT --out DIR``: which contrast matters for synthesizing which (see
:mod:`MRSynthLib.importance`). Errors are raised as :class:`MRSynthError` and printed by ``mrsynth``'s
``main`` as one line (exit 2), like every other subcommand; nothing is written on a bad request.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import MRSynthError


def add_parser(subparsers) -> None:
    """Add the ``importance`` subcommand to ``mrsynth``'s subparsers."""
    p = subparsers.add_parser(
        "importance", help="which contrast matters: synthesize each target from every subset of the others",
        description="For every subject folder under ROOT (files <CONTRAST>.nii.gz) and every target it has, "
        "synthesize the target from every non-empty subset of its other contrasts, score it against the real "
        "one (masked PSNR/SSIM/MAE) and report each input's Shapley contribution and each target's "
        "replaceability. Resumable: rows already in DIR/scores.csv are not scored again.")
    p.add_argument("root", metavar="ROOT", help="folder with one folder per subject")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="scores.csv, importance.csv, importance.md, importance.png")
    p.add_argument("--model", default=None, help="registry id or path to a model card (default: the registry's)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--target", default=None, help="only this target contrast")
    p.add_argument("--subjects", default=None, metavar="A,B", help="only these subject folders (comma list)")
    p.add_argument("--max-inputs", type=int, default=None, metavar="N",
                   help="subsets of at most N inputs (Shapley values then need subjects with ≤ N other contrasts)")
    p.add_argument("--report-only", action="store_true",
                   help="score nothing: report the rows already in scores.csv (e.g. of a stopped study)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_importance)


def cmd_importance(args: argparse.Namespace) -> int:
    from .importance import run_study

    if args.max_inputs is not None and args.max_inputs < 1:
        raise MRSynthError(f"--max-inputs must be at least 1, got {args.max_inputs}")
    subjects = [s.strip() for s in args.subjects.split(",") if s.strip()] if args.subjects else None
    result = run_study(Path(args.root), Path(args.out), model=args.model, device=args.device, target=args.target,
                       subjects=subjects, max_inputs=args.max_inputs, progress=not args.quiet,
                       report_only=args.report_only)
    if result["skipped"]:
        print(f"mrsynth: note: fewer than 2 contrasts, left out: {', '.join(result['skipped'])}", file=sys.stderr)
    if not args.quiet:
        print(f"mrsynth: {result['tasks']} tasks with {result['model']}: {result['scored']} scored now, "
              f"{result['already']} already in scores.csv, {result['missing']} missing ({result['seconds']:.0f} s)",
              file=sys.stderr)
    for f in result["files"]:
        print(f)
    return 0
