"""``mrsynth``: synthesize, evaluate, demo and list models from the command line.

Errors the user can fix print one line (``mrsynth: error: <file>: <problem>``) and exit with 2;
nothing is written on error. Operating-system errors (permissions, full disk) are reported the same way.
SIGTERM ends a run like Ctrl-C does (exit 143): the atomic writer removes its temp file first.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path

from .errors import MRSynthError


class Terminated(BaseException):
    """SIGTERM raised as an exception: its default action kills the process at once, which left the
    atomic writer's hidden temp file behind; an exception unwinds through the writer's cleanup."""


def _raise_terminated(_signum: int, _frame: object) -> None:
    raise Terminated()


def _tqdm_progress(desc: str):
    from tqdm import tqdm

    bar = tqdm(total=None, desc=desc, unit="slice", file=sys.stderr, dynamic_ncols=True)

    def progress(done: int, total: int, _msg: str) -> bool:
        bar.total = total
        bar.n = done
        bar.refresh()
        if done >= total:
            bar.close()
        return True

    return progress


def _check_output(out: Path, force: bool, sources: list[str]):
    """Everything about the output that can be known before the run, so a run is never wasted on an
    output that cannot be written: extension, not an input (nor an input's .raw), not a folder,
    existing only with --force, and a parent folder that exists and can really take a file.

    Returns the output's :func:`~MRSynthLib.io.file_stamp` (None: no file yet), so the final write can
    refuse an output another run wrote or replaced meanwhile."""
    from .io import check_writable, data_file_candidates, file_stamp, written_files

    try:
        targets = {f.resolve() for f in written_files(out)}  # refuses an unsupported extension
    except MRSynthError as exc:
        raise MRSynthError(f"{exc}; or --output-format dicom for a DICOM series folder") from None
    for p in sources:
        if any(f.resolve() in targets for f in data_file_candidates(p)):
            raise MRSynthError("output path is also an input; choose another output", str(out))
    if out.is_dir():
        raise MRSynthError("output path is a folder; give a file name such as out.nii.gz (or --output-format "
                           "dicom to write a DICOM series into it)", str(out))
    for f in written_files(out):
        if f.exists() and not force:
            raise MRSynthError("output exists; pass --force to overwrite", str(f))
    if not out.parent.is_dir():
        raise MRSynthError("output folder does not exist", str(out.parent))
    if not os.access(out.parent, os.W_OK | os.X_OK):
        raise MRSynthError(f"output folder {out.parent} is not writable (permission denied)", str(out))
    check_writable(out)
    return file_stamp(out)


def _check_dicom_output(out: Path, force: bool, sources: list[str]) -> None:
    """:func:`_check_output` for a DICOM series folder: new, empty, or (with --force) a DICOM series; never a
    folder that holds an input; a parent folder that can take it."""
    from .dicom_output import check_dicom_folder
    from .io import check_writable

    target = out.resolve()
    for p in sources:
        src = Path(p).resolve()
        if src == target or target in src.parents:
            raise MRSynthError("output folder is (or holds) an input; choose another output", str(out))
    check_dicom_folder(out, force)
    if not os.access(out.parent, os.W_OK | os.X_OK):
        raise MRSynthError(f"output folder {out.parent} is not writable (permission denied)", str(out))
    check_writable(out)


def cmd_synthesize(args: argparse.Namespace) -> int:
    from .checks import check_pairwise_inputs
    from .io import read_volume, write_volume
    from .request import request_from_args
    from .synthesis import load_engine, run_request_with_confidence

    request = request_from_args(args)  # every check that needs no image comes first
    out = Path(args.output)
    dicom = request.output_format == "dicom"
    sources = [str(p) for p in request.images().values()]
    conf_stamp = None
    if request.confidence is not None:  # checked first: a refused map path writes nothing, not even the image
        conf_stamp = _check_confidence_output(Path(request.confidence), out, args.force, sources)
    stamp = _check_dicom_output(out, args.force, sources) if dicom else _check_output(out, args.force, sources)
    engine = load_engine(request)
    if request.amp and not str(engine.device).startswith("cuda"):
        raise MRSynthError(f"--amp works on CUDA only; this run is on {engine.device} (drop --amp or use "
                           "--device cuda)")
    check_pairwise_inputs(engine, dict(request.inputs), request.target)
    volumes = request.with_sources(lambda path, _role: read_volume(path))
    if not args.quiet:  # says which device really runs (a GPU machine with a CPU-only onnxruntime, say)
        print(f"mrsynth: running on {engine.device} ({engine.name})", file=sys.stderr)
    progress = None if args.quiet else _tqdm_progress(f"{request.target} ({engine.name}/{engine.device})")
    result, sd = run_request_with_confidence(volumes, engine=engine, progress=progress)
    for note in filter(None, result.metadata.get("MRSynth.Notes", "").split(" | ")):
        print(f"mrsynth: warning: {note}", file=sys.stderr)
    # an output absent at the start may not be overwritten, one present only in the version seen then
    if dicom:
        from .dicom_output import write_dicom_series

        write_dicom_series(result, out, overwrite=args.force)
    else:
        write_volume(result, out, overwrite=stamp is not None, replaces=stamp)
    if sd is not None:
        write_volume(sd, request.confidence, overwrite=conf_stamp is not None, replaces=conf_stamp)
    if request.target == "T1Gd":
        from .contrasts import GADOLINIUM_NOTE

        print(f"mrsynth: {GADOLINIUM_NOTE}", file=sys.stderr)
    print(str(out))
    if sd is not None:
        print(str(request.confidence))
    return 0


def _check_confidence_output(path: Path, out: Path, force: bool, sources: list[str]):
    """:func:`_check_output` for the uncertainty map: a file of its own, never the output (nor inside a DICOM
    output folder) nor an input."""
    if path.resolve() == out.resolve() or out.resolve() in path.resolve().parents:
        raise MRSynthError("--confidence is the --output path; give the uncertainty map its own file", str(path))
    try:
        return _check_output(path, force, sources)
    except MRSynthError as exc:
        raise MRSynthError(f"--confidence: {exc}") from None


GRID_TOL = 1e-3
"""Largest spacing/origin difference (mm) and direction-cosine difference for 'the same grid'."""


def grid_mismatch(vol, truth, tol: float = GRID_TOL) -> str | None:
    """What differs between two voxel grids (shape, spacing, origin, direction), or None: voxel-wise
    metrics between volumes on different grids compare different points of the head."""
    import numpy as np

    if vol.array.shape != truth.array.shape:
        return f"grid {vol.array.shape} differs from the truth's {truth.array.shape}"
    for what, a, b in (("spacing", vol.spacing, truth.spacing), ("origin", vol.origin, truth.origin),
                       ("direction", vol.direction, truth.direction)):
        if not np.allclose(a, b, atol=tol):
            fmt = lambda x: ", ".join(f"{v:.4g}" for v in np.ravel(x))  # noqa: E731
            return f"grid {what} ({fmt(a)}) differs from the truth's ({fmt(b)}); resample it onto the truth's grid"
    return None


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Metrics as strict JSON: an infinite PSNR (identical volumes) is printed as null."""
    import math

    from .evaluation import evaluate_arrays
    from .io import read_volume

    pred, truth = read_volume(args.pred), read_volume(args.truth)
    problem = grid_mismatch(pred, truth)
    if problem:
        raise MRSynthError(problem, args.pred)
    mask = None
    if args.mask:
        mask_vol = read_volume(args.mask)
        problem = grid_mismatch(mask_vol, truth)
        if problem:
            raise MRSynthError(problem.replace("grid", "mask grid", 1), args.mask)
        mask = mask_vol.array > 0.5
    metrics = evaluate_arrays(pred.array, truth.array, mask, mutual_information=args.mi)
    metrics = {k: (v if not isinstance(v, float) or math.isfinite(v) else None) for k, v in metrics.items()}
    print(json.dumps(metrics, indent=2, allow_nan=False))
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from .registry import cache_dir, list_models, load_registry

    if args.download:
        from .download import download_model

        def show(done: int, total: int, name: str) -> None:
            print(f"\r{name}: {done / 1e6:.1f}" + (f" / {total / 1e6:.1f}" if total else "") + " MB",
                  end="", file=sys.stderr, flush=True)

        card = download_model(args.download, base_url=args.from_url, progress=None if args.quiet else show)
        if not args.quiet:
            print(file=sys.stderr)
        print(f"{args.download}: installed in {card.parent} (every file SHA256-checked)")
        return 0

    default = load_registry().get("default")
    for m in list_models():
        star = "*" if m["id"] == default else " "
        print(f"{star} {m['id']:28s} v{m['version']:8s} {','.join(m['contrasts']):26s} {m['license']}")
    print(f"(* default; user cache: {cache_dir()})")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import DEMO_TARGET, run_demo

    progress = None if args.quiet else _tqdm_progress(f"demo {DEMO_TARGET}")
    report = run_demo(Path(args.out), backend=args.backend, device=args.device, progress=progress)
    print(json.dumps(report, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .cli_batch import add_parser as add_batch_parser
    from .cli_importance import add_parser as add_importance_parser
    from .cli_reader_study import add_parser as add_reader_study_parser
    from .request import add_request_arguments

    p = argparse.ArgumentParser(prog="mrsynth", description="Multi-contrast brain MR synthesis")
    sub = p.add_subparsers(dest="command")
    s = sub.add_parser("synthesize", help="synthesize a missing contrast")
    add_request_arguments(s)
    s.set_defaults(func=cmd_synthesize)
    add_batch_parser(sub)
    add_importance_parser(sub)
    add_reader_study_parser(sub)
    e = sub.add_parser("evaluate", help="metrics of a prediction against the truth (JSON)")
    e.add_argument("--pred", required=True)
    e.add_argument("--truth", required=True)
    e.add_argument("--mask", default=None)
    e.add_argument("--mi", action="store_true", help="also normalized mutual information")
    e.epilog = "PSNR is null when prediction and truth are identical (infinite PSNR; JSON has no Infinity)."
    e.set_defaults(func=cmd_evaluate)
    d = sub.add_parser("demo", help="simulate a subject, synthesize its FLAIR, write NIfTI + montage + metrics")
    d.add_argument("--out", default="demo_out")
    d.add_argument("--backend", choices=("onnx", "torch"), default="onnx")
    d.add_argument("--device", default="auto")
    d.add_argument("--quiet", action="store_true")
    d.set_defaults(func=cmd_demo)
    m = sub.add_parser("models", help="list the model registry, or download a registered model")
    m.add_argument("--download", metavar="ID", help="fetch a registered model into the user cache (SHA256-checked)")
    m.add_argument("--from", dest="from_url", metavar="URL", help="download from this base URL instead of the registry's")
    m.add_argument("--quiet", action="store_true")
    m.set_defaults(func=cmd_models)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    in_main = threading.current_thread() is threading.main_thread()  # signal handlers live there only
    previous = signal.signal(signal.SIGTERM, _raise_terminated) if in_main else None
    try:
        return args.func(args)
    except Terminated:
        print("mrsynth: terminated", file=sys.stderr)
        return 128 + signal.SIGTERM
    except MRSynthError as exc:
        print(f"mrsynth: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # what no check can foresee (disk full, a folder made read-only mid-run)
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"mrsynth: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mrsynth: cancelled", file=sys.stderr)
        return 130
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 1))
    sys.exit(main())
