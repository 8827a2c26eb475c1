"""One contrast vocabulary (T1, T1Gd, T2, PD, FLAIR) with the aliases people use.

Detection from file and node names understands BraTS names (t1n, t1c, t2w, t2f),
BIDS suffixes (_T1w, _T2w, _FLAIR, _PDw, ce-gadolinium) and plain words. T2* (T2-star) is a
different contrast from T2 and is refused, never mapped to T2.
"""

from __future__ import annotations

import re

from .errors import MRSynthError

CONTRASTS: tuple[str, ...] = ("T1", "T1Gd", "T2", "PD", "FLAIR")

GADOLINIUM_NOTE = ("Note: gadolinium enhancement cannot truly be synthesized from non-contrast images "
                   "(CollaGAN showed this): a synthetic T1Gd shows no real enhancement. Never use it to rule "
                   "enhancement in or out.")
"""Said wherever a T1Gd is synthesized: the panel, the CLI and the output node's description."""

_ALIASES: dict[str, str] = {
    "t1": "T1", "t1n": "T1", "t1w": "T1", "t1native": "T1", "mprage": "T1",
    "t1gd": "T1Gd", "t1c": "T1Gd", "t1ce": "T1Gd", "t1post": "T1Gd", "t1contrast": "T1Gd",
    "gd": "T1Gd", "cet1w": "T1Gd", "t1wgd": "T1Gd", "t1cegd": "T1Gd",
    "t2": "T2", "t2w": "T2", "t2tse": "T2",
    "pd": "PD", "pdw": "PD", "protondensity": "PD",
    "flair": "FLAIR", "t2f": "FLAIR", "t2flair": "FLAIR", "t2wflair": "FLAIR",
}


_CONTRAST_WORDS = {"gd", "gad", "gado", "gadolinium", "contrast", "c", "t1", "t1w"}
_PRE_WORDS = {"pregd", "pregad", "pregado", "precontrast", "t1pre", "t1wpre", "noncontrast", "nocontrast"}
_GADOLINIUM = re.compile(r"ce-(gadolinium|gd|gado\w*)|t1[-_ ]?(c|ce|gd|post|contrast)\b|\bgd\b|gadolinium")
_T2_STAR = re.compile(r"t2\s*\*|t2[-_ ]?star")
# BIDS anatomical suffixes (the last `_` token); T2starw is known but is not one of our contrasts
_BIDS_SUFFIXES: dict[str, str | None] = {"t1w": "T1", "t2w": "T2", "flair": "FLAIR", "pdw": "PD", "t2starw": None}


def _tokens(low: str) -> list[str]:
    return [t for t in re.split(r"[^a-z0-9]+", low) if t]


def _pre_contrast(low: str) -> bool:
    """'T1_pre_gd', 'pre-contrast T1', 't1pre': the scan *before* gadolinium, i.e. a plain T1
    ('pre' only counts next to a contrast word: 'pre_op_T1Gd' is still T1Gd)."""
    tokens = _tokens(low)
    if any(t in _PRE_WORDS for t in tokens):
        return True
    return any(t == "pre" and ({tokens[i - 1] if i else "", tokens[i + 1] if i + 1 < len(tokens) else ""}
                               & _CONTRAST_WORDS) for i, t in enumerate(tokens))


def _bids(low: str, strict: bool) -> str | None:
    """Contrast from BIDS-style ``key-value_…_suffix`` names: a known suffix wins (``acq-flair_T1w`` is
    T1); a ``ce-`` gadolinium entity makes a T1w (or a name of entities only) T1Gd. ``strict``
    (contrast names typed by a user): every other part must be a ``key-value`` entity."""
    parts = [q for q in low.split("_") if q]
    if not parts:
        return None
    *head, last = parts
    if strict and not all("-" in q for q in head):
        return None
    ce = [q.split("-", 1)[1] for q in parts if q.startswith("ce-")]
    gd = any(re.fullmatch(r"gadolinium|gd|gado\w*", v) for v in ce) or (
        not strict and bool(_GADOLINIUM.search("_".join(head))) and not _pre_contrast(low))
    if "-" in last:  # entities only: 'ce-gadolinium'
        return "T1Gd" if gd and all("-" in q for q in parts) else None
    if last not in _BIDS_SUFFIXES:
        return None
    contrast = _BIDS_SUFFIXES[last]
    return "T1Gd" if contrast == "T1" and gd else contrast


