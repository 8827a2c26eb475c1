"""Scripted readers for reader-study tests and the README's example: NOT radiologists.

Each reader is a function ``(case, session) -> (call, quality, confidence, comment)``; :func:`rate` runs one
through a study with :class:`MRSynthLib.reader_session.ReaderSession`, as a reader in the panel would.
``perfect`` reads the key (to test the scoring); ``always``, ``coin`` and ``sharpness`` see at most what a
real reader sees (the blinded case image).
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import numpy as np

from MRSynthLib.reader_session import ReaderSession

Reader = Callable[[str, ReaderSession], tuple[str, int, int, str]]


def read_key(path: Path) -> dict[str, str]:
    with open(path, newline="", encoding="utf-8") as f:
        return {r["case"]: r["truth"] for r in csv.DictReader(f)}


def perfect(key: dict[str, str]) -> Reader:
    """Knows the truth (reads the key): real cases quality 5, synthetic 2, always confidence 5."""
    return lambda case, _s: (key[case], 5 if key[case] == "real" else 2, 5, "scripted: perfect")


def always(call: str, quality: int = 3, confidence: int = 1) -> Reader:
    """The same call, quality and confidence for every case."""
    return lambda _case, _s: (call, quality, confidence, "")


def coin(seed: int) -> Reader:
    """Coin flips for the call, uniform 1–5 for quality and confidence (seeded)."""
    rng = np.random.default_rng(seed)

    def read(_case: str, _s: ReaderSession):
        return (str(rng.choice(["real", "synthetic"])), int(rng.integers(1, 6)), int(rng.integers(1, 6)), "scripted: coin")

    return read


def sharpness(study_values: dict[str, float]) -> Reader:
    """An automatic observer: calls a case synthetic when its high-frequency energy (``study_values``, from
    :func:`edge_energy`) is below the study's median (synthetic images tend to be smoother); quality and
    confidence grow with the distance from the median."""
    values = np.array(list(study_values.values()))
    median, spread = float(np.median(values)), float(np.std(values)) or 1.0

    def read(case: str, _s: ReaderSession):
        z = (study_values[case] - median) / spread
        call = "synthetic" if z < 0 else "real"
        quality = int(np.clip(np.round(3 + 1.5 * z), 1, 5))
        confidence = int(np.clip(1 + np.round(2 * abs(z)), 1, 5))
        return call, quality, confidence, f"scripted: edge energy z = {z:+.2f}"

    return read


def edge_energy(session: ReaderSession, case: str) -> float:
    """Mean squared in-plane gradient inside the brain, relative to the mean squared intensity there (a
    sharpness measure a reader's eye roughly follows), from the blinded case image only."""
    a = session.load(case).array.astype(float)
    brain = a > 0
    gy, gx = np.gradient(a, axis=(1, 2))
    return float(((gx**2 + gy**2)[brain]).mean() / max((a[brain] ** 2).mean(), 1e-9))


def rate(study: Path, name: str, reader: Reader, limit: int | None = None) -> ReaderSession:
    """Rate the cases ``name`` has not rated yet (at most ``limit``), one ``record`` each."""
    session = ReaderSession(study, name)
    done = 0
    while (case := session.next_case()) is not None and (limit is None or done < limit):
        call, quality, confidence, comment = reader(case, session)
        session.record(case, call, quality, confidence, comment)
        done += 1
    return session


def build_from(cohort: Path, out: Path, **kw):
    """A study of the reader cohort's real/ and synthetic/ folders (conftest ``reader_cohort``)."""
    from MRSynthLib.reader_study import build_study

    return build_study([cohort / "real"], [cohort / "synthetic"], out, **kw)


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    """``mrsynth`` in-process: (exit code, stdout, stderr)."""
    from MRSynthLib.cli import main

    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def no_leftovers(folder: Path) -> bool:
    """No hidden temp file or folder left in ``folder``."""
    return not [p for p in folder.iterdir() if p.name.startswith(".")]

