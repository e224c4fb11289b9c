"""Re-screening: when a sanctions list is reloaded with changes, every KYC customer is screened again.

Each list's manifest (entry key -> content hash, :mod:`~c360.connectors.watchlist_manifest`) records what
customers were last screened against. A reload compares the list with it: only added and changed entries
are screened, so a reload of an unchanged list costs nothing. A customer whose name changed since their
last screening (their golden name, or a new application's) is screened against the whole list. A remembered
false positive stays quiet while its entry is unchanged. Each alert opens a ``review_screening_hit`` task on
the customer's latest application (after a decision too: monitoring does not stop at approval); the
manifest is written last, so a crash repeats the run rather than losing alerts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from c360.connectors.watchlist_manifest import read_manifest, write_manifest
from c360.graph.kyc import Application
from c360.graph.store import GraphStore
from c360.graph.watchlist import Watchlist
from c360.resolution.rescreening import Subject, diff_lists, list_manifest, rescreen
from c360.resolution.screening import Screener

from .kyc_config import KycWorkflowConfig
from .kyc_events import task_opened
from .kyc_ops import all_applications


@dataclass(slots=True)
class RescreenReport:
    """What one reload found, per list."""

    lists: dict[str, dict[str, int]] = field(default_factory=dict)
    customers: int = 0
    alerts: int = 0
    tasks: int = 0

    def to_json(self) -> dict[str, Any]:
        """As JSON."""
        return {"lists": self.lists, "customers": self.customers, "alerts": self.alerts, "tasks_opened": self.tasks}


def manifest_path(folder: Path, list_name: str) -> Path:
    """Where a list's manifest lives."""
    return folder / f"{list_name}.manifest.json"


def _latest_by_customer(store: GraphStore) -> dict[str, Application]:
    latest: dict[str, Application] = {}
    for app in all_applications(store):
        customer = store.resolve(app.customer_id) or app.customer_id
        held = latest.get(customer)
        if held is None or app.created_at > held.created_at:
            latest[customer] = app
    return latest


def _screened_names(store: GraphStore, app: Application) -> tuple[str, ...] | None:
    for event in reversed(store.kyc_events(app.id)):
        if event.kind == "screened":
            return tuple(str(n) for n in event.data.get("screened_names", ()))
    return None


def _subject(store: GraphStore, customer: str, app: Application) -> Subject | None:
    names = [str(app.entered.get("full_name", "")).strip()]
    profile = store.get_profile(customer)
    if profile is not None:
        golden = profile.customer.golden
        given, last = golden.get("first_name"), golden.get("last_name")
        full = " ".join(str(v.value) for v in (given, last) if v is not None and v.value)
        if full:
            names.append(full)
    names = list(dict.fromkeys(n for n in names if n))
    if not names:
        return None
    born = app.entered.get("date_of_birth")
    return Subject(
        id=customer,
        names=tuple(names),
        dob=date.fromisoformat(str(born)) if born else None,
        nationality=app.entered.get("nationality"),
        previous_names=_screened_names(store, app),
    )


def rescreen_lists(
    store: GraphStore,
    screener: Screener,
    lists: Sequence[Watchlist],
    *,
    folder: Path,
    config: KycWorkflowConfig,
    now: datetime,
    progress: Callable[[str], None] | None = None,
) -> RescreenReport:
    """Screen every KYC customer against what changed in ``lists`` since their manifests; open review tasks."""
    report = RescreenReport()
    latest: dict[str, Application] | None = None
    for watchlist in lists:
        path = manifest_path(folder, watchlist.name)
        old = read_manifest(path)
        current = list_manifest(watchlist)
        if old is None:  # the first load: what is screened from now on is screened against this list
            report.lists[watchlist.name] = {"added": len(current), "changed": 0, "removed": 0, "baseline": 1}
            write_manifest(path, current)
            continue
        diff = diff_lists(old, watchlist)
        report.lists[watchlist.name] = {"added": len(diff.added), "changed": len(diff.changed),
                                        "removed": len(diff.removed)}  # fmt: skip
        if latest is None:
            latest = _latest_by_customer(store)
            report.customers = len(latest)
        subjects = [s for c, a in latest.items() if (s := _subject(store, c, a)) is not None]
        decisions = {s.id: store.screening_decisions(s.id) for s in subjects}
        found = rescreen(screener, subjects, watchlist, diff, decisions)
        for item in found:
            app = latest[item.subject_id]
            report.alerts += len(item.new_hits)
            open_subjects = {t.subject for t in app.open_tasks() if t.kind == "review_screening_hit"}
            events = [
                task_opened(app.id, "review_screening_hit", config, now, subject=hit.entry_key)
                for hit in item.new_hits
                if hit.entry_key not in open_subjects
            ]
            if events:
                store.append_kyc_events(events)
                report.tasks += len(events)
        write_manifest(path, current)
        if progress is not None:
            progress(f"{watchlist.name}: {len(diff.added)} added, {len(diff.changed)} changed, {len(found)} alerting")
    return report
