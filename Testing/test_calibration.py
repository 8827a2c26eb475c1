"""Intensity calibration: templates, the subject's tone exponent from its inputs, the output mapping rules,
and the whole path (card → backend → synthesize / preview; run → templates file → card)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from MRSynthLib.calibration import (
    blend_geometric,
    combine,
    estimate_gamma,
    levels,
    parse_templates,
    subject_quantiles,
    target_quantiles,
)
from MRSynthLib.contrasts import CONTRASTS
from MRSynthLib.errors import MRSynthError
from MRSynthLib.postprocess import OutputMapping


def test_combine_is_the_geometric_mean_by_hand():
    out = combine([np.array([0.25, 0.5, 1.0]), np.array([1.0, 0.5, 1.0])])
    np.testing.assert_allclose(out, [0.5, 0.5, 1.0])


def test_subject_quantiles_inside_the_mask_only():
    arr = np.array([0.0, 0.2, 0.4, 0.6, 0.8, 9.0])
    mask = np.array([False, True, True, True, True, False])
    np.testing.assert_allclose(subject_quantiles(arr, mask, n=3), [0.2, 0.5, 0.8])


@pytest.mark.parametrize("gamma", [0.6, 1.0, 1.5])
def test_gamma_is_recovered_from_inputs_that_follow_the_template(gamma):
    """Template of T1 and T2: the identity quantile function (uniform values); the subject's inputs are those
    values ** γ, so log q_input / log q_template = γ at every level."""
    u = np.linspace(0.0, 1.0, 20001)
    templates = {"T1": levels(), "T2": levels()}
    stack = np.zeros((len(CONTRASTS), u.size))
    available = np.zeros(len(CONTRASTS))
    for c in ("T1", "T2"):
        stack[CONTRASTS.index(c)] = u ** gamma
        available[CONTRASTS.index(c)] = 1
    g = estimate_gamma(stack, available, np.ones(u.size, bool), templates)
    assert g == pytest.approx(gamma, abs=0.01)
    np.testing.assert_allclose(target_quantiles({"FLAIR": levels()}, "FLAIR", g), levels() ** g)


def test_no_input_with_a_template_means_no_calibration():
    stack, available = np.random.default_rng(0).random((len(CONTRASTS), 100)), np.zeros(len(CONTRASTS))
    available[CONTRASTS.index("PD")] = 1
    assert estimate_gamma(stack, available, np.ones(100, bool), {"T1": levels()}) is None
    assert target_quantiles({"T1": levels()}, "PD", 1.3) is None


def test_blend_walks_along_tone_curves():
    a, b = np.full(5, 0.25), np.full(5, 1.0)
    np.testing.assert_allclose(blend_geometric(a, b, 0.5), 0.5)  # √(0.25·1)
    np.testing.assert_allclose(blend_geometric(a, b, 0.0), a)


@pytest.mark.parametrize("bad", [{"T1": [0.3, 0.2, 0.9]}, {"T1": [0.1, float("nan"), 0.9]}, {"T1": [0.5]},
                                 {"XYZ": [0.1, 0.2, 0.3]}])
def test_malformed_templates_are_refused(bad):
    with pytest.raises(MRSynthError):
        parse_templates(bad)


def test_output_mapping_rules_by_hand():
    cal, ref, second = np.array([0.1, 0.5, 0.9]), np.array([0.3, 0.7, 1.0]), np.array([0.4, 0.4, 0.9])
    assert OutputMapping().at(0.5) is None  # nothing asked: the generator's output as is
    q, s = OutputMapping(reference_q=ref).at(0.4)  # histogram matching only: toward the reference, strength α
    assert s == 0.4 and q is ref
    q, s = OutputMapping(calibrated=cal).at(0.7)
    assert s == 1.0 and q is cal
    q, s = OutputMapping(calibrated=cal, reference_q=ref).at(0.25)  # calibrated look → reference histogram
    np.testing.assert_allclose(q, 0.75 * cal + 0.25 * ref)
    assert s == 1.0
    assert OutputMapping(calibrated=cal, style_reference=True).at(0.25)[1] == 0.75  # fades as the code takes over
    q, s = OutputMapping(calibrated=cal, walk=True, second=second).at(0.5)
    np.testing.assert_allclose(q, np.sqrt(cal * second))
    assert OutputMapping(calibrated=cal, walk=True).at(0.3)[1] == pytest.approx(0.7)  # second has no template


def _engine(card_path):
    from MRSynthLib.registry import load_backend, resolve_model

    return load_backend(resolve_model(str(card_path)), "onnx", "cpu")


def test_output_takes_the_tone_the_inputs_imply(calibrated_bundle, tiny_bundle, small_subject):
    """Inputs darkened by x ** 1.6 (another subject's tone): the calibrated output's quantiles are the FLAIR
    template ** γ with γ ≈ 1.6 measured on the inputs; without calibration the output is the generator's."""
    from MRSynthLib.preprocess import derive_mask, normalize
    from MRSynthLib.synthesis import synthesize
    from MRSynthLib.volume import Volume

    engine = _engine(calibrated_bundle)
    vols = small_subject.volumes
    mask = derive_mask([v.array for v in vols.values()])
    inputs = {c: Volume(normalize(vols[c].array, mask) ** 1.6, vols[c].spacing, vols[c].origin, vols[c].direction)
              for c in ("T1", "T2")}
    result = synthesize(inputs, "FLAIR", engine=engine)
    uncalibrated = synthesize(inputs, "FLAIR", engine=engine, calibrate=False)
    out, raw = result.array, uncalibrated.array
    assert result.metadata["MRSynth.Calibration"].startswith("tone exponent 1.6")
    assert uncalibrated.metadata["MRSynth.Calibration"] == "off"
    # the untrained tiny generator saturates at 1 in half the brain (ties): compare the lower quantiles
    at = [0.05, 0.15, 0.3]
    got = np.quantile(out[mask & (out > 0)], at)
    flair_t = engine.intensity_templates["FLAIR"]
    np.testing.assert_allclose(got, np.interp(at, levels(flair_t.size), flair_t) ** 1.6, atol=0.02)
    assert np.abs(out - raw).max() > 0.05
    # the same network from a card without templates: calibration asked for, nothing to calibrate with
    plain = synthesize(inputs, "FLAIR", engine=_engine(tiny_bundle))
    np.testing.assert_array_equal(plain.array, raw)
    assert plain.metadata["MRSynth.Calibration"] == "off"


def test_card_calibrates_only_the_targets_validation_chose(calibrated_bundle, small_subject, tmp_path):
    """``calibrate_targets`` in the card's templates (written by ``validate-sites --final``): FLAIR listed →
    calibrated; T2 not listed → the generator's output, said "off"; a malformed list is refused naming the card."""
    import shutil

    from MRSynthLib.errors import MRSynthError
    from MRSynthLib.synthesis import synthesize

    folder = tmp_path / "chosen"
    shutil.copytree(calibrated_bundle.parent, folder)
    card_path = folder / calibrated_bundle.name
    card = json.loads(card_path.read_text())
    card["intensity_templates"]["calibrate_targets"] = ["FLAIR"]
    card_path.write_text(json.dumps(card))
    chosen, everything = _engine(card_path), _engine(calibrated_bundle)
    assert chosen.calibrate_targets == frozenset({"FLAIR"}) and everything.calibrate_targets is None
    inputs = {c: small_subject.volumes[c] for c in ("T1", "T1Gd")}
    flair = synthesize(inputs, "FLAIR", engine=chosen)
    assert flair.metadata["MRSynth.Calibration"].startswith("tone exponent")
    np.testing.assert_array_equal(flair.array, synthesize(inputs, "FLAIR", engine=everything).array)
    t2 = synthesize(inputs, "T2", engine=chosen)
    assert t2.metadata["MRSynth.Calibration"] == "off"
    np.testing.assert_array_equal(t2.array, synthesize(inputs, "T2", engine=everything, calibrate=False).array)
    card["intensity_templates"]["calibrate_targets"] = "FLAIR"
    card_path.write_text(json.dumps(card))
    with pytest.raises(MRSynthError, match="calibrate_targets"):
        _engine(card_path)


def test_preview_is_close_to_the_full_path_and_keeps_its_voxel_order(calibrated_bundle, small_subject):
    """The full run maps the whole volume's output histogram; the preview estimates it from a few slices
    spread through the brain. Same voxel order within the slice, values within a few hundredths."""
    from scipy.stats import spearmanr

    from MRSynthLib import orientation
    from MRSynthLib.preview import PreviewSession
    from MRSynthLib.request import SynthesisRequest
    from MRSynthLib.synthesis import synthesize

    engine = _engine(calibrated_bundle)
    inputs = {c: small_subject.volumes[c] for c in ("T1", "T2")}
    session = PreviewSession(engine, SynthesisRequest(inputs, "FLAIR", style_target="PD"))
    assert session.mapping.gamma == pytest.approx(1.0, abs=0.05)  # the template's own subject
    for alpha in (0.0, 0.6):
        full = orientation.to_canonical(synthesize(inputs, "FLAIR", engine=engine, style_alpha=alpha,
                                                   style_target="PD"))
        for index in (session.n_slices // 3, session.n_slices // 2):
            prev, inside = session.synthesize_slice(alpha, index), session._mask[index]
            assert spearmanr(prev[inside], full[index][inside]).statistic > 0.999
            assert np.abs(prev[inside] - full[index][inside]).mean() < 0.03


def test_a_card_with_malformed_templates_is_refused_naming_it(tiny_bundle, tmp_path):
    for f in tiny_bundle.parent.iterdir():
        shutil.copy(f, tmp_path / f.name)
    card = json.loads(tiny_bundle.read_text())
    card["intensity_templates"] = {"contrasts": {"T1": [0.9, 0.1, 0.5]}}
    (tmp_path / tiny_bundle.name).write_text(json.dumps(card))
    with pytest.raises(MRSynthError, match="tiny-test.json.*intensity template"):
        _engine(tmp_path / tiny_bundle.name)


def test_training_run_writes_templates_that_reach_the_card(tmp_path, real_root):
    """A run records its real training subjects' templates (held-out subjects excluded); the CLI rebuilds
    the same record for a finished run; export puts it into the card; the backend picks it up."""
    from mrsynth_train.cli import main
    from mrsynth_train.config import TrainConfig, from_dict
    from mrsynth_train.export import export_run
    from mrsynth_train.templates import read_templates
    from mrsynth_train.trainer import train

    cfg = from_dict(TrainConfig, {
        "recipe": "unified", "steps": 2, "batch_size": 2, "checkpoint_every": 2, "threads": 2,
        "data": {"real_root": str(real_root), "real_include": ["TCGA-FG-6692", "TCGA-DU-7294"],
                 "real_exclude": ["TCGA-DU-7294"], "real_weight": 0.9, "simulated": 1,
                 "simulated_shape": [40, 48, 40], "patch": 32},
        "model": {"ngf": 4, "n_blocks": 1, "style_dim": 4}})
    run = tmp_path / "run"
    train(cfg, run, progress=False)
    record = read_templates(run)
    assert record["subjects"] == ["TCGA-FG-6692"]
    assert sorted(record["contrasts"]) == ["FLAIR", "T1", "T1Gd", "T2"]
    first = (run / "intensity_templates.json").read_bytes()
    assert main(["templates", str(run), "--data", str(real_root)]) == 0
    assert (run / "intensity_templates.json").read_bytes() == first
    card = export_run(run, tmp_path / "bundle", model_id="calibrated")
    assert card["intensity_templates"]["contrasts"] == record["contrasts"]
    engine = _engine(tmp_path / "bundle" / "calibrated.json")
    assert set(engine.intensity_templates) == {"FLAIR", "T1", "T1Gd", "T2"}


def test_cli_calibrates_by_default_and_no_calibrate_keeps_the_generators_look(calibrated_bundle, small_subject,
                                                                               tmp_path, capsys):
    from MRSynthLib.cli import main
    from MRSynthLib.io import read_volume, write_volume
    from MRSynthLib.synthesis import synthesize

    for c in ("T1", "T2"):
        write_volume(small_subject.volumes[c], tmp_path / f"{c}.nii.gz")
    args = ["synthesize", "--input", f"T1={tmp_path / 'T1.nii.gz'}", "--input", f"T2={tmp_path / 'T2.nii.gz'}",
            "--target", "FLAIR", "--model", str(calibrated_bundle), "--quiet"]
    assert main([*args, "--output", str(tmp_path / "cal.nii.gz")]) == 0
    assert main([*args, "--output", str(tmp_path / "raw.nii.gz"), "--no-calibrate"]) == 0
    capsys.readouterr()
    cal, raw = read_volume(tmp_path / "cal.nii.gz").array, read_volume(tmp_path / "raw.nii.gz").array
    inputs = {c: read_volume(tmp_path / f"{c}.nii.gz") for c in ("T1", "T2")}
    api = synthesize(inputs, "FLAIR", engine=_engine(calibrated_bundle), calibrate=False).array
    np.testing.assert_allclose(raw, api, atol=1e-6)
    assert np.abs(cal - raw).max() > 0.05


def test_card_strength_moves_the_output_part_of_the_way(calibrated_bundle, small_subject, tmp_path):
    """``calibrate_strength`` s (chosen by site validation): the output's quantiles move s of the way from the
    network's own to the calibrated ones; said in the result; out of [0, 1] is refused naming the card."""
    import shutil

    from MRSynthLib.errors import MRSynthError
    from MRSynthLib.preprocess import derive_mask
    from MRSynthLib.synthesis import synthesize

    folder = tmp_path / "half"
    shutil.copytree(calibrated_bundle.parent, folder)
    card_path = folder / calibrated_bundle.name
    card = json.loads(card_path.read_text())
    card["intensity_templates"]["calibrate_strength"] = 0.5
    card_path.write_text(json.dumps(card))
    half, full = _engine(card_path), _engine(calibrated_bundle)
    assert half.calibrate_strength == 0.5 and full.calibrate_strength == 1.0
    inputs = {c: small_subject.volumes[c] for c in ("T1", "T2")}
    mask = derive_mask([v.array for v in small_subject.volumes.values()])
    got = synthesize(inputs, "FLAIR", engine=half)
    cal = synthesize(inputs, "FLAIR", engine=full).array
    raw = synthesize(inputs, "FLAIR", engine=full, calibrate=False).array
    assert got.metadata["MRSynth.Calibration"].endswith("strength 0.5")
    at = np.linspace(0.15, 0.45, 4)  # above the brain edge, below the untrained generator's saturation
    q = {k: np.quantile(a[mask & (a > 0)], at) for k, a in (("half", got.array), ("cal", cal), ("raw", raw))}
    np.testing.assert_allclose(q["half"], (q["cal"] + q["raw"]) / 2, atol=0.02)
    assert np.abs(q["cal"] - q["raw"]).max() > 0.05  # the test means something: the two tones differ
    for bad in (1.5, "half", True):
        card["intensity_templates"]["calibrate_strength"] = bad
        card_path.write_text(json.dumps(card))
        with pytest.raises(MRSynthError, match="calibrate_strength"):
            _engine(card_path)
