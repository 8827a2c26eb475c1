"""The per-voxel uncertainty map: its shape and labels, the CLI's --confidence, the request field, and the
metrics that validate it (toy cases with known answers)."""

from __future__ import annotations

import numpy as np
import pytest

from MRSynthLib import confidence_metrics as cm
from MRSynthLib.cli import main
from MRSynthLib.errors import MRSynthError
from MRSynthLib.io import read_volume, write_volume
from MRSynthLib.request import SynthesisRequest


@pytest.fixture(scope="module")
def case(tmp_path_factory, small_subject):
    d = tmp_path_factory.mktemp("case")
    for c in ("T1", "T2"):
        write_volume(small_subject.volumes[c], d / f"{c}.nii.gz")
    return d


@pytest.fixture(scope="module")
def with_sd(small_subject, tiny_bundle):
    from MRSynthLib.synthesis import synthesize_with_confidence

    inputs = {c: small_subject.volumes[c] for c in ("T1", "T2")}
    return synthesize_with_confidence(inputs, "FLAIR", model=str(tiny_bundle), device="cpu")


def test_the_map_lies_on_the_output_grid_is_non_negative_zero_outside_the_brain_and_labelled(with_sd, small_subject):
    from MRSynthLib import orientation
    from MRSynthLib.synthesis import prepare

    image, sd = with_sd
    assert sd.same_grid(image) and sd.same_grid(small_subject.volumes["T1"])
    assert sd.array.dtype == np.float32 and (sd.array >= 0).all() and sd.array.max() > 0
    prepared = prepare({c: small_subject.volumes[c] for c in ("T1", "T2")})
    brain = orientation.from_canonical(prepared.mask, prepared.reference)
    assert not sd.array[~brain].any()
    assert sd.metadata["MRSynth.Uncertainty"] == "1" and sd.metadata["MRSynth.UncertaintyOf"] == "synthetic FLAIR"
    assert "output intensity" in sd.metadata["MRSynth.UncertaintyUnits"]
    assert "MRSynth.Synthetic" not in sd.metadata and "uncertainty" in sd.metadata["descrip"]
    assert image.metadata["MRSynth.Synthetic"] == "1"


def _bundle_with(tiny_bundle, folder, record):
    """A copy of the tiny model whose card carries ``record`` as its uncertainty error model."""
    import json
    import shutil

    folder.mkdir(exist_ok=True)
    for f in tiny_bundle.parent.iterdir():
        shutil.copy(f, folder / f.name)
    card = json.loads(tiny_bundle.read_text())
    card["confidence"] = record
    (folder / tiny_bundle.name).write_text(json.dumps(card))
    return folder / tiny_bundle.name


def _record(value=0.5, warn=None):
    return {"bins": [0.0, 0.5, 1.0], "error_model": {"FLAIR": [value, value]}, "scale_levelfit": {"FLAIR": 1.0},
            "warn_mean_sd": warn, "fitted_on": "toy folds"}


def test_the_cards_error_model_is_the_one_used_and_named(small_subject, tiny_bundle, tmp_path, with_sd):
    from MRSynthLib.synthesis import synthesize_with_confidence

    bundle = _bundle_with(tiny_bundle, tmp_path, _record(0.5))
    image, sd = synthesize_with_confidence({c: small_subject.volumes[c] for c in ("T1", "T2")}, "FLAIR",
                                           model=str(bundle), device="cpu")
    brain = sd.array > 0
    top = np.percentile(image.array[brain], 99.5)
    assert np.allclose(sd.array[brain], 0.5 * top, rtol=1e-3)  # the card's flat table, in the output's units
    assert sd.metadata["MRSynth.UncertaintyMethod"].endswith("fitted on toy folds")
    assert with_sd.confidence.metadata["MRSynth.UncertaintyMethod"].endswith("fitted on the test fixture")
    bare = _bundle_with(tiny_bundle, tmp_path / "bare", None)  # a card without one: the project default
    _, default = synthesize_with_confidence({"T1": small_subject.volumes["T1"]}, "FLAIR", model=str(bare), device="cpu")
    assert "v3 site folds" in default.metadata["MRSynth.UncertaintyMethod"]


def test_a_malformed_error_model_in_the_card_is_refused_naming_the_card(small_subject, tiny_bundle, tmp_path):
    from MRSynthLib.synthesis import synthesize

    bad = _record()
    bad["error_model"]["FLAIR"] = [0.5]  # one value for two bins
    bundle = _bundle_with(tiny_bundle, tmp_path, bad)
    with pytest.raises(MRSynthError, match="confidence.*2 non-negative values") as info:
        synthesize({"T1": small_subject.volumes["T1"]}, "FLAIR", model=str(bundle), device="cpu")
    assert bundle.name in str(info.value)


@pytest.mark.parametrize("warn, warned", [(0.0, True), (5.0, False)])
def test_a_high_volume_uncertainty_is_one_warning_line(warn, warned, case, tiny_bundle, tmp_path, capsys):
    bundle = _bundle_with(tiny_bundle, tmp_path, _record(0.5, warn))
    out = tmp_path / "FLAIR.nrrd"  # NRRD keeps the notes in its header
    assert main([a for a in _args(case, bundle, out) if a != "--quiet"]) == 0  # no map asked: still warned
    lines = [x for x in capsys.readouterr().err.splitlines() if "high uncertainty" in x]
    assert len(lines) == (1 if warned else 0)
    if warned:
        assert lines[0].startswith("mrsynth: warning: high uncertainty") and "mean σ 0.500" in lines[0]
        assert "high uncertainty" in read_volume(out).metadata.get("MRSynth.Notes", "")


