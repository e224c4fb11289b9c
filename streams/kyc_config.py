"""How the KYC workflow runs: who each task goes to and when it is due, escalation, retention, products.

Every field has a default that holds for an Indian auto-loan desk; deployments override them in the
``kyc.workflow`` settings section. Unknown keys are errors.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Self

from c360.graph.kyc import DOC_TYPES as DOCUMENT_TYPES  # the document types an applicant may upload
from c360.graph.kyc import TASK_KINDS  # the kinds of workflow task
from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["DOCUMENT_TYPES", "TASK_KINDS", "KycWorkflowConfig", "TaskRule"]

#: five years: the Prevention of Money-laundering (Maintenance of Records) Rules keep KYC records that long
_FIVE_YEARS = 5 * 365 + 1


class TaskRule(BaseModel):
    """Who works one kind of task, how urgent it is, and who it goes to when it is overdue."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    role: str = Field(min_length=1, description="The role whose members work the task (policy.yaml's names).")
    due_hours: float = Field(gt=0, le=24 * 90, description="Hours from opening until the task is due.")
    priority: str = Field(default="normal", pattern="^(low|normal|high|urgent)$", description="The task's priority.")
    escalate_to: str | None = Field(
        default=None, description="The role an overdue task is escalated to (None: it stays with its role)."
    )
    escalate_every_hours: float = Field(
        default=24, gt=0, le=24 * 90, description="Hours between two escalations of a task still overdue."
    )


def _tasks() -> dict[str, TaskRule]:
    return {
        "verify_documents": TaskRule(role="kyc_officer", due_hours=24, escalate_to="approval_manager"),
        "review_screening_hit": TaskRule(
            role="compliance_officer", due_hours=24, priority="high", escalate_to="admin", escalate_every_hours=8
        ),
        "enhanced_due_diligence": TaskRule(
            role="compliance_officer", due_hours=72, priority="high", escalate_to="admin"
        ),
        "approve": TaskRule(role="approval_manager", due_hours=24, escalate_to="admin"),
    }


def _retention() -> dict[str, int]:
    return {kind: (730 if kind == "vehicle_quotation" else _FIVE_YEARS) for kind in DOCUMENT_TYPES}


class KycWorkflowConfig(BaseModel):
    """The KYC workflow: tasks, escalation, retention, products and the applicant's source in the graph."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tasks: dict[str, TaskRule] = Field(
        default_factory=_tasks, description="Per task kind (verify_documents, review_screening_hit, ...): its rule."
    )
    retention_days: dict[str, int] = Field(
        default_factory=_retention,
        description="Per document type: days after upload a document's content is kept (`c360 kyc purge` removes "
        "it after that; its metadata and the audit of the removal stay). Default 5 years (PML Rules), a vehicle "
        "quotation 2.",
    )
    products: list[str] = Field(default_factory=lambda: ["auto_loan"], min_length=1, description="Loan products.")
    max_amount: Decimal = Field(
        default=Decimal("50000000"), gt=0, description="The largest amount an application may ask for."
    )
    currency: str = Field(default="INR", pattern="^[A-Z]{3}$", description="The currency applications are in.")
    source: str = Field(
        default="kyc",
        pattern="^[a-z][a-z0-9_]{0,31}$",
        description="The source name of the applicant's record in the identity graph (one record per applicant).",
    )
    required_documents: list[str] = Field(
        default_factory=lambda: ["pan_card", "address_proof"],
        description="Document types an application must hold before it can be submitted.",
    )
    screening_review_from: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="Hits scoring at least this (and the screener's threshold) open a review task; 0: every hit.",
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        missing = [k for k in TASK_KINDS if k not in self.tasks]
        unknown = [k for k in self.tasks if k not in TASK_KINDS]
        if missing or unknown:
            raise ValueError(f"tasks must name exactly {', '.join(TASK_KINDS)} (missing {missing}, unknown {unknown})")
        bad = [k for k in self.retention_days if k not in DOCUMENT_TYPES]
        if bad:
            raise ValueError(f"retention_days: unknown document types {bad}")
        if any(days < 1 for days in self.retention_days.values()):
            raise ValueError("retention_days must be at least 1")
        wrong = [k for k in self.required_documents if k not in DOCUMENT_TYPES]
        if wrong:
            raise ValueError(f"required_documents: unknown document types {wrong}")
        return self
