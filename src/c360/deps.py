"""Service factories: the one place where settings become stores and services."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from c360.graph.case_desk import CaseDesk
from c360.graph.cases import CaseVocabulary
from c360.graph.store import GraphStore, open_store
from c360.resolution.linker import CustomerIdFactory, Linker
from c360.resolution.model_registry import Artifact, ModelRegistry
from c360.streams.events import EventBounds
from c360.streams.pipeline import Pipeline

from .settings import Settings

if TYPE_CHECKING:  # c360.graphql is imported where it is used: a lenient editable install cannot map it
    from fastapi import FastAPI

    from c360.connectors.documents.blobs import BlobStore
    from c360.graph.consent_ledger import ReceiptIssuer
    from c360.graph.receipts import SigningKeys
    from c360.graph.vault import RotationCounts, VaultKeys
    from c360.graph.watchlist import Watchlist
    from c360.graphql.applicant_auth import ApplicantAuth
    from c360.graphql.audit import AuditLog
    from c360.graphql.auth import AuthConfig
    from c360.graphql.hash_keys import HashKeys
    from c360.graphql.partners import PartnerKeys
    from c360.graphql.policy import Policy
    from c360.resolution.batch import BatchResolver
    from c360.resolution.screening import Screener
    from c360.streams.kyc_desk import KycDesk
    from c360.streams.outbox import OutboxWorker


def build_store(settings: Settings, *, serving: bool = False) -> GraphStore:
    """Open the configured graph store (``serving``: for the API server, with background WAL checkpoints)."""
    return open_store(settings.graph.backend, settings.graph.store_config(settings.data_dir, serving=serving))


def model_registry(settings: Settings) -> ModelRegistry:
    """The trained-model artifacts of the data directory."""
    return ModelRegistry(settings.data_dir / "models")


def build_linker(settings: Settings, store: GraphStore) -> Linker:
    """Build the linker over ``store``: deterministic rules, plus the latest trained model if there is one."""
    registry = model_registry(settings)
    if not (settings.realtime.enabled and registry.versions()):
        return Linker(store, settings.linking, settings.survivorship, realtime=settings.realtime)
    artifact = registry.load()
    realtime = artifact.realtime(settings.realtime)
    return Linker(store, settings.linking, settings.survivorship, scorer=artifact.scorer(), realtime=realtime)


def build_batch_resolver(
    settings: Settings, store: GraphStore, *, artifact: Artifact | None = None, log_level: int = logging.ERROR
) -> BatchResolver:
    """Batch resolution over ``store`` with a trained model: ``artifact``, else the latest one saved.

    Splink loads with it (``c360.resolution.batch``), so it is imported here, not with this module.
    """
    from c360.resolution.batch import BatchResolver

    model = artifact if artifact is not None else model_registry(settings).load()
    return BatchResolver(
        store,
        model.settings,
        linking=settings.linking,
        realtime=model.realtime(settings.realtime),
        survivorship=settings.survivorship,
        clock=lambda: datetime.now(UTC),
        new_id=CustomerIdFactory(),
        new_review_id=CustomerIdFactory("R"),
        scorer=model.scorer(),
        log_level=log_level,
    )


def build_pipeline(settings: Settings, store: GraphStore) -> Pipeline:
    """The event pipeline over ``store``: the configured linker, occurred_at window and consent receipt issuer."""
    return Pipeline(
        store,
        build_linker(settings, store),
        bounds=EventBounds.of(settings.streams),
        issuer=receipt_issuer(settings),
        purposes=settings.consent.purposes,
    )


def partner_keys(settings: Settings) -> PartnerKeys:
    """The partner API keys of the data directory (stored hashed)."""
    from c360.graphql.partners import PartnerKeys

    return PartnerKeys(settings.data_dir / "partners.json")


def audit_log(settings: Settings) -> AuditLog:
    """The audit trail of the data directory (sealed with ``audit.key_file``, else ``audit-keys.json`` there).

    The API and the command line append to it; a configured key file must exist.
    """
    from c360.graphql.audit import AuditLog

    return AuditLog(settings.data_dir / "audit.log", key_file=settings.audit.key_file)


def hash_key_file(settings: Settings) -> Path:
    """Where the key ring of the ``hash`` masking rule is: ``api.hash_key_file``, else the data directory's."""
    from c360.graphql.hash_keys import DEFAULT_FILE

    return settings.api.hash_key_file or settings.data_dir / DEFAULT_FILE