def test_python_api_shape(with_sd, small_subject, tiny_bundle):
    from MRSynthLib.synthesis import Synthesis, synthesize

    assert isinstance(with_sd, Synthesis) and with_sd.image is with_sd[0] and with_sd.confidence is with_sd[1]
    plain = synthesize({"T1": small_subject.volumes["T1"], "T2": small_subject.volumes["T2"]}, "FLAIR",
                       model=str(tiny_bundle), device="cpu")
    assert type(plain).__name__ == "Volume" and np.array_equal(plain.array, with_sd.image.array)  # the map changes nothing
    import MRSynthLib

    inputs = {"T1": small_subject.volumes["T1"], "T2": small_subject.volumes["T2"]}
    image, sd = MRSynthLib.synthesize(inputs, "FLAIR", model=str(tiny_bundle), device="cpu", confidence=True)
    assert np.array_equal(image.array, plain.array) and np.array_equal(sd.array, with_sd.confidence.array)
    assert sd.metadata["MRSynth.Uncertainty"] == "1" and "MRSynth.Synthetic" not in sd.metadata
    assert np.array_equal(synthesize(inputs, "FLAIR", model=str(tiny_bundle), confidence=None).array, plain.array)
    with pytest.raises(MRSynthError, match="True or False"):  # a path is the CLI's; here the map is returned
        synthesize(inputs, "FLAIR", model=str(tiny_bundle), confidence="sd.nii.gz")


def _args(case, model, out, *extra):
    return ["synthesize", "--input", f"T1={case / 'T1.nii.gz'}", "--input", f"T2={case / 'T2.nii.gz'}",
            "--target", "FLAIR", "--output", str(out), "--model", str(model), "--quiet", *extra]


def test_cli_writes_the_map_atomically_beside_the_output(case, tiny_bundle, tmp_path, capsys):
    out, sd = tmp_path / "FLAIR.nii.gz", tmp_path / "FLAIR_sd.nrrd"
    assert main(_args(case, tiny_bundle, out, "--confidence", str(sd))) == 0
    assert capsys.readouterr().out.split() == [str(out), str(sd)]
    got = read_volume(sd)
    assert got.same_grid(read_volume(out)) and got.metadata["MRSynth.Uncertainty"] == "1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["FLAIR.nii.gz", "FLAIR_sd.nrrd"]  # no temp files left


@pytest.mark.parametrize("where", ["output", "input"])
def test_cli_refuses_the_output_or_an_input_as_the_map(where, case, tiny_bundle, tmp_path, capsys):
    out = tmp_path / "FLAIR.nii.gz"
    sd = out if where == "output" else case / "T2.nii.gz"
    before = sorted(case.iterdir())
    assert main(_args(case, tiny_bundle, out, "--confidence", str(sd))) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--confidence" in err
    assert not list(tmp_path.iterdir()) and sorted(case.iterdir()) == before


def test_the_request_field_round_trips_and_refuses_the_output_itself():
    from MRSynthLib.cli import build_parser
    from MRSynthLib.request import request_from_args

    r = SynthesisRequest({"T1": "t1.nii.gz"}, "FLAIR", output="o.nii.gz", confidence="o_sd.nii.gz")
    back = request_from_args(build_parser().parse_args(r.to_argv()))
    assert back.confidence == "o_sd.nii.gz" and "--confidence" not in SynthesisRequest({"T1": "x"}, "T2").to_argv()
    with pytest.raises(MRSynthError, match="--confidence is the --output"):
        SynthesisRequest({"T1": "t1.nii.gz"}, "FLAIR", output="o.nii.gz", confidence="./o.nii.gz")


def test_metrics_on_toy_cases_with_known_answers():
    rng = np.random.default_rng(1)
    err = rng.random(1000)
    assert cm.spearman(err * 3 + 1, err) == pytest.approx(1.0)  # a perfect ranking
    assert cm.spearman(-err, err) == pytest.approx(-1.0)
    curve, oracle = cm.sparsification(err ** 2, err)  # the same order as the errors: the oracle itself
    assert np.allclose(curve, oracle) and cm.ause(curve, oracle) == pytest.approx(0.0)
    flat, oracle = cm.sparsification(np.ones_like(err), err)  # no information: about the random curve
    assert cm.ause(flat, oracle) > 0.2 and abs(flat[50] / flat[0] - 1) < 0.1
    assert cm.coverage(err / 1.96, err) == 1.0 and cm.coverage(err / 1.96 * 0.5, err) < 0.01
    assert cm.scale_for_coverage(err / 1.96, err) == pytest.approx(1.0)
    sd = np.r_[np.ones(100), np.zeros(900)]
    e = np.r_[np.full(100, 4.0), np.ones(900)]  # the 10 % flagged have 4× the median error
    assert cm.top_ratio(sd, e) == pytest.approx(4.0)
