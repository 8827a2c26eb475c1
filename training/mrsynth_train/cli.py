"""``mrsynth-train``: train, resume, export and evaluate models from the command line.

Training also runs without the subcommand, in the form ``mrsynth-train --config C.yaml [--resume]
[--max-steps N] [--out DIR]``; without ``--out`` the run folder is ``runs/<config name>``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from MRSynthLib.errors import MRSynthError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mrsynth-train", description=__doc__)
    sub = p.add_subparsers(dest="command")
    t = sub.add_parser("train", help="train a recipe from a YAML config")
    t.add_argument("--config", required=True)
    t.add_argument("--out", default=None, help="run folder (checkpoints, logs, resolved config); "
                   "default runs/<config file name without .yaml>")
    t.add_argument("--resume", action="store_true", help="continue from the run folder's last checkpoint")
    t.add_argument("--max-steps", type=int, default=None)
    t.add_argument("--init-from", default=None, metavar="RUN",
                   help="start from a finished run's weights (e.g. to fit a scale head onto it)")
    t.add_argument("--exclude", action="append", default=[], help="real subject to hold out (repeatable)")
    t.add_argument("--exclude-site", action="append", default=[], metavar="SITE",
                   help="hold out every real subject of this site (e.g. BraTS18-CBICA; see mrsynth_train.sites)")
    t.add_argument("--data", default=None, metavar="ROOT",
                   help="real data root (replaces the config's data.real_root, which is relative to the config file)")
    e = sub.add_parser("export", help="export a run to ONNX + model card")
    e.add_argument("run")
    e.add_argument("--out", required=True, help="folder for the model bundle")
    e.add_argument("--id", default=None)
    e.add_argument("--version", default="1.0.0")
    e.add_argument("--default-if-better", default=None, metavar="NAME",
                   help="with --register: make the bundle the default only if the run's site validation shows it "
                   "beats the compared model NAME (e.g. v2) on masked PSNR and SSIM, paired Wilcoxon p < 0.05")
    e.add_argument("--register", default=None, metavar="MODELS_JSON",
                   help="add the bundle to this registry (e.g. Resources/Models.json) and make it the default")
    e.add_argument("--url", default="", help="download URL recorded in the registry")
    e.add_argument("--confidence", default=None, metavar="ERROR_MODEL_JSON",
                   help="the uncertainty map's error model (validate-confidence's error_model.json) for the card")
    v = sub.add_parser("validate", help="whole-volume 3→1 validation on real subjects with the histogram baseline")
    v.add_argument("run")
    v.add_argument("--data", required=True)
    v.add_argument("--subject", action="append", required=True)
    v.add_argument("--out", default=None, help="folder for the JSON report and montages")
    lo = sub.add_parser("validate-loso", help="validate leave-one-subject-out fold runs; the combined report "
                        "goes into FINAL_RUN/validation.json (and from there into the exported model card)")
    lo.add_argument("final_run")
    lo.add_argument("--data", required=True)
    lo.add_argument("--fold", action="append", required=True, metavar="SUBJECT=RUN",
                    help="a fold run and the real subject it held out (repeatable)")
    vs = sub.add_parser("validate-sites", help="cross-validation grouped by site: fold runs vs baselines and "
                        "other models on every task of every held-out subject (report.md, report.json)")
    vs.add_argument("--data", required=True, help="the real data root (subject folders)")
    vs.add_argument("--out", required=True, help="folder for rows.jsonl (resumable), report.json, report.md")
    vs.add_argument("--fold", action="append", default=[], metavar="SITE=RUN",
                    help="a run trained without SITE's subjects (repeatable; see mrsynth_train.sites)")
    vs.add_argument("--compare", action="append", default=[], metavar="NAME=MODEL",
                    help="also score a registered model id or card path as shipped (e.g. v2=mrsynth-unified-v2)")
    vs.add_argument("--only", action="append", default=None, metavar="METHOD",
                    help="score only these methods (model, model-uncalibrated, histmatch-best, linear or a --compare "
                    "name; repeatable), e.g. to add fold rows from a second process beside a running validation; "
                    "model-oracle-tone (a diagnostic: the fold model's anatomy with the true histogram) runs only "
                    "when named here")
    vs.add_argument("--final", default=None, metavar="RUN",
                    help="write the report into this run's validation.json and its calibration decision into its "
                    "intensity templates (both reach the exported card)")
    vc = sub.add_parser("validate-confidence", help="site-grouped validation of the uncertainty map (runs/confidence: "
                        "report.md, sparsification.png; rows.jsonl resumable)")
    vc.add_argument("--data", required=True)
    vc.add_argument("--out", default="runs/confidence")
    vc.add_argument("--fold", action="append", required=True, metavar="SITE=RUN", help="as for validate-sites")
    vc.add_argument("--stride", type=int, default=3, help="score every N-th brain slice (run time on a CPU)")
    tp = sub.add_parser("templates", help="write a finished run's intensity templates (runs made before they existed)")
    tp.add_argument("run")
    tp.add_argument("--data", required=True, help="the real data root the run trained on")
    ev = sub.add_parser("evaluate", help="whole-volume 3→1 evaluation of one or two runs (CSV, Markdown, PNG, Wilcoxon)")
    ev.add_argument("runs", nargs="+", help="run folder(s); with two, a paired Wilcoxon test compares them")
    ev.add_argument("--data", required=True, help="folder of subject folders (or BIDS)")
    ev.add_argument("--subject", action="append", default=None, help="only these subjects (repeatable)")
    ev.add_argument("--simulated", type=int, default=0, help="also N held-out simulated subjects")
    ev.add_argument("--out", required=True)
    ev.add_argument("--no-montage", action="store_true")
    ev.add_argument("--no-calibrate", action="store_true", help="ignore the runs' intensity templates")
    ev.add_argument("--tasks", choices=("3to1", "all-subsets"), default="3to1",
                    help="3to1: each target from all other contrasts; all-subsets: from every non-empty subset")
    return p


def _site_subjects(cfg, config_dir: Path, sites: list[str]) -> list[str]:
    """The real subjects of ``sites`` under the config's data root; an unknown site is an error."""
    from .sites import group_by_site
    from .subjects import subject_units
    from .trainer import resolve_root

    root = resolve_root(cfg.data.real_root, config_dir)
    if not root.exists():
        raise MRSynthError("data root not found", str(root))
    groups = group_by_site([name for name, _ in subject_units(root)])
    unknown = [s for s in sites if s not in groups]
    if unknown:
        raise MRSynthError(f"unknown site(s) {', '.join(unknown)} (sites here: {', '.join(groups)})", str(root))
    return [subject for s in sites for subject in groups[s]]