def hash_keys(settings: Settings) -> HashKeys:
    """The key ring of the ``hash`` masking rule (HMAC-SHA256 secrets; hashes read ``hmac:<key id>:<hex>``).

    The data directory's ring is generated on first use (mode 0600); a file named by ``api.hash_key_file``
    must exist (a missing mounted secret is an error, not a new key that would change every hash).
    """
    from c360.graphql.hash_keys import open_hash_keys

    return open_hash_keys(hash_key_file(settings), create=settings.api.hash_key_file is None)


def rotate_hash_key(settings: Settings) -> HashKeys:
    """Add a new current key to the ``hash`` rule's key ring and return the new ring (``c360 keys rotate --hash``).

    The old keys stay in the ring, so hashes made before can still be recognised; every hash made from
    now on is under the new key (``hmac:<new id>:...``), so consumers joining on hashes re-read what they
    keep. A running server keeps the ring it started with: restart it.
    """
    from c360.graphql.hash_keys import rotate_hash_keys

    return rotate_hash_keys(hash_key_file(settings))


def signing_key_file(settings: Settings) -> Path:
    """Where the consent receipts' signing key ring is: ``consent.signing_key_file``, else the data directory's."""
    from c360.graph.receipts import DEFAULT_FILE

    return settings.consent.signing_key_file or settings.data_dir / DEFAULT_FILE


def signing_keys(settings: Settings) -> SigningKeys:
    """The Ed25519 key ring that signs consent receipts (its current key signs; every key verifies).

    The data directory's ring is generated on first use (mode 0600); a file named by
    ``consent.signing_key_file`` must exist (a missing mounted secret is an error, not a new key).
    """
    from c360.graph.receipts import open_signing_keys

    return open_signing_keys(signing_key_file(settings), create=settings.consent.signing_key_file is None)


def receipt_issuer(settings: Settings) -> ReceiptIssuer:
    """What consent receipts are signed with and name: the signing keys, the controller, its policy."""
    from c360.graph.consent_ledger import ReceiptIssuer
    from c360.graph.receipts import Controller

    c = settings.consent
    controller = Controller(c.controller_name, c.controller_contact, c.controller_email)
    jwks = c.jwks_url if c.send_receipts else None
    return ReceiptIssuer(signing_keys(settings), controller, c.policy_url, tuple(c.pii_categories), jwks_url=jwks)


def rotate_signing_key(settings: Settings) -> SigningKeys:
    """Add a new current key to the signing key ring and return the new ring (``c360 keys rotate --signing``).

    The old keys stay in the ring and in the JWKS, so receipts signed before verify by their ``kid``.
    """
    from c360.graph.receipts import rotate_signing_keys

    return rotate_signing_keys(signing_key_file(settings))


def watchlists(settings: Settings) -> list[Watchlist]:
    """The sanctions lists ``kyc.ofac_dir`` and ``kyc.un_file`` name, loaded from their files (at least one)."""
    from c360.connectors.watchlists import load_ofac, load_un
    from c360.graph.errors import ConfigError

    kyc = settings.kyc
    lists = []
    if kyc.ofac_dir is not None:
        lists.append(load_ofac(kyc.ofac_dir))
    if kyc.un_file is not None:
        lists.append(load_un(kyc.un_file))
    if not lists:
        raise ConfigError("no sanctions list is configured: set kyc.ofac_dir (OFAC SDN CSV) or kyc.un_file (UN XML)")
    return lists


def screener(settings: Settings, lists: list[Watchlist] | None = None) -> Screener:
    """The watchlist screener over the configured lists (or ``lists``, already loaded)."""
    from c360.resolution.screening import Screener

    return Screener(lists if lists is not None else watchlists(settings), settings.kyc.screening)


