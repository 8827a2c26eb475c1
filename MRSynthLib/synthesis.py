"""The synthesis pipeline: Volumes in → preprocess → backend over slices → postprocess → Volume out.

The output always lies on the grid of the first input and is labelled synthetic. Intensities follow
the project convention (see :mod:`MRSynthLib.preprocess`): [0, 1], 1 ≈ the 99.5th percentile of the
target contrast inside the brain, 0 outside the brain.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, NamedTuple, overload

import numpy as np

from . import orientation
from .backends import Backend
from .checks import check_distinct_volumes, check_image
from .contrasts import CONTRASTS, canonical, synthetic_label
from .errors import MRSynthError
from .io import check_volume
from .postprocess import output_mapping
from .preprocess import derive_mask, n4_correct, normalize
from .resample import align_with_coverage, limit_to_coverage, resample_to
from .skullstrip import check_skull_strip, input_brain_mask
from .slice_runner import Progress, SliceRunner, brain_crop, neighbour_slices, pad_to_multiple  # noqa: F401 (re-exported)
from .volume import Volume

if TYPE_CHECKING:
    from .request import SynthesisRequest


@dataclass
class Prepared:
    """Model-ready canonical stack for one subject (kept for the live preview: prepare once, run many)."""

    stack: np.ndarray  # (C, S, P, L) normalized, zeros where missing
    available: np.ndarray  # (C,)
    mask: np.ndarray  # canonical bool (S, P, L)
    reference: Volume  # first input: the output grid
    inputs: tuple[str, ...]
    notes: tuple[str, ...] = ()  # what the user should know about the output (inputs covering part of it)


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
    if reference is None or not backend.has_style_encoder:
        return None
    return encode_reference_style(backend, reference, plane)


def style_reference_brain(request: SynthesisRequest[Volume]) -> tuple[Volume | None, list[str]]:
    """The request's style reference, its brain extracted when it is a head (``request.skull_strip``'s rule);
    checked first, so a bad reference is named before any extraction."""
    from .skullstrip import reference_brain

    reference = request.style_reference
    if reference is None:
        return None, []
    label = _label(reference, "style reference")
    check_volume(reference, label)
    check_image(reference, label)
    return reference_brain(reference, request.skull_strip, label)


def style_code(backend: Backend, target: str, reference_style: np.ndarray | None = None, alpha: float = 0.0,
               style_target: str | None = None) -> np.ndarray:
    """Point in style space: (1−α)·mean[target] + α·(reference code or mean[style_target])."""
    if not 0.0 <= alpha <= 1.0:
        raise MRSynthError(f"style alpha must lie in [0, 1], got {alpha}")
    base = backend.mean_styles[CONTRASTS.index(canonical(target))]
    if reference_style is not None:
        other = reference_style
    elif style_target is not None:
        other = backend.mean_styles[CONTRASTS.index(canonical(style_target))]
    else:
        return base.astype(np.float32)
    return ((1 - alpha) * base + alpha * other).astype(np.float32)


def run_slices(backend: Backend, prepared: Prepared, style: np.ndarray, plane: str = "axial",
               batch_size: int = 8, progress: Progress | None = None, indices: list[int] | None = None) -> np.ndarray:
    """Run the generator over brain slices (all, or those of ``indices``); returns the canonical output
    volume (zeros elsewhere). The loop itself is :class:`MRSynthLib.slice_runner.SliceRunner`, shared
    with the live preview: crop, padding, 2.5D neighbours, batching (halved on out-of-memory),
    progress/cancel (``progress`` returning ``False`` raises :class:`CancelledError`)."""
    return _slices(backend, prepared, style, plane, batch_size, progress, indices, scale=False)[0]


def run_slices_with_scale(backend: Backend, prepared: Prepared, style: np.ndarray, plane: str = "axial",
                          batch_size: int = 8, progress: Progress | None = None,
                          indices: list[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """:func:`run_slices` and the scale head's Laplace scale b per voxel (canonical, the generator's
    [0, 1] units, before the output mapping), from the same generator pass."""
    out, scale = _slices(backend, prepared, style, plane, batch_size, progress, indices, scale=True)
    return out, scale


def _slices(backend: Backend, prepared: Prepared, style: np.ndarray, plane: str, batch_size: int,
            progress: Progress | None, indices: list[int] | None, scale: bool) -> list[np.ndarray]:
    runner = SliceRunner(backend, prepared.stack, prepared.mask, prepared.available, plane)
    outs = [np.zeros(runner.mask.shape, dtype=np.float32) for _ in range(2 if scale else 1)]
    brain = set(runner.brain)
    wanted = runner.brain if indices is None else [i for i in indices if i in brain]
    if wanted:
        rows, cols = runner.crop
        got = (runner.run_with_scale(wanted, style, batch_size, progress) if scale
               else (runner.run(wanted, style, batch_size, progress),))
        for volume, part in zip(outs, got, strict=True):
            volume[wanted, rows, cols] = part
    return [orientation.slices_back(v, plane) for v in outs]


def to_output_volume(canonical_out: np.ndarray, prepared: Prepared, target: str, model_id: str) -> Volume:
    """Back to the first input's grid, labelled synthetic."""
    ref = prepared.reference
    arr = orientation.from_canonical(canonical_out, ref)
    meta = {"MRSynth.Synthetic": "1", "MRSynth.Contrast": target, "MRSynth.Model": model_id,
            "MRSynth.Inputs": ",".join(prepared.inputs),
            "descrip": synthetic_label(target, model_id)}
    from .dicom_output import PREFIX, carried_tags

    # the first input's patient, study and frame of reference (a DICOM series): a DICOM output joins them
    meta.update({PREFIX + k: v for k, v in carried_tags(ref.metadata).items()})
    return Volume(arr.astype(np.float32), ref.spacing, ref.origin, ref.direction, meta)