def canonical(name: str) -> str:
    """Return the canonical contrast for ``name`` or raise a one-line error."""
    low = name.strip().lower()
    if _T2_STAR.search(low):
        raise MRSynthError(f"'{name}' is T2* (T2-star), a different contrast from T2; not supported "
                           f"(known: {', '.join(CONTRASTS)})")
    key = re.sub(r"[^a-z0-9]", "", low)
    if key in _ALIASES:
        return _ALIASES[key]
    found = _bids(low, strict=True)
    if found is None and _pre_contrast(low) and key.startswith("t1"):
        found = "T1"
    if found is not None:
        return found
    raise MRSynthError(f"unknown contrast '{name}' (known: {', '.join(CONTRASTS)} and aliases such as t1c, t2f)")


def index(name: str) -> int:
    """Channel index of a contrast in every model tensor."""
    return CONTRASTS.index(canonical(name))


def detect(name: str) -> str | None:
    """Guess the contrast from a file or node name; ``None`` when nothing matches.

    A BIDS suffix (last ``_`` token) wins when it is a known one (``sub-01_acq-flair_T1w`` is T1); then
    pre-contrast markers mean T1 (``T1_pre_gd``), gadolinium markers T1Gd, FLAIR wins over T2, so
    ``sub-01_ce-gadolinium_T1w`` is T1Gd and ``BraTS_t2f`` is FLAIR. T2* names give ``None``.
    """
    base = name.split("/")[-1].split("\\")[-1]
    base = re.sub(r"\.(nii\.gz|nii|nrrd|nhdr|mha|mhd|dcm)$", "", base, flags=re.IGNORECASE)
    low = base.lower()
    if _T2_STAR.search(low):
        return None
    last = low.split("_")[-1].strip()
    if "_" in low and last in _BIDS_SUFFIXES:
        return _bids(low, strict=False)
    if _pre_contrast(low):
        return "T1"
    if _GADOLINIUM.search(low):
        return "T1Gd"
    tokens = _tokens(low)
    for token in reversed(tokens):  # BIDS puts the suffix last
        if token in ("flair", "t2f", "t2flair"):
            return "FLAIR"
    for token in reversed(tokens):
        if token in _ALIASES:
            return _ALIASES[token]
    squashed = re.sub(r"[^a-z0-9]", "", low)
    for alias in sorted(_ALIASES, key=len, reverse=True):
        if len(alias) >= 3 and squashed.endswith(alias):
            return _ALIASES[alias]
    return None


def contrast_of_file(path: str) -> str:
    """The contrast a file's name states, for ``--input FILE`` without ``CONTRAST=``: :func:`detect`, but
    refused (one line naming the file) when the name says nothing, or names two contrasts (``t1_t2``,
    ``pd_t2`` dual echo). A BIDS suffix decides alone; gadolinium markers make a T1 name T1Gd and a
    FLAIR name may say T2 (``t2_flair``) without being ambiguous."""
    found = detect(path)
    base = re.sub(r"\.(nii\.gz|nii|nrrd|nhdr|mha|mhd|dcm)$", "", path.split("/")[-1].split("\\")[-1],
                  flags=re.IGNORECASE).lower()
    bids = "_" in base and base.split("_")[-1] in _BIDS_SUFFIXES
    named = {_ALIASES[t] for t in _tokens(base) if t in _ALIASES}
    if "T1Gd" in named or found == "T1Gd":
        named.discard("T1")
    if "FLAIR" in named:
        named.discard("T2")
    if found is None or (not bids and len(named | {found}) > 1):
        said = f"it names {' and '.join(sorted(named | ({found} if found else set())))}" if named else "it names none"
        raise MRSynthError(f"cannot tell the contrast from the file name ({said}); give CONTRAST=PATH, e.g. "
                           f"--input T1={path}", path)
    return found


def synthetic_label(target: str, model: str) -> str:
    """The short label every synthetic file carries (NIfTI ``descrip`` holds 80 bytes)."""
    return f"SYNTHETIC {target} by MRSynth ({model}) - not an acquired image"


def synthetic_description(target: str, model: str, inputs: str) -> str:
    """The longer description a synthetic MRML node carries (shown in Slicer's Volumes module)."""
    return (f"SYNTHETIC {target} image computed by MRSynth (model {model}) from {inputs}. "
            "It is not an acquired image and must not be used as one for diagnosis.")
