"""The one request type: checked once when made, the same words everywhere, file names that say the contrast."""

from __future__ import annotations

import pytest

from MRSynthLib.cli import build_parser
from MRSynthLib.errors import MRSynthError
from MRSynthLib.request import SynthesisRequest, parse_inputs, request_from_args


@pytest.mark.parametrize(("options", "message"), [
    (dict(inputs={}, target="FLAIR"), "no inputs given"),
    (dict(inputs={"T1": "a", "t1n": "b"}, target="FLAIR"), "contrast T1 given twice"),
    (dict(inputs={"T1": None}, target="FLAIR"), "no volume selected for T1"),
    (dict(inputs={"T1": "a"}, target="t1n"), "the target T1 is also given as an input"),
    (dict(inputs={"T1": "a"}, target="FLAIR", style_reference="r", style_target="T2"), "not both"),
    (dict(inputs={"T1": "a"}, target="FLAIR", style_target="t2f"), "is the target itself"),
    (dict(inputs={"T1": "a"}, target="FLAIR", style_alpha=0.4), "needs --style-reference or --style-target"),
    (dict(inputs={"T1": "a"}, target="FLAIR", style_target="T2", style_alpha=1.5), "must lie in [0, 1]"),
    (dict(inputs={"T1": "a"}, target="FLAIR", match_histogram=True), "needs a style reference"),
    (dict(inputs={"T1": "a"}, target="FLAIR", mask="m", skull_strip=False), "give --mask or --no-skull-strip"),
    (dict(inputs={"T1": "a"}, target="FLAIR", skull_strip="yes"), "skull_strip must be"),
    (dict(inputs={"T1": "a"}, target="FLAIR", plane="oblique"), "unknown plane"),
    (dict(inputs={"T1": "a"}, target="FLAIR", batch_size=0), "--batch-size must be at least 1"),
    (dict(inputs={"T1": "a"}, target="FLAIR", amp=True), "--amp needs --backend torch"),
    (dict(inputs={"T1": "a"}, target="FLAIR", backend="torch", device="cpu", amp=True), "--amp works on CUDA only"),
])
def test_a_request_is_refused_once_with_one_line(options, message):
    with pytest.raises(MRSynthError) as err:
        SynthesisRequest(**options)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_names_are_canonical_and_alpha_resolves():
    r = SynthesisRequest({"t1n": "a", "t2w": "b"}, "t2f", style_target="pd")
    assert list(r.inputs) == ["T1", "T2"] and r.target == "FLAIR" and r.style_target == "PD"
    assert r.alpha == 1.0 and r.first == "a"  # a style target without α: all the way to it
    assert SynthesisRequest({"T1": "a"}, "T2").alpha == 0.0
    assert SynthesisRequest.of(r) is r and SynthesisRequest.of({"T1": "a"}, "T2").target == "T2"
    with pytest.raises(MRSynthError, match="not both"):
        SynthesisRequest.of(r, "T2")


def test_with_sources_converts_every_image_and_keeps_the_options():
    r = SynthesisRequest({"T1": "t1", "T2": "t2"}, "FLAIR", style_reference="ref", style_alpha=0.3, mask="m",
                         calibrate=False, output="out")
    seen = []
    converted = r.with_sources(lambda source, role: seen.append(role) or source.upper())
    assert seen == ["T1", "T2", "reference", "mask"]
    assert dict(converted.inputs) == {"T1": "T1", "T2": "T2"} and converted.style_reference == "REF"
    assert converted.mask == "M" and converted.output is None and not converted.calibrate
    assert converted.style_alpha == 0.3


def test_input_without_contrast_takes_it_from_the_file_name():
    paths = parse_inputs(["data/sub-01_ce-gadolinium_T1w.nii.gz", "BraTS-001-t2f.nii.gz", "T2=scan.nii.gz"])
    assert paths == {"T1Gd": "data/sub-01_ce-gadolinium_T1w.nii.gz", "FLAIR": "BraTS-001-t2f.nii.gz",
                     "T2": "scan.nii.gz"}
    args = build_parser().parse_args(["synthesize", "--input", "x/t1.nii.gz", "--target", "FLAIR", "--output", "o"])
    assert dict(request_from_args(args).inputs) == {"T1": "x/t1.nii.gz"}


@pytest.mark.parametrize(("name", "said"), [("pd_t2.nii.gz", "PD and T2"), ("t1_t2.nii.gz", "T1 and T2"),
                                            ("brain.nii.gz", "names none")])
def test_an_ambiguous_or_silent_file_name_is_refused_naming_it(name, said):
    with pytest.raises(MRSynthError) as err:
        parse_inputs([f"/d/{name}"])
    text = str(err.value)
    assert f"/d/{name}" in text and said in text and "CONTRAST=PATH" in text and "\n" not in text
