"""A cohort on disk: which subjects there are, which contrasts each has, and where a synthetic one goes.

Three layouts are understood, each by its file names only (nothing is read here, so a bad request fails
in a moment):

- ``ours``:  ``ROOT/<subject>/<CONTRAST>.nii.gz`` (T1, T1Gd, T2, PD, FLAIR; other files such as
  ``tumour.nii.gz`` are not contrasts and are ignored);
- ``brats``: ``ROOT/<ID>/<ID>-t1n|t1c|t2w|t2f.nii.gz`` (BraTS 2023 / BraSyn naming; BraTS has no PD);
- ``brats2021``: ``ROOT/<ID>/<ID>_t1|t1ce|t2|flair.nii.gz`` (BraTS 2018–2021 naming, e.g.
  ``BraTS2021_00000_t1ce.nii.gz``);
- ``bids``:  ``ROOT/sub-*/[ses-*/]anat/*_{T1w,T2w,FLAIR,PDw}.nii.gz``; a ``ce-gadolinium`` T1w is T1Gd;
  one subject/session is one case. ``derivatives/`` and other top-level folders are not subjects.

Outputs keep the layout's own naming, so downstream tools (a BraTS segmenter, a BIDS app) find them where
they expect them: ``OUT/<subject>/<TARGET>.nii.gz``, ``OUT/<ID>/<ID>-<mod>.nii.gz`` (``<ID>_<mod>`` for
BraTS 2018–2021) and a BIDS-Derivatives
``OUT/sub-X/[ses-Y/]anat/sub-X[_ses-Y]_desc-synthetic_<suffix>.nii.gz``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .contrasts import CONTRASTS, detect
from .errors import MRSynthError

LAYOUTS = ("ours", "brats", "brats2021", "bids")
EXTENSIONS = (".nii.gz", ".nii")
BRATS_MODS: dict[str, str] = {"T1": "t1n", "T1Gd": "t1c", "T2": "t2w", "FLAIR": "t2f"}
BRATS2021_MODS: dict[str, str] = {"T1": "t1", "T1Gd": "t1ce", "T2": "t2", "FLAIR": "flair"}
BRATS_NAMING: dict[str, tuple[str, dict[str, str]]] = {"brats": ("-", BRATS_MODS), "brats2021": ("_", BRATS2021_MODS)}
"""BraTS layouts: the separator between the case ID and the modality, and the modality names."""
BIDS_SUFFIXES: dict[str, str] = {"T1": "T1w", "T1Gd": "T1w", "T2": "T2w", "PD": "PDw", "FLAIR": "FLAIR"}
BIDS_GADOLINIUM = "ce-gadolinium"
_BIDS_NAME = re.compile(r"^(sub-[A-Za-z0-9]+)((?:_[A-Za-z]+-[A-Za-z0-9]+)*)_(T1w|T2w|FLAIR|PDw)\.nii(?:\.gz)?$")


@dataclass(frozen=True)
class Case:
    """One subject (BIDS: one subject/session) and its acquired contrasts, by file name alone."""

    case_id: str  # the subject folder's name; BIDS: "sub-01" or "sub-01/ses-1"
    layout: str
    files: Mapping[str, Path]  # contrast → file, in CONTRASTS order
    entities: Mapping[str, str] = field(default_factory=dict)  # BIDS: {"sub": "01", "ses": "1"}
    problem: str | None = None  # a name problem (two files for one contrast): this case fails, not the batch


def layout_contrasts(layout: str) -> tuple[str, ...]:
    """The contrasts a layout has a name for (BraTS has no PD)."""
    return tuple(c for c in CONTRASTS if layout not in BRATS_NAMING or c in BRATS_NAMING[layout][1])


def _strip_ext(name: str) -> str | None:
    low = name.lower()
    return next((name[: -len(e)] for e in EXTENSIONS if low.endswith(e)), None)


def _case(case_id: str, layout: str, found: dict[str, list[Path]], entities: dict[str, str] | None = None) -> Case:
    """A case from contrast → candidate files; a contrast named by two files is a problem of this case
    (which scan is meant cannot be guessed), reported when it runs."""
    problem = None
    for contrast, paths in found.items():
        if len(paths) > 1:
            names = ", ".join(p.name for p in sorted(paths))
            problem = f"{contrast} is given by {len(paths)} files ({names}); keep one (move the others away)"
            break
    files = {c: sorted(found[c])[0] for c in CONTRASTS if c in found}
    return Case(case_id, layout, files, entities or {}, problem)


def _folders(root: Path) -> list[Path]:
    return [p for p in sorted(root.iterdir()) if p.is_dir() and not p.name.startswith(".")]


def _files(folder: Path) -> list[Path]:
    return [p for p in sorted(folder.iterdir()) if p.is_file() and not p.name.startswith(".")]


def discover_ours(root: Path) -> list[Case]:
    """``ROOT/<subject>/<CONTRAST>.nii[.gz]`` (contrast names in any letter case)."""
    names = {c.lower(): c for c in CONTRASTS}
    cases = []
    for folder in _folders(root):
        found: dict[str, list[Path]] = {}
        for f in _files(folder):
            stem = _strip_ext(f.name)
            if stem is not None and stem.lower() in names:
                found.setdefault(names[stem.lower()], []).append(f)
        if found:
            cases.append(_case(folder.name, "ours", found))
    return cases


def discover_brats(root: Path, layout: str = "brats") -> list[Case]:
    """``ROOT/<ID>/<ID>-<mod>.nii[.gz]`` (``brats2021``: ``<ID>_<mod>``); other files (``<ID>-seg.nii.gz``)
    are ignored."""
    sep, mods = BRATS_NAMING[layout]
    by_mod = {m: c for c, m in mods.items()}
    cases = []
    for folder in _folders(root):
        found: dict[str, list[Path]] = {}
        for f in _files(folder):
            stem = _strip_ext(f.name)
            if stem is None or not stem.startswith(folder.name + sep):
                continue
            mod = stem[len(folder.name) + 1:].lower()
            if mod in by_mod:
                found.setdefault(by_mod[mod], []).append(f)
        if found:
            cases.append(_case(folder.name, layout, found))
    return cases


def _bids_contrast(path: Path, subject: str, session: str | None) -> str | None:
    """The contrast of one anat file of this subject/session, or None for files that are not ours
    (T2starw, another subject's or session's file, JSON sidecars)."""
    m = _BIDS_NAME.match(path.name)
    if m is None or m.group(1) != subject:
        return None
    entities = dict(e.split("-", 1) for e in m.group(2).split("_") if e)
    if entities.get("ses") != (session.split("-", 1)[1] if session else None):
        return None
    found = detect(path.name)  # ce-gadolinium (and the project's other gadolinium markers) → T1Gd
    if m.group(3) == "T1w":
        return found if found in ("T1", "T1Gd") else "T1"
    return {"T2w": "T2", "PDw": "PD", "FLAIR": "FLAIR"}[m.group(3)]


def discover_bids(root: Path) -> list[Case]:
    """``ROOT/sub-*/[ses-*/]anat/``: one case per subject, or per session where there are sessions."""
    cases = []
    for sub in (f for f in _folders(root) if f.name.startswith("sub-")):
        sessions = [s for s in _folders(sub) if s.name.startswith("ses-")]
        for ses in sessions or [None]:
            anat = (ses or sub) / "anat"
            if not anat.is_dir():
                continue
            found: dict[str, list[Path]] = {}
            for f in _files(anat):
                contrast = _bids_contrast(f, sub.name, ses.name if ses else None)
                if contrast is not None:
                    found.setdefault(contrast, []).append(f)
            if found:
                entities = {"sub": sub.name[4:], **({"ses": ses.name[4:]} if ses else {})}
                case_id = f"{sub.name}/{ses.name}" if ses else sub.name
                cases.append(_case(case_id, "bids", found, entities))
    return cases


DISCOVER: dict[str, Callable[[Path], list[Case]]] = {
    "ours": discover_ours, "brats": discover_brats, "brats2021": lambda root: discover_brats(root, "brats2021"),
    "bids": discover_bids}


def discover(root: Path, layout: str = "auto") -> tuple[str, list[Case]]:
    """(layout, cases) under ``root``; ``auto`` takes the one layout that finds subjects and refuses
    a root where none or several do (saying which), rather than guess."""
    if not root.is_dir():
        raise MRSynthError("data root not found (a folder holding one folder per subject)", str(root))
    if layout != "auto" and layout not in LAYOUTS:
        raise MRSynthError(f"unknown layout '{layout}' (use auto, {', '.join(LAYOUTS)})")
    if layout != "auto":
        cases = DISCOVER[layout](root)
        if not cases:
            raise MRSynthError(f"no subjects found in the {layout} layout ({describe(layout)})", str(root))
        return layout, cases
    found = {name: cases for name, cases in ((n, DISCOVER[n](root)) for n in LAYOUTS) if cases}
    if not found:
        raise MRSynthError("no subjects found: expected " + "; or ".join(describe(n) for n in LAYOUTS), str(root))
    if len(found) > 1:
        counts = ", ".join(f"{len(c)} as {n}" for n, c in found.items())
        raise MRSynthError(f"ambiguous layout: subjects found in several layouts ({counts}); choose one with "
                           "--layout", str(root))
    (name, cases), = found.items()
    return name, cases


def describe(layout: str) -> str:
    """The layout's file names, for messages."""
    return {"ours": "<subject>/<CONTRAST>.nii.gz with CONTRAST in " + ", ".join(CONTRASTS),
            "brats": "<ID>/<ID>-t1n|t1c|t2w|t2f.nii.gz",
            "brats2021": "<ID>/<ID>_t1|t1ce|t2|flair.nii.gz",
            "bids": "sub-*/[ses-*/]anat/*_T1w|T2w|FLAIR|PDw.nii.gz"}[layout]


def output_path(case: Case, target: str, out: Path) -> Path:
    """Where the synthetic ``target`` of ``case`` goes under ``out``, in the case's layout's naming."""
    if case.layout == "ours":
        return out / case.case_id / f"{target}.nii.gz"
    if case.layout in BRATS_NAMING:
        sep, mods = BRATS_NAMING[case.layout]
        if target not in mods:
            raise MRSynthError(f"BraTS naming has no name for {target} (it knows {', '.join(mods)})")
        return out / case.case_id / f"{case.case_id}{sep}{mods[target]}.nii.gz"
    stem = f"sub-{case.entities['sub']}" + (f"_ses-{case.entities['ses']}" if "ses" in case.entities else "")
    ce = f"_{BIDS_GADOLINIUM}" if target == "T1Gd" else ""  # BIDS entity order: ses, …, ce, …, desc
    return out / case.case_id / "anat" / f"{stem}{ce}_desc-synthetic_{BIDS_SUFFIXES[target]}.nii.gz"


def sidecar_path(image: Path) -> Path:
    """A BIDS JSON sidecar beside an image (``x.nii.gz`` → ``x.json``)."""
    return image.with_name((_strip_ext(image.name) or image.stem) + ".json")
