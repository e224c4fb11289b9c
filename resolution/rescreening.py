"""Re-screening when a sanctions list changes, and remembered screening decisions (issue 16).

* A list's manifest (:func:`list_manifest`) maps each entry key to its content hash; :func:`diff_lists`
  compares the manifest of the list last screened against (kept by
  :mod:`c360.connectors.watchlist_manifest`) with the list just loaded: entries added, changed, removed.
* :func:`rescreen` screens subjects only against the added and changed entries (a subject whose name
  changed, :func:`needs_full_screening`, against the whole list) and returns the hits that alert.
* :func:`apply_decisions` applies officers' decisions: a false positive suppresses a hit on the same entry
  only while the entry's content hash is the one decided on; an amended entry alerts again. A confirmed
  match never suppresses (:func:`findings` marks it for the risk rules). For each entry the latest decision
  (by ``decided_at``) is the one that counts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Final, Protocol

from c360.graph.errors import InvalidInputError
from c360.graph.watchlist import KINDS, Watchlist

from .kyc_conditions import ScreeningFinding
from .screening import Hit, Screener
from .screening_names import normalise

#: The decisions an officer can make on a hit.
DECISIONS: Final = ("false_positive", "confirmed_match")


class ScreeningDecisionLike(Protocol):
    """An officer's decision on a hit, as the store keeps it (``c360.graph.kyc.ScreeningDecision`` is one)."""

    @property
    def list_name(self) -> str:
        """The list of the entry (``ofac_sdn``, ``un_consolidated``)."""

    @property
    def entry_key(self) -> str:
        """The entry's key, ``list_name:entry_id``."""

    @property
    def content_hash(self) -> str:
        """The entry's content hash when the decision was made."""

    @property
    def decision(self) -> str:
        """``false_positive`` or ``confirmed_match``."""

    @property
    def decided_at(self) -> datetime:
        """When it was decided (the latest decision on an entry counts)."""


@dataclass(frozen=True, slots=True)
class ListDiff:
    """Entry keys of a list added, changed (content hash differs) and removed since the last manifest."""

    added: tuple[str, ...]
    changed: tuple[str, ...]
    removed: tuple[str, ...]

    @property
    def to_screen(self) -> tuple[str, ...]:
        """The entries subjects must be screened against again: added, then changed."""
        return self.added + self.changed


@dataclass(frozen=True, slots=True)
class Subject:
    """Someone to re-screen: an id (customer or application), names, date of birth, nationality.

    ``nationality`` is a country name as the lists write it (screening evidence); ``previous_names``, when
    given, are the names last screened: a new name among ``names`` means screening against the whole list.
    """

    id: str
    names: tuple[str, ...]
    dob: date | None = None
    nationality: str | None = None
    previous_names: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id.strip():
            raise InvalidInputError(f"a subject needs an id, not {self.id!r}")
        for what, names in (("names", self.names), ("previous_names", self.previous_names or ())):
            if isinstance(names, str) or not all(isinstance(n, str) and n.strip() for n in names):
                raise InvalidInputError(f"subject {self.id}: {what} must be a tuple of non-empty strings")
        if not self.names:
            raise InvalidInputError(f"subject {self.id}: give at least one name")
        if self.dob is not None and (not isinstance(self.dob, date) or isinstance(self.dob, datetime)):
            raise InvalidInputError(f"subject {self.id}: dob must be a date or None")
        object.__setattr__(self, "names", tuple(self.names))
        if self.previous_names is not None:
            object.__setattr__(self, "previous_names", tuple(self.previous_names))


@dataclass(frozen=True, slots=True)
class Rescreened:
    """A subject with hits that alert after a list change (none suppressed), best first."""

    subject_id: str
    new_hits: tuple[Hit, ...]


def list_manifest(watchlist: Watchlist) -> dict[str, str]:
    """Entry key -> content hash of every entry of ``watchlist``, in the list's order."""
    if not isinstance(watchlist, Watchlist):
        raise InvalidInputError(f"a manifest is made of a Watchlist, not {type(watchlist).__name__}")
    return {e.key: e.content_hash() for e in watchlist.entries}


def _of_list(keys: Iterable[str], list_name: str, what: str) -> None:
    stranger = next((k for k in keys if not (isinstance(k, str) and k.startswith(f"{list_name}:"))), None)
    if stranger is not None:
        raise InvalidInputError(f"{what} holds {stranger!r}, which is not an entry of the list {list_name}")


def diff_lists(old: Mapping[str, str], new: Watchlist) -> ListDiff:
    """What changed from the manifest ``old`` (of the same list; empty: all is new) to the list ``new``."""
    if not isinstance(old, Mapping):
        raise InvalidInputError(f"the old manifest must be a mapping, not {type(old).__name__}")
    current = list_manifest(new)
    _of_list(old, new.name, "the old manifest")
    return ListDiff(
        added=tuple(k for k in current if k not in old),
        changed=tuple(k for k, h in current.items() if k in old and old[k] != h),
        removed=tuple(sorted(k for k in old if k not in current)),
    )


def _name_key(name: str) -> tuple[str, ...]:
    return tuple(sorted(normalise(name).split()))


def needs_full_screening(old_names: Iterable[str], new_names: Iterable[str]) -> bool:
    """Whether a subject whose names were ``old_names`` must be screened against whole lists again.

    True when a name among ``new_names`` was not among the old ones, compared as screening compares them
    (case, accents, punctuation and word order aside); dropping a name needs no screening.
    """
    old = {_name_key(n) for n in old_names}
    return any(_name_key(n) not in old for n in new_names)


