"""The synthesis pipeline: Volumes in → preprocess → backend over slices → postprocess → Volume out.

The output always lies on the grid of the first input and is labelled synthetic. Intensities follow
the project convention (see :mod:`MRSynthLib.preprocess`): [0, 1], 1 ≈ the 99.5th percentile of the
target contrast inside the brain, 0 outside the brain.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import orientation
from .backends import Backend, check_engine
from .checks import check_distinct_volumes, check_image
from .contrasts import CONTRASTS, canonical
from .errors import MRSynthError
from .io import check_volume
from .postprocess import output_mapping
from .preprocess import derive_mask, n4_correct, normalize
from .resample import align_with_coverage, limit_to_coverage, resample_to
from .skullstrip import check_skull_strip, input_brain_mask
from .slice_runner import Progress, SliceRunner, brain_crop, neighbour_slices, pad_to_multiple  # noqa: F401 (re-exported)
from .volume import Volume


@dataclass
class Prepared:
    """Model-ready canonical stack for one subject (kept for the live preview: prepare once, run many)."""

    stack: np.ndarray  # (C, S, P, L) normalized, zeros where missing
    available: np.ndarray  # (C,)
    mask: np.ndarray  # canonical bool (S, P, L)
    reference: Volume  # first input: the output grid
    inputs: tuple[str, ...]
    notes: tuple[str, ...] = ()  # what the user should know about the output (inputs covering part of it)


def check_request(inputs: dict[str, Volume], target: str) -> tuple[dict[str, Volume], str]:
    """Canonical contrast names; refuse empty inputs, duplicates and a target given as input."""
    if not inputs:
        raise MRSynthError("no inputs given (need at least one of T1, T1Gd, T2, PD, FLAIR)")
    tgt = canonical(target)
    named: dict[str, Volume] = {}
    for name, vol in inputs.items():
        c = canonical(name)
        if c in named:
            raise MRSynthError(f"contrast {c} given twice")
        named[c] = vol
    if tgt in named:
        raise MRSynthError(f"the target {tgt} is also given as an input; choose a missing contrast")
    return named, tgt


def _label(volume: Volume, role: str) -> str:
    return volume.metadata.get("source_path") or role


def prepare(inputs: dict[str, Volume], mask: Volume | None = None, register: bool = False,
            n4: bool = False, skull_strip: bool | str = "auto") -> Prepared:
    """Align to the first input, mask, bias-correct, normalize and reorient to canonical order.

    Without a given ``mask``, inputs that still have a skull and scalp get their brain extracted
    (``skull_strip``: "auto", True, False; :func:`MRSynthLib.skullstrip.input_brain_mask`), which
    ``Prepared.notes`` says; skull-stripped inputs are masked as always.

    In-memory volumes (Python API, preview) get the checks every file read gets: 3D, finite, not empty;
    every input must also be an image the network can read (:func:`MRSynthLib.checks.check_image`), and a
    scan given under two contrast names is refused. Brain voxels where an input has no data (it covers part
    of the first input's field of view) are left out of the mask, so the output is 0 there, and
    ``Prepared.notes`` says so."""
    named = {canonical(k): v for k, v in inputs.items()}
    labels = {c: _label(vol, f"{c} input") for c, vol in named.items()}
    for c, vol in named.items():
        check_volume(vol, labels[c])
        check_image(vol, labels[c])
    check_distinct_volumes(named, labels)
    check_skull_strip(skull_strip)
    if mask is not None:
        check_volume(mask, _label(mask, "mask"), allow_empty=True)  # an empty mask has its own message below
    aligned, coverage = align_with_coverage(named, register=register)
    first = next(iter(aligned.values()))
    if mask is not None:
        m = resample_to(first, mask, name=mask.metadata.get("source_path", "mask")).array > 0.5
        if not m.any():
            raise MRSynthError("the brain mask is empty", mask.metadata.get("source_path", "mask"))
        strip_notes: list[str] = []
    else:
        m, strip_notes = input_brain_mask(named, aligned, labels, skull_strip)
    m, notes = limit_to_coverage(m, coverage, labels)
    notes = strip_notes + notes
    cmask = orientation.to_canonical(first.with_array(m))
    stack = np.zeros((len(CONTRASTS), *cmask.shape), dtype=np.float32)
    available = np.zeros(len(CONTRASTS), dtype=np.float32)
    for name, vol in aligned.items():
        arr = n4_correct(vol.array, m) if n4 else vol.array
        stack[CONTRASTS.index(name)] = orientation.to_canonical(first.with_array(normalize(arr, m, name=labels[name])))
        available[CONTRASTS.index(name)] = 1.0
    return Prepared(stack, available, cmask, first, tuple(aligned), tuple(notes))


def encode_reference_style(backend: Backend, reference: Volume, plane: str = "axial", n_slices: int = 16) -> np.ndarray:
    """Average style code over the central brain slices of a reference volume (any grid)."""
    m = derive_mask([reference.array])
    canon = orientation.slices_first(orientation.to_canonical(reference.with_array(normalize(reference.array, m))), plane)
    cmask = orientation.slices_first(orientation.to_canonical(reference.with_array(m)), plane)
    area = cmask.reshape(cmask.shape[0], -1).sum(axis=1)
    order = np.argsort(-area)[:n_slices]
    rows, cols = brain_crop(cmask.any(axis=0))
    batch, _ = pad_to_multiple(canon[order][:, None, rows, cols])
    return backend.encode_style(batch).mean(axis=0)


def reference_style_or_none(backend: Backend, reference: Volume | None, plane: str = "axial") -> np.ndarray | None:
    """The reference's style code, or None without a reference or for a model without a style encoder
    (such a model can still take the reference's histogram, ``match_histogram``)."""
    if reference is not None:
        check_volume(reference, _label(reference, "style reference"))
        check_image(reference, _label(reference, "style reference"))
    if reference is None or not getattr(backend, "has_style_encoder", True):
        return None
    return encode_reference_style(backend, reference, plane)


def style_code(backend: Backend, target: str, reference_style: np.ndarray | None = None, alpha: float = 0.0,
               second_target: str | None = None) -> np.ndarray:
    """Point in style space: (1−α)·mean[target] + α·(reference code or mean[second_target])."""
    if not 0.0 <= alpha <= 1.0:
        raise MRSynthError(f"style alpha must lie in [0, 1], got {alpha}")
    base = backend.mean_styles[CONTRASTS.index(canonical(target))]
    if reference_style is not None:
        other = reference_style
    elif second_target is not None:
        other = backend.mean_styles[CONTRASTS.index(canonical(second_target))]
    else:
        return base.astype(np.float32)
    return ((1 - alpha) * base + alpha * other).astype(np.float32)


def run_slices(backend: Backend, prepared: Prepared, style: np.ndarray, plane: str = "axial",
               batch_size: int = 8, progress: Progress | None = None, indices: list[int] | None = None) -> np.ndarray:
    """Run the generator over brain slices (all, or those of ``indices``); returns the canonical output
    volume (zeros elsewhere). The loop itself is :class:`MRSynthLib.slice_runner.SliceRunner`, shared
    with the live preview: crop, padding, 2.5D neighbours, batching (halved on out-of-memory),
    progress/cancel (``progress`` returning ``False`` raises :class:`CancelledError`)."""
    runner = SliceRunner(backend, prepared.stack, prepared.mask, prepared.available, plane)
    out = np.zeros(runner.mask.shape, dtype=np.float32)
    brain = set(runner.brain)
    wanted = runner.brain if indices is None else [i for i in indices if i in brain]
    if wanted:
        rows, cols = runner.crop
        out[wanted, rows, cols] = runner.run(wanted, style, batch_size, progress)
    return orientation.slices_back(out, plane)


def to_output_volume(canonical_out: np.ndarray, prepared: Prepared, target: str, model_id: str) -> Volume:
    """Back to the first input's grid, labelled synthetic."""
    ref = prepared.reference
    arr = orientation.from_canonical(canonical_out, ref)
    meta = {"MRSynth.Synthetic": "1", "MRSynth.Contrast": target, "MRSynth.Model": model_id,
            "MRSynth.Inputs": ",".join(prepared.inputs),
            "descrip": f"SYNTHETIC {target} by MRSynth ({model_id}) - not an acquired image"}
    return Volume(arr.astype(np.float32), ref.spacing, ref.origin, ref.direction, meta)


def synthesize(inputs: dict[str, Volume], target: str, model: str | None = None, backend: str = "onnx",
               device: str = "auto", mask: Volume | None = None, style_reference: Volume | None = None,
               style_alpha: float | None = None, second_target: str | None = None, register: bool = False,
               n4: bool = False, plane: str = "axial", batch_size: int = 8,
               progress: Progress | None = None, engine: Backend | None = None,
               match_histogram: bool = False, calibrate: bool = True, skull_strip: bool | str = "auto") -> Volume:
    """Synthesize ``target`` from any non-empty subset of contrasts.

    >>> out = synthesize({"T1": t1, "T2": t2}, target="FLAIR")  # doctest: +SKIP

    ``calibrate`` (default) gives the output the intensity distribution the inputs imply for this
    subject, when the model card has intensity templates (:mod:`MRSynthLib.calibration`).
    ``match_histogram`` (needs ``style_reference``) also maps the output's intensity distribution onto
    the reference's with strength ``style_alpha`` (:class:`MRSynthLib.postprocess.OutputMapping`).
    ``style_alpha`` defaults to 1 with a style reference or ``second_target`` (else 0): a reference
    given without α should be used, not silently ignored.
    ``skull_strip`` ("auto", True, False): extract the brain of inputs with a skull and scalp (detected
    when "auto"; ignored when ``mask`` is given); the output is 0 outside the brain.
    """
    from .registry import backend_roles, load_backend, resolve_model

    named, tgt = check_request(inputs, target)
    orientation.plane_axis(plane)
    if style_alpha is None:
        style_alpha = 1.0 if style_reference is not None or second_target is not None else 0.0
    if match_histogram and style_reference is None:
        raise MRSynthError("histogram matching needs a style reference volume (--style-ref)")
    model_id = "in-memory"
    if engine is None:
        bundle = resolve_model(model, roles=backend_roles(backend))
        engine, model_id = load_backend(bundle, backend=backend, device=device), bundle.id
    check_engine(engine, list(named), tgt, style_ref=style_reference is not None and not match_histogram,
                 second_target=second_target)
    prepared = prepare(named, mask=mask, register=register, n4=n4, skull_strip=skull_strip)
    ref_code = reference_style_or_none(engine, style_reference, plane)
    style = style_code(engine, tgt, ref_code, style_alpha, second_target)
    out = run_slices(engine, prepared, style, plane=plane, batch_size=batch_size, progress=progress)
    mapping = output_mapping(engine, prepared, tgt, second_target, style_reference, match_histogram, calibrate)
    out = mapping.apply(out, prepared.mask, style_alpha)
    result = to_output_volume(out, prepared, tgt, model_id)
    # what was done to the intensities, kept with the result (node attribute; NRRD/MHA header key)
    result.metadata["MRSynth.Calibration"] = (f"tone exponent {mapping.gamma:.3f} vs the model's templates"
                                              if mapping.calibrated is not None else "off")
    result.metadata["MRSynth.Device"] = f"{engine.device} ({engine.name})"  # what really ran, not what was asked
    if prepared.notes:  # kept with the result (node attribute; NRRD/MHA header key); the CLI prints them
        result.metadata["MRSynth.Notes"] = " | ".join(prepared.notes)
    return result
