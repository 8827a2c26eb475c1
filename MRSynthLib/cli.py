"""``mrsynth``: synthesize, evaluate, demo and list models from the command line.

Errors the user can fix print one line (``mrsynth: error: <file>: <problem>``) and exit with 2;
nothing is written on error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .errors import MRSynthError


def _tqdm_progress(desc: str):
    from tqdm import tqdm  # noqa: PLC0415

    bar = tqdm(total=None, desc=desc, unit="slice", file=sys.stderr, dynamic_ncols=True)

    def progress(done: int, total: int, _msg: str) -> bool:
        bar.total = total
        bar.n = done
        bar.refresh()
        if done >= total:
            bar.close()
        return True

    return progress


def _parse_inputs(items: list[str]) -> dict[str, str]:
    from .contrasts import canonical  # noqa: PLC0415

    out: dict[str, str] = {}
    for item in items:
        if "=" not in item:
            raise MRSynthError(f"--input must be CONTRAST=PATH, got '{item}'")
        name, path = item.split("=", 1)
        c = canonical(name)
        if c in out:
            raise MRSynthError(f"contrast {c} given twice")
        out[c] = path
    return out


def cmd_synthesize(args: argparse.Namespace) -> int:
    from .contrasts import canonical  # noqa: PLC0415
    from .io import read_volume, write_volume  # noqa: PLC0415
    from .synthesis import check_request, synthesize  # noqa: PLC0415

    paths = _parse_inputs(args.input or [])
    target = canonical(args.target)
    out = Path(args.output)
    # checks that need no image reading come first, so nothing heavy runs for a bad request
    check_request(dict.fromkeys(paths, None), target)
    resolved_out = out.resolve()
    for p in [*paths.values(), args.mask, args.style_ref]:
        if p and Path(p).resolve() == resolved_out:
            raise MRSynthError("output path is also an input; choose another output", str(out))
    if out.exists() and not args.force:
        raise MRSynthError("output exists; pass --force to overwrite", str(out))
    if not out.parent.exists():
        raise MRSynthError("output folder does not exist", str(out.parent))
    from .backends import check_engine  # noqa: PLC0415
    from .registry import backend_roles, load_backend, resolve_model  # noqa: PLC0415

    bundle = resolve_model(args.model, roles=backend_roles(args.backend))
    engine = load_backend(bundle, backend=args.backend, device=args.device)
    check_engine(engine, list(paths), target, style_ref=bool(args.style_ref) and not args.match_histogram,
                 second_target=args.style_target)
    inputs = {c: read_volume(p) for c, p in paths.items()}
    mask = read_volume(args.mask) if args.mask else None
    ref = read_volume(args.style_ref) if args.style_ref else None
    progress = None if args.quiet else _tqdm_progress(f"{target} ({engine.name}/{engine.device})")
    result = synthesize(inputs, target, mask=mask, style_reference=ref, style_alpha=args.style_alpha,
                        second_target=args.style_target, register=args.register, n4=args.n4, plane=args.plane,
                        batch_size=args.batch_size, progress=progress, engine=engine,
                        match_histogram=args.match_histogram, calibrate=not args.no_calibrate)
    result.metadata["MRSynth.Model"] = bundle.id
    result.metadata["descrip"] = f"SYNTHETIC {target} by MRSynth ({bundle.id}) - not an acquired image"
    write_volume(result, out, overwrite=args.force)
    if target == "T1Gd":
        from .contrasts import GADOLINIUM_NOTE  # noqa: PLC0415

        print(f"mrsynth: {GADOLINIUM_NOTE}", file=sys.stderr)
    print(str(out))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .evaluation import evaluate_arrays  # noqa: PLC0415
    from .io import read_volume  # noqa: PLC0415

    pred, truth = read_volume(args.pred), read_volume(args.truth)
    if pred.array.shape != truth.array.shape:
        raise MRSynthError(f"grid {pred.array.shape} differs from the truth's {truth.array.shape}", args.pred)
    mask = read_volume(args.mask).array > 0.5 if args.mask else None
    if mask is not None and mask.shape != truth.array.shape:
        raise MRSynthError("mask grid differs from the truth's", args.mask)
    print(json.dumps(evaluate_arrays(pred.array, truth.array, mask, mutual_information=args.mi), indent=2))
    return 0


def cmd_models(_args: argparse.Namespace) -> int:
    from .registry import cache_dir, list_models, load_registry  # noqa: PLC0415

    default = load_registry().get("default")
    for m in list_models():
        star = "*" if m["id"] == default else " "
        print(f"{star} {m['id']:28s} v{m['version']:8s} {','.join(m['contrasts']):26s} {m['license']}")
    print(f"(* default; user cache: {cache_dir()})")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo  # noqa: PLC0415

    report = run_demo(Path(args.out), backend=args.backend, device=args.device, quiet=args.quiet)
    print(json.dumps(report, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mrsynth", description="Multi-contrast brain MR synthesis")
    sub = p.add_subparsers(dest="command")
    s = sub.add_parser("synthesize", help="synthesize a missing contrast")
    s.add_argument("--input", action="append", metavar="CONTRAST=PATH", help="source volume (repeatable)")
    s.add_argument("--target", required=True, help="contrast to synthesize (T1, T1Gd, T2, PD, FLAIR)")
    s.add_argument("--output", required=True)
    s.add_argument("--model", default=None, help="registry id or path to a model card / ONNX file")
    s.add_argument("--backend", choices=("onnx", "torch"), default="onnx")
    s.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    s.add_argument("--mask", default=None, help="brain mask (default: derived from the inputs)")
    s.add_argument("--style-ref", default=None, help="reference volume whose protocol look to borrow")
    s.add_argument("--style-target", default=None, help="second contrast: α walks between two mean styles")
    s.add_argument("--style-alpha", type=float, default=0.0, help="0 = mean style of the target, 1 = reference")
    s.add_argument("--match-histogram", action="store_true",
                   help="also map the output's intensity histogram onto the reference's (strength --style-alpha)")
    s.add_argument("--no-calibrate", action="store_true",
                   help="keep the generator's intensity look (default: calibrated to the inputs' tone curve)")
    s.add_argument("--register", action="store_true", help="rigidly register inputs to the first one")
    s.add_argument("--n4", action="store_true", help="N4 bias-field correction before normalization")
    s.add_argument("--plane", default="axial", choices=("axial", "coronal", "sagittal"))
    s.add_argument("--batch-size", type=int, default=8)
    s.add_argument("--force", action="store_true", help="overwrite an existing output")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_synthesize)
    e = sub.add_parser("evaluate", help="metrics of a prediction against the truth (JSON)")
    e.add_argument("--pred", required=True)
    e.add_argument("--truth", required=True)
    e.add_argument("--mask", default=None)
    e.add_argument("--mi", action="store_true", help="also normalized mutual information")
    e.set_defaults(func=cmd_evaluate)
    d = sub.add_parser("demo", help="simulate a subject, synthesize its FLAIR, write NIfTI + montage + metrics")
    d.add_argument("--out", default="demo_out")
    d.add_argument("--backend", choices=("onnx", "torch"), default="onnx")
    d.add_argument("--device", default="auto")
    d.add_argument("--quiet", action="store_true")
    d.set_defaults(func=cmd_demo)
    m = sub.add_parser("models", help="list the model registry")
    m.set_defaults(func=cmd_models)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except MRSynthError as exc:
        print(f"mrsynth: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mrsynth: cancelled", file=sys.stderr)
        return 130


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 1))
    sys.exit(main())