def vault_keys(settings: Settings) -> VaultKeys:
    """The vault's AES keys (C360_VAULT_KEYS, else vault-keys.json in the data dir, made on first use, 0600)."""
    from c360.graph.vault import DEFAULT_FILE, open_vault_keys

    return open_vault_keys(settings.data_dir / DEFAULT_FILE)


def rotate_vault(
    settings: Settings, store: GraphStore, progress: Callable[[RotationCounts], None] | None = None
) -> RotationCounts:
    """Add a new current vault key and re-seal every secret under it, beside running writers (compare-and-swap).

    Returns the rotation's counts. Keys given by C360_VAULT_KEYS are rotated by editing that variable instead.
    """
    import os

    from c360.graph.errors import ConfigError
    from c360.graph.vault import DEFAULT_FILE, ENV_VAR, rotate_vault, rotate_vault_keys

    if os.environ.get(ENV_VAR, "").strip():
        raise ConfigError(f"the vault keys come from {ENV_VAR}: add the new key there (the file is not used)")
    keys = rotate_vault_keys(settings.data_dir / DEFAULT_FILE)
    return rotate_vault(store, keys, progress=progress)


def signing_jwks(settings: Settings) -> Callable[[], dict[str, Any]]:
    """The public keys ``/.well-known/jwks.json`` serves: the signing key ring's, read again when its file changes.

    The ring is read (or made) here, so a missing or unsafe key file stops the server before it starts.
    """
    from c360.graph.receipts import PublishedKeys

    signing_keys(settings)
    return PublishedKeys(signing_key_file(settings))


def case_desk(settings: Settings, store: GraphStore) -> CaseDesk:
    """The desk that opens and changes cases, with the configured vocabulary, SLAs and notice addresses."""
    cases = settings.cases
    vocabulary = CaseVocabulary(tuple(cases.types), tuple(cases.priorities), tuple(cases.channels))
    return CaseDesk(store, vocabulary=vocabulary, sla=cases.sla, addresses=dict(cases.addresses))


def document_blobs(settings: Settings, keys: VaultKeys | None = None) -> BlobStore:
    """The KYC document store (kyc.documents_store: local files under DATA_DIR/documents, or S3), encrypted."""
    from c360.connectors.documents.blobs import open_blob_store

    config = dict(settings.kyc.documents)
    if settings.kyc.documents_store == "local":
        config.setdefault("root", str(settings.data_dir / "documents"))
    return open_blob_store(settings.kyc.documents_store, config, keys or vault_keys(settings))


def kyc_desk(settings: Settings, store: GraphStore, pipeline: Pipeline | None = None) -> KycDesk:
    """The KYC desk: applications, their documents (encrypted store), automated checks, risk rules and tasks.

    Screening runs when a sanctions list is configured (kyc.ofac_dir / kyc.un_file; loaded on first use), the
    PAN service when kyc.pan_service is; without them those checks go to officers.
    """
    from c360.connectors.documents.scan import BuiltinScanner, CommandScanner, Scanner
    from c360.connectors.pan_service import HttpPanVerifier
    from c360.resolution.kyc_risk import load_rules
    from c360.streams.kyc_checks import KycChecks
    from c360.streams.kyc_desk import KycDesk
    from c360.streams.kyc_documents import DocumentIntake

    kyc = settings.kyc
    keys = vault_keys(settings)
    blobs = document_blobs(settings, keys)
    scanner: Scanner = CommandScanner(kyc.scan_command) if kyc.scan_command else BuiltinScanner()
    lists = kyc.ofac_dir is not None or kyc.un_file is not None
    checks = KycChecks(
        store,
        vault=keys,
        rules=load_rules(kyc.risk_rules),
        screener=(lambda: screener(settings)) if lists else None,
        pan_service=HttpPanVerifier(kyc.pan_service) if kyc.pan_service is not None else None,
        config=kyc.workflow,
    )
    intake = DocumentIntake(store, blobs, scanner, vault=keys, ocr_timeout=kyc.ocr_timeout)
    return KycDesk(
        store,
        pipeline or build_pipeline(settings, store),
        vault=keys,
        checks=checks,
        documents=intake,
        config=kyc.workflow,
    )


