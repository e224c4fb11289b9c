"""Name normalisation, phonetic keys and token similarity for watchlist screening.

A name becomes tokens: transliterated to ASCII (``anyascii``: Cyrillic, Arabic, Greek, accents), case-folded,
apostrophes dropped, other punctuation a space, titles (Mr, Dr, Col...) removed. Particles (``al``, ``bin``, ``de``...)
and company forms (``ltd``, ``s.a.``) are *minor*: kept for display, never required to match nor counted
as evidence. Token similarity is c360's Jaro-Winkler (:mod:`c360.resolution.similarity`), with initials.
"""

from __future__ import annotations

import re
from collections import Counter
from functools import lru_cache

from anyascii import anyascii

from .similarity import jaro_winkler

#: Titles dropped from every name. Religious and honorific words common in listed names themselves
#: (haji, sheikh, mullah, sayyid, maulavi) stay tokens: their rarity weight keeps them cheap.
HONORIFICS = frozenset(
    "mr mrs ms miss mx dr prof sir dame lord lady rev col colonel gen maj capt lt brig admiral jr sr".split()  # noqa: SIM905
)
PARTICLES = frozenset(
    [
        "al",
        "el",
        "ul",
        "ad",
        "ar",
        "as",
        "at",
        "az",
        "bin",
        "ibn",
        "bint",
        "ben",
        "de",
        "da",
        "del",
        "della",
        "der",
        "di",
        "du",
        "la",
        "le",
        "van",
        "von",
        "dos",
        "das",
    ]
)
COMPANY_FORMS = frozenset(
    [
        "ltd",
        "llc",
        "inc",
        "co",
        "corp",
        "sa",
        "sas",
        "srl",
        "gmbh",
        "ag",
        "bv",
        "nv",
        "cv",
        "plc",
        "jsc",
        "ojsc",
        "cjsc",
        "pjsc",
        "oao",
        "zao",
        "ooo",
        "company",
        "limited",
        "the",
        "of",
        "and",
    ]
)
_NON_ALNUM = re.compile(r"[^a-z0-9]+")


def normalise(name: str) -> str:
    """ASCII, case-folded, punctuation as single spaces ("AL-TIKRITI, Abid" -> "al tikriti abid")."""
    text = anyascii(name).casefold().replace("'", "").replace("`", "")
    return _NON_ALNUM.sub(" ", text).strip()


def tokens(name: str, *, entity: bool = False) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The name's (major, minor) tokens, honorifics left out; ``entity`` also makes company forms minor."""
    major: list[str] = []
    minor: list[str] = []
    for t in normalise(name).split():
        if t in HONORIFICS:
            continue
        if t in PARTICLES or (entity and t in COMPANY_FORMS):
            minor.append(t)
        else:
            major.append(t)
    if not major and minor:  # a name made only of particles keeps them
        major, minor = minor, []
    return tuple(major), tuple(minor)


_SOUNDEX = {
    c: d
    for d, letters in {"1": "bfpv", "2": "cgjkqsxz", "3": "dt", "4": "l", "5": "mn", "6": "r"}.items()
    for c in letters
}


@lru_cache(maxsize=65536)
def phonetic_key(token: str) -> str:
    """American Soundex of a token ("muhammad" and "mohamed" -> "m530"); digits stay as they are."""
    if not token or not token[0].isalpha():
        return token
    out = [token[0]]
    last = _SOUNDEX.get(token[0], "")
    for c in token[1:]:
        code = _SOUNDEX.get(c, "")
        if code and code != last:
            out.append(code)
        if c not in "hw":  # h and w do not separate equal codes; vowels do
            last = code
    return ("".join(out) + "000")[:4]


@lru_cache(maxsize=65536)
def _letters(token: str) -> Counter[str]:
    return Counter(token)


def jaro_winkler_bound(a: str, b: str) -> float:
    """An upper bound of ``jaro_winkler(a, b)`` from the letters the two share, cheaper than computing it."""
    ca, cb = _letters(a), _letters(b)
    m = sum(min(n, cb[c]) for c, n in ca.items() if c in cb)
    if m == 0:
        return 0.0
    jaro = (m / len(a) + m / len(b) + 1.0) / 3.0
    return jaro + 0.4 * (1.0 - jaro)  # the largest Winkler prefix bonus


def token_similarity(query: str, entry: str, initial: float, floor: float = 0.0) -> tuple[float, str]:
    """Similarity of two normalised tokens in [0, 1] and how it was found (``exact``, ``initial``, ``jaro_winkler``).

    A one-letter token against a longer one starting with it scores ``initial``; two single letters
    score 1 when equal. A pair that surely scores below ``floor`` is 0 without computing it.
    """
    if query == entry:
        return 1.0, "exact"
    if len(query) == 1 or len(entry) == 1:
        if query[0] == entry[0]:
            return initial, "initial"
        return 0.0, "initial"
    if floor and jaro_winkler_bound(query, entry) < floor:
        return 0.0, "jaro_winkler"
    return jaro_winkler(query, entry), "jaro_winkler"
