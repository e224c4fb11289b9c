"""KYC documents: an upload checked, scanned, stored encrypted, read, and compared with what was entered.

One upload is one new version of a document (a re-upload of the same document id is version n + 1; nothing
is overwritten). Its bytes decide its type (PDF, JPEG, PNG), never its name; the scanning hook may refuse
it; refused uploads leave a dead letter with the reason (never the bytes). The stored blob is encrypted
(:class:`~c360.connectors.documents.blobs.EncryptedBlobStore`). The text is read (a text PDF directly, an
image by OCR), the PAN, name and date of birth on it are compared with the application, and an Aadhaar
number read from it is sealed in the vault, never kept elsewhere.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from c360.connectors.documents.blobs import BlobStore
from c360.connectors.documents.content import DocumentRejected, check_content
from c360.connectors.documents.extract import ExtractionError, extract_text
from c360.connectors.documents.scan import ScanError, Scanner
from c360.graph.errors import InvalidInputError, NotFoundError
from c360.graph.kyc import Application, DocumentRef, KycEvent
from c360.graph.store import GraphStore
from c360.graph.vault import VaultKeys
from c360.resolution.document_checks import check_document
from c360.resolution.document_fields import DOC_TYPES as FIELD_TYPES
from c360.resolution.document_fields import read_fields

from .kyc_config import DOCUMENT_TYPES
from .kyc_events import SYSTEM, new_event, vault_owner
from .pipeline import dead_letter

_ID = "abcdefghijklmnopqrstuvwxyz0123456789_-"


@dataclass(frozen=True, slots=True)
class Upload:
    """What was uploaded: the document type, the bytes, and what the client said about them."""

    doc_type: str
    data: bytes
    filename: str | None = None
    media_type: str | None = None
    expires_on: date | None = None
    document_id: str | None = None


@dataclass(frozen=True, slots=True)
class Processed:
    """An upload's outcome: the application after it, the document, and how long each step took."""

    application: Application
    document: DocumentRef
    seconds: dict[str, float]


def blob_key(application_id: str, document_id: str, version: int) -> str:
    """Where one version of a document is stored."""
    return f"kyc/{application_id}/{document_id}/v{version}"


