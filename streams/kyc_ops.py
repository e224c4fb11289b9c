"""KYC operations over all applications: the regulatory report and the retention purge.

Both read the applications page by page (:meth:`~c360.graph.ports.kyc.KycPort.application_rows`), so
memory stays flat however many there are, and report their progress.
"""

from __future__ import annotations

import csv
import io
import statistics
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from c360.connectors.documents.blobs import BlobStore
from c360.graph.kyc import Application, KycEvent
from c360.graph.ports.kyc import ApplicationSummary
from c360.graph.store import GraphStore

from .kyc_config import KycWorkflowConfig
from .kyc_events import SYSTEM, new_event, vault_owner

_PAGE = 500


def all_applications(store: GraphStore) -> Iterator[Application]:
    """Every application, in id order, read a page at a time."""
    after: str | None = None
    while True:
        page = store.application_rows(after=after, first=_PAGE)
        yield from page.applications
        if page.next_cursor is None:
            return
        after = page.next_cursor


def _hours(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return (end - start).total_seconds() / 3600


@dataclass(slots=True)
class Report:
    """Applications by status and risk category, with their turnaround (submission to decision, hours)."""

    generated_at: datetime
    groups: dict[tuple[str, str], list[float | None]] = field(default_factory=lambda: defaultdict(list))

    def add(self, summary: ApplicationSummary) -> None:
        """Count one application."""
        category = summary.risk_category or "unassessed"
        self.groups[(summary.status, category)].append(_hours(summary.submitted_at, summary.decided_at))

    @property
    def total(self) -> int:
        """How many applications were counted."""
        return sum(len(v) for v in self.groups.values())

    def csv(self) -> str:
        """The report as CSV: one row per status and risk category (turnaround only of decided ones)."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["status", "risk_category", "applications", "decided", "median_turnaround_hours",
                         "p90_turnaround_hours", "max_turnaround_hours", "generated_at"])  # fmt: skip
        for (status, category), values in sorted(self.groups.items()):
            done = sorted(v for v in values if v is not None)
            median = f"{statistics.median(done):.2f}" if done else ""
            p90 = f"{done[min(len(done) - 1, int(0.9 * len(done)))]:.2f}" if done else ""
            top = f"{done[-1]:.2f}" if done else ""
            writer.writerow([status, category, len(values), len(done), median, p90, top, self.generated_at.isoformat()])
        return out.getvalue()


def applications_report(store: GraphStore, *, now: datetime) -> Report:
    """The regulatory report over every application (summaries only, a page at a time)."""
    report = Report(now)
    after: str | None = None
    while True:
        page = store.application_summaries(after=after, first=_PAGE * 2)
        for summary in page.summaries:
            report.add(summary)
        if page.next_cursor is None:
            return report
        after = page.next_cursor


def rekyc_due(store: GraphStore, *, before: date) -> list[dict[str, str]]:
    """Customers whose latest approved application's re-KYC date is before ``before``, earliest first."""
    latest: dict[str, Application] = {}
    for app in all_applications(store):
        if app.status != "approved" or app.risk is None:
            continue
        customer = store.resolve(app.customer_id) or app.customer_id
        held = latest.get(customer)
        if held is None or (app.decided_at or app.updated_at) > (held.decided_at or held.updated_at):
            latest[customer] = app
    due = [(a.risk.rekyc_due, c, a) for c, a in latest.items() if a.risk is not None and a.risk.rekyc_due < before]
    return [
        {"customer_id": c, "application_id": a.id, "rekyc_due": d.isoformat(), "risk_category": a.risk.category}
        for d, c, a in sorted(due, key=lambda x: (x[0], x[1]))
        if a.risk is not None
    ]


@dataclass(slots=True)
class PurgeReport:
    """What a purge removed: document versions by type, bytes, and the applications touched."""

    checked: int = 0
    purged: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    bytes: int = 0
    applications: int = 0
    aadhaar_removed: int = 0

    def to_json(self) -> dict[str, object]:
        """As JSON."""
        return {
            "documents_checked": self.checked,
            "purged": dict(sorted(self.purged.items())),
            "bytes": self.bytes,
            "applications": self.applications,
            "aadhaar_numbers_removed": self.aadhaar_removed,
        }


def purge(
    store: GraphStore,
    blobs: BlobStore,
    config: KycWorkflowConfig,
    *,
    now: datetime,
    dry_run: bool = False,
    progress: Callable[[PurgeReport], None] | None = None,
) -> PurgeReport:
    """Remove every document version past its type's retention period; keep its metadata and a record of why.

    The blob goes first, then the ``document_purged`` event: a crash between the two leaves the blob gone and
    the next run records it (deleting a missing blob is not an error). When an application has no Aadhaar
    card left, its Aadhaar number leaves the vault too.
    """
    report = PurgeReport()
    for app in all_applications(store):
        events: list[KycEvent] = []
        for doc in app.documents:
            report.checked += 1
            if doc.purged_at is not None:
                continue
            days = config.retention_days.get(doc.doc_type)
            if days is None or doc.uploaded_at + timedelta(days=days) > now:
                continue
            report.purged[doc.doc_type] += 1
            report.bytes += doc.size
            if dry_run:
                continue
            blobs.delete(doc.storage_key)
            reason = f"retention: {doc.doc_type} kept {days} days after upload"
            data = {"document_id": doc.document_id, "version": doc.version, "reason": reason}
            events.append(new_event(app.id, now, SYSTEM, "document_purged", data))
        if events:
            report.applications += 1
            store.append_kyc_events(events)
            after = store.get_application(app.id)
            if not any(d.doc_type == "aadhaar" and d.purged_at is None for d in after.documents):
                report.aadhaar_removed += store.delete_secrets(vault_owner(app.id), ["aadhaar"])
        if progress is not None and report.checked % 1000 < len(app.documents):
            progress(report)
    return report
