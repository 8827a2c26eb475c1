"""One synthesis request, whoever asks: the Python API, the ``mrsynth`` CLI, the Slicer panel and console,
the panel's background process.

One vocabulary: these field names are the Python keywords, and the CLI's flags are the same words
(``style_reference`` ↔ ``--style-reference``). The request is checked once, when it is made, and its
conversion to and from the CLI's argv is below, side by side, so the background process, the CLI and
the Python API cannot drift. Images are named by whatever the caller holds (``Source``): file paths
(CLI, background process), :class:`~MRSynthLib.volume.Volume` objects (Python API) or MRML nodes
(Slicer); :meth:`SynthesisRequest.with_sources` converts between them.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Generic, TypeVar

from .contrasts import CONTRASTS, canonical
from .errors import MRSynthError

Source = TypeVar("Source")
Other = TypeVar("Other")
PLANES = ("axial", "coronal", "sagittal")
BACKENDS = ("onnx", "torch")
SKULL_STRIP = ("auto", True, False)
OUTPUT_FORMATS = {"auto": (), "nifti": (".nii.gz", ".nii"), "nrrd": (".nrrd", ".nhdr"), "mha": (".mha", ".mhd"),
                  "dicom": ()}  # format → its file extensions ("auto": from the extension; "dicom": a folder)
_IMAGE_FILE = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd", ".dcm")


@dataclass(frozen=True)
class SynthesisRequest(Generic[Source]):
    """What to synthesize from what, and how (every option of every entry point)."""

    inputs: Mapping[str, Source]  # contrast → image (the first one's grid is the output's)
    target: str
    style_reference: Source | None = None  # a scan whose protocol look the output borrows
    style_target: str | None = None  # or: α walks from the target's mean style to this contrast's
    style_alpha: float | None = None  # None: 1 with a style reference or style target, else 0
    match_histogram: bool = False  # also map the output's histogram onto the reference's (strength α)
    mask: Source | None = None  # brain mask (default: derived; heads get their brain extracted)
    skull_strip: bool | str = "auto"  # "auto": extract the brain of inputs with a skull; True; False
    register: bool = False  # rigid registration of the inputs to the first one
    n4: bool = False  # N4 bias-field correction before normalization
    calibrate: bool = True  # the output's tone curve from the inputs' (the model card's templates)
    plane: str = "axial"
    model: str | None = None  # registry id or card/ONNX path; None: the default model
    backend: str = "onnx"
    device: str = "auto"
    amp: bool = False  # mixed precision: torch backend on CUDA only
    batch_size: int = 8
    output: Source | None = None  # where the result goes (a file, a node); None: the caller decides
    output_format: str = "auto"  # a file output's format: "auto" (its extension), nifti, nrrd, mha, dicom (a folder)
    confidence: Source | bool | None = None  # where the uncertainty (SD) map goes (True: returned); None: none
    extras: Mapping[str, Any] = field(default_factory=dict)  # adapter-only settings (CLI --force, --quiet)

    def __post_init__(self) -> None:
        named: dict[str, Source] = {}
        for name, source in dict(self.inputs).items():
            contrast = canonical(name)
            if source is None:
                raise MRSynthError(f"no volume selected for {contrast}")
            if contrast in named:
                raise MRSynthError(f"contrast {contrast} given twice")
            named[contrast] = source
        if not named:
            raise MRSynthError(f"no inputs given (need at least one of {', '.join(CONTRASTS)})")
        target = canonical(self.target)
        if target in named:
            raise MRSynthError(f"the target {target} is also given as an input; choose a missing contrast")
        walk = canonical(self.style_target) if self.style_target else None
        object.__setattr__(self, "inputs", named)
        object.__setattr__(self, "target", target)
        object.__setattr__(self, "style_target", walk)
        self._check_options()

    def _check_options(self) -> None:
        """Options that would be silently ignored (or do nothing) are refused, saying why."""
        if self.style_reference is not None and self.style_target:
            raise MRSynthError("give --style-reference or --style-target, not both: α walks towards one of them "
                               "(the reference would win and --style-target be ignored)")
        if self.style_target == self.target:
            raise MRSynthError(f"--style-target {self.target} is the target itself: α would walk from its mean "
                               "style to the same style; choose another contrast")
        if self.style_alpha is not None:
            if not self.walks and self.style_alpha != 0.0:
                raise MRSynthError("--style-alpha needs --style-reference or --style-target (α walks from the "
                                   "target's mean style towards one of them)")
            if not 0.0 <= self.style_alpha <= 1.0:
                raise MRSynthError(f"--style-alpha must lie in [0, 1], got {self.style_alpha}")
        if self.match_histogram and self.style_reference is None:
            raise MRSynthError("histogram matching needs a style reference volume (--style-reference)")
        if self.skull_strip not in SKULL_STRIP or type(self.skull_strip) is int:
            raise MRSynthError(f"skull_strip must be 'auto', True or False, got {self.skull_strip!r}")
        if self.mask is not None and self.skull_strip != "auto":
            flag = "--skull-strip" if self.skull_strip else "--no-skull-strip"
            raise MRSynthError(f"give --mask or {flag}, not both: a given brain mask is used as it is (no skull "
                               "stripping either way)")
        if self.plane not in PLANES:
            raise MRSynthError(f"unknown plane '{self.plane}' (use {', '.join(PLANES)})")
        if self.backend not in BACKENDS:
            raise MRSynthError(f"unknown backend '{self.backend}' (use onnx or torch)")
        if self.amp and self.backend != "torch":
            raise MRSynthError("--amp needs --backend torch on a CUDA device (onnxruntime runs in full precision)")
        if self.amp and self.device != "auto" and not self.device.startswith("cuda"):
            raise MRSynthError(f"--amp works on CUDA only; this run is on {self.device} (drop --amp or use "
                               "--device cuda)")
        if int(self.batch_size) < 1:
            raise MRSynthError(f"--batch-size must be at least 1, got {self.batch_size}")
        self._check_output_format()
        if self.confidence is False:  # "no map", as None
            object.__setattr__(self, "confidence", None)
        if self.confidence is not None and self.output is not None and _same_place(self.confidence, self.output):
            raise MRSynthError(f"--confidence is the --output itself ({self.output}); give the uncertainty map "
                               "its own file")

    def _check_output_format(self) -> None:
        """A format the output's name contradicts is refused (a DICOM series is a folder, not 'x.nii.gz')."""
        fmt = self.output_format
        if fmt not in OUTPUT_FORMATS:
            raise MRSynthError(f"unknown output format '{fmt}' (use {', '.join(OUTPUT_FORMATS)})")
        if fmt == "auto" or self.output is None:
            return
        if not isinstance(self.output, (str, os.PathLike)):
            raise MRSynthError(f"--output-format {fmt} is for file outputs; this output is "
                               f"{type(self.output).__name__} (leave the format 'auto')")
        name = os.path.basename(os.fspath(self.output).rstrip("/\\")).lower()
        if fmt == "dicom" and name.endswith(_IMAGE_FILE):
            raise MRSynthError(f"--output-format dicom writes a series of files into a folder; give a folder name, "
                               f"not an image file name ({os.fspath(self.output)})")
        if fmt != "dicom" and not name.endswith(OUTPUT_FORMATS[fmt]):
            raise MRSynthError(f"--output-format {fmt} needs an output named *{' or *'.join(OUTPUT_FORMATS[fmt])}, "
                               f"got {os.fspath(self.output)}")

    @classmethod
    def of(cls, inputs: Mapping[str, Source] | SynthesisRequest[Source], target: str | None = None,
           **options: Any) -> SynthesisRequest[Source]:
        """A request as given, or made from the Python API's (inputs, target, **options) form."""
        if isinstance(inputs, SynthesisRequest):
            if target is not None or options:
                raise MRSynthError("give a SynthesisRequest alone, or inputs, target and options; not both")
            return inputs
        if target is None:
            raise MRSynthError("no target given (one of T1, T1Gd, T2, PD, FLAIR)")
        return cls(inputs, target, **options)

    @property
    def walks(self) -> bool:
        """A style reference or a style target: the slider α has somewhere to go."""
        return self.style_reference is not None or self.style_target is not None

    @property
    def alpha(self) -> float:
        """``style_alpha`` resolved: all the way to the reference / style target unless told otherwise."""
        if self.style_alpha is None:
            return 1.0 if self.walks else 0.0
        return float(self.style_alpha)

    @property
    def steers_style(self) -> bool:
        """The reference's style code drives the generator (without histogram matching)."""
        return self.style_reference is not None and not self.match_histogram

    @property
    def first(self) -> Source:
        """The first input: the output lies on its grid."""
        return next(iter(self.inputs.values()))

    def images(self) -> dict[str, Source]:
        """Every image the request reads, by role (inputs by contrast, then reference and mask)."""
        roles = {"reference": self.style_reference, "mask": self.mask}
        return {**self.inputs, **{k: v for k, v in roles.items() if v is not None}}

    def with_sources(self, convert: Callable[[Source, str], Other], output: Other | None = None
                     ) -> SynthesisRequest[Other]:
        """The same request with every image converted (``convert(source, role)``; role: the contrast,
        "reference" or "mask"), e.g. nodes → Volumes, or nodes → files for the background process."""
        inputs = {c: convert(s, c) for c, s in self.inputs.items()}
        ref = convert(self.style_reference, "reference") if self.style_reference is not None else None
        mask = convert(self.mask, "mask") if self.mask is not None else None
        return replace(self, inputs=inputs, style_reference=ref, mask=mask, output=output)  # type: ignore[arg-type]

    # --- the CLI's argv, both ways --------------------------------------------------------------------
    def to_argv(self) -> list[str]:
        """``mrsynth synthesize …`` arguments (after the program name) for a request on file paths."""
        args = ["synthesize"]
        for contrast, path in self.inputs.items():
            args += ["--input", f"{contrast}={path}"]
        args += ["--target", self.target, "--plane", self.plane, "--backend", self.backend, "--device", self.device,
                 "--batch-size", str(int(self.batch_size)), "--style-alpha", repr(self.alpha)]
        if self.output_format != "auto":
            args += ["--output-format", self.output_format]
        for flag, value in (("--output", self.output), ("--model", self.model), ("--mask", self.mask),
                            ("--style-reference", self.style_reference), ("--style-target", self.style_target),
                            ("--confidence", self.confidence)):
            if value is not None:
                args += [flag, str(value)]
        if self.skull_strip != "auto":
            args.append("--skull-strip" if self.skull_strip else "--no-skull-strip")
        flags = {"--match-histogram": self.match_histogram, "--register": self.register, "--n4": self.n4,
                 "--no-calibrate": not self.calibrate, "--amp": self.amp,
                 "--force": bool(self.extras.get("force")), "--quiet": bool(self.extras.get("quiet"))}
        return args + [flag for flag, on in flags.items() if on]


