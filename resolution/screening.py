"""Watchlist screening of person (and, when asked, entity) names, with explainable scores (issue 16).

:class:`Screener` indexes every name and alias of the given lists once, by normalised token and by
phonetic key (Soundex), so a query is compared only with names that share a key with it. A comparison:

1. pairs the query's tokens with the listed name's tokens order-independently: the most similar pair
   first (Jaro-Winkler from :mod:`c360.resolution.similarity`, exact, or an initial), each token used
   once; a pair counts when its similarity reaches ``token_match`` (a weak pair, from ``token_partial``,
   adds to the score only);
2. scores the name: how much of the query is covered (weighted by how rare each token is on the lists,
   so "Mohammed" weighs less than a rare surname), blended with how much of the listed name is covered
   (a dropped middle name costs a little, an extra unknown query token much more);
3. adjusts by evidence: a weak alias, the date of birth (same day, within the listed year or range,
   near, far apart) and the nationality (same, different, unknown);
4. decides by rule: at least ``min_matched_tokens`` pairs, at least one of them a full token (not an
   initial), and the score at or above ``threshold``. A one-token listed name (a weak one-token alias
   never) hits only a query that is exactly that one token. So a common first name alone never hits.

Every :class:`Hit` carries an :class:`Explanation` that says all of this in numbers. Hits carry the entry
(its ``key`` and ``content_hash()``) so a later step can keep confirmed false positives and re-screen
only when an entry changed.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from c360.graph.errors import InvalidInputError
from c360.graph.watchlist import KINDS, Alias, DateOfBirth, ListEntry, Watchlist
from pydantic import BaseModel, ConfigDict, Field, model_validator

from .screening_names import normalise, phonetic_key, token_similarity, tokens


class ScreeningConfig(BaseModel):
    """How names are compared and when a comparison is a hit.

    ``threshold`` and ``token_match`` were chosen on the tuning half of ``benchmarks/screening.py`` only
    (seed 16) and measured on its held-out half; the evidence weights are set by hand, not tuned.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    threshold: float = Field(default=0.88, ge=0, le=1, description="Lowest final score that makes a hit.")
    token_match: float = Field(
        default=0.85, gt=0, le=1, description="Lowest token similarity (Jaro-Winkler) for two tokens to pair."
    )
    token_partial: float = Field(
        default=0.75,
        gt=0,
        le=1,
        description="Lowest similarity for a weak pair: it adds to the score but does not count as paired.",
    )
    initial_similarity: float = Field(
        default=0.9, ge=0, le=1, description="Similarity of an initial ('J') to a token it begins ('john')."
    )
    min_matched_tokens: int = Field(
        default=2, ge=1, le=5, description="Fewest paired tokens for a hit (a one-token listed name aside)."
    )
    entry_coverage_weight: float = Field(
        default=0.3,
        ge=0,
        le=1,
        description="Share of the name score from covering the listed name (the rest: covering the query).",
    )
    low_quality_factor: float = Field(
        default=0.92, ge=0, le=1, description="Factor on the name score of an alias the list marks as weak."
    )
    dob_same_date: float = Field(default=0.05, ge=0, le=1, description="Added when a listed birth date is the day.")
    dob_same_year: float = Field(
        default=0.02, ge=0, le=1, description="Added when the date lies in a listed year, month or range."
    )
    dob_near_years: float = Field(
        default=2, ge=0, le=50, description="Years from a listed date still 'near' (no change; 'circa' adds one)."
    )
    dob_far_penalty: float = Field(
        default=0.15, ge=0, le=1, description="Subtracted when every listed date of birth is farther than near."
    )
    nationality_same: float = Field(default=0.02, ge=0, le=1, description="Added when the nationality is listed.")
    nationality_different: float = Field(
        default=0.05, ge=0, le=1, description="Subtracted when the entry lists nationalities and not this one."
    )

    @model_validator(mode="after")
    def _partial_below_match(self) -> ScreeningConfig:
        if self.token_partial > self.token_match:
            raise ValueError("token_partial must not exceed token_match")
        return self

    max_candidates: int = Field(
        default=400, ge=1, description="Most listed names compared per query (those sharing the rarest keys)."
    )


