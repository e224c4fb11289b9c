"""Settings: one class per section, every field described, built once at the entry point.

Sources, highest first: environment variables (``C360_<SECTION>__<FIELD>``, e.g.
``C360_GRAPH__BACKEND=neo4j``), a YAML config file (``--config`` or ``C360_CONFIG``), the defaults.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from c360.connectors.notify import NotifyConfig
from c360.connectors.pan_service import PanServiceConfig
from c360.graph.embedded import EmbeddedConfig
from c360.graph.errors import ConfigError
from c360.graph.neo4j_config import Neo4jConfig
from c360.graph.sla import SlaConfig
from c360.graph.store import store_names
from c360.resolution.config import LinkingConfig, RealtimeConfig, SurvivorshipConfig, TrainingConfig
from c360.resolution.screening import ScreeningConfig
from c360.streams.config import StreamsConfig
from c360.streams.kyc_config import KycWorkflowConfig


class GraphSettings(BaseModel):
    """Which graph store to use and how to reach it."""

    model_config = ConfigDict(extra="forbid")

    backend: str = Field(
        default="embedded",
        min_length=1,
        description="Store backend: embedded, neo4j, or package.module:name for a backend that module registers "
        "(register_store); each is imported only when chosen.",
    )
    embedded_file: str = Field(default="graph.db", description="Embedded store file, relative to the data dir.")
    embedded_lock_timeout: float = Field(
        default=30, gt=0, le=3600, description="Seconds an embedded-store writer waits for another process's lock."
    )
    embedded_checkpoint_seconds: float | None = Field(
        default=None,
        ge=0,
        le=3600,
        description="Seconds between background WAL checkpoints of the embedded store (0: none). Unset: every "
        "second in `c360 serve`, where no request should wait for a checkpoint, and none elsewhere (bulk "
        "ingest checkpoints in its commits).",
    )
    neo4j: Neo4jConfig = Field(default_factory=Neo4jConfig, description="Connection of the neo4j backend.")
    options: dict[str, Any] = Field(
        default_factory=dict, description="Config of any other backend, checked by that backend's config class."
    )

    @field_validator("backend")
    @classmethod
    def _known_backend(cls, name: str) -> str:
        if ":" not in name and name not in store_names():
            known = ", ".join(store_names())
            raise ValueError(f"unknown graph backend {name!r}; choose {known} or package.module:name")
        return name

    def store_config(self, data_dir: Path, *, serving: bool = False) -> EmbeddedConfig | Neo4jConfig | dict[str, Any]:
        """Return the config of the chosen backend (``serving``: for the API server)."""
        if self.backend == "neo4j":
            return self.neo4j
        if self.backend == "embedded":
            every = self.embedded_checkpoint_seconds
            checkpoints = (1.0 if serving else 0.0) if every is None else every
            path = data_dir / self.embedded_file
            return EmbeddedConfig(path=path, lock_timeout=self.embedded_lock_timeout, checkpoint_seconds=checkpoints)
        return dict(self.options)


class IngestSettings(BaseModel):
    """How ingest batches its work."""

    model_config = ConfigDict(extra="forbid")

    batch_size: int = Field(default=2000, ge=1, le=100_000, description="Records per transaction.")


class ApiSettings(BaseModel):
    """The profile API: authentication, the role policy, limits."""

    model_config = ConfigDict(extra="forbid")

    dev_mode: bool = Field(
        default=False, description="Local HS256 tokens (c360 auth token) and GraphiQL; never in production."
    )
    issuer: str = Field(default="c360-dev", description="The iss every token must carry.")
    audience: str = Field(default="c360", description="The aud every token must carry.")
    jwks_url: str | None = Field(default=None, description="The identity provider's JWKS URL (keys are cached).")
    key_file: Path | None = Field(default=None, description="A PEM public key or JWKS JSON file to verify tokens.")
    role_claim: str = Field(default="role", description="The claim that holds the role (a string or a list).")
    policy_file: Path | None = Field(default=None, description="Roles, permissions and masking; default: bundled.")
    hash_key_file: Path | None = Field(
        default=None,
        description="The secret key ring of the hash masking rule (HMAC-SHA256, JSON, mode 0600); default: "
        "hash-keys.json in the data dir, generated on first use. A file named here must exist.",
    )
    partner_rate: float = Field(default=20.0, gt=0, description="Requests per second a partner key may sustain.")
    partner_burst: int = Field(default=40, ge=1, description="Requests a partner key may send at once.")
    graphql_max_body: int = Field(
        default=64 * 1024, ge=1024, le=8 * 1024 * 1024, description="Most bytes of a /graphql request body (413 over)."
    )
    lens_timeout: float = Field(
        default=10.0, gt=0, le=600, description="Seconds one lens query may run (over it: 503, and DuckDB is stopped)."
    )


class AuditSettings(BaseModel):
    """The audit trail (``audit.log`` in the data dir): its sealing key."""

    model_config = ConfigDict(extra="forbid")

    key_file: Path | None = Field(
        default=None,
        description="The secret key ring that seals audit entries (HMAC-SHA256, JSON, mode 0600); default: "
        "audit-keys.json in the data dir, generated on first use. A file named here must exist; keep it "
        "where only the audit trail's writers can read it.",
    )


class ConsentSettings(BaseModel):
    """Consent: the purposes asked for, and what receipts name (the controller, its policy) and sign with."""

    model_config = ConfigDict(extra="forbid")

    purposes: list[str] = Field(
        default_factory=lambda: ["marketing", "personalisation", "analytics", "third_party_sharing"],
        description="The purposes consent is asked for (lower-case tokens); an event for another is refused.",
    )
    controller_name: str = Field(default="c360 operator", min_length=1, description="The PII controller receipts name.")
    controller_contact: str = Field(default="Data protection officer", min_length=1, description="Its contact.")
    controller_email: str = Field(default="privacy@example.invalid", min_length=3, description="Its email address.")
    policy_url: str = Field(
        default="https://example.invalid/privacy", min_length=1, description="The privacy policy receipts point to."
    )
    pii_categories: list[str] = Field(
        default_factory=lambda: ["contact details"],
        min_length=1,
        description="The categories of personal data the consent covers, as receipts list them.",
    )

    send_receipts: bool = Field(
        default=True,
        description="Queue every new receipt in the notification outbox for the customer's golden e-mail address "
        "(sent by `c360 outbox run`); customers without one get none.",
    )
    jwks_url: str = Field(
        default="http://127.0.0.1:8360/.well-known/jwks.json",
        min_length=1,
        description="Where customers check their receipts: this API's public /.well-known/jwks.json URL.",
    )
    signing_key_file: Path | None = Field(
        default=None,
        description="The Ed25519 key ring that signs consent receipts (private seeds, JSON, mode 0600; the public "
        "keys are served at /.well-known/jwks.json); default: signing-keys.json in the data dir, generated on "
        "first use. A file named here must exist.",
    )


class CaseSettings(BaseModel):
    """Service cases: what a case may be, the SLA calendars and policies, who is told of assignments."""

    model_config = ConfigDict(extra="forbid")

    types: list[str] = Field(
        default_factory=lambda: ["complaint", "service_request", "dispute", "data_request", "kyc_query"],
        min_length=1,
        description="The case types (lower-case tokens); a case of another type is refused.",
    )
    priorities: list[str] = Field(
        default_factory=lambda: ["low", "normal", "high", "urgent"],
        min_length=1,
        description="The priorities, lowest first.",
    )
    channels: list[str] = Field(
        default_factory=lambda: ["email", "phone", "web", "chat", "branch", "sms", "post"],
        min_length=1,
        description="The channels a case may come in by.",
    )
    sla: SlaConfig = Field(
        default_factory=SlaConfig,
        description="Business calendars (working hours per weekday, time zone, public holidays) and SLA "
        "policies per type and priority; after a change run `c360 cases recompute` (the API does at start).",
    )
    addresses: dict[str, str] = Field(
        default_factory=dict,
        description="E-mail addresses for case notices: a person's id, or team:<name> for a team. Assignments and "
        "SLA warnings to anyone not listed are not sent.",
    )


class KycSettings(BaseModel):
    """KYC: the sanctions lists screened against, as their publishers ship them, and how names are matched."""

    model_config = ConfigDict(extra="forbid")

    ofac_dir: Path | None = Field(
        default=None, description="Folder of the OFAC SDN list in its legacy CSV files (sdn.csv, alt.csv, ...)."
    )
    un_file: Path | None = Field(default=None, description="The UN Security Council consolidated list (XML).")
    screening: ScreeningConfig = Field(
        default_factory=ScreeningConfig, description="Name matching: the hit threshold, token levels, evidence weights."
    )
    workflow: KycWorkflowConfig = Field(
        default_factory=KycWorkflowConfig,
        description="Loan applications: tasks (roles, due times, escalation), retention per document type, products.",
    )
    risk_rules: Path | None = Field(
        default=None, description="A YAML file of risk rules (default: the bundled c360/resolution/kyc_risk.yaml)."
    )
    pan_service: PanServiceConfig | None = Field(
        default=None,
        description="The external PAN verification provider (None: PANs go to an officer to verify by hand).",
    )
    documents_store: str = Field(
        default="local", pattern="^(local|s3)$", description="Where documents are kept, encrypted: local or s3."
    )
    documents: dict[str, Any] = Field(
        default_factory=dict,
        description="The document store's settings (local: root, default DATA_DIR/documents; s3: endpoint_url, "
        "bucket, region, access_key_id, secret_access_key_file, prefix).",
    )
    scan_command: list[str] | None = Field(
        default=None,
        description="A virus scanner run on every upload (the file on stdin; exit 0 clean, 1 flagged, e.g. "
        "[clamdscan, --no-summary, -]); default: the built-in checks (EICAR, PDF scripts, appended files).",
    )
    ocr_timeout: float = Field(default=20, gt=0, le=120, description="Seconds reading one document's text may take.")
    applicants: dict[str, Any] = Field(
        default_factory=dict,
        description="Applicant sign-in (c360.graphql.applicant_auth.ApplicantAuthConfig: password policy, argon2 "
        "parameters, lockout, one-time codes, session lifetime, default mobile region); unknown keys are errors.",
    )


class Settings(BaseSettings):
    """All of c360's settings."""

    model_config = SettingsConfigDict(env_prefix="C360_", env_nested_delimiter="__", extra="forbid")

    data_dir: Path = Field(default=Path(".c360"), description="Folder for the embedded store, rejects, models.")
    graph: GraphSettings = Field(default_factory=GraphSettings, description="The graph store.")
    linking: LinkingConfig = Field(default_factory=LinkingConfig, description="Deterministic linking.")
    survivorship: SurvivorshipConfig = Field(default_factory=SurvivorshipConfig, description="Golden records.")
    ingest: IngestSettings = Field(default_factory=IngestSettings, description="Ingest batching.")
    realtime: RealtimeConfig = Field(default_factory=RealtimeConfig, description="Real-time probabilistic matching.")
    training: TrainingConfig = Field(
        default_factory=TrainingConfig, description="Model training: the profile, the specification, blocking budgets."
    )
    streams: StreamsConfig = Field(default_factory=StreamsConfig, description="Kafka and the Faust worker.")
    api: ApiSettings = Field(default_factory=ApiSettings, description="The profile API.")
    audit: AuditSettings = Field(default_factory=AuditSettings, description="The audit trail.")
    consent: ConsentSettings = Field(default_factory=ConsentSettings, description="Consent receipts.")
    cases: CaseSettings = Field(default_factory=CaseSettings, description="Service cases and their SLAs.")
    kyc: KycSettings = Field(default_factory=KycSettings, description="KYC: sanctions lists and screening.")
    notify: NotifyConfig = Field(
        default_factory=NotifyConfig, description="The notification outbox: SMTP, SMS and the worker that sends."
    )


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build the settings from ``overrides``, the environment and the config file, in that order."""
    path = config_file or (Path(p) if (p := os.environ.get("C360_CONFIG")) else None)
    if path is not None and not path.is_file():
        raise ConfigError(f"config file {path} not found")

    class _FromFile(Settings):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
            if path is not None:
                sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=path))
            return tuple(sources)

    try:
        settings = _FromFile(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"invalid setting {where}: {first['msg']}") from exc
    except Exception as exc:  # a config file that is not YAML
        raise ConfigError(f"cannot read settings: {exc}") from exc
    return Settings.model_validate(settings.model_dump())
