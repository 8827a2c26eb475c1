"""``mrsynth reader-study build|score``: a blinded visual Turing test of real vs synthetic images
(:mod:`MRSynthLib.reader_study`, :mod:`MRSynthLib.reader_study_score`). Readers rate in Slicer's panel or
from Python (:class:`MRSynthLib.reader_session.ReaderSession`). A bad request is a :class:`MRSynthError`,
printed by ``mrsynth``'s ``main`` as one line naming the file (exit 2), with nothing written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_parser(subparsers) -> None:
    """Add ``reader-study`` (with its ``build`` and ``score`` actions) to ``mrsynth``'s subparsers."""
    p = subparsers.add_parser("reader-study", help="blinded reader study (visual Turing test): build, score",
                              description="Build a blinded, shuffled set of real and synthetic cases for readers "
                              "to rate (in the Slicer module's Reader study section, or from Python), then score "
                              "their ratings against the key.")
    actions = p.add_subparsers(dest="action", required=True, metavar="{build,score}")
    b = actions.add_parser(
        "build", help="make STUDY: blinded cases, cases.json, key/key.csv",
        description="Every image (files, or the image files under folders) becomes one case — or N axial slices "
        "with --slices N — rewritten the same way for both classes: a fresh NIfTI header (no description or "
        "intent: nothing says synthetic, nothing names the subject), int16 on one intensity scale, the same "
        "window/level rule, neutral names case-001… in a seeded random order. The key (case → truth, source) "
        "goes to STUDY/key/key.csv or --key: give readers the study without it.")
    b.add_argument("--real", nargs="+", action="extend", required=True, metavar="PATH",
                   help="acquired images: files or folders (NIfTI, NRRD, MHA/MHD, a DICOM series folder)")
    b.add_argument("--synthetic", nargs="+", action="extend", required=True, metavar="PATH",
                   help="synthetic images: files or folders")
    b.add_argument("--out", required=True, metavar="STUDY", help="the study folder (new, or empty)")
    b.add_argument("--slices", type=int, default=None, metavar="N",
                   help="N axial slices per volume instead of whole volumes (evenly through the brain)")
    b.add_argument("--seed", type=int, default=0, help="shuffling seed (default 0): same seed, same study")
    b.add_argument("--readers", default=None, metavar="A,B",
                   help="the readers (comma list): each gets their own reading order; others are refused")
    b.add_argument("--key", default=None, metavar="PATH", help="write the key here, outside the study")
    b.add_argument("--include", default="*", metavar="GLOB",
                   help="only files under folders whose name matches (e.g. 'FLAIR*'; default all images)")
    b.add_argument("--force", action="store_true", help="replace an existing study (and --key file)")
    b.add_argument("--quiet", action="store_true", help="no progress bar")
    b.set_defaults(func=cmd_build)
    s = actions.add_parser(
        "score", help="accuracy, sensitivity/specificity, quality real vs synthetic: Markdown, JSON, PNG",
        description="Every reader's ratings (STUDY/ratings/*.csv) against the key: accuracy, sensitivity and "
        "specificity for detecting synthetic images (Wilson 95% intervals; accuracy vs chance, exact binomial "
        "test), mean quality and confidence of real vs synthetic cases (Mann–Whitney U), per reader and pooled.")
    s.add_argument("study", metavar="STUDY")
    s.add_argument("--key", default=None, metavar="KEY", help="the key (default STUDY/key/key.csv)")
    s.add_argument("--out", default=None, metavar="DIR", help="report folder (default STUDY/report)")
    s.set_defaults(func=cmd_score)


def cmd_build(args: argparse.Namespace) -> int:
    """Build the study; its path goes to stdout, a one-line summary to stderr."""
    from .reader_study import build_study

    readers = [r.strip() for r in args.readers.split(",") if r.strip()] if args.readers else []
    bar = None

    def progress(done: int, total: int, name: str) -> None:
        nonlocal bar
        if bar is None:
            from tqdm import tqdm

            bar = tqdm(total=total, desc="reader-study build", unit="volume", file=sys.stderr, dynamic_ncols=True)
        bar.n = done
        bar.set_postfix_str(name)

    try:
        result = build_study(args.real, args.synthetic, args.out, slices=args.slices, seed=args.seed,
                             readers=readers, key=args.key, force=args.force, include=args.include,
                             progress=None if args.quiet else progress)
    finally:
        if bar is not None:
            bar.n = bar.total
            bar.close()
    print(f"mrsynth: {result.summary()}", file=sys.stderr)
    print(result.study)
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    """Score; the report's files go to stdout, the pooled accuracy to stderr."""
    from .reader_study_score import score_study, write_report

    result = score_study(args.study, key=args.key)
    files = write_report(result, Path(args.out) if args.out else Path(args.study) / "report")
    acc = result["pooled"]["accuracy"]
    lo, hi = acc["ci95"]
    print(f"mrsynth: {len(result['readers'])} reader(s), {acc['n']} ratings: pooled accuracy {acc['value']:.3f} "
          f"(95% CI {lo:.3f}–{hi:.3f})", file=sys.stderr)
    for f in files:
        print(f)
    return 0
