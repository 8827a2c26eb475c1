"""Shared fixtures: real data paths, small simulated subjects and a tiny but real exported model."""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("OMP_NUM_THREADS", "2")
ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "data" / "real"


@pytest.fixture(scope="session")
def real_root() -> Path:
    if not REAL.exists():
        pytest.skip("../shared/data/real is not beside the repository")
    return REAL


@pytest.fixture(scope="session")
def small_subject():
    from MRSynthLib.phantom import simulate_subject

    return simulate_subject(seed=3, shape=(48, 56, 48), lesion=True)


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory) -> Path:
    """A small unified model, randomly initialised, exported exactly like a trained run."""
    import torch

    from mrsynth_train.export import export_run
    from MRSynthLib.nets.unified import UnifiedConfig, UnifiedModel

    torch.manual_seed(0)
    run = tmp_path_factory.mktemp("run")
    arch = {"ngf": 4, "n_blocks": 1, "style_dim": 4}
    model = UnifiedModel(UnifiedConfig(**arch))
    with torch.no_grad():  # make the AdaIN layers and styles matter
        for m in model.modules():
            if isinstance(m, torch.nn.Linear):
                m.weight.normal_(0, 0.3)
    torch.save(model.state_dict(), run / "model.pt")
    (run / "config.json").write_text(json.dumps({"config": {"recipe": "unified", "model": arch}}))
    out = tmp_path_factory.mktemp("bundle")
    # a random network's outputs always look uncertain: its card's error model (the default tables) warns never
    from MRSynthLib.confidence import DEFAULT

    record = {"bins": DEFAULT.bins.tolist(), "error_model": {t: v.tolist() for t, v in DEFAULT.tables.items()},
              "scale_levelfit": dict(DEFAULT.scales), "warn_mean_sd": None, "fitted_on": "the test fixture"}
    (run / "error_model.json").write_text(json.dumps(record))
    export_run(run, out, model_id="tiny-test", confidence=run / "error_model.json")
    return out / "tiny-test.json"


@pytest.fixture(scope="session")
def calibrated_bundle(tiny_bundle, tmp_path_factory, small_subject):
    """The tiny exported model with templates made from the small simulated subject's own volumes."""
    import shutil

    from MRSynthLib.calibration import templates_from_subjects
    from MRSynthLib.preprocess import derive_mask, normalize

    folder = tmp_path_factory.mktemp("calibrated")
    for f in tiny_bundle.parent.iterdir():
        shutil.copy(f, folder / f.name)
    vols = {c: v.array for c, v in small_subject.volumes.items()}
    mask = derive_mask(list(vols.values()))
    card = json.loads(tiny_bundle.read_text())
    card["intensity_templates"] = {"contrasts": templates_from_subjects([({c: normalize(a, mask) for c, a in vols.items()},
                                                                           mask)])}
    (folder / tiny_bundle.name).write_text(json.dumps(card))
    return folder / tiny_bundle.name


@pytest.fixture(scope="session")
def reader_cohort(tmp_path_factory) -> Path:
    """Reader-study inputs: real/ holds the sample brain's four acquired 2 mm volumes (TCGA-DU-7294; their NIfTI
    descriptions name the subject), synthetic/ the shipped default model's FLAIR (NIfTI, from T1 + T2) and T2
    (NRRD with MRSynth.* header keys, from T1 + FLAIR), each labelled synthetic as the engine labels it."""
    from MRSynthLib.io import read_volume, write_volume
    from MRSynthLib.registry import load_backend, resolve_model
    from MRSynthLib.synthesis import synthesize

    sample = ROOT / "MRSynth" / "Resources" / "SampleData"
    root = tmp_path_factory.mktemp("reader-cohort")
    (root / "real").mkdir()
    (root / "synthetic").mkdir()
    for c in ("T1", "T1Gd", "T2", "FLAIR"):
        shutil.copy(sample / f"TCGA-DU-7294_{c}_2mm.nii.gz", root / "real" / f"TCGA-DU-7294_{c}.nii.gz")
    vols = {c: read_volume(root / "real" / f"TCGA-DU-7294_{c}.nii.gz") for c in ("T1", "T2", "FLAIR")}
    engine = load_backend(resolve_model(None), "onnx", "cpu")
    for target, name in (("FLAIR", "TCGA-DU-7294_FLAIR_synthetic.nii.gz"), ("T2", "TCGA-DU-7294_T2_synthetic.nrrd")):
        write_volume(synthesize({c: v for c, v in vols.items() if c != target}, target, engine=engine),
                     root / "synthetic" / name)
    return root


def write_nifti(volume, path: Path) -> Path:
    from MRSynthLib.io import write_volume

    write_volume(volume, path, overwrite=True)
    return path


def random_direction(seed: int, left_handed: bool = False) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    d = Rotation.from_euler("xyz", np.random.default_rng(seed).uniform(-30, 30, 3), degrees=True).as_matrix()
    if left_handed:
        d[:, 2] *= -1
    return d


# tiny networks of every non-unified recipe: a few steps run in seconds on one core
TINY_RECIPE_OPTIONS = {
    "hypergan": {"ngf": 4, "ndf": 4, "modulator_hidden": 8, "enc_blocks": 1, "dec_blocks": 1},
    "collagan": {"ngf": 4, "ndf": 4, "n_blocks": 1},
    "mist": {"ngf": 4, "ndf": 4, "enc_blocks": 1, "dec_blocks": 1, "style_dim": 4, "latent_dim": 4,
             "mapping_hidden": 8},
    "cyclegan": {"ngf": 4, "n_blocks": 1, "ndf": 4},
    "unit": {"ngf": 4, "n_res": 2, "ndf": 4},
    "supervised": {"ngf": 4, "n_blocks": 1},
    "simple": {"hidden": 8},
}


@pytest.fixture
def served(tiny_bundle, tmp_path, monkeypatch):
    """The tiny bundle published by a local HTTP server (real HTTP on 127.0.0.1) and registered as
    'tiny-test' with that URL, in a temporary registry and user cache."""
    site = tmp_path / "site"
    shutil.copytree(tiny_bundle.parent, site)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:  # the CLI's stderr must hold its one line only
            pass

    handler = functools.partial(Quiet, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"

    from MRSynthLib.registry import sha256

    card = json.loads(tiny_bundle.read_text())
    res = tmp_path / "Resources"
    (res / "Models").mkdir(parents=True)
    (res / "Models.json").write_text(json.dumps({"default": "tiny-test", "models": [{
        "id": "tiny-test", "version": "1", "card": {"name": tiny_bundle.name, "sha256": sha256(tiny_bundle)},
        "files": card["files"], "contrasts": card.get("contrasts", []), "license": "Apache-2.0", "url": url}]}))
    monkeypatch.setenv("MRSYNTH_RESOURCES", str(res))
    monkeypatch.setenv("MRSYNTH_CACHE", str(tmp_path / "cache"))
    yield site, url
    server.shutdown()


@pytest.fixture(scope="session")
def reader_study_built(reader_cohort, tmp_path_factory) -> Path:
    """A reader study of ``reader_cohort`` (seed 3), built once; tests that rate take a copy."""
    from scripted_readers import build_from

    out = tmp_path_factory.mktemp("built") / "study"
    build_from(reader_cohort, out, seed=3)
    return out

