"""A reader study (visual Turing test): blinded, shuffled cases of real and synthetic images.

``build_study`` turns files of both classes into ``STUDY/``:

- ``cases/case-001.nii.gz`` …: every case rewritten the same way, whatever its class, so nothing but its
  content can tell it apart: a fresh NIfTI header (no description, intent or aux file: the project marks
  synthetic images there, and acquired ones often name their subject), int16 voxels on one intensity scale
  (the volume's own brain mask, voxels outside it 0, the 99.5th percentile inside it = 1000), neutral names
  in a seeded random order. With ``slices`` each volume gives that many axial slices instead, chosen by the
  same rule for both classes (evenly through the brain's extent), each a one-slice image that keeps its
  place in space.
- ``cases.json``: the cases in order, each with its window/level (same rule for every case: the 1st–99th
  percentile inside the brain mask), and per-reader orders when readers were named. No truth, no sources.
- ``key/key.csv`` (or ``key``: a path outside the study): case → truth, source file, slice. Give readers
  the study without ``key/``.

Everything is written into a temporary folder beside ``STUDY`` (case by case: one volume in memory at a
time) and renamed at the end: a refused or failed build leaves nothing. Ratings (``ratings/<reader>.csv``) are :mod:`MRSynthLib.reader_session`'s.
"""

from __future__ import annotations

import csv
import fnmatch
import hashlib
import io
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import MRSynthError
from .volume import Volume

FORMAT = "mrsynth-reader-study/1"
CLASSES = ("real", "synthetic")
SCALE = 1000.0
"""The 99.5th percentile inside a case's brain mask becomes this value (int16 voxels)."""
WL_PERCENTILES = (1.0, 99.0)
INTENSITY_RULE = ("voxels outside the volume's brain mask set to 0, negative values to 0, linear scale with the "
                  f"99.5th percentile inside the mask = {SCALE:g}, rounded to int16")
WL_RULE = ("window/level from the 1st to the 99th percentile (WL_PERCENTILES) inside the volume's brain mask, "
           "after the intensity rule")
SLICE_RULE = ("N axial slices at the fractions 1/(N+1) … N/(N+1) of the extent of the axial slices whose brain area "
              "is at least 10% of the largest")
KEY_FIELDS = ("study_id", "case", "truth", "source", "slice")
IMAGE_EXTENSIONS = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")
READER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")


@dataclass(frozen=True)
class Study:
    """A built study as a reader sees it (``cases.json``): no truth, no sources."""

    root: Path
    study_id: str
    mode: str  # "volume" or "slice"
    cases: tuple[str, ...]
    window_level: dict[str, tuple[float, float]]
    readers: tuple[str, ...]
    orders: dict[str, tuple[str, ...]]

    def case_file(self, case: str) -> Path:
        return self.root / "cases" / f"{case}.nii.gz"

    def order(self, reader: str) -> tuple[str, ...]:
        """The reader's reading order: their own permutation when the study names readers."""
        return self.orders.get(reader, self.cases)


def check_reader_name(reader: str) -> str:
    """Reader names become file names (``ratings/<reader>.csv``): letters, digits, ``_ . -``."""
    if not isinstance(reader, str) or not READER_NAME.match(reader):
        raise MRSynthError(f"reader name {reader!r} is not allowed: use 1–64 letters, digits, '_', '.' or '-' "
                           "(it becomes the ratings file's name)")
    return reader


def load_study(root: str | os.PathLike) -> Study:
    """Read ``STUDY/cases.json``; a folder that is not a reader study is refused naming it."""
    path = Path(root) / "cases.json"
    if not path.is_file():
        raise MRSynthError("not a reader study (no cases.json); build one with `mrsynth reader-study build`",
                           str(root))
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        if doc.get("format") != FORMAT:
            raise ValueError(f"format {doc.get('format')!r}, expected {FORMAT}")
        cases = tuple(c["case"] for c in doc["cases"])
        wl = {c["case"]: (float(c["window"]), float(c["level"])) for c in doc["cases"]}
        orders = {r: tuple(o) for r, o in doc.get("orders", {}).items()}
    except (ValueError, KeyError, TypeError) as exc:
        raise MRSynthError(f"unreadable study description ({exc})", str(path)) from None
    return Study(Path(root), doc["study_id"], doc["mode"], cases, wl, tuple(doc.get("readers", [])), orders)


