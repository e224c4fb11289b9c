"""The KYC events the streams package makes: one way to build an event, a task, an application's vault owner."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from c360.graph.kyc import SYSTEM_ACTOR, KycEvent

from .kyc_config import KycWorkflowConfig

SYSTEM = SYSTEM_ACTOR


def new_id(prefix: str) -> str:
    """A fresh id with a readable prefix (``app_...``, ``task_...``, ``kev_...``)."""
    return f"{prefix}_{uuid.uuid4().hex[:20]}"


def vault_owner(application_id: str) -> str:
    """The owner under which an application's identifiers are sealed in the vault."""
    return f"kyc:{application_id}"


def new_event(application_id: str, at: datetime, actor: str, kind: str, data: Mapping[str, Any]) -> KycEvent:
    """A new event of an application, with a fresh id."""
    return KycEvent(new_id("kev"), application_id, at, actor, kind, dict(data))


def task_opened(
    application_id: str, kind: str, config: KycWorkflowConfig, at: datetime, *, subject: str | None = None
) -> KycEvent:
    """The system opening a task of ``kind`` by its rule (role, priority, due time from ``at``)."""
    rule = config.tasks[kind]
    data: dict[str, Any] = {
        "task_id": new_id("task"),
        "task_kind": kind,
        "role": rule.role,
        "priority": rule.priority,
        "due_at": (at + timedelta(hours=rule.due_hours)).isoformat(),
    }
    if subject:
        data["subject"] = subject
    return new_event(application_id, at, SYSTEM, "task_opened", data)