@overload
def synthesize(inputs: dict[str, Volume], target: str, *, engine: Backend | None = ..., progress: Progress | None = ...,
               confidence: Literal[False] | None = ..., **options) -> Volume: ...
@overload
def synthesize(inputs: dict[str, Volume], target: str, *, engine: Backend | None = ..., progress: Progress | None = ...,
               confidence: Literal[True], **options) -> Synthesis: ...
def synthesize(inputs: dict[str, Volume], target: str, *, engine: Backend | None = None,
               progress: Progress | None = None, confidence: bool | None = False, **options) -> Volume | Synthesis:
    """Synthesize ``target`` from any non-empty subset of contrasts.

    >>> out = synthesize({"T1": t1, "T2": t2}, target="FLAIR")  # doctest: +SKIP
    >>> out, sd = synthesize({"T1": t1, "T2": t2}, target="FLAIR", confidence=True)  # doctest: +SKIP

    ``options`` are the fields of :class:`MRSynthLib.request.SynthesisRequest` (style_reference,
    style_target, style_alpha, match_histogram, mask, skull_strip, register, n4, calibrate, plane, model,
    backend, device, batch_size), documented there. ``engine``: an already loaded backend (its model is
    then the one used; ``model``/``backend``/``device`` are not read). ``progress(done, total, message)``
    returning ``False`` cancels. ``confidence=True``: the uncertainty map as well (:mod:`MRSynthLib.confidence`,
    no extra generator pass), returned as :class:`Synthesis` ``(image, confidence)``; the image is the same.
    """
    if confidence is True:
        return synthesize_with_confidence(inputs, target, engine=engine, progress=progress, **options)
    if confidence not in (False, None):  # None: no map, as on a request
        raise MRSynthError(f"confidence must be True or False here, got {confidence!r}: the map is returned "
                           "(write it with MRSynthLib.write_volume); a path is for the CLI's --confidence")
    from .request import SynthesisRequest

    return run_request(SynthesisRequest(inputs, target, **options), engine=engine, progress=progress)


class Synthesis(NamedTuple):
    """A synthetic image and its per-voxel uncertainty map (SD, same grid and units; 0 outside the brain)."""

    image: Volume
    confidence: Volume


def synthesize_with_confidence(inputs: dict[str, Volume], target: str, *, engine: Backend | None = None,
                               progress: Progress | None = None, **options) -> Synthesis:
    """:func:`synthesize`, plus its uncertainty map (:mod:`MRSynthLib.confidence`; the shipped method costs
    no extra generator pass); the same as ``synthesize(..., confidence=True)``::

        image, sd = synthesize_with_confidence({"T1": t1, "T2": t2}, target="FLAIR")
    """
    from .request import SynthesisRequest

    request = SynthesisRequest(inputs, target, **{"confidence": True, **options})
    image, sd = run_request_with_confidence(request, engine=engine, progress=progress)
    return Synthesis(image, sd)


