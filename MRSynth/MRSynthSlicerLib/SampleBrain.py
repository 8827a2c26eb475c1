"""The "MRSynth sample brain" of the Sample Data module: a real subject shipped inside the extension.

The files lie in ``Resources/SampleData`` beside the module (their README gives the source, TCIA
TCGA-DU-7294, CC BY 3.0, and how ``Testing/make_sample_data.py`` makes them). They are registered with
``file://`` URIs, which Sample Data fetches like any download (``urllib``) and checks against the SHA256
below, so the sample and the self-test work offline.
"""

from __future__ import annotations

import os
from pathlib import Path

SAMPLE_NAME = "MRSynth sample brain"
SAMPLE_DIR = Path(__file__).resolve().parent.parent / "Resources" / "SampleData"
SAMPLE_FILES = {  # contrast → (file, checksum); Testing/test_sample_data.py remakes the files and compares
    "T1": ("TCGA-DU-7294_T1_2mm.nii.gz",
           "SHA256:6343c06f00217ac209f42c977d2a38b961edafde345f2cc7d86cabd854a554f4"),
    "T1Gd": ("TCGA-DU-7294_T1Gd_2mm.nii.gz",
             "SHA256:b1f558253ee410db0c59c0d53dfad2706040b8c86bbcc6f08e7e45c84b2008be"),
    "T2": ("TCGA-DU-7294_T2_2mm.nii.gz",
           "SHA256:7ce450e726f81998c22e5ff4c9ece082da64f32c9abe47f23e5fe36cfcca7f2f"),
    "FLAIR": ("TCGA-DU-7294_FLAIR_2mm.nii.gz",
              "SHA256:208c2f0b5714a0c022317483be2896d3213ede1cafdf8561010c24038cc7040f"),
}


def sampleUris() -> list[str]:
    """``file://`` URIs of the shipped files (``Path.as_uri``: ``file:///C:/...`` on Windows)."""
    return [(SAMPLE_DIR / name).as_uri() for name, _ in SAMPLE_FILES.values()]


def registerSampleData() -> None:
    """Add "MRSynth sample brain" (T1, T1Gd, T2, FLAIR of a real glioma patient) to the Sample Data module."""
    import SampleData

    icon = os.path.join(os.path.dirname(SAMPLE_DIR), "Icons", "MRSynth.png")
    SampleData.SampleDataLogic.registerCustomSampleDataSource(
        category="MRSynth", sampleName=SAMPLE_NAME, thumbnailFileName=icon,
        uris=sampleUris(), fileNames=[f for f, _ in SAMPLE_FILES.values()],
        nodeNames=[f"MRSynthSample_{c}" for c in SAMPLE_FILES], checksums=[s for _, s in SAMPLE_FILES.values()],
        loadFileTypes=["VolumeFile"] * len(SAMPLE_FILES))