def _same_place(a: object, b: object) -> bool:
    """The same object, or file paths naming the same file."""
    paths = isinstance(a, (str, os.PathLike)) and isinstance(b, (str, os.PathLike))
    return a is b or (paths and os.path.abspath(os.fspath(a)) == os.path.abspath(os.fspath(b)))


def add_request_arguments(s: argparse.ArgumentParser) -> None:
    """The ``synthesize`` subcommand's flags: one per request field (plus --force, --quiet)."""
    s.add_argument("--input", action="append", metavar="[CONTRAST=]PATH",
                   help="source volume (repeatable); CONTRAST= may be left out when the file name says it")
    s.add_argument("--target", required=True, help="contrast to synthesize (T1, T1Gd, T2, PD, FLAIR)")
    s.add_argument("--output", required=True, help="output file, or the folder of a DICOM series")
    s.add_argument("--output-format", choices=tuple(OUTPUT_FORMATS), default="auto",
                   help="auto (from the output's extension), nifti, nrrd, mha, or dicom: a new series (one file "
                   "per slice) in the --output folder, marked synthetic, in the first DICOM input's study")
    s.add_argument("--confidence", default=None, metavar="PATH",
                   help="also write a per-voxel uncertainty map (SD, in the output's units; 0 outside the brain) "
                   "to this file (|error| <= 1.96 x value on ~95 %% of brain voxels in validation; see docs/confidence.md)")
    s.add_argument("--model", default=None, help="registry id or path to a model card / ONNX file")
    s.add_argument("--backend", choices=BACKENDS, default="onnx")
    s.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    s.add_argument("--mask", default=None, help="brain mask (default: derived from the inputs; inputs with a skull "
                   "and scalp get their brain extracted)")
    strip = s.add_mutually_exclusive_group()
    strip.add_argument("--no-skull-strip", dest="skull_strip", action="store_false", default="auto",
                       help="never extract the brain, even from inputs that look unstripped")
    strip.add_argument("--skull-strip", dest="skull_strip", action="store_true", default="auto",
                       help="always extract the brain, even from inputs that look skull-stripped")
    s.add_argument("--style-reference", "--style-ref", dest="style_reference", default=None,
                   help="reference volume whose protocol look to borrow")
    s.add_argument("--style-target", default=None, help="second contrast: α walks between two mean styles")
    s.add_argument("--style-alpha", type=float, default=None,
                   help="0 = mean style of the target, 1 = reference / --style-target (default: 1 when either "
                   "is given; a non-zero α without them is refused)")
    s.add_argument("--match-histogram", action="store_true",
                   help="also map the output's intensity histogram onto the reference's (strength --style-alpha)")
    s.add_argument("--no-calibrate", dest="calibrate", action="store_false",
                   help="keep the generator's intensity look (default: calibrated to the inputs' tone curve)")
    s.add_argument("--register", action="store_true", help="rigidly register inputs to the first one")
    s.add_argument("--n4", action="store_true", help="N4 bias-field correction before normalization")
    s.add_argument("--amp", action="store_true", help="mixed precision (torch backend on CUDA only)")
    s.add_argument("--plane", default="axial", choices=PLANES)
    s.add_argument("--batch-size", type=int, default=8)
    s.add_argument("--force", action="store_true", help="overwrite an existing output")
    s.add_argument("--quiet", action="store_true", help="no progress bar")


