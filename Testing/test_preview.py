"""Live preview: one slice, same values as the full-volume path on that slice, in any storage order."""

from __future__ import annotations

import numpy as np
import pytest

from MRSynthLib import orientation
from MRSynthLib.errors import MRSynthError
from MRSynthLib.preview import PreviewSession, canonical_view
from MRSynthLib.request import SynthesisRequest
from MRSynthLib.synthesis import synthesize
from MRSynthLib.volume import Volume

DIRECTIONS = {
    "identity": np.eye(3),
    "permuted_flipped": np.array([[0.0, 0.0, -1.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0]]),
    "left_handed": np.diag([1.0, 1.0, -1.0]),
}


@pytest.fixture(scope="module")
def engine(tiny_bundle):
    from MRSynthLib.registry import load_backend, resolve_model

    return load_backend(resolve_model(str(tiny_bundle)), "onnx", "cpu")


def _inputs(subject, direction: np.ndarray, names=("T1", "T2")) -> dict[str, Volume]:
    return {c: Volume(subject.volumes[c].array, (1.0, 1.2, 0.9), (3.0, -4.0, 5.0), direction) for c in names}


@pytest.mark.parametrize("kind", list(DIRECTIONS))
def test_slice_equals_full_volume_path(small_subject, engine, kind):
    inputs = _inputs(small_subject, DIRECTIONS[kind])
    session = PreviewSession(engine, SynthesisRequest(inputs, "FLAIR", style_target="PD"))
    for alpha in (0.0, 0.35, 1.0):
        full = synthesize(inputs, "FLAIR", engine=engine, style_alpha=alpha, style_target="PD")
        canon = orientation.to_canonical(full)
        for index in (session.n_slices // 2, session.n_slices // 3, 0):
            np.testing.assert_allclose(session.synthesize_slice(alpha, index), canon[index], atol=2e-6)


def test_reference_style_slice_matches_and_alpha_matters(small_subject, engine):
    inputs = _inputs(small_subject, np.eye(3))
    reference = small_subject.volumes["PD"]
    session = PreviewSession(engine, SynthesisRequest(inputs, "FLAIR", style_reference=reference))
    mid = session.n_slices // 2
    a0, a1 = session.synthesize_slice(0.0, mid).copy(), session.synthesize_slice(1.0, mid).copy()
    assert np.abs(a0 - a1).max() > 1e-3
    full = synthesize(inputs, "FLAIR", engine=engine, style_reference=reference, style_alpha=1.0)
    np.testing.assert_allclose(a1, orientation.to_canonical(full)[mid], atol=2e-6)


@pytest.mark.parametrize("kind", list(DIRECTIONS))
def test_index_from_ras_finds_the_slice_through_a_voxel(small_subject, engine, kind):
    inputs = _inputs(small_subject, DIRECTIONS[kind])
    session = PreviewSession(engine, SynthesisRequest(inputs, "FLAIR"))
    first = inputs["T1"]
    for ijk in ((5, 7, 9), (20, 30, 40), (47, 0, 10)):
        marker = np.zeros(first.array.shape, dtype=np.uint8)
        marker[ijk[2], ijk[1], ijk[0]] = 1
        expected = int(np.argwhere(orientation.to_canonical(first.with_array(marker)))[0][0])
        ras = first.affine_ras @ np.array([*ijk, 1.0])
        assert session.index_from_ras(tuple(ras[:3] + 0.2)) == expected  # within half a voxel


@pytest.mark.parametrize("kind", list(DIRECTIONS))
def test_canonical_view_writes_through_to_the_node_buffer(small_subject, engine, kind):
    inputs = _inputs(small_subject, DIRECTIONS[kind])
    first = inputs["T1"]
    buffer = np.zeros(first.array.shape, dtype=np.float32)
    view = canonical_view(buffer, first)
    assert np.shares_memory(view, buffer)
    np.testing.assert_array_equal(canonical_view(first.array, first), orientation.to_canonical(first))
    session = PreviewSession(engine, SynthesisRequest(inputs, "FLAIR"))
    mid = session.n_slices // 2
    session.synthesize_slice(0.5, mid)
    session.write_slice(buffer, mid)
    canon = orientation.to_canonical(first.with_array(buffer))
    np.testing.assert_array_equal(canon[mid], session.output[mid])
    assert canon[mid].max() > 0 and not np.delete(canon, mid, axis=0).any()


def test_preview_volume_is_labelled_and_bad_index_refused(small_subject, engine):
    inputs = _inputs(small_subject, np.eye(3))
    session = PreviewSession(engine, SynthesisRequest(inputs, "FLAIR"))
    vol = session.volume()
    assert vol.same_grid(inputs["T1"]) and vol.metadata["MRSynth.Synthetic"] == "1"
    with pytest.raises(MRSynthError, match="outside the volume"):
        session.synthesize_slice(0.0, session.n_slices)
    with pytest.raises(MRSynthError, match="also given as an input"):
        PreviewSession(engine, SynthesisRequest(inputs, "T2"))


def test_histogram_matching_moves_the_slice_toward_the_reference(small_subject, engine):
    """With matching on, the preview slice's intensity quantiles follow the reference's as α grows;
    the whole-volume path (Apply) matches the whole volume, so the two agree only approximately."""
    from MRSynthLib.postprocess import reference_quantiles

    inputs = _inputs(small_subject, np.eye(3))
    reference = small_subject.volumes["PD"]
    ref_q = reference_quantiles(reference, 101)[[25, 50, 75]]
    session = PreviewSession(engine, SynthesisRequest(inputs, "FLAIR", style_reference=reference,
                                                      match_histogram=True))
    mid = session.n_slices // 2
    brain = orientation.slices_first(session.prepared.mask, "axial")[mid]
    gaps = []
    for alpha in (0.0, 0.5, 1.0):
        values = session.synthesize_slice(alpha, mid)[brain]
        gaps.append(np.abs(np.quantile(values, [0.25, 0.5, 0.75]) - ref_q).mean())
    assert gaps[2] < gaps[1] < gaps[0]
    assert gaps[2] < 0.02
    full = orientation.to_canonical(synthesize(inputs, "FLAIR", engine=engine, style_reference=reference,
                                               style_alpha=1.0, match_histogram=True))[mid][brain]
    assert np.abs(np.median(full) - ref_q[1]) < 0.1
    with pytest.raises(MRSynthError, match="needs a style reference"):
        PreviewSession(engine, SynthesisRequest(inputs, "FLAIR", match_histogram=True))