def read_case(path: str | os.PathLike) -> Volume:
    """A case image (a one-slice image too, which :func:`MRSynthLib.io.read_volume` refuses as 2D)."""
    import SimpleITK as sitk

    from .io import volume_from_sitk

    try:
        return volume_from_sitk(sitk.ReadImage(str(path)))
    except RuntimeError as exc:
        raise MRSynthError(f"cannot read the case image ({str(exc).strip().splitlines()[-1][:120]})", str(path)) from None


# --- building -----------------------------------------------------------------------------------------
def find_images(paths: Sequence[str | os.PathLike], include: str = "*") -> list[Path]:
    """Files as given, and the image files under folders (recursively, names matching ``include``, hidden
    files left out); a folder without image files but with DICOM-like files (``.dcm``, ``.ima``, no
    extension) is one DICOM series."""
    found: list[Path] = []
    for p in map(Path, paths):
        if not p.exists():
            raise MRSynthError("file not found", str(p))
        if not p.is_dir():
            found.append(p)
            continue
        inside = sorted(f for f in p.rglob("*") if f.is_file() and f.name.lower().endswith(IMAGE_EXTENSIONS)
                        and fnmatch.fnmatch(f.name, include)
                        and not any(part.startswith(".") for part in f.relative_to(p).parts))
        dicom = any(f.is_file() and not f.name.startswith(".") and f.suffix.lower() in (".dcm", ".ima", "")
                    for f in p.iterdir())
        found.extend(inside or ([p] if dicom else []))
    return found


def brain_mask(array: np.ndarray) -> np.ndarray:
    """The project's brain mask of one volume (:func:`MRSynthLib.preprocess.derive_mask`)."""
    from .preprocess import derive_mask

    return derive_mask([array])


def blind_array(array: np.ndarray, mask: np.ndarray, name: str) -> np.ndarray:
    """The intensity rule (:data:`INTENSITY_RULE`), the same for every case of either class."""
    from .preprocess import robust_scale

    scaled = np.clip(array.astype(np.float64), 0, None) * (SCALE / robust_scale(array, mask, name))
    scaled[~mask] = 0
    return np.rint(np.clip(scaled, 0, np.iinfo(np.int16).max)).astype(np.int16)