def _pair(text: str, option: str, form: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key or not value:
        raise MRSynthError(f"{option} {text!r}: expected {form}")
    return key, value


def _subject_run(text: str) -> tuple[str, Path]:
    subject, sep, run = text.partition("=")
    if not sep or not subject or not run:
        raise MRSynthError(f"--fold {text!r}: expected SUBJECT=RUN")
    if not Path(run, "model.pt").exists():
        raise MRSynthError(f"{run}: not a finished run folder (no model.pt)")
    return subject, Path(run)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0].startswith("--") and argv[0] != "--help":
        argv = ["train", *argv]  # the form: mrsynth-train --config C.yaml [--resume] ...
    args = _parser().parse_args(argv)
    try:
        if args.command == "train":
            from .config import load_config
            from .trainer import train

            cfg = load_config(args.config)
            if args.data:
                cfg.data.real_root = str(Path(args.data).expanduser().resolve())
            held_out = list(args.exclude)
            if args.exclude_site:
                held_out += _site_subjects(cfg, Path(args.config).resolve().parent, args.exclude_site)
            if held_out:
                cfg.data.real_exclude = list(cfg.data.real_exclude) + held_out
            out = Path(args.out) if args.out else Path("runs") / Path(args.config).stem
            summary = train(cfg, out, resume=args.resume, max_steps=args.max_steps,
                            config_dir=Path(args.config).resolve().parent,
                            init_from=Path(args.init_from) if args.init_from else None)
            print(json.dumps({"run": str(out), **summary}, indent=2))
        elif args.command == "export":
            from .export import export_run

            card = export_run(Path(args.run), Path(args.out), model_id=args.id, version=args.version,
                              confidence=Path(args.confidence) if args.confidence else None)
            if args.register:
                from .export import (
                    beats,
                    register_bundle,
                )

                default, why = (True, "") if not args.default_if_better else beats(card.get("validation"),
                                                                                  args.default_if_better)
                register_bundle(Path(args.out) / f"{card['id']}.json", Path(args.register), url=args.url,
                                default=default)
                print(f"mrsynth-train: {card['id']} registered" + (" as the default" if default else
                                                                  f", NOT the default: {why}"), file=sys.stderr)
            print(json.dumps({k: card[k] for k in ("id", "files")}, indent=2))
        elif args.command == "validate":
            from .validate import validate_run

            report = validate_run(Path(args.run), Path(args.data), args.subject,
                                  Path(args.out) if args.out else None)
            print(json.dumps(report, indent=2))
        elif args.command == "validate-loso":
            from .validate import validate_loso

            folds = dict(_subject_run(f) for f in args.fold)
            report = validate_loso(Path(args.final_run), Path(args.data), folds)
            print(json.dumps({k: v for k, v in report.items() if k != "folds"}, indent=2))
        elif args.command == "validate-sites":
            from .site_validation import run_site_validation

            folds = dict(_pair(f, "--fold", "SITE=RUN") for f in args.fold)
            compare = dict(_pair(c, "--compare", "NAME=MODEL") for c in args.compare)
            report = run_site_validation(Path(args.data), Path(args.out), {k: Path(v) for k, v in folds.items()},
                                         compare, Path(args.final) if args.final else None,
                                         only=set(args.only) if args.only else None)
            print((Path(args.out) / "report.md").read_text(encoding="utf-8"))
            print(json.dumps(report["targets_check"], indent=1))
        elif args.command == "validate-confidence":
            from .confidence_validation import run_confidence_validation

            folds = {k: Path(v) for k, v in (_pair(f, "--fold", "SITE=RUN") for f in args.fold)}
            print(run_confidence_validation(Path(args.data), Path(args.out), folds, args.stride))
        elif args.command == "templates":
            from .templates import templates_for_run, write_templates

            record = templates_for_run(Path(args.run), Path(args.data))
            path = write_templates(Path(args.run), record)
            print(json.dumps({"file": str(path), "subjects": record["subjects"],
                              "contrasts": sorted(record["contrasts"])}, indent=2))
        elif args.command == "evaluate":
            from .evaluate import evaluate_run, load_subjects, run_labels, wilcoxon, write_report

            subjects = load_subjects(Path(args.data), args.subject, args.simulated)
            out = Path(args.out)
            runs = [Path(r) for r in args.runs]
            labels = run_labels(runs)
            rows = [r for run, label in zip(runs, labels, strict=True) for r in
                    evaluate_run(run, subjects, None if args.no_montage else out / "montages",
                                 calibrate=not args.no_calibrate, label=label, tasks=args.tasks)]
            test = wilcoxon(rows, labels[0], labels[1]) if len(runs) == 2 else None
            write_report(rows, out, test)
            print((out / "summary.md").read_text(encoding="utf-8"))
        else:
            _parser().print_help()
            return 2
    except MRSynthError as exc:
        print(f"mrsynth-train: error: {exc}", file=sys.stderr)
        return 2
    return 0


TRAIN_DEPENDENCIES = (("torch", "torch"), ("yaml", "pyyaml"), ("onnx", "onnx"), ("nilearn", "nilearn"))


def launch() -> int:
    """``mrsynth-train`` entry point: one line naming the ``train`` extra instead of an ImportError
    traceback when ``pip install .`` left out the training dependencies; then the training CLI."""
    import importlib.util

    def present(module: str) -> bool:
        try:
            return importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            return False

    missing = [package for module, package in TRAIN_DEPENDENCIES if not present(module)]
    if missing:
        print(f"mrsynth-train: error: needs {', '.join(missing)}: pip install 'mrsynth[train]'", file=sys.stderr)
        return 2
    return main()


if __name__ == "__main__":
    sys.exit(main())
