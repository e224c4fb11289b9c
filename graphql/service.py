"""What every API service function needs: the store, the policy, the audit log, and their plumbing.

:class:`ProfileService` holds the dependencies and the shared steps (permission check and audit
around a unit of work, store calls off the event loop, masking by role). The service functions by
domain (:mod:`~c360.graphql.profiles_service`, :mod:`~c360.graphql.review_service`,
:mod:`~c360.graphql.events_service`) take it as ``service=`` and each authorises and audits itself;
GraphQL resolvers and REST routes call those functions, never the store. Every profile read and
every change leaves one audit entry (who, what, target, outcome).
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any, TypeVar

from c360.graph.consent import PURPOSES
from c360.graph.errors import C360Error, InvalidInputError, NotFoundError
from c360.graph.models import HistoryEvent, Profile
from c360.graph.store import GraphStore
from c360.resolution.config import LinkingConfig, SurvivorshipConfig
from c360.resolution.linker import CustomerIdFactory
from c360.resolution.scorer import Scorer

from .audit import AuditLog, mark_audited
from .policy import Policy
from .principal import ForbiddenError, Principal

if TYPE_CHECKING:
    from c360.graph.case_desk import CaseDesk
    from c360.graph.consent_ledger import ReceiptIssuer
    from c360.streams.kyc_desk import KycDesk

    from .ml_service import LensSource

T = TypeVar("T")

#: which field's rule masks an identifier of each kind
IDENTIFIER_FIELD = {
    "email": "email",
    "phone": "phone",
    "national_id": "national_id",
    "customer_number": "customer_number",
}
#: most items one page may hold
MAX_PAGE = 100
#: largest offset an offset cursor may stand for (a larger one is not one of ours)
MAX_OFFSET = 1_000_000


def encode_cursor(value: str) -> str:
    """An opaque cursor."""
    return base64.urlsafe_b64encode(value.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    """The value of an opaque cursor; BAD_USER_INPUT when it is not one of ours."""
    try:
        value = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        raise InvalidInputError(f"not a valid cursor: {cursor!r}") from None
    if not value:
        raise InvalidInputError(f"not a valid cursor: {cursor!r}")
    return value


def decode_offset(cursor: str | None) -> int:
    """The offset an offset cursor (search results, the review queue) stands for; 0 without one."""
    if cursor is None:
        return 0
    value = decode_cursor(cursor)
    if not (value.isascii() and value.isdigit()) or len(value) > 7 or int(value) > MAX_OFFSET:  # "²" is a digit
        raise InvalidInputError(f"not a valid cursor: {cursor[:40]!r}")
    return int(value)


def check_first(first: int) -> int:
    """A page size within 1..MAX_PAGE."""
    if not 1 <= first <= MAX_PAGE:
        raise InvalidInputError(f"first must be between 1 and {MAX_PAGE}")
    return first


@dataclass(slots=True)
class ProfileService:
    """Reads and changes profiles on behalf of a principal."""

    store: GraphStore
    policy: Policy
    audit: AuditLog
    linking: LinkingConfig = field(default_factory=LinkingConfig)
    survivorship: SurvivorshipConfig = field(default_factory=SurvivorshipConfig)
    scorer: Callable[[], Scorer | None] = lambda: None
    today: Callable[[], date] = date.today
    new_id: Callable[[], str] = field(default_factory=CustomerIdFactory)
    #: run store reads on the event loop (for the embedded store; a network store keeps them in threads)
    inline_reads: bool = False
    #: what consent receipts are signed with (None: the API cannot record consent)
    receipts: ReceiptIssuer | None = None
    #: the purposes consent may be recorded for (``consent.purposes``)
    consent_purposes: tuple[str, ...] = PURPOSES
    #: opens and changes cases (None: the API serves no cases)
    cases: CaseDesk | None = None
    #: loan applications' KYC workflow (None: the API serves no KYC)
    kyc: KycDesk | None = None
    #: where lens queries read, with which model (None: the API serves no lens)
    lens: LensSource | None = None

    # -- plumbing -----------------------------------------------------------------------------------

    async def run(self, fn: Callable[[], T]) -> T:
        """Call the store in a worker thread (changes, and reads of a remote store)."""
        return await asyncio.to_thread(fn)

    async def read(self, fn: Callable[[], T]) -> T:
        """A store read: inline when ``inline_reads``, else in a worker thread.

        The embedded store answers in a fraction of a millisecond, less than a hand-off to a thread
        costs; a network store (Neo4j) keeps the event loop free while it waits.
        """
        if self.inline_reads:
            return fn()
        return await asyncio.to_thread(fn)

    async def audited(
        self,
        who: Principal,
        action: str,
        target: str | None,
        work: Callable[[], Awaitable[T]],
        *,
        detail: str | None = None,
    ) -> T:
        """Check the permission, await ``work``, and audit the outcome either way.

        The result is returned only once its entry is durable. While the audit trail is failing, the
        work does not even start (:class:`~c360.graphql.audit.AuditUnavailableError`, a 503): no change
        is made that could not be audited, no read is done that could not be answered.
        """
        if self.audit.failure is not None:
            await asyncio.to_thread(self.audit.open)  # raises while it still fails
        await self.require(who, action, target)
        try:
            result = await work()
        except NotFoundError as exc:
            await self.record(who, action, target, "not_found", detail)
            mark_audited(exc)
            raise
        except C360Error as exc:
            await self.record(who, action, target, "refused", f"{type(exc).__name__}: {exc}")
            mark_audited(exc)
            raise
        except Exception as exc:
            await self.record(who, action, target, "error", detail)
            mark_audited(exc)
            raise
        await self.record(who, action, target, "ok", detail)
        return result

    async def require(self, who: Principal, action: str, target: str | None = None) -> None:
        """The policy's permission check; a refusal is audited (``denied``, with the reason) and raised."""
        try:
            self.policy.require(who, action)
        except ForbiddenError as exc:
            await self.record(who, action, target, "denied", str(exc))
            mark_audited(exc)
            raise

    async def record(
        self, who: Principal, action: str, target: str | None, outcome: str, detail: str | None = None
    ) -> None:
        """One audit entry, durable before this returns."""
        await self.audit.record(
            actor=who.subject, role=who.role, action=action, target=target, outcome=outcome, detail=detail
        )

    # -- masking ------------------------------------------------------------------------------------

    def mask_identifier(self, role: str, uid: str) -> str | None:
        """``kind|value`` with the value as ``role`` may see it; None when the role may not see it."""
        return self.policy.mask_identifier(role, uid)

    def mask_evidence(self, role: str, evidence: Mapping[str, Any]) -> dict[str, Any]:
        """Link or merge evidence with its identifiers, record uid and note masked for ``role``."""
        return self.policy.mask_evidence(role, evidence)

    def golden(self, role: str, profile: Profile) -> dict[str, dict[str, Any]]:
        """The golden record as ``role`` may see it: field -> value (masked) with its source and rule.

        ``age`` is derived from the date of birth; ``annual_income`` comes from the newest record
        that has one (a source attribute, not a canonical field).
        """
        today = self.today()
        golden: dict[str, dict[str, Any]] = {}
        for name, gv in profile.customer.golden.items():
            masked = self.policy.mask(role, name, gv.value, today=today)
            if masked is not None:
                value = masked.isoformat() if isinstance(masked, date) else masked
                golden[name] = {**gv.to_json(), "value": value, "source_key": self.policy.mask_key(role, gv.source_key)}
        dob = profile.customer.golden.get("date_of_birth")
        if dob is not None:
            age = self.policy.mask(role, "age", dob.value, today=today)
            if age is not None:
                key = self.policy.mask_key(role, dob.source_key)
                golden["age"] = {**dob.to_json(), "value": age, "source_key": key, "rule": "derived from date_of_birth"}
        incomes = [r.record for r in profile.records if r.record.attributes.get("annual_income") not in (None, "")]
        if incomes:
            newest = max(incomes, key=lambda r: r.observed_at)
            income = self.policy.mask(role, "annual_income", newest.attributes["annual_income"], today=today)
            if income is not None:
                key = self.policy.mask_key(role, newest.key)
                source = {"source": newest.source, "source_key": key, "rule": "most_recent"}
                golden["annual_income"] = {"value": income, **source, "observed_at": newest.observed_at.isoformat()}
        return golden

    def identifiers(self, role: str, profile: Profile) -> list[dict[str, Any]]:
        """The customer's identifiers as ``role`` may see them (denied kinds left out)."""
        out = []
        for state in profile.identifiers:
            ident = state.identifier
            masked = self.policy.mask(role, IDENTIFIER_FIELD.get(ident.kind, "customer_number"), ident.value)
            if masked is not None:
                out.append({"kind": ident.kind, "value": masked, "flagged": state.flagged})
        return out

    def records(self, role: str, profile: Profile) -> list[dict[str, Any]]:
        """The source records as ``role`` may see them, with their identifiers and link evidence masked."""
        today = self.today()
        out = []
        for r in profile.records:
            masked = self.policy.mask_record(role, r.record.to_json(), today=today)
            masked["identifiers"] = [m for i in r.identifiers if (m := self.mask_identifier(role, i.uid))]
            masked["link"] = self.mask_evidence(role, r.evidence.to_json())
            out.append(masked)
        return out

    def history(self, role: str, profile: Profile) -> list[dict[str, Any]] | None:
        """Merges and splits with masked evidence; None when the role may not read history."""
        if not self.policy.can(role, "read_history"):
            return None
        return self.history_json(role, profile.history)

    def document(self, role: str, profile: Profile) -> dict[str, Any]:
        """The profile document (``Profile.to_json`` shape) as ``role`` may see it (the REST answer).

        History is included only for roles that may read it.
        """
        c = profile.customer
        doc: dict[str, Any] = {
            "id": c.id,
            "requested_id": profile.requested_id,
            "redirected": profile.redirected,
            "status": c.status,
            "created_at": c.created_at.isoformat(),
            "golden": self.golden(role, profile),
            "sources": sorted({r.record.source for r in profile.records}),
            "identifiers": self.identifiers(role, profile),
            "records": self.records(role, profile),
            "merged_ids": list(profile.merged_ids),
        }
        history = self.history(role, profile)
        if history is not None:
            doc["history"] = history
        return doc

    def history_json(self, role: str, events: Sequence[HistoryEvent]) -> list[dict[str, Any]]:
        """Merge and split events as JSON with masked record uids and evidence."""
        return [self.policy.mask_history_event(role, e.to_json()) for e in events]

    async def ping(self) -> str:
        """The store's name once it answers a ping; its StoreError when it does not."""
        await asyncio.to_thread(self.store.ping)
        return self.store.name