def window_level(array: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """(window, level) by :data:`WL_RULE`."""
    low, high = np.percentile(array[mask], WL_PERCENTILES)
    high = max(float(high), float(low) + 1.0)
    return high - float(low), (high + float(low)) / 2


def axial_slices(mask_canonical: np.ndarray, n: int) -> list[int]:
    """Axial indices of :data:`SLICE_RULE` in a canonical [S, P, L] mask (distinct; fewer for a thin brain)."""
    area = mask_canonical.reshape(mask_canonical.shape[0], -1).sum(axis=1)
    inside = np.flatnonzero(area >= 0.1 * area.max())
    lo, hi = int(inside[0]), int(inside[-1])
    picks = [int(round(lo + (hi - lo) * (i + 1) / (n + 1))) for i in range(n)]
    return sorted(set(picks))


@dataclass(frozen=True)
class _Entry:
    """One case before shuffling: what the key and cases.json need (its image is already on disk)."""

    truth: str
    source: Path
    slice: int | None
    window: float
    level: float


def _cases_of(path: Path, slices: int | None):
    """(slice index or None, blinded image, window, level) for each case one source volume gives."""
    from .io import read_volume
    from .orientation import canonical_volume

    vol = read_volume(path)
    mask = brain_mask(vol.array)
    blinded = blind_array(vol.array, mask, str(path))
    window, level = window_level(blinded, mask)
    clean = Volume(blinded, vol.spacing, vol.origin, vol.direction)  # geometry only: no metadata at all
    if slices is None:
        yield None, clean, window, level
        return
    canon = canonical_volume(clean)
    canon_mask = canonical_volume(Volume(mask.astype(np.uint8), vol.spacing, vol.origin, vol.direction)).array
    for k in axial_slices(canon_mask, slices):
        origin = np.asarray(canon.origin) + canon.direction[:, 2] * canon.spacing[2] * k
        yield k, Volume(np.ascontiguousarray(canon.array[k:k + 1]), canon.spacing, tuple(origin), canon.direction), \
            window, level


def _check_out(out: Path, force: bool, key: Path | None) -> None:
    if out.exists() and not out.is_dir():
        raise MRSynthError("study path is a file; give a folder", str(out))
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise MRSynthError("study folder exists and is not empty; pass --force to replace it", str(out))
        if not (out / "cases.json").is_file():
            raise MRSynthError("folder is not a reader study; --force only replaces a study", str(out))
    if not out.parent.is_dir():
        raise MRSynthError("parent folder does not exist", str(out.parent))
    if not os.access(out.parent, os.W_OK | os.X_OK):
        raise MRSynthError("parent folder is not writable (permission denied)", str(out.parent))
    if key is not None:
        if key.resolve().is_relative_to(out.resolve()):
            raise MRSynthError("--key must lie outside the study (the default key/ folder is inside it)", str(key))
        if key.exists() and not force:
            raise MRSynthError("key file exists; pass --force to replace it", str(key))
        if not key.parent.is_dir():
            raise MRSynthError("key folder does not exist", str(key.parent))


def _orders(cases: list[str], readers: Sequence[str], rng: np.random.Generator) -> dict[str, list[str]]:
    """Each named reader gets their own permutation, so order effects do not line up across readers."""
    return {r: [cases[i] for i in rng.permutation(len(cases))] for r in readers}


def _csv(rows: list[dict]) -> bytes:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=KEY_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue().encode("utf-8")


@dataclass(frozen=True)
class BuildResult:
    study: Path
    key: Path
    cases: int
    counts: dict[str, int]  # class → cases
    volumes: dict[str, int]  # class → source volumes

    def summary(self) -> str:
        per = ", ".join(f"{self.counts[c]} {c} (from {self.volumes[c]} volume{'s' * (self.volumes[c] != 1)})"
                        for c in CLASSES)
        return f"reader study of {self.cases} cases: {per}; key: {self.key} (do not give it to the readers)"


def build_study(real: Sequence[str | os.PathLike], synthetic: Sequence[str | os.PathLike], out: str | os.PathLike,
                slices: int | None = None, seed: int = 0, readers: Sequence[str] = (), key: str | os.PathLike | None = None,
                force: bool = False, include: str = "*",
                progress: Callable[[int, int, str], None] | None = None) -> BuildResult:
    """Build ``out`` (see the module's docstring). Every check that needs no image comes before anything is
    written; an image found unreadable later takes the temp folder with it."""
    out, key_path = Path(out), Path(key) if key is not None else None
    if slices is not None and slices < 1:
        raise MRSynthError(f"--slices must be at least 1, got {slices}")
    readers = [check_reader_name(r) for r in readers]
    if len(set(readers)) != len(readers):
        raise MRSynthError(f"a reader is named twice in {', '.join(readers)}")
    sources = {"real": find_images(real, include), "synthetic": find_images(synthetic, include)}
    for c, given in (("real", real), ("synthetic", synthetic)):
        if not sources[c]:
            raise MRSynthError(f"nothing to build: no {c} images in {', '.join(map(str, given)) or '(none given)'} "
                               f"(image files{'' if include == '*' else f' matching {include!r}'}; a study needs both "
                               "classes)")
    both = {p.resolve() for p in sources["real"]} & {p.resolve() for p in sources["synthetic"]}
    if both:
        raise MRSynthError("given as both real and synthetic", str(sorted(both)[0]))
    _check_out(out, force, key_path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        key_rows, entries = _make(tmp, sources, slices, seed, readers, progress)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _put_in_place(tmp, out, _csv(key_rows), key_path)
    counts = {c: sum(e.truth == c for e in entries) for c in CLASSES}
    return BuildResult(out, key_path or out / "key" / "key.csv", len(entries), counts,
                       {c: len(sources[c]) for c in CLASSES})


def _make(tmp: Path, sources: dict[str, list[Path]], slices: int | None, seed: int, readers: list[str],
          progress: Callable[[int, int, str], None] | None) -> tuple[list[dict], list[_Entry]]:
    """The study's files in ``tmp``: each case written as soon as it is made (one volume in memory at a time,
    whatever the cohort's size) under a provisional name, renamed to its shuffled neutral name at the end."""
    from .io import write_volume

    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes it owner-only: readers could not open the study
    for sub in ("cases", "ratings"):
        (tmp / sub).mkdir()
    entries: list[_Entry] = []
    total, done = sum(len(v) for v in sources.values()), 0
    for c in CLASSES:
        for p in sources[c]:
            if progress is not None:
                progress(done, total, p.name)
            for k, image, window, level in _cases_of(p, slices):
                write_volume(image, tmp / "cases" / f".unshuffled-{len(entries)}.nii.gz")
                entries.append(_Entry(c, p, k, window, level))
            done += 1
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(entries))
    width = max(3, len(str(len(entries))))
    names = [f"case-{i + 1:0{width}d}" for i in range(len(entries))]
    for name, i in zip(names, order, strict=True):
        os.replace(tmp / "cases" / f".unshuffled-{i}.nii.gz", tmp / "cases" / f"{name}.nii.gz")
    shuffled = [entries[i] for i in order]
    key_rows = [{"case": n, "truth": e.truth, "source": str(e.source.resolve()),
                 "slice": "" if e.slice is None else e.slice} for n, e in zip(names, shuffled, strict=True)]
    study_id = hashlib.sha256(json.dumps([seed, key_rows], sort_keys=True).encode()).hexdigest()[:16]
    for row in key_rows:
        row["study_id"] = study_id
    doc = {"format": FORMAT, "study_id": study_id, "mode": "volume" if slices is None else "slice",
           "slices_per_volume": slices, "intensity_rule": INTENSITY_RULE, "window_level_rule": WL_RULE,
           "slice_rule": SLICE_RULE if slices else None, "calls": list(CLASSES),
           "scores": "quality and confidence 1 (worst/least) to 5 (best/most)",
           "cases": [{"case": n, "file": f"cases/{n}.nii.gz", "window": round(e.window, 3),
                      "level": round(e.level, 3)} for n, e in zip(names, shuffled, strict=True)],
           "readers": readers, "orders": _orders(names, readers, rng)}
    (tmp / "cases.json").write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    return key_rows, entries


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _put_in_place(tmp: Path, out: Path, key_csv: bytes, key_path: Path | None) -> None:
    """Rename the finished ``tmp`` to ``out`` (an old study moved aside first, removed once the new one is in);
    an outside key is written beside its place first and moved there right after the study. Anything failing
    removes what this build made and puts the old study back."""
    key_tmp, old, placed = None, None, False
    try:
        if key_path is None:
            (tmp / "key").mkdir()
            (tmp / "key" / "key.csv").write_bytes(key_csv)
        else:
            fd, key_tmp = tempfile.mkstemp(prefix=f".{key_path.name}.", suffix=".tmp", dir=key_path.parent)
            with os.fdopen(fd, "wb") as f:
                f.write(key_csv)
            os.chmod(key_tmp, 0o666 & ~_umask())
        if out.exists():  # --force (checked) or an empty folder
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
            os.replace(out, old / "study")
        os.replace(tmp, out)
        placed = True
        if key_tmp is not None:
            os.replace(key_tmp, key_path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if key_tmp is not None and os.path.exists(key_tmp):
            os.unlink(key_tmp)
        if placed:  # the new study went in but its key did not: take it out again
            shutil.rmtree(out, ignore_errors=True)
        if old is not None and not out.exists():
            os.replace(old / "study", out)
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