@dataclass(frozen=True, slots=True)
class TokenPair:
    """A query token paired with a listed token, their similarity and how it was found."""

    query: str
    entry: str
    similarity: float
    method: str


@dataclass(frozen=True, slots=True)
class Adjustment:
    """One piece of evidence beside the name, what was found and the score change ``delta``.

    ``evidence`` is alias_quality, date_of_birth or nationality; ``finding`` e.g. same_date, far, different.
    """

    evidence: str
    finding: str
    delta: float
    detail: str


@dataclass(frozen=True, slots=True)
class Explanation:
    """Why a listed name scored what it did, for a compliance officer to read."""

    query: str
    pairs: tuple[TokenPair, ...]
    unmatched_query: tuple[str, ...]
    unmatched_entry: tuple[str, ...]
    query_coverage: float
    entry_coverage: float
    name_score: float
    adjustments: tuple[Adjustment, ...]
    rule: str

    def text(self) -> str:
        """The explanation as a few lines of text."""
        lines = [f"query {self.query!r}"]
        lines += [f"  {p.query} ~ {p.entry}: {p.similarity:.3f} ({p.method})" for p in self.pairs]
        if self.unmatched_query:
            lines.append(f"  query tokens without a pair: {', '.join(self.unmatched_query)}")
        if self.unmatched_entry:
            lines.append(f"  listed tokens without a pair: {', '.join(self.unmatched_entry)}")
        lines.append(
            f"  name score {self.name_score:.3f} (query covered {self.query_coverage:.3f}, "
            f"listed name covered {self.entry_coverage:.3f})"
        )
        lines += [f"  {a.evidence} {a.finding}: {a.delta:+.3f} ({a.detail})" for a in self.adjustments]
        lines.append(f"  {self.rule}")
        return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class Hit:
    """A listed entry the query matched: which of its names (``alias`` None: the primary name), the score."""

    entry: ListEntry
    matched_name: str
    alias: Alias | None
    score: float
    explanation: Explanation

    @property
    def entry_key(self) -> str:
        """``list_name:entry_id`` of the entry."""
        return self.entry.key


@dataclass(frozen=True, slots=True)
class _Name:
    entry: int
    text: str
    alias: Alias | None
    major: tuple[str, ...]
    minor: tuple[str, ...]


def _keys(token: str) -> tuple[str, ...]:
    if len(token) < 2:
        return ()
    return (f"t:{token}", f"p:{phonetic_key(token)}")