def _latest(decisions: Sequence[ScreeningDecisionLike]) -> dict[str, ScreeningDecisionLike]:
    """The latest decision per entry key (the later of equal times: the sequence's order)."""
    latest: dict[str, ScreeningDecisionLike] = {}
    for d in decisions:
        if d.decision not in DECISIONS:
            raise InvalidInputError(
                f"unknown screening decision {d.decision!r}: expected one of {', '.join(DECISIONS)}"
            )
        if not d.entry_key.startswith(f"{d.list_name}:"):
            raise InvalidInputError(f"a decision on {d.entry_key!r} names the list {d.list_name!r}")
        if d.entry_key not in latest or d.decided_at >= latest[d.entry_key].decided_at:
            latest[d.entry_key] = d
    return latest


def _state(latest: Mapping[str, ScreeningDecisionLike], entry_key: str, content_hash: str) -> tuple[bool, bool]:
    d = latest.get(entry_key)
    if d is None:
        return False, False
    return d.decision == "false_positive" and d.content_hash == content_hash, d.decision == "confirmed_match"


def hit_state(entry_key: str, content_hash: str, decisions: Sequence[ScreeningDecisionLike]) -> tuple[bool, bool]:
    """``(suppressed, confirmed)`` of a hit recorded as its entry key and content hash, by the latest decision."""
    return _state(_latest(decisions), entry_key, content_hash)


def _states(hits: Iterable[Hit], decisions: Sequence[ScreeningDecisionLike]) -> list[tuple[Hit, bool, bool]]:
    latest = _latest(decisions)
    return [(hit, *_state(latest, hit.entry_key, hit.entry.content_hash())) for hit in hits]


def apply_decisions(hits: Iterable[Hit], decisions: Sequence[ScreeningDecisionLike]) -> list[tuple[Hit, bool]]:
    """Each hit with whether a false positive on its entry's current content suppresses it."""
    return [(hit, suppressed) for hit, suppressed, _ in _states(hits, decisions)]


def findings(hits: Iterable[Hit], decisions: Sequence[ScreeningDecisionLike]) -> list[ScreeningFinding]:
    """The hits as risk facts: suppressed by a false positive on the current content, or confirmed."""
    return [ScreeningFinding.from_hit(h, suppressed=s, confirmed=c) for h, s, c in _states(hits, decisions)]


class _DiffScreener(Screener):
    """A screener over a few entries that weighs tokens as the full screener does, so its scores are the full one's.

    A screener weighs a token by its rarity among the entries it indexes; over only the changed entries every
    token would look rare, and a name would score differently than on the whole list.
    """

    def __init__(self, watchlists: Iterable[Watchlist], reference: Screener) -> None:
        super().__init__(watchlists, reference.config)
        self._reference = reference

    def weight(self, token: str) -> float:
        """The token's weight in the full screener."""
        return self._reference.weight(token)


def rescreen(
    screener: Screener,
    subjects: Iterable[Subject],
    watchlist: Watchlist,
    diff: ListDiff,
    decisions: Mapping[str, Sequence[ScreeningDecisionLike]],
    *,
    kinds: Sequence[str] = ("individual",),
) -> list[Rescreened]:
    """Screen ``subjects`` against what ``diff`` says changed in ``watchlist``; the subjects with hits that alert.

    ``screener`` is the screener over the current lists (``watchlist`` among them): its configuration and
    token weights are used for an index of only the added and changed entries, so a hit scores as it would
    on the whole list. A subject whose names changed (``previous_names``, :func:`needs_full_screening`) is
    screened against all of ``watchlist``. ``decisions`` are each subject's (by id), applied as
    :func:`apply_decisions` does; suppressed hits are left out, and so are subjects without a hit.
    """
    if not isinstance(screener, Screener) or not isinstance(watchlist, Watchlist):
        raise InvalidInputError("rescreen needs the current Screener and the new Watchlist")
    if isinstance(kinds, str) or not kinds or any(k not in KINDS for k in kinds):
        raise InvalidInputError(f"kinds must be a non-empty list of {', '.join(KINDS)}, not {kinds!r}")
    _of_list(diff.added + diff.changed + diff.removed, watchlist.name, "the diff")
    wanted = set(diff.to_screen)
    changed = [e for e in watchlist.entries if e.key in wanted]
    if len(changed) != len(wanted):
        raise InvalidInputError(f"the diff names entries that the list {watchlist.name} does not hold")
    held = {e.key: e for e in screener.entries if e.key in wanted}
    stale = next((e.key for e in changed if e.key not in held or held[e.key].content_hash() != e.content_hash()), None)
    if stale is not None:
        raise InvalidInputError(f"the screener does not hold the current {stale}: build it over the new list")
    partial = _DiffScreener([Watchlist(watchlist.name, watchlist.as_of, tuple(changed))], screener) if changed else None
    out: list[Rescreened] = []
    for subject in subjects:
        if not isinstance(subject, Subject):
            raise InvalidInputError(f"subjects must be Subject items, not {type(subject).__name__}")
        full = subject.previous_names is not None and needs_full_screening(subject.previous_names, subject.names)
        source = screener if full else partial
        if source is None:
            continue
        best: dict[str, Hit] = {}
        for name in subject.names:
            for hit in source.screen(name, date_of_birth=subject.dob, nationality=subject.nationality, kinds=kinds):
                if hit.entry.list_name == watchlist.name and (
                    hit.entry_key not in best or hit.score > best[hit.entry_key].score
                ):
                    best[hit.entry_key] = hit
        ordered = sorted(best.values(), key=lambda h: (-h.score, h.entry_key))
        marked = apply_decisions(ordered, decisions.get(subject.id, ()))
        alerts = tuple(hit for hit, suppressed in marked if not suppressed)
        if alerts:
            out.append(Rescreened(subject.id, alerts))
    return out
