"""Real-time probabilistic matching for one ingest batch.

Candidates come from the blocking keys kept in the store (one query per batch) and from the batch's
own records planned so far; each is scored by the trained model's :class:`Scorer`. Splink is never
called here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from c360.graph.models import Evidence, SourceRecord, source_of
from c360.graph.store import GraphStore

from .blocking import blocking_keys
from .config import LinkingConfig, RealtimeConfig, link_threshold
from .features import features, pack_view, unpack_view
from .scorer import APPROVED_NOTE, Score, Scorer


@dataclass(frozen=True, slots=True)
class Match:
    """A customer the new record matches, through its best-scoring record."""

    customer_id: str
    record_uid: str
    score: Score
    approved: bool = False  # linked because stewards approved every pair of its pattern

    def evidence(self, record: str | None = None) -> Evidence:
        """The evidence of this match, as links and merges keep it."""
        s = self.score
        note = f"match weight {s.match_weight:+.2f}, probability {s.match_probability:.6f}"
        if self.approved:
            note += f"; {APPROVED_NOTE}"
        return Evidence("probabilistic", (), record=record or self.record_uid, note=note)


class BatchMatcher:
    """Scores the records of one batch against stored and already planned records."""

    def __init__(
        self,
        scorer: Scorer,
        config: RealtimeConfig,
        store: GraphStore,
        linking: LinkingConfig,
        records: Sequence[SourceRecord],
    ) -> None:
        self.scorer = scorer
        self.config = config
        self.linking = linking
        self.region = linking.default_region
        # Pairs below the lower threshold are dropped, so the scorer may stop early under its weight.
        self._floor = -math.inf if config.lower >= 1 else math.log2(config.lower / (1 - config.lower))
        self._views: dict[str, dict[str, Any]] = {}
        self._keys: dict[str, tuple[str, ...]] = {}
        self._customer: dict[str, str] = {}
        self._index: dict[str, set[str]] = {}
        # The batch's own records: comparison view and keys, computed once (keyed by object: a batch may
        # hold two versions of one record).
        self._batch: dict[int, tuple[dict[str, Any], tuple[str, ...]]] = {}
        self._batch = {id(r): self._view(r) for r in records}
        self._store = store
        self._uids = [r.uid for r in records]
        self._loaded = False  # stored candidates are read when the first record needs the model

    def _load(self) -> None:
        """Read the stored candidates of every key of the batch, and the pairs stewards rejected."""
        self._loaded = True
        self._wanted = {k for _, keys in self._batch.values() for k in keys}
        # Pairs a steward said are not the same are never matched again.
        self._rejected = self._store.rejected_pairs(self._uids)
        self._read(self._wanted)

    def extend(self, record: SourceRecord) -> None:
        """Read the stored candidates of the keys of ``record`` (not one of the batch's) the batch did not read."""
        if not self._loaded:
            self._load()
        keys = set(self._view(record)[1]) - self._wanted
        if keys:
            self._wanted |= keys
            self._read(keys)

    def _read(self, keys: set[str]) -> None:
        for c in self._store.candidates(keys, self.config.per_key):
            if c.uid in self._views:  # a record planned in this batch is newer than its stored version
                continue
            if c.view is not None:
                view = unpack_view(c.view, c.uid)
            elif c.record is not None:  # filed before views were kept
                view = features(c.record, self.region)
            else:
                continue
            self._file(c.uid, view, c.keys, None)

    def _view(self, record: SourceRecord) -> tuple[dict[str, Any], tuple[str, ...]]:
        cached = self._batch.get(id(record))
        if cached is not None:
            return cached
        view = features(record, self.region)
        return view, blocking_keys(view, self.scorer.spec)

    def _file(self, uid: str, view: dict[str, Any], keys: tuple[str, ...], customer_id: str | None) -> None:
        for key in self._keys.get(uid, ()):
            self._index.get(key, set()).discard(uid)
        self._views[uid] = view
        self._keys[uid] = keys
        if customer_id is not None:
            self._customer[uid] = customer_id
        for key in keys:
            self._index.setdefault(key, set()).add(uid)

    def keys_of(self, record: SourceRecord) -> tuple[str, ...]:
        """The blocking keys the store keeps for ``record``."""
        return self._view(record)[1]

    def packed_view(self, record: SourceRecord) -> str:
        """The comparison view the store files with ``record``'s blocking keys."""
        return pack_view(self._view(record)[0])

    def matches(self, record: SourceRecord, find: Callable[[str], str]) -> tuple[list[Match], Match | None]:
        """Return the customers the model links ``record`` to, best first, and else the best candidate to review.

        A customer links when one of its records reaches the pair's threshold (:func:`link_threshold`)
        or has a pattern stewards approved every time (:class:`Verdicts`); with no link, the best
        candidate below its threshold (and from the lower one) is returned for review, unless stewards
        rejected its pattern every time.
        """
        if not self._loaded:
            self._load()
        view, keys = self._view(record)
        alone = record.source in self.linking.one_record_per_person
        seen: set[str] = set()
        scored: list[tuple[str, Score]] = []
        for key in keys:
            for uid in self._index.get(key, ()):
                if uid == record.uid or uid in seen or frozenset((uid, record.uid)) in self._rejected:
                    continue
                if alone and source_of(uid) == record.source:  # never one person: not even a question
                    continue
                seen.add(uid)
                score = self.scorer.score_at_least(view, self._views[uid], self._floor)
                if score is not None and score.match_probability >= self.config.lower:
                    scored.append((uid, score))
        # Stored candidates come without their customer: read it for the few that scored.
        unknown = [uid for uid, _ in scored if uid not in self._customer]
        if unknown:
            found = self._store.lookup(unknown, ()).records
            self._customer.update({uid: r.customer_id for uid, r in found.items()})
        best: dict[str, Match] = {}
        review: Match | None = None
        for uid, score in scored:
            if uid not in self._customer:
                continue
            verdict = self.scorer.verdicts.of(score)  # stewards decided every pair of this pattern alike
            if verdict is False:
                continue
            match = Match(find(self._customer[uid]), uid, score, approved=bool(verdict))
            if not verdict and score.match_probability < link_threshold(
                self.linking, self.config, record.source, source_of(uid)
            ):
                if review is None or (score.match_weight, uid) > (review.score.match_weight, review.record_uid):
                    review = match
            elif match.customer_id not in best or score.match_weight > best[match.customer_id].score.match_weight:
                best[match.customer_id] = match
        links = sorted(best.values(), key=lambda m: (-m.score.match_weight, m.customer_id))
        return links, None if links else review

    def planned(self, record: SourceRecord, customer_id: str) -> None:
        """Make a planned record a candidate for the rest of the batch."""
        self._file(record.uid, *self._view(record), customer_id)

    def moved(self, record_uid: str, customer_id: str) -> None:
        """Record ``record_uid`` (stored or planned) now belongs to ``customer_id`` for the rest of the batch."""
        self._customer[record_uid] = customer_id

    def score_records(self, left: SourceRecord, right: SourceRecord) -> Score:
        """Score two records with the batch's model (the batch's own views are reused)."""
        return self.scorer.score(self._comparison_view(left), self._comparison_view(right))

    def _comparison_view(self, record: SourceRecord) -> dict[str, Any]:
        cached = self._batch.get(id(record))
        return cached[0] if cached is not None else features(record, self.region)