class DocumentIntake:
    """Takes uploads for the desk's applications."""

    def __init__(
        self,
        store: GraphStore,
        blobs: BlobStore,
        scanner: Scanner,
        *,
        vault: VaultKeys,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        ocr_timeout: float = 20.0,
    ) -> None:
        self.store = store
        self.blobs = blobs
        self.scanner = scanner
        self.vault = vault
        self.clock = clock
        self.ocr_timeout = ocr_timeout

    def _refuse(self, app: Application, upload: Upload, actor: str, reason: str) -> None:
        """Keep a refused upload's metadata (never its bytes) as a dead letter, then raise."""
        meta = {
            "application_id": app.id,
            "doc_type": upload.doc_type,
            "filename": (upload.filename or "")[:200],
            "declared": upload.media_type,
            "size": len(upload.data),
            "sha256": hashlib.sha256(upload.data).hexdigest(),
            "by": actor,
        }
        letter = dead_letter(
            json.dumps(meta, sort_keys=True),
            f"document refused: {reason}",
            received_at=self.clock(),
            sender=actor,
            source="kyc",
            key=f"kyc-upload|{meta['sha256']}|{app.id}",
        )
        self.store.add_dead_letters([letter])

    def upload(self, app: Application, upload: Upload, *, actor: str) -> Processed:
        """Check, scan, store and read one upload; its events are appended under the store's lock."""
        if upload.doc_type not in DOCUMENT_TYPES:
            raise InvalidInputError(
                f"unknown document type {upload.doc_type!r}: expected one of {', '.join(DOCUMENT_TYPES)}"
            )
        if app.status not in ("draft", "more_info_requested"):
            raise InvalidInputError(f"documents are uploaded to a draft or an application sent back, not {app.status}")
        seconds: dict[str, float] = {}
        started = time.perf_counter()
        try:
            media_type = check_content(upload.data, filename=upload.filename, declared=upload.media_type)
            scanned = self.scanner.scan(upload.data, media_type=media_type)
        except DocumentRejected as exc:
            self._refuse(app, upload, actor, f"{exc.reason}: {exc}")
            raise
        except ScanError as exc:
            self._refuse(app, upload, actor, f"scan_failed: {exc}")
            raise DocumentRejected("flagged", f"the scanner failed, so the document is refused: {exc}") from exc
        if not scanned.clean:
            self._refuse(app, upload, actor, f"flagged by {scanned.scanner}: {scanned.reason}")
            raise DocumentRejected("flagged", f"the document was flagged by {scanned.scanner}: {scanned.reason}")
        seconds["check"] = time.perf_counter() - started
        document_id = upload.document_id or f"doc_{uuid.uuid4().hex[:16]}"
        if not all(ch in _ID for ch in document_id) or not 1 <= len(document_id) <= 64:
            raise InvalidInputError("document_id: 1 to 64 lower-case letters, digits, _ or -")
        versions = [d.version for d in app.documents if d.document_id == document_id]
        version = max(versions, default=0) + 1
        key = blob_key(app.id, document_id, version)
        started = time.perf_counter()
        self.blobs.put(key, upload.data)
        seconds["store"] = time.perf_counter() - started
        at = self.clock()
        added: dict[str, Any] = {
            "document_id": document_id,
            "doc_type": upload.doc_type,
            "version": version,
            "checksum": hashlib.sha256(upload.data).hexdigest(),
            "size": len(upload.data),
            "media_type": media_type,
            "storage_key": key,
        }
        if upload.expires_on is not None:
            added["expires_on"] = upload.expires_on.isoformat()
        if upload.filename:
            added["filename"] = upload.filename[:200]
        events = [new_event(app.id, at, actor, "document_added", added)]
        started = time.perf_counter()
        events.extend(self._read(app, upload, media_type, document_id, version, at))
        seconds["read"] = time.perf_counter() - started
        self.store.append_kyc_events(events)
        after = self.store.get_application(app.id)
        doc = next(d for d in after.documents if d.document_id == document_id and d.version == version)
        return Processed(after, doc, seconds)

    def _read(
        self, app: Application, upload: Upload, media_type: str, document_id: str, version: int, at: datetime
    ) -> list[KycEvent]:
        """The text's fields against the application: a ``document_checked`` event and its verifications."""
        try:
            text = extract_text(upload.data, media_type, timeout=self.ocr_timeout)
        except ExtractionError as exc:
            details: dict[str, Any] = {"extraction": "failed", "reason": str(exc)[:300]}
            return [self._checked(app, document_id, version, "manual_review", details, at)]
        if upload.doc_type not in FIELD_TYPES:  # an address proof, a statement: an officer reads it
            details = {"method": text.method, "pages": text.pages, "characters": len(text.text), "checks": {}}
            return [self._checked(app, document_id, version, "manual_review", details, at)]
        fields = read_fields(text.text, upload.doc_type)
        sealed = []
        if fields.aadhaar is not None:
            sealed.append(self.vault.item(vault_owner(app.id), "aadhaar", fields.aadhaar))
        passport = fields.other.get("document_number") if upload.doc_type == "passport" else None
        if passport and fields.other.get("mrz") == "valid":
            sealed.append(self.vault.item(vault_owner(app.id), "passport", passport))
        if sealed:  # identifiers read from a document live only in the vault
            self.store.put_secrets(sealed)
        found = check_document(
            fields,
            self._entered(app),
            subject=app.id,
            at=at,
            document_id=document_id,
            expires_on=upload.expires_on,
        )
        results = {v.check: v.result for v in found}
        details = {"method": text.method, "pages": text.pages, "checks": results}
        if any(r == "fail" for r in results.values()):
            result = "failed"
        elif all(r == "pass" for r in results.values()) and results:
            result = "passed"
        else:
            result = "manual_review"
        events = [self._checked(app, document_id, version, result, details, at)]
        for v in found:
            events.append(new_event(app.id, at, SYSTEM, "verified", {"verification": v.to_json()}))
        return events

    def _entered(self, app: Application) -> dict[str, str]:
        """What the applicant entered, with the PAN itself (from the vault) in place of its mask."""
        entered = {k: str(v) for k, v in app.entered.items()}
        item = self.store.get_secret(vault_owner(app.id), "pan")
        if item is not None:
            entered["pan"] = self.vault.open_item(item)
        return entered

    def _checked(
        self, app: Application, document_id: str, version: int, result: str, details: dict[str, Any], at: datetime
    ) -> KycEvent:
        data = {"document_id": document_id, "version": version, "result": result, "details": details}
        return new_event(app.id, at, SYSTEM, "document_checked", data)

    def content(self, app: Application, document_id: str, version: int | None = None) -> tuple[DocumentRef, bytes]:
        """A document's bytes (the latest version unless ``version``), decrypted."""
        docs = [d for d in app.documents if d.document_id == document_id and (version is None or d.version == version)]
        if not docs:
            raise NotFoundError(
                f"application {app.id} has no document {document_id}" + (f" v{version}" if version else "")
            )
        doc = max(docs, key=lambda d: d.version)
        if doc.purged_at is not None:
            raise NotFoundError(f"document {document_id} v{doc.version} was purged ({doc.purge_reason})")
        return doc, self.blobs.get(doc.storage_key)
