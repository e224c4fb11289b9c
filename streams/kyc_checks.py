"""The automated KYC checks: what runs when an application is submitted, and its risk once it is verified.

At submission: the PAN's format, holder type and surname letter, the external PAN service (its answer or,
when it cannot answer, a manual-review verification), the entered name and date of birth against the
customer's golden record, the Aadhaar check digit when one was read from a document, and sanctions
screening of the name (with the date of birth and nationality as evidence). A hit that a steward marked a
false positive stays quiet while the listed entry's content is unchanged. The risk comes from the
configured rules (:mod:`~c360.resolution.kyc_risk`) over all of that.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from c360.connectors.pan_service import PanVerifier, verify_pan
from c360.graph.kyc import Application, ScreeningDecision
from c360.graph.store import GraphStore
from c360.graph.vault import VaultKeys
from c360.graph.verification import Verification
from c360.resolution.identity_checks import (
    check_aadhaar,
    check_dob,
    check_name,
    check_pan_format,
    check_pan_holder,
    check_pan_surname,
)
from c360.resolution.kyc_risk import RiskAssessment, RiskFacts, RiskRules, ScreeningFinding, assess
from c360.resolution.rescreening import apply_decisions
from c360.resolution.screening import Hit, Screener

from .kyc_config import KycWorkflowConfig
from .kyc_events import vault_owner

BY = "c360.kyc"


@dataclass(frozen=True, slots=True)
class Submission:
    """What the checks at submission found: the verifications, the screening event's data, hits to review."""

    verifications: list[Verification]
    screened: dict[str, Any]
    review: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Risk:
    """A risk assessment as the application records it."""

    assessment: RiskAssessment

    @property
    def needs_edd(self) -> bool:
        """High risk: enhanced due diligence."""
        return self.assessment.needs_edd

    @property
    def reasons(self) -> tuple[str, ...]:
        """Why, rule by rule."""
        return self.assessment.reasons

    def event_data(self) -> dict[str, Any]:
        """The ``risk_assessed`` event's data."""
        a = self.assessment
        return {
            "score": a.score,
            "category": a.category,
            "reasons": list(a.reasons),
            "rekyc_due": a.rekyc_due.isoformat(),
        }


def _age(born: date | None, today: date) -> int | None:
    if born is None:
        return None
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


