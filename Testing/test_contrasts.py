import pytest

from MRSynthLib.contrasts import CONTRASTS, canonical, detect
from MRSynthLib.errors import MRSynthError


@pytest.mark.parametrize("alias,expected", [
    ("t1n", "T1"), ("T1w", "T1"), ("t1c", "T1Gd"), ("t1ce", "T1Gd"), ("T1GD", "T1Gd"), ("t2w", "T2"),
    ("t2f", "FLAIR"), ("flair", "FLAIR"), ("pd", "PD"), ("PDw", "PD"), ("T2-FLAIR", "FLAIR"),
    ("ce-gadolinium", "T1Gd"), ("ce-gadolinium_T1w", "T1Gd"), ("ce-gd_T1w", "T1Gd"), ("acq-mprage_T1w", "T1"),
    ("T1_pre_gd", "T1"), ("t1 pre-contrast", "T1"),
])
def test_aliases_map_to_one_vocabulary(alias, expected):
    assert canonical(alias) == expected


@pytest.mark.parametrize("name", ["T2*", "t2star", "T2_star", "T2starw"])
def test_t2_star_is_refused_not_taken_for_t2(name):
    with pytest.raises(MRSynthError, match=r"T2\* \(T2-star\), a different contrast"):
        canonical(name)
    assert detect(f"sub-01_{name}.nii.gz") is None


def test_unknown_contrast_is_a_clear_error():
    with pytest.raises(MRSynthError, match="unknown contrast 'DWI'"):
        canonical("DWI")


@pytest.mark.parametrize("name,expected", [
    ("sub-01_T1w.nii.gz", "T1"), ("sub-01_ce-gadolinium_T1w.nii.gz", "T1Gd"), ("sub-01_T2w.nii.gz", "T2"),
    ("sub-01_FLAIR.nii.gz", "FLAIR"), ("sub-01_PDw.nii.gz", "PD"), ("BraTS-GLI-00000-000-t1c.nii.gz", "T1Gd"),
    ("BraTS-GLI-00000-000-t2f.nii.gz", "FLAIR"), ("BraTS-GLI-00000-000-t1n.nii.gz", "T1"),
    ("BraTS-GLI-00000-000-t2w.nii.gz", "T2"), ("Patient 3 FLAIR", "FLAIR"), ("T1Gd.nii.gz", "T1Gd"),
    ("brainmask.nii.gz", None), ("seg.nrrd", None),
    ("sub-01_acq-flair_T1w.nii.gz", "T1"), ("sub-01_acq-t2_FLAIR.nii.gz", "FLAIR"),  # the BIDS suffix wins
    ("sub-01_ce-gd_T1w.nii.gz", "T1Gd"), ("T1_pre_gd.nii.gz", "T1"), ("T1 pre-contrast", "T1"),
    ("pre_op_T1Gd.nrrd", "T1Gd"), ("T1 post gd", "T1Gd"), ("T2* GRE", None),
])
def test_detection_from_file_and_node_names(name, expected):
    assert detect(name) == expected


def test_vocabulary_order_is_the_model_channel_order():
    assert CONTRASTS == ("T1", "T1Gd", "T2", "PD", "FLAIR")
