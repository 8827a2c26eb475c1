"""One contrast vocabulary (T1, T1Gd, T2, PD, FLAIR) with the aliases people use.

Detection from file and node names understands BraTS names (t1n, t1c, t2w, t2f),
BIDS suffixes (_T1w, _T2w, _FLAIR, _PDw, ce-gadolinium) and plain words.
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


def canonical(name: str) -> str:
    """Return the canonical contrast for ``name`` or raise a one-line error."""
    key = re.sub(r"[^a-z0-9]", "", name.lower())
    if key in _ALIASES:
        return _ALIASES[key]
    raise MRSynthError(f"unknown contrast '{name}' (known: {', '.join(CONTRASTS)} and aliases such as t1c, t2f)")


def index(name: str) -> int:
    """Channel index of a contrast in every model tensor."""
    return CONTRASTS.index(canonical(name))


def detect(name: str) -> str | None:
    """Guess the contrast from a file or node name; ``None`` when nothing matches.

    Gadolinium markers win over plain T1, FLAIR over T2, so ``sub-01_ce-gadolinium_T1w`` is T1Gd
    and ``BraTS_t2f`` is FLAIR.
    """
    base = name.split("/")[-1].split("\\")[-1]
    base = re.sub(r"\.(nii\.gz|nii|nrrd|nhdr|mha|mhd|dcm)$", "", base, flags=re.IGNORECASE)
    low = base.lower()
    if re.search(r"ce-(gadolinium|gd)|t1[-_ ]?(c|ce|gd|post|contrast)\b|\bgd\b|gadolinium", low):
        return "T1Gd"
    tokens = [t for t in re.split(r"[^a-z0-9]+", low) if t]
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