class Screener:
    """An in-memory index of watchlist names, built once, that screens names against it."""

    def __init__(self, watchlists: Iterable[Watchlist], config: ScreeningConfig | None = None) -> None:
        self.config = config or ScreeningConfig()
        self.entries: list[ListEntry] = []
        self._names: list[_Name] = []
        self._index: dict[str, list[int]] = defaultdict(list)
        df: Counter[str] = Counter()
        for wl in watchlists:
            for entry in wl.entries:
                i = len(self.entries)
                self.entries.append(entry)
                seen: set[str] = set()
                entity = entry.kind != "individual"
                for text, alias in [(entry.name, None), *((a.name, a) for a in entry.aliases)]:
                    major, minor = tokens(text, entity=entity)
                    if not major:
                        continue
                    n = len(self._names)
                    self._names.append(_Name(i, text, alias, major, minor))
                    for key in {k for t in major for k in _keys(t)}:
                        self._index[key].append(n)
                    seen.update(major)
                df.update(seen)
        count = max(len(self.entries), 1)
        self._df = df
        self._max_weight = 1.0 + math.log(count + 1)
        self._count = count

    def __len__(self) -> int:
        return len(self.entries)

    def weight(self, token: str) -> float:
        """How informative a token is: 1 + ln((entries + 1) / (entries holding it + 1))."""
        return 1.0 + math.log((self._count + 1) / (self._df.get(token, 0) + 1))

    def screen(
        self,
        name: str,
        *,
        date_of_birth: date | None = None,
        nationality: str | None = None,
        kinds: Sequence[str] = ("individual",),
        threshold: float | None = None,
    ) -> list[Hit]:
        """Hits for ``name`` among entries of ``kinds``, best first, one per entry.

        ``threshold`` overrides the configured one for this call (the benchmark sweeps it).
        """
        if not isinstance(name, str) or not name.strip():
            raise InvalidInputError("the name to screen must be a non-empty string")
        if isinstance(date_of_birth, datetime) or (date_of_birth is not None and not isinstance(date_of_birth, date)):
            raise InvalidInputError(f"date_of_birth must be a date, not {type(date_of_birth).__name__}")
        if nationality is not None and (not isinstance(nationality, str) or not normalise(nationality)):
            raise InvalidInputError("nationality must be a country name, or None")
        if isinstance(kinds, str) or not kinds or any(k not in KINDS for k in kinds):
            raise InvalidInputError(f"kinds must be a non-empty list of {', '.join(KINDS)}, not {kinds!r}")
        limit = self.config.threshold if threshold is None else threshold
        wanted = set(kinds)
        best: dict[int, Hit] = {}
        memo: dict[tuple[str, str], tuple[float, str]] = {}  # token pairs recur across candidates
        for entity in sorted({k != "individual" for k in wanted}):  # company forms are minor for entities
            q_tokens, _ = tokens(name, entity=entity)
            for n in self._candidates(q_tokens):
                cand = self._names[n]
                entry = self.entries[cand.entry]
                if entry.kind not in wanted or (entry.kind != "individual") != entity:
                    continue
                hit = self._compare(name, q_tokens, cand, entry, date_of_birth, nationality, limit, memo)
                if hit is not None and (cand.entry not in best or hit.score > best[cand.entry].score):
                    best[cand.entry] = hit
        return sorted(best.values(), key=lambda h: (-h.score, h.entry.key))

    def _candidates(self, q_tokens: tuple[str, ...]) -> list[int]:
        """Names sharing keys with enough query tokens to possibly make a hit, those sharing the rarest first."""
        shared: Counter[int] = Counter()
        weight: dict[int, float] = defaultdict(float)
        for t in set(q_tokens):
            w = self.weight(t)
            for n in {n for k in _keys(t) for n in self._index.get(k, ())}:
                shared[n] += 1
                weight[n] += w
        if len(q_tokens) == 1:  # only a one-token listed name can hit a one-token query
            return [n for n in shared if len(self._names[n].major) == 1]
        # A hit pairs >= 2 tokens, but a typo may hide one of them from the keys: long queries need two.
        keyed = sum(len(t) >= 2 for t in set(q_tokens))
        need = 1 if keyed <= 2 else 2
        found = [n for n, c in shared.items() if c >= need or len(self._names[n].major) == 1]
        found.sort(key=lambda n: -weight[n])
        return found[: self.config.max_candidates]

    def _compare(
        self,
        query: str,
        q_tokens: tuple[str, ...],
        cand: _Name,
        entry: ListEntry,
        dob: date | None,
        nationality: str | None,
        threshold: float,
        memo: dict[tuple[str, str], tuple[float, str]],
    ) -> Hit | None:
        cfg = self.config
        scored = []
        for qi, q in enumerate(q_tokens):
            for ei, e in enumerate(cand.major):
                found = memo.get((q, e))
                if found is None:
                    found = memo[q, e] = token_similarity(q, e, cfg.initial_similarity, cfg.token_partial)
                sim, method = found
                if sim >= cfg.token_partial or (method == "initial" and sim > 0):
                    scored.append((sim, len(e) == len(q), qi, ei, method))
        scored.sort(key=lambda s: (-s[0], not s[1], s[2], s[3]))
        used_q: set[int] = set()
        used_e: set[int] = set()
        pairs: list[TokenPair] = []
        got = 0.0
        for sim, _, qi, ei, method in scored:
            if qi in used_q or ei in used_e:
                continue
            used_q.add(qi)
            used_e.add(ei)
            pairs.append(TokenPair(q_tokens[qi], cand.major[ei], round(sim, 4), method))
            got += self.weight(cand.major[ei]) * sim
        if not pairs:
            return None
        paired_weight = sum(self.weight(p.entry) for p in pairs)
        lone_q = tuple(q for i, q in enumerate(q_tokens) if i not in used_q)
        lone_e = tuple(e for i, e in enumerate(cand.major) if i not in used_e)
        q_cov = got / (paired_weight + sum(self.weight(q) for q in lone_q))
        e_cov = got / sum(self.weight(e) for e in cand.major)
        name_score = (1 - cfg.entry_coverage_weight) * q_cov + cfg.entry_coverage_weight * e_cov
        adjustments = self._evidence(name_score, cand, entry, dob, nationality)
        score = min(1.0, max(0.0, name_score + sum(a.delta for a in adjustments)))
        strong = [p for p in pairs if p.similarity >= cfg.token_match or p.method == "initial"]
        full = sum(p.method != "initial" for p in strong)
        if len(cand.major) == 1:
            weak = cand.alias is not None and cand.alias.quality == "low"  # a nickname such as 'MANUEL'
            ok = len(q_tokens) == 1 and pairs[0].method == "exact" and not weak
            rule = "a one-token listed name (not a weak alias): the query must be exactly that token"
        else:
            ok = len(strong) >= cfg.min_matched_tokens and full >= 1
            rule = (
                f"{len(strong)} tokens paired at >= {cfg.token_match} ({full} full, {len(pairs) - len(strong)} weak "
                f"pairs besides), at least {cfg.min_matched_tokens} and 1 full needed"
            )
        if not ok or score < threshold:
            return None
        explanation = Explanation(
            query=query,
            pairs=tuple(pairs),
            unmatched_query=lone_q,
            unmatched_entry=lone_e,
            query_coverage=round(q_cov, 4),
            entry_coverage=round(e_cov, 4),
            name_score=round(name_score, 4),
            adjustments=adjustments,
            rule=f"hit: score {score:.3f} >= threshold {threshold:.3f}; {rule}",
        )
        return Hit(entry, cand.text, cand.alias, round(score, 4), explanation)

    def _evidence(
        self, name_score: float, cand: _Name, entry: ListEntry, dob: date | None, nationality: str | None
    ) -> tuple[Adjustment, ...]:
        cfg = self.config
        out: list[Adjustment] = []
        if cand.alias is not None and cand.alias.quality == "low":
            delta = name_score * (cfg.low_quality_factor - 1)
            out.append(Adjustment("alias_quality", "low", delta, f"the list marks the alias {cand.text!r} as weak"))
        if dob is not None:
            out.append(self._dob(dob, entry.dates_of_birth))
        if nationality is not None:
            out.append(self._nationality(nationality, entry.nationalities))
        return tuple(a for a in out if a.finding != "unknown" or a.delta)

    def _dob(self, dob: date, listed: tuple[DateOfBirth, ...]) -> Adjustment:
        cfg = self.config
        if not listed:
            return Adjustment("date_of_birth", "unknown", 0.0, "the entry lists no date of birth")
        rank = {"same_date": 3, "within": 2, "near": 1, "far": 0}
        best, best_text = "far", listed[0].text
        for d in listed:
            if d.precision == "day" and d.earliest == dob:
                finding = "same_date"
            elif d.earliest <= dob <= d.latest:
                finding = "within"
            else:
                gap = min(abs((dob - d.earliest).days), abs((dob - d.latest).days)) / 365.25
                finding = "near" if gap <= cfg.dob_near_years + (1 if d.circa else 0) else "far"
            if rank[finding] > rank[best]:
                best, best_text = finding, d.text
        delta = {"same_date": cfg.dob_same_date, "within": cfg.dob_same_year, "near": 0.0, "far": -cfg.dob_far_penalty}
        return Adjustment("date_of_birth", best, delta[best], f"{dob.isoformat()} against listed {best_text}")

    def _nationality(self, nationality: str, listed: tuple[str, ...]) -> Adjustment:
        cfg = self.config
        if not listed:
            return Adjustment("nationality", "unknown", 0.0, "the entry lists no nationality")
        q = f" {normalise(nationality)} "
        for n in listed:
            n_norm = f" {normalise(n)} "
            if q in n_norm or n_norm in q:
                return Adjustment("nationality", "same", cfg.nationality_same, f"{nationality} listed as {n}")
        shown = "; ".join(listed)
        return Adjustment("nationality", "different", -cfg.nationality_different, f"{nationality} against {shown}")
