"""One reader's pass through a reader study: the next unrated case, and ratings kept as they are given.

``ReaderSession(study, reader)`` knows only what a reader may know (``cases.json``: neutral names, the
window/level of each case), never the key. Each :meth:`ReaderSession.record` rewrites
``ratings/<reader>.csv`` atomically (a temp file, fsync, rename), so a crash or a closed laptop loses at
most the rating being given; reopening the session skips every case already rated (pause and resume are
nothing more). The file is re-read before each write, so two windows of one reader do not undo each other.
"""

from __future__ import annotations

import csv
import io
import numbers
import os
import tempfile
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from .errors import MRSynthError
from .reader_study import CLASSES, Study, check_reader_name, load_study, read_case
from .volume import Volume

RATING_FIELDS = ("case", "call", "quality", "confidence", "comment", "rated_at")
SCORE_RANGE = (1, 5)
MAX_COMMENT = 2000


@dataclass(frozen=True)
class Rating:
    """One reader's judgement of one case: real or synthetic, image quality and confidence in the call
    (1 = worst / least sure … 5 = best / surest), an optional comment, and when (UTC)."""

    case: str
    call: str
    quality: int
    confidence: int
    comment: str = ""
    rated_at: str = ""


def _score(value, what: str) -> int:
    lo, hi = SCORE_RANGE
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not lo <= value <= hi:
        raise MRSynthError(f"{what} must be a whole number from {lo} to {hi}, got {value!r}")
    return int(value)


def check_rating(case: str, call: str, quality, confidence, comment: str = "") -> Rating:
    """A :class:`Rating` from what a reader entered, or one line saying what is wrong with it."""
    if call not in CLASSES:
        raise MRSynthError(f"call must be 'real' or 'synthetic', got {call!r}" + (" (choose one)" if not call else ""))
    if not isinstance(comment, str):
        raise MRSynthError(f"comment must be text, got {type(comment).__name__}")
    comment = " ".join(comment.split())  # one line in the CSV, whatever was typed or pasted
    if len(comment) > MAX_COMMENT:
        raise MRSynthError(f"comment is {len(comment)} characters long; at most {MAX_COMMENT}")
    return Rating(case, call, _score(quality, "quality"), _score(confidence, "confidence"), comment)


def read_ratings(path: str | os.PathLike, cases: tuple[str, ...] | None = None) -> dict[str, Rating]:
    """case → rating of one ratings file (empty when there is none); a damaged file is refused naming the
    file and the line, never half-read."""
    p = Path(path)
    if not p.exists():
        return {}
    out: dict[str, Rating] = {}
    with open(p, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if tuple(reader.fieldnames or ()) != RATING_FIELDS:
            raise MRSynthError(f"not a ratings file (columns {reader.fieldnames}, expected {list(RATING_FIELDS)})",
                               str(p))
        for row in reader:
            try:
                rating = check_rating(row["case"], row["call"], int(row["quality"]), int(row["confidence"]),
                                      row["comment"] or "")
            except (MRSynthError, ValueError, TypeError) as exc:
                raise MRSynthError(f"line {reader.line_num}: {exc}", str(p)) from None
            if cases is not None and rating.case not in cases:
                raise MRSynthError(f"line {reader.line_num}: case {rating.case!r} is not in this study", str(p))
            if rating.case in out:
                raise MRSynthError(f"line {reader.line_num}: case {rating.case!r} is rated twice", str(p))
            out[rating.case] = Rating(**{**asdict(rating), "rated_at": row["rated_at"]})
    return out


def write_ratings(ratings: list[Rating], path: Path) -> None:
    """The whole file, atomically and durably: temp file beside it, fsync, rename."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(RATING_FIELDS)
    for r in ratings:
        writer.writerow([getattr(r, f) for f in RATING_FIELDS])
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(buf.getvalue())
            f.flush()
            os.fsync(f.fileno())
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


class ReaderSession:
    """One reader in one study (the Python API; the Slicer panel and the console use it too)::

        s = ReaderSession("STUDY", "alice")
        while (case := s.next_case()) is not None:
            image = s.load(case)            # a Volume; s.window_level(case) is how to show it
            s.record(case, call="synthetic", quality=3, confidence=4, comment="too smooth")
    """

    def __init__(self, study: str | os.PathLike | Study, reader: str) -> None:
        self.study = study if isinstance(study, Study) else load_study(study)
        self.reader = check_reader_name(reader)
        if self.study.readers and reader not in self.study.readers:
            raise MRSynthError(f"reader {reader!r} is not one of this study's readers ({', '.join(self.study.readers)})",
                               str(self.study.root))
        self.path = self.study.root / "ratings" / f"{reader}.csv"
        self.ratings = read_ratings(self.path, self.study.cases)

    @property
    def cases(self) -> tuple[str, ...]:
        """This reader's reading order."""
        return self.study.order(self.reader)

    @property
    def progress(self) -> tuple[int, int]:
        """(cases rated, cases in the study)."""
        return len(self.ratings), len(self.cases)

    @property
    def done(self) -> bool:
        return self.next_case() is None

    def next_case(self) -> str | None:
        """The first case of the reader's order not rated yet; None when all are."""
        return next((c for c in self.cases if c not in self.ratings), None)

    def window_level(self, case: str) -> tuple[float, float]:
        """(window, level) to show ``case`` with: the study's rule, the same for every case."""
        self._check_case(case)
        return self.study.window_level[case]

    def load(self, case: str) -> Volume:
        """The case's image, as blinded (no metadata)."""
        self._check_case(case)
        return read_case(self.study.case_file(case))

    def record(self, case: str, call: str, quality: int, confidence: int, comment: str = "") -> Rating:
        """Check the rating, then add it to the reader's file (atomically); a case is rated once."""
        self._check_case(case)
        rating = check_rating(case, call, quality, confidence, comment)
        self.ratings = read_ratings(self.path, self.study.cases)  # another window of this reader may have written
        if case in self.ratings:
            raise MRSynthError(f"{case} is already rated by {self.reader} ({self.ratings[case].call}); "
                               "a case is rated once")
        stamped = Rating(**{**asdict(rating), "rated_at": datetime.now(timezone.utc).isoformat(timespec="seconds")})
        self.path.parent.mkdir(exist_ok=True)
        write_ratings([*self.ratings.values(), stamped], self.path)
        self.ratings = {**self.ratings, case: stamped}
        return stamped

    def _check_case(self, case: str) -> None:
        if case not in self.study.window_level:
            raise MRSynthError(f"no case {case!r} in this study", str(self.study.root))