def outbox_worker(settings: Settings, store: GraphStore) -> OutboxWorker:
    """The worker that sends the outbox through the configured transports (none configured: nothing is sent)."""
    from c360.connectors.notify import build_transports
    from c360.streams.outbox import OutboxWorker

    return OutboxWorker(store, build_transports(settings.notify), settings.notify.outbox)


def build_policy(settings: Settings) -> Policy:
    """The role policy (``api.policy_file`` or the bundled one), hashing with the deployment's key ring."""
    from c360.graphql.policy import load_policy

    return load_policy(settings.api.policy_file, hash_keys=hash_keys(settings))


def auth_config(settings: Settings) -> AuthConfig:
    """How bearer tokens are verified (and, in dev mode, issued)."""
    from c360.graphql.auth import AuthConfig

    api = settings.api
    return AuthConfig(
        issuer=api.issuer,
        audience=api.audience,
        jwks_url=api.jwks_url,
        key_file=api.key_file,
        dev_mode=api.dev_mode,
        dev_key_file=settings.data_dir / "dev-signing.key" if api.dev_mode else None,
        role_claim=api.role_claim,
    )


def applicant_auth(settings: Settings, store: GraphStore) -> ApplicantAuth:
    """Applicant accounts of the KYC portal: registration, passwords, lockout, one-time codes, sessions."""
    from pydantic import ValidationError

    from c360.graph.errors import ConfigError
    from c360.graphql.applicant_auth import ApplicantAuth, ApplicantAuthConfig

    try:
        config = ApplicantAuthConfig.model_validate(settings.kyc.applicants)
    except ValidationError as exc:
        raise ConfigError(f"kyc.applicants: {exc}") from None
    return ApplicantAuth(store, config)


def build_app(settings: Settings, store: GraphStore) -> FastAPI:
    """The FastAPI app over ``store``: partner events go to Kafka when it is configured, else in-process."""
    from c360.graphql.app import ApiOptions, EventSink, create_app
    from c360.graphql.auth import TokenVerifier
    from c360.graphql.ratelimit import RateLimiter
    from c360.graphql.service import ProfileService
    from c360.ml.lens_source import lens_source

    pipeline = build_pipeline(settings, store)
    sink: EventSink
    if settings.streams.brokers:
        from c360.streams.producer import KafkaSink

        sink = KafkaSink(settings.streams, pipeline)
    else:
        from c360.streams.runner import Runner

        sink = Runner(pipeline)
    api = settings.api
    role_policy = build_policy(settings)
    audit = audit_log(settings)
    config = auth_config(settings)
    verifier = TokenVerifier(config, role_policy.roles) if api.jwks_url or api.key_file or api.dev_mode else None
    registry = model_registry(settings)
    service = ProfileService(
        store,
        role_policy,
        audit,
        linking=settings.linking,
        survivorship=settings.survivorship,
        scorer=lambda: registry.load().scorer() if registry.versions() else None,
        inline_reads=settings.graph.backend == "embedded",
        receipts=receipt_issuer(settings),
        consent_purposes=tuple(settings.consent.purposes),
        cases=case_desk(settings, store),
        kyc=kyc_desk(settings, store, pipeline),
        lens=lens_source(settings.data_dir / "ml", timeout=api.lens_timeout),
    )
    options = ApiOptions(
        policy=role_policy,
        audit=audit,
        verifier=verifier,
        dev_mode=api.dev_mode,
        partner_limiter=RateLimiter(api.partner_rate, api.partner_burst),
        service=service,
        graphql_max_body=api.graphql_max_body,
        jwks=signing_jwks(settings),
        applicants=applicant_auth(settings, store),
    )
    return create_app(store=store, sink=sink, partners=partner_keys(settings), options=options)