def parse_inputs(items: list[str]) -> dict[str, str]:
    """``--input CONTRAST=PATH`` (or ``--input PATH`` when the file name says the contrast, as the panel's
    auto-fill reads names) items → contrast → path (one file per contrast)."""
    from .checks import check_distinct_paths
    from .contrasts import contrast_of_file

    out: dict[str, str] = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or "/" in name or "\\" in name:  # no CONTRAST=: a bare path
            if "." not in item.rsplit("/", 1)[-1]:  # 'T2', a contrast without its file
                raise MRSynthError(f"--input must be CONTRAST=PATH (or a file whose name says the contrast), "
                                   f"got '{item}'")
            name, path = contrast_of_file(item), item
        c = canonical(name)
        if c in out:
            raise MRSynthError(f"contrast {c} given twice")
        out[c] = path
    check_distinct_paths(out)
    return out


def request_from_args(args: argparse.Namespace) -> SynthesisRequest[str]:
    """The parsed ``synthesize`` flags as a request on file paths (checked, before any file is read)."""
    return SynthesisRequest(
        inputs=parse_inputs(args.input or []), target=args.target, style_reference=args.style_reference,
        style_target=args.style_target, style_alpha=args.style_alpha, match_histogram=args.match_histogram,
        mask=args.mask, skull_strip=args.skull_strip, register=args.register, n4=args.n4, calibrate=args.calibrate,
        plane=args.plane, model=args.model, backend=args.backend, device=args.device, amp=args.amp,
        batch_size=args.batch_size, output=args.output, output_format=args.output_format, confidence=args.confidence,
        extras={"force": args.force, "quiet": args.quiet})
