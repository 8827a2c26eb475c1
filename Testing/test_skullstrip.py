"""Unstripped heads (#12 item 1): detection, brain extraction on every contrast, the pipeline's use of it.

Heads are simulated (:mod:`MRSynthLib.synthetic_head`) around the physics simulator's brains and around a
real subject's stripped brain, so the true brain mask is known; the real subjects themselves are all
skull-stripped and must be said so (their path through the pipeline must not change).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from MRSynthLib.errors import MRSynthError
from MRSynthLib.io import read_volume, write_volume
from MRSynthLib.preprocess import derive_mask
from MRSynthLib.skullstrip import check_stripped, extract_brain
from MRSynthLib.synthesis import prepare, synthesize
from MRSynthLib.synthetic_head import add_head


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * np.count_nonzero(a & b) / (np.count_nonzero(a) + np.count_nonzero(b)))


@pytest.fixture(scope="module")
def phantom():
    from MRSynthLib.phantom import simulate_subject

    return simulate_subject(seed=11, shape=(64, 76, 64), lesion=True)


@pytest.fixture(scope="module")
def phantom_head(phantom):
    """The simulated subject inside a head (grid grown by 30 mm for it) and its brain mask on that grid."""
    return add_head(phantom.volumes, phantom.mask.array > 0, seed=5, pad_mm=30)


@pytest.fixture(scope="module")
def real(real_root):
    vols = {c: read_volume(real_root / "TCGA-DU-7294" / f"{c}.nii.gz") for c in ("T1", "T2", "FLAIR")}
    return vols, derive_mask([v.array for v in vols.values()])


@pytest.fixture(scope="module")
def real_head(real):
    vols, brain = real
    return add_head(vols, brain, seed=3)


def test_every_real_subject_is_said_stripped(real_root):
    files = [f for d in sorted(real_root.iterdir()) if d.is_dir() for f in sorted(d.glob("*.nii.gz"))
             if f.name != "tumour.nii.gz"]
    assert len({f.parent for f in files}) == 13
    said = {f"{f.parent.name}/{f.name}": check_stripped(read_volume(f)) for f in files}
    assert all(chk.stripped for chk in said.values()), {k: v.reason for k, v in said.items() if not v.stripped}


def test_heads_are_said_unstripped_on_every_contrast(phantom, phantom_head, real_head):
    heads, _ = phantom_head
    for c, vol in {**heads, **{f"real {c}": v for c, v in real_head[0].items()}}.items():
        chk = check_stripped(vol)
        assert not chk.stripped and "carry signal" in chk.reason, (c, chk)
    zero_air, _ = add_head({"T1": phantom.volumes["T1"]}, phantom.mask.array > 0, seed=6, pad_mm=30,
                           background="zero")  # air set to exact zeros (as after resampling): the size says it
    chk = check_stripped(zero_air["T1"])
    assert not chk.stripped and "larger than a brain" in chk.reason
    assert all(check_stripped(v).stripped for v in phantom.volumes.values())  # the simulator's brains


@pytest.mark.slow  # 16–25 s: eight registrations
def test_brain_extraction_dice_on_every_contrast(phantom_head, real_head):
    """One contrast at a time (the pipeline also reads the other inputs); the mask grows up to 5 mm into
    what looks like brain, so a rim of CSF and skull is taken too: Dice 0.87–0.92 on the real subject's
    head, against 0.93 without growing, but about 1 dB better synthesis (missed brain costs more)."""
    heads, brain = phantom_head
    for c, vol in heads.items():
        assert dice(extract_brain(vol), brain) > 0.93, c
    heads, brain = real_head
    for c, vol in heads.items():
        assert dice(extract_brain(vol), brain) > 0.85, c


def test_prepare_extracts_the_brain_of_heads_only_and_says_so(real, real_head):
    vols, brain = real
    heads, _ = real_head
    stripped = prepare({"T1": vols["T1"], "T2": vols["T2"]})
    assert stripped.notes == ()  # skull-stripped inputs: the mask of before, nothing said
    np.testing.assert_array_equal(stripped.mask, prepare({"T1": vols["T1"], "T2": vols["T2"]}, skull_strip=False).mask)

    auto = prepare({"T1": heads["T1"], "T2": heads["T2"]})
    cbrain = prepare({"T1": heads["T1"]}, mask=heads["T1"].with_array(brain.astype(np.uint8))).mask
    assert dice(auto.mask, cbrain) > 0.85  # grown into a rim of CSF and skull (see the test above)
    assert len(auto.notes) == 1 and auto.notes[0].startswith("T1 input: not skull-stripped (")
    assert "the output is 0 outside it" in auto.notes[0]

    whole = prepare({"T1": heads["T1"], "T2": heads["T2"]}, skull_strip=False)
    assert whole.notes == () and whole.mask.sum() > 1.5 * cbrain.sum()  # the head, as before

    mixed = prepare({"T1": vols["T1"], "T2": heads["T2"]})  # the stripped input gives the mask
    np.testing.assert_array_equal(mixed.mask, prepare({"T1": vols["T1"]}).mask)
    assert mixed.notes[0].startswith("T2 input: not skull-stripped (")
    assert "the brain mask comes from the stripped input (" in mixed.notes[0] and "T1.nii.gz)" in mixed.notes[0]
    with pytest.raises(MRSynthError, match="skull_strip must be"):
        prepare({"T1": vols["T1"]}, skull_strip="yes")


def test_without_nilearn_a_head_is_refused_saying_what_to_install(phantom_head, monkeypatch):
    import importlib.util

    heads, _ = phantom_head
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "nilearn" else real_find_spec(name, *a))
    with pytest.raises(MRSynthError, match=r"T1 input: not skull-stripped .*pip install 'mrsynth\[phantom\]'"):
        prepare({"T1": heads["T1"]})
    assert prepare({"T1": heads["T1"]}, skull_strip=False).notes == ()  # --no-skull-strip still runs


@pytest.mark.slow  # 40–120 s (idle to loaded 2 cores): five whole-volume runs
def test_a_head_is_as_good_as_the_stripped_brain(real, real_head):
    """Before: the scalp set the normalization and a synthetic scalp was drawn (−3 to −5 dB with v2, the
    model this was fixed with: checked on it). The default (v4, trained with random tone curves) is far
    less sensitive to the scalp; on a head it must still do as well as on the stripped brain
    (docs/skull-stripping.md has its numbers: here not stripping happens to score higher)."""
    from MRSynthLib.evaluation import evaluate_arrays

    vols, brain = real
    heads, _ = real_head
    score = lambda inputs, **kw: evaluate_arrays(  # noqa: E731
        synthesize({c: inputs[c] for c in ("T1", "T2")}, "FLAIR", **kw).array, vols["FLAIR"].array, brain)
    v2 = {"model": "mrsynth-unified-v2"}
    stripped, auto, off = score(vols, **v2), score(heads, **v2), score(heads, skull_strip=False, **v2)
    assert auto["PSNR"] > off["PSNR"] + 2.0 and auto["SSIM"] > off["SSIM"], (auto, off)
    assert auto["PSNR"] > stripped["PSNR"] - 1.5 and auto["SSIM"] > stripped["SSIM"] - 0.03, (auto, stripped)
    stripped, auto = score(vols), score(heads)  # the default model
    assert auto["PSNR"] > stripped["PSNR"] - 1.5 and auto["SSIM"] > stripped["SSIM"] - 0.03, (auto, stripped)


def test_cli_says_it_in_one_line_and_the_options_override(phantom_head, tmp_path, capsys):
    from MRSynthLib.cli import main

    heads, brain = phantom_head
    for c in ("T1", "T2"):
        write_volume(heads[c], tmp_path / f"{c}.nii.gz")
    write_volume(heads["T1"].with_array(brain.astype(np.uint8)), tmp_path / "brain.nii.gz")
    base = ["synthesize", "--input", f"T1={tmp_path / 'T1.nii.gz'}", "--input", f"T2={tmp_path / 'T2.nii.gz'}",
            "--target", "FLAIR", "--quiet"]

    assert main([*base, "--output", str(tmp_path / "auto.nrrd")]) == 0
    said = [ln for ln in capsys.readouterr().err.splitlines() if "skull" in ln]
    assert len(said) == 1 and said[0].startswith("mrsynth: warning: ") and "T1.nii.gz: not skull-stripped" in said[0]
    out = read_volume(tmp_path / "auto.nrrd")
    assert "not skull-stripped" in out.metadata["MRSynth.Notes"]  # kept with the result
    scalp = ndimage.distance_transform_edt(~brain, sampling=heads["T1"].spacing[::-1]) > 5
    assert np.count_nonzero(out.array[scalp]) < 0.01 * np.count_nonzero(scalp)  # 0 outside the brain: no scalp drawn

    assert main([*base, "--output", str(tmp_path / "off.nii.gz"), "--no-skull-strip"]) == 0
    assert "skull" not in capsys.readouterr().err  # as before: the whole head synthesized
    assert np.count_nonzero(read_volume(tmp_path / "off.nii.gz").array[scalp & (heads["T1"].array > 0)]) > 0

    rc = main([*base, "--output", str(tmp_path / "m.nii.gz"), "--mask", str(tmp_path / "brain.nii.gz"),
               "--no-skull-strip"])
    assert rc == 2 and "give --mask or --no-skull-strip, not both" in capsys.readouterr().err
    assert main([*base, "--output", str(tmp_path / "m.nii.gz"), "--mask", str(tmp_path / "brain.nii.gz")]) == 0
    assert "skull" not in capsys.readouterr().err


def test_a_head_as_style_reference_has_its_brain_extracted_and_said(real, real_head):
    """A style reference with skull and scalp: its histogram and style code are its brain's, as for inputs."""
    from MRSynthLib.postprocess import reference_quantiles
    from MRSynthLib.skullstrip import reference_brain

    vols, _ = real
    heads, _ = real_head
    truth = reference_quantiles(vols["FLAIR"])
    stripped, notes = reference_brain(heads["FLAIR"], "auto", "ref.nii.gz")
    assert np.abs(reference_quantiles(stripped) - truth).mean() < 0.5 * np.abs(reference_quantiles(heads["FLAIR"])
                                                                                - truth).mean()
    assert len(notes) == 1 and notes[0].startswith("ref.nii.gz: not skull-stripped (")
    assert reference_brain(vols["FLAIR"]) == (vols["FLAIR"], [])  # a stripped reference is used as it is
    assert reference_brain(heads["FLAIR"], False)[0] is heads["FLAIR"]  # --no-skull-strip: the whole head
    out = synthesize({"T1": vols["T1"], "T2": vols["T2"]}, "FLAIR", style_reference=heads["FLAIR"], style_alpha=1.0,
                     match_histogram=True, device="cpu")
    assert "its brain was extracted for its style and histogram" in out.metadata["MRSynth.Notes"]