class KycChecks:
    """Runs the automated checks; ``screener`` is made on first use (loading the lists takes seconds)."""

    def __init__(
        self,
        store: GraphStore,
        *,
        vault: VaultKeys,
        rules: RiskRules,
        screener: Callable[[], Screener] | None = None,
        pan_service: PanVerifier | None = None,
        config: KycWorkflowConfig | None = None,
    ) -> None:
        self.store = store
        self.vault = vault
        self.rules = rules
        self._screener_factory = screener
        self._screener: Screener | None = None
        self.pan_service = pan_service
        self.config = config or KycWorkflowConfig()

    def screener(self) -> Screener | None:
        """The screener (None: no list configured, screening is left to an officer)."""
        if self._screener is None and self._screener_factory is not None:
            self._screener = self._screener_factory()
        return self._screener

    # -- at submission --------------------------------------------------------------------------------

    def at_submission(self, app: Application, *, pan: str | None, at: datetime) -> Submission:
        """Every automated check of ``app`` (whose PAN, from the vault, is ``pan``) at ``at``."""
        subject = app.id
        entered = app.entered
        given, surname = split_full_name(str(entered.get("full_name", "")))
        born = date.fromisoformat(entered["date_of_birth"]) if entered.get("date_of_birth") else None
        found: list[Verification] = []
        if pan is not None:
            found.append(check_pan_format(pan, subject=subject, at=at, by=BY))
            found.append(check_pan_holder(pan, "individual", subject=subject, at=at, by=BY))
            found.append(check_pan_surname(pan, surname, subject=subject, at=at, by=BY))
            if self.pan_service is not None and born is not None:
                found.append(verify_pan(self.pan_service, pan, str(entered["full_name"]), born, subject=subject, at=at))
        profile = self.store.get_profile(app.customer_id)
        if profile is not None:
            golden = profile.customer.golden
            found.append(check_name(given, surname, golden, subject=subject, at=at, source="applicant", by=BY))
            if born is not None:
                found.append(check_dob(born, golden, subject=subject, at=at, source="applicant", by=BY))
        aadhaar = self.store.get_secret(vault_owner(app.id), "aadhaar")
        if aadhaar is not None:
            found.append(check_aadhaar(self.vault.open_item(aadhaar), subject=subject, at=at, by=BY))
        screened, review = self.screen(app, str(entered.get("full_name", "")), born, entered.get("nationality"))
        return Submission(found, screened, review)

    def screen(
        self, app: Application, name: str, born: date | None, nationality: str | None
    ) -> tuple[dict[str, Any], list[str]]:
        """The ``screened`` event's data for ``name``, and the entry keys of hits an officer must review."""
        screener = self.screener()
        if screener is None or not name.strip():
            return {"hits": [], "screened_names": []}, []
        hits = screener.screen(name, date_of_birth=born, nationality=nationality)
        decisions = self.store.screening_decisions(app.customer_id)
        marked = apply_decisions(hits, decisions)
        rows = [_hit_json(hit, suppressed) for hit, suppressed in marked]
        review = [
            h.entry_key for h, suppressed in marked if not suppressed and h.score >= self.config.screening_review_from
        ]
        return {"hits": rows, "screened_names": [name]}, review

    def remember(
        self, app: Application, entry_key: str, outcome: str, *, actor: str, reason: str, at: datetime
    ) -> None:
        """Keep an officer's decision on a hit against the entry's content (a false positive stays quiet)."""
        hit = next((h for h in reversed(app.screening_hits) if h.entry_key == entry_key), None)
        if hit is not None:
            list_name, content_hash = hit.list_name, hit.content_hash
        else:  # a hit of a re-screening: the entry as the current lists hold it
            screener = self.screener()
            entry = next((e for e in screener.entries if e.key == entry_key), None) if screener else None
            if entry is None:
                return
            list_name, content_hash = entry.list_name, entry.content_hash()
        decision = ScreeningDecision(
            subject=app.customer_id,
            list_name=list_name,
            entry_key=entry_key,
            content_hash=content_hash,
            decision=outcome,
            decided_by=actor,
            decided_at=at,
            reason=reason,
        )
        self.store.put_screening_decisions([decision])

    # -- risk -------------------------------------------------------------------------------------------

    def assess(self, app: Application, *, today: date) -> Risk:
        """The risk of ``app`` by the configured rules."""
        entered = app.entered
        born = date.fromisoformat(entered["date_of_birth"]) if entered.get("date_of_birth") else None
        decisions = {(d.entry_key, d.content_hash): d.decision for d in self.store.screening_decisions(app.customer_id)}
        findings = [
            ScreeningFinding(
                list_name=h.list_name,
                entry_key=h.entry_key,
                score=h.score,
                suppressed=h.suppressed or decisions.get((h.entry_key, h.content_hash)) == "false_positive",
                confirmed=decisions.get((h.entry_key, h.content_hash)) == "confirmed_match",
            )
            for h in app.screening_hits
        ]
        facts = RiskFacts(
            verifications=tuple(app.verifications),
            screening=tuple(findings),
            pep=entered.get("pep") == "yes",
            product=app.product,
            amount=Decimal(app.amount),
            currency=app.currency,
            age_years=_age(born, today),
            country=_country(entered.get("nationality")),
            document_types=frozenset(d.doc_type for d in app.latest_documents() if d.purged_at is None),
        )
        return Risk(assess(self.rules, facts, today=today))


def _country(nationality: object) -> str | None:
    """An ISO 3166 alpha-2 code the applicant gave as nationality (a country name is screening evidence only)."""
    text = str(nationality or "").strip()
    return text.upper() if len(text) == 2 and text.isalpha() else None


def split_full_name(full_name: str) -> tuple[str | None, str | None]:
    """Given names and surname of a full name as written ("Ravi Kumar Sharma" -> "Ravi Kumar", "Sharma")."""
    parts = full_name.split()
    if not parts:
        return None, None
    if len(parts) == 1:
        return None, parts[0]
    return " ".join(parts[:-1]), parts[-1]


def _hit_json(hit: Hit, suppressed: bool) -> dict[str, Any]:
    return {
        "list_name": hit.entry.list_name,
        "entry_key": hit.entry_key,
        "content_hash": hit.entry.content_hash(),
        "score": round(hit.score, 4),
        "suppressed": suppressed,
    }


def pan_checks_passed(found: Sequence[Verification]) -> bool:
    """Whether the PAN is verified: a valid format and the PAN service's confirmation."""
    results = {v.check: v.result for v in found}
    return results.get("pan_format") == "pass" and results.get("pan_service") == "pass"
