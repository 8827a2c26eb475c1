"""Acquisition sites of the real subjects, for validation grouped by site (generalization to a new scanner).

A site is what a model has to generalize across: the scanner, protocol and preprocessing of one source.
Folders of ``../shared/data/real`` are named ``<source>-<site>-<case>`` (``BraTS18-CBICA-AAB``) or
``<source>-<case>`` (``TCGA-DU-7294``, ``Kirby21-113``); the rules below map each to its site group.
BraTS 2018's TCIA cases come from three TCIA institutions with few cases each: they form one group
(``BraTS18-TCIA``) so that each fold holds out several subjects. Other names fall back to the text
before the first ``-`` (a BIDS ``sub-01`` is its own site: nothing better can be known from a name)."""

from __future__ import annotations

import re

SITE_RULES: tuple[tuple[str, str], ...] = (
    (r"^BraTS\d*-CBICA-", "BraTS18-CBICA"),
    (r"^BraTS\d*-TCIA\d*-", "BraTS18-TCIA"),
    (r"^TCGA-", "TCGA"),
    (r"^Kirby21-", "Kirby21"),
)


# Where each site's data come from, its licence and what to cite (from ../shared/data/real/README.md); the
# model card names them for every real training subject.
SITE_SOURCES: dict[str, dict[str, str]] = {
    "TCGA": {"source": "TCIA TCGA-LGG (BraTS Toolkit example)", "license": "CC BY 3.0",
             "cite": "Clark et al., J Digit Imaging 2013; the TCGA-LGG collection"},
    "BraTS18-CBICA": {"source": "BraTS 2018 training data, site CBICA", "license": "BraTS data terms (cite)",
                      "cite": "Menze et al., IEEE TMI 2015; Bakas et al., Sci Data 2017 / arXiv:1811.02629"},
    "BraTS18-TCIA": {"source": "BraTS 2018 training data, TCIA sites", "license": "CC BY 3.0 (TCIA)",
                     "cite": "Menze et al., IEEE TMI 2015; Bakas et al., Sci Data 2017 / arXiv:1811.02629"},
    "Kirby21": {"source": "Kirby21 reproducibility study, 3 T healthy volunteer", "license": "Kirby21 data terms (cite)",
                "cite": "Landman et al., NeuroImage 2011"},
}


def subject_sources(subjects: list[str]) -> list[dict[str, str]]:
    """Name, site, source, licence and citation of each real training subject (unknown sites say so)."""
    unknown = {"source": "unknown", "license": "unknown", "cite": "unknown"}
    return [{"name": s, "site": site_of(s), **SITE_SOURCES.get(site_of(s), unknown)} for s in subjects]


def site_of(subject: str) -> str:
    """The site group of a subject folder name (see the module docstring)."""
    for pattern, site in SITE_RULES:
        if re.match(pattern, subject):
            return site
    return subject.split("-")[0] if "-" in subject and not subject.startswith("sub-") else subject


def group_by_site(subjects: list[str]) -> dict[str, list[str]]:
    """Site → its subjects, sites and subjects sorted (the folds of a site-grouped cross-validation)."""
    out: dict[str, list[str]] = {}
    for s in sorted(subjects):
        out.setdefault(site_of(s), []).append(s)
    return dict(sorted(out.items()))
