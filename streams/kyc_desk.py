"""The KYC desk: the one place that changes a loan application and moves its workflow on.

An applicant starts an application: their details go through the pipeline as a record of the KYC source
(``kyc|<applicant id>``), so the applicant is a customer of the identity graph like any other, and the
application hangs off that record. The PAN is sealed in the vault; the application keeps its mask only.
Submitting runs the automated checks (:mod:`~c360.streams.kyc_checks`) and opens the tasks; each task's
outcome moves the application on (:meth:`KycDesk.complete_task`). What the system does itself (risk,
the approval task) follows in :meth:`KycDesk._progress`, after every change, as the ``system`` actor.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from c360.graph.errors import ConfigError, ConflictError, InvalidInputError, NotFoundError
from c360.graph.kyc import Application, DocumentRef, KycEvent, Task, applicant_actor
from c360.graph.store import GraphStore
from c360.graph.vault import VaultKeys, mask

from .kyc_checks import KycChecks, pan_checks_passed, split_full_name
from .kyc_config import KycWorkflowConfig
from .kyc_documents import DocumentIntake, Processed, Upload
from .kyc_events import SYSTEM, new_event, new_id, task_opened, vault_owner
from .pipeline import Pipeline

#: the fields an applicant enters, and their longest length
ENTERED: Mapping[str, int] = {
    "full_name": 200,
    "date_of_birth": 10,
    "pan": 10,
    "mobile": 32,
    "email": 254,
    "address": 500,
    "nationality": 64,
    "pep": 3,
}
#: outcomes each task kind may be completed with
OUTCOMES: Mapping[str, tuple[str, ...]] = {
    "verify_documents": ("verified", "more_info", "rejected"),
    "review_screening_hit": ("false_positive", "confirmed_match"),
    "enhanced_due_diligence": ("cleared", "rejected"),
    "approve": ("approved", "rejected"),
}
#: the task kinds that must be done before the risk is assessed or the application goes for approval
_BLOCKING = ("review_screening_hit", "enhanced_due_diligence")


def _text(name: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError(f"{name} must be a non-empty string")
    limit = ENTERED.get(name, 200)
    if len(value) > limit:
        raise InvalidInputError(f"{name} may be at most {limit} characters")
    return value.strip()


class KycDesk:
    """Starts, changes and moves on loan applications; every change is one event batch under the store's lock.

    ``clock`` gives the time of every event (tests pass a fixed one). ``checks`` runs the automated checks
    at submission and the risk assessment (:class:`~c360.streams.kyc_checks.KycChecks`).
    """

    def __init__(
        self,
        store: GraphStore,
        pipeline: Pipeline,
        *,
        vault: VaultKeys,
        checks: KycChecks,
        documents: DocumentIntake | None = None,
        config: KycWorkflowConfig | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.documents = documents
        self.pipeline = pipeline
        self.vault = vault
        self.checks = checks
        self.config = config or KycWorkflowConfig()
        self.clock = clock

    # -- reading ------------------------------------------------------------------------------------

    def get(self, application_id: str) -> Application:
        """The application as it is now (NotFoundError)."""
        return self.store.get_application(application_id)

    def pan(self, application: Application) -> str | None:
        """The application's PAN from the vault (None: none entered)."""
        item = self.store.get_secret(vault_owner(application.id), "pan")
        return None if item is None else self.vault.open_item(item)

    # -- the applicant's part -----------------------------------------------------------------------

    def entered(self, values: Mapping[str, Any], *, partial: bool = False) -> tuple[dict[str, str], str | None]:
        """What the applicant typed, checked: (what the application keeps, the PAN to seal or None).

        The application keeps the PAN's mask; the PAN itself goes to the vault.
        """
        unknown = sorted(set(values) - set(ENTERED))
        if unknown:
            raise InvalidInputError(f"unknown applicant fields {unknown}: expected some of {', '.join(ENTERED)}")
        if not partial:
            missing = [k for k in ("full_name", "date_of_birth", "pan") if not values.get(k)]
            if missing:
                raise InvalidInputError(f"an application needs {', '.join(missing)}")
        kept: dict[str, str] = {}
        pan_value: str | None = None
        for name, raw in values.items():
            if raw is None:
                continue
            text = _text(name, raw)
            if name == "date_of_birth":
                try:
                    born = date.fromisoformat(text)
                except ValueError:
                    raise InvalidInputError("date_of_birth must be a date YYYY-MM-DD") from None
                if not date(1900, 1, 1) <= born <= self.clock().date():
                    raise InvalidInputError("date_of_birth must lie between 1900-01-01 and today")
                text = born.isoformat()
            if name == "pep" and text not in ("yes", "no"):
                raise InvalidInputError("pep must be yes or no")
            if name == "pan":
                pan_value = text.upper().replace(" ", "")
                text = mask("pan", pan_value)  # raises on a malformed PAN, without the value
            kept[name] = text
        return kept, pan_value

    def _amount(self, amount: object) -> str:
        try:
            value = Decimal(str(amount))
        except (InvalidOperation, ValueError):
            raise InvalidInputError("amount must be a decimal number") from None
        if not value.is_finite() or value <= 0 or value > self.config.max_amount:
            raise InvalidInputError(f"amount must be above 0 and at most {self.config.max_amount}")
        if value != value.quantize(Decimal("0.01")):
            raise InvalidInputError("amount may have at most 2 decimals")
        return f"{value.quantize(Decimal('0.01'))}"

    def _product(self, product: object) -> str:
        if product not in self.config.products:
            raise InvalidInputError(f"unknown product {product!r}: expected one of {', '.join(self.config.products)}")
        return str(product)

    def _profile_payload(self, applicant_id: str, entered: Mapping[str, str], event_id: str) -> dict[str, Any]:
        given, surname = split_full_name(entered["full_name"])
        profile: dict[str, Any] = {"customer_key": applicant_id, "first_name": given, "last_name": surname}
        profile["date_of_birth"] = entered.get("date_of_birth")
        profile["email"] = entered.get("email")
        profile["phone"] = entered.get("mobile")
        profile["address_line1"] = entered.get("address")
        profile["country"] = entered.get("nationality")
        return {
            "event_id": event_id,
            "type": "profile_update",
            "source": self.config.source,
            "occurred_at": self.clock().isoformat(),
            "profile": {k: v for k, v in profile.items() if v is not None},
        }

    def _ingest(self, payload: Mapping[str, Any]) -> tuple[str, str]:
        """Send the applicant's record through the pipeline; (record uid, customer id) once it is stored."""
        outcome = self.pipeline.process([dict(payload)], sender="kyc")
        if outcome.rejected:
            raise InvalidInputError(f"the applicant's details were refused: {outcome.rejected[0].reason}")
        uid = f"{payload['source']}|{payload['profile']['customer_key']}"
        found = self.store.lookup([uid], ()).records.get(uid)
        if found is None:
            raise NotFoundError(f"record {uid} was not stored")
        customer = self.store.resolve(found.customer_id) or found.customer_id
        return uid, customer

    def start(
        self,
        *,
        applicant_id: str,
        product: str,
        amount: object,
        entered: Mapping[str, Any],
        currency: str | None = None,
        event_id: str | None = None,
    ) -> Application:
        """A new draft application for ``applicant_id``, who becomes (or is matched to) a customer."""
        kept, pan_value = self.entered(entered)
        application_id = new_id("app")
        at = self.clock()
        uid, customer = self._ingest(self._profile_payload(applicant_id, kept, f"kyc-profile|{application_id}"))
        self._link_applicant(applicant_id, customer)
        if pan_value is not None:
            self.store.put_secrets([self.vault.item(vault_owner(application_id), "pan", pan_value)])
        data: dict[str, Any] = {
            "customer_id": customer,
            "record_uid": uid,
            "applicant_id": applicant_id,
            "product": self._product(product),
            "amount": self._amount(amount),
            "currency": currency or self.config.currency,
            "entered": kept,
        }
        event = KycEvent(
            event_id or f"{application_id}-created", application_id, at, applicant_actor(applicant_id), "created", data
        )
        self.store.append_kyc_events([event])
        return self.get(application_id)

    def _link_applicant(self, applicant_id: str, customer: str) -> None:
        """Record on the applicant's account which customer they are (an applicant of another channel: skip)."""
        try:
            account = self.store.get_applicant(applicant_id)
        except (NotFoundError, InvalidInputError):  # not a portal account's id
            return
        if account.customer_id is None or self.store.resolve(account.customer_id) != customer:
            self.store.set_applicant_customer(applicant_id, customer)

    def update(self, application_id: str, *, actor: str, changes: Mapping[str, Any]) -> Application:
        """Change a draft (or an application sent back for more information): product, amount, entered fields."""
        app = self.get(application_id)
        data: dict[str, Any] = {}
        unknown = sorted(set(changes) - {"product", "amount", "entered"})
        if unknown:
            raise InvalidInputError(f"unknown changes {unknown}: expected product, amount or entered")
        if "product" in changes:
            data["product"] = self._product(changes["product"])
        if "amount" in changes:
            data["amount"] = self._amount(changes["amount"])
        pan_value = None
        if "entered" in changes:
            if not isinstance(changes["entered"], Mapping):
                raise InvalidInputError("entered must be an object of applicant fields")
            kept, pan_value = self.entered(changes["entered"], partial=True)
            data["entered"] = {**app.entered, **kept}
        if not data:
            raise InvalidInputError("nothing to change")
        self._append(app, [self._event(app, actor, "updated", data)])
        if pan_value is not None:
            self.store.put_secrets([self.vault.item(vault_owner(app.id), "pan", pan_value)])
        if "entered" in data:
            self._ingest(self._profile_payload(app.applicant_id or app.id, data["entered"], new_id("kyc-profile")))
        return self.get(application_id)

    def _intake(self) -> DocumentIntake:
        if self.documents is None:
            raise ConfigError("this KYC desk has no document store configured (kyc.documents)")
        return self.documents

    def upload(self, application_id: str, upload: Upload, *, actor: str) -> Processed:
        """Take one document upload for the application (a draft, or one sent back for more information)."""
        return self._intake().upload(self.get(application_id), upload, actor=actor)

    def document(self, app: Application, document_id: str, version: int | None = None) -> tuple[DocumentRef, bytes]:
        """A document's metadata and content (the latest version unless ``version``)."""
        return self._intake().content(app, document_id, version)

    def submit(self, application_id: str, *, actor: str) -> Application:
        """Submit (or resubmit) the application: the automated checks run and the tasks open."""
        app = self.get(application_id)
        held = {d.doc_type for d in app.latest_documents() if d.purged_at is None}
        missing = [t for t in self.config.required_documents if t not in held]
        if missing:
            raise InvalidInputError(f"upload {', '.join(missing)} before submitting")
        app = self._append(app, [self._event(app, actor, "status_changed", {"to": "submitted"})])
        pan_value = self.pan(app)
        found = self.checks.at_submission(app, pan=pan_value, at=self.clock())
        if pan_value is not None and pan_checks_passed(found.verifications):
            self._verified_pan(app, pan_value)
        events = [self._event(app, SYSTEM, "verified", {"verification": v.to_json()}) for v in found.verifications]
        events.append(self._event(app, SYSTEM, "screened", found.screened))
        for hit in found.review:
            events.append(self._task(app, "review_screening_hit", subject=hit))
        if not any(t.kind == "verify_documents" for t in app.open_tasks()):
            events.append(self._task(app, "verify_documents"))
        return self._progress(self._append(app, events))

    def _verified_pan(self, app: Application, pan_value: str) -> None:
        """A PAN the service confirmed becomes an identifier of the applicant's record: it links deterministically.

        The record carries the PAN's lookup token (keyed HMAC), never the PAN: equal PANs link, nobody reads it.
        """
        payload = self._profile_payload(app.applicant_id or app.id, app.entered, new_id("kyc-pan"))
        payload["profile"]["national_id"] = self.vault.lookup_token("pan", pan_value)
        payload["profile"]["national_id_kind"] = "PAN"
        self._ingest(payload)

    # -- staff ----------------------------------------------------------------------------------------

    def assign_task(self, application_id: str, task_id: str, *, actor: str, assignee: str | None) -> Application:
        """Give a task to a person (None: back to its role's queue)."""
        app = self.get(application_id)
        app.task(task_id)
        return self._append(app, [self._event(app, actor, "task_assigned", {"task_id": task_id, "assignee": assignee})])

    def complete_task(self, application_id: str, task_id: str, *, actor: str, outcome: str, reason: str) -> Application:
        """Record a task's decision and its reason, and move the application on accordingly."""
        app = self.get(application_id)
        task = app.task(task_id)
        allowed = OUTCOMES[task.kind]
        if outcome not in allowed:
            raise InvalidInputError(f"a {task.kind} task ends {' or '.join(allowed)}, not {outcome!r}")
        events = [self._event(app, actor, "task_completed", {"task_id": task_id, "outcome": outcome, "reason": reason})]
        move = self._move_of(task, outcome)
        if move is not None:
            events.append(self._event(app, actor, "status_changed", {"to": move, "reason": reason}))
        app = self._append(app, events)
        if task.kind == "review_screening_hit" and task.subject:
            self.checks.remember(app, task.subject, outcome, actor=actor, reason=reason, at=self.clock())
        return self._progress(app)

    def request_info(self, application_id: str, *, actor: str, reason: str) -> Application:
        """Send the application back to the applicant for more information (open tasks stay open)."""
        app = self.get(application_id)
        return self._append(
            app, [self._event(app, actor, "status_changed", {"to": "more_info_requested", "reason": reason})]
        )

    def escalate(self, *, now: datetime | None = None, limit: int = 500) -> list[Task]:
        """Escalate every open task past its due time (again every ``escalate_every_hours``); the tasks escalated."""
        at = now or self.clock()
        done: list[Task] = []
        page = self.store.list_tasks(statuses=("open",), due_before=at, first=min(limit, 500))
        for task in page.tasks:
            rule = self.config.tasks[task.kind]
            last = task.escalated_at or task.due_at
            if task.escalated_at is not None and at - last < timedelta(hours=rule.escalate_every_hours):
                continue
            app = self.get(task.application_id)
            data: dict[str, Any] = {"task_id": task.id, "level": task.escalation_level + 1}
            if rule.escalate_to:
                data["to_role"] = rule.escalate_to
            try:
                self._append(app, [self._event(app, SYSTEM, "task_escalated", data, at=at)])
            except ConflictError:
                continue  # completed meanwhile
            done.append(task)
        return done

    # -- the system's part ----------------------------------------------------------------------------

    def _move_of(self, task: Task, outcome: str) -> str | None:
        if task.kind == "verify_documents":
            return {"verified": "documents_verified", "more_info": "more_info_requested", "rejected": "rejected"}[
                outcome
            ]
        if task.kind == "approve":
            return outcome  # approved | rejected
        if task.kind == "enhanced_due_diligence" and outcome == "rejected":
            return "rejected"
        return None

    def _progress(self, app: Application) -> Application:
        """What follows by itself: the risk once documents are verified and hits reviewed, then approval."""
        blocking = [t for t in app.open_tasks() if t.kind in _BLOCKING]
        if app.status == "documents_verified" and not any(t.kind == "review_screening_hit" for t in blocking):
            risk = self.checks.assess(app, today=self.clock().date())
            events = [self._event(app, SYSTEM, "risk_assessed", risk.event_data())]
            events.append(self._event(app, SYSTEM, "status_changed", {"to": "risk_assessed"}))
            if risk.needs_edd and not any(t.kind == "enhanced_due_diligence" for t in app.tasks):
                events.append(self._task(app, "enhanced_due_diligence", subject="; ".join(risk.reasons)[:200] or None))
            app = self._append(app, events)
            blocking = [t for t in app.open_tasks() if t.kind in _BLOCKING]
        if app.status == "risk_assessed" and not blocking:
            events = [self._event(app, SYSTEM, "status_changed", {"to": "pending_approval"})]
            if not any(t.kind == "approve" and t.status == "open" for t in app.tasks):
                events.append(self._task(app, "approve"))
            app = self._append(app, events)
        return app

    def _task(self, app: Application, kind: str, *, subject: str | None = None) -> KycEvent:
        return task_opened(app.id, kind, self.config, self.clock(), subject=subject)

    def _event(
        self, app: Application, actor: str, kind: str, data: Mapping[str, Any], *, at: datetime | None = None
    ) -> KycEvent:
        return new_event(app.id, at or self.clock(), actor, kind, data)

    def _append(self, app: Application, events: list[KycEvent]) -> Application:
        self.store.append_kyc_events(events)
        return self.get(app.id)