def load_engine(request: SynthesisRequest) -> Backend:
    """The backend a request asks for (model, backend, device, AMP), checked against the request."""
    from .registry import backend_roles, load_backend, resolve_model

    bundle = resolve_model(request.model, roles=backend_roles(request.backend))
    engine = load_backend(bundle, backend=request.backend, device=request.device, amp=request.amp)
    check_engine_for(engine, request)
    return engine


def check_engine_for(engine: Backend, request: SynthesisRequest) -> None:
    """Refuse, before any image work, what this model cannot do with this request."""
    engine.check(list(request.inputs), request.target, style_ref=request.steers_style,
                 style_target=request.style_target)


def run_request(request: SynthesisRequest[Volume], engine: Backend | None = None,
                progress: Progress | None = None) -> Volume:
    """The pipeline for one request on Volumes: prepare → slices → output mapping → labelled Volume.
    A request that asks for an uncertainty map goes to :func:`run_request_with_confidence`."""
    if request.confidence is not None:
        raise MRSynthError("this request asks for an uncertainty map: run it with run_request_with_confidence "
                           "(Python API: synthesize_with_confidence), which returns the image and the map")
    return _run(request, engine, progress)[0]


def run_request_with_confidence(request: SynthesisRequest[Volume], engine: Backend | None = None,
                                progress: Progress | None = None) -> tuple[Volume, Volume | None]:
    """:func:`run_request`, plus the uncertainty map when ``request.confidence`` asks for one (else None)."""
    return _run(request, engine, progress)


def _run(request: SynthesisRequest[Volume], engine: Backend | None,
         progress: Progress | None) -> tuple[Volume, Volume | None]:
    from . import confidence as conf

    if engine is None:
        engine = load_engine(request)
    else:
        check_engine_for(engine, request)
    tgt, alpha = request.target, request.alpha
    prepared = prepare(dict(request.inputs), mask=request.mask, register=request.register, n4=request.n4,
                       skull_strip=request.skull_strip)
    reference, ref_notes = style_reference_brain(request)
    ref_code = reference_style_or_none(engine, reference, request.plane)
    style = style_code(engine, tgt, ref_code, alpha, request.style_target)
    out = run_slices(engine, prepared, style, plane=request.plane, batch_size=request.batch_size, progress=progress)
    mapping = output_mapping(engine, prepared, tgt, request.style_target, reference,
                             request.match_histogram, request.calibrate)
    out = mapping.apply(out, prepared.mask, alpha)
    result = to_output_volume(out, prepared, tgt, engine.model_id)
    # what was done to the intensities, kept with the result (node attribute; NRRD/MHA header key)
    result.metadata["MRSynth.Calibration"] = (f"tone exponent {mapping.gamma:.3f} vs the model's templates"
                                              + (f", strength {mapping.strength:g}" if mapping.strength != 1 else "")
                                              if mapping.calibrated is not None else "off")
    result.metadata["MRSynth.Device"] = f"{engine.device} ({engine.name})"  # what really ran, not what was asked
    error_model = engine.error_model or conf.DEFAULT  # costs no generator pass: every result gets its warning
    unc = conf.sigma(out, prepared.mask, tgt, error_model)
    notes = [*prepared.notes, *ref_notes]
    if unc.high:  # a note (CLI, panel log) and the node's description
        result.metadata["MRSynth.UncertaintyWarning"] = conf.high_uncertainty_note(tgt, unc.mean_sd, error_model)
        notes.append(result.metadata["MRSynth.UncertaintyWarning"])
    if notes:  # kept with the result (node attribute; NRRD/MHA header key); the CLI and the panel print them
        result.metadata["MRSynth.Notes"] = " | ".join(notes)
    if request.confidence is None:
        return result, None
    sd_image = to_output_volume(unc.sd, prepared, tgt, engine.model_id)
    sd_image.metadata.update({k: result.metadata[k] for k in ("MRSynth.Calibration", "MRSynth.Device")})
    return result, conf.confidence_volume(sd_image, tgt, engine.model_id, error_model, unc.mean_sd)
