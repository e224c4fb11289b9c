"""Event schemas: what partners and source systems send, versioned and exported as JSON Schema.

Every event carries an ``event_id`` (unique per source, the key of idempotency), its ``source`` system, the
time it ``occurred_at`` and its ``schema_version``. Events about a person name them by
``customer_key``: the key of the person's record in that source (``source|customer_key`` is the record
uid the identity graph links to a customer), so an order that arrives before its profile still lands on
the right customer once the profile does, and follows the record through merges and splits.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from c360.graph.models import EARLIEST_BIRTH, SOURCE_NAME_PATTERN, source_name_problem
from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationInfo,
    model_validator,
)

if TYPE_CHECKING:
    from .config import StreamsConfig

SCHEMA_VERSION = 1

#: Characters no string field may hold: C0 controls (tab and line breaks included; leading and trailing
#: whitespace is stripped first), DEL, C1 controls, the bidirectional overrides and isolates (text that
#: displays other than it reads), and lone surrogates (not Unicode: they cannot be stored as UTF-8).
_FORBIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
#: The same set as a JSON Schema pattern (surrogates cannot occur in valid JSON text).
_CLEAN_PATTERN = r"^[^\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]*$"
#: RFC 3339 date-time with a time zone (``T`` or ``t`` between date and time, ``Z`` or an offset).
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_EARLIEST_BIRTH = EARLIEST_BIRTH.isoformat()


def control_character(value: str) -> str | None:
    """What is wrong with a string the clean-text pattern refused: its first forbidden character, named."""
    found = _FORBIDDEN.search(value)
    if found is None:
        return None
    code = ord(found.group())
    what = "a lone surrogate (not valid Unicode)" if 0xD800 <= code <= 0xDFFF else "a control character"
    return f"holds {what}, U+{code:04X}, at position {found.start()}: not allowed"


def error_message(error: Mapping[str, Any]) -> str:
    """A validation error's message, the clean-text and source-name patterns' said plainly."""
    if error.get("type") == "string_pattern_mismatch":
        pattern = (error.get("ctx") or {}).get("pattern")
        value = error.get("input")
        if pattern == _CLEAN_PATTERN and isinstance(value, str):
            return control_character(value) or str(error["msg"])
        if pattern == SOURCE_NAME_PATTERN:
            return source_name_problem(value) or str(error["msg"])
    return str(error["msg"])


def _occurred_at(value: Any, info: ValidationInfo) -> Any:
    """Take an RFC 3339 string (or an aware datetime, from Python callers) within the window; refuse the rest.

    Most times are days inside the window: their date alone says so, without a comparison of aware times.
    """
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            _check_time(value, _window(info))
        return value
    text = value.strip() if isinstance(value, str) else None
    if text is None or not _RFC3339.fullmatch(text):
        raise ValueError("must be an RFC 3339 date-time string with a time zone, e.g. 2026-05-01T10:00:00Z")
    window = _window(info)
    if not window.surely_from < text[:10] < window.surely_to:
        try:
            parsed = datetime.fromisoformat(text.upper())
        except ValueError:
            return text  # not a real date or time (a 13th month, say): pydantic says so
        _check_time(parsed, window)
    return text


def _check_time(value: datetime, window: Window) -> None:
    if value < window.earliest:
        raise ValueError(f"is before {window.bounds.earliest_year}: not a time this service takes")
    if value > window.latest:
        days = window.bounds.max_future.total_seconds() / 86400
        ahead = f"{days:g} day{'' if days == 1 else 's'}"
        now = window.now.isoformat(timespec="seconds")
        raise ValueError(f"is more than {ahead} ahead of the receiving clock ({now})")


def _birth_date(value: Any, info: ValidationInfo) -> Any:
    """Take an ISO 8601 calendar date ``YYYY-MM-DD`` (or a date) from 1900 to today; refuse the rest."""
    if isinstance(value, date) and not isinstance(value, datetime):
        text = value.isoformat()
    elif isinstance(value, str) and _ISO_DATE.fullmatch(value.strip()):
        value = text = value.strip()
    else:
        raise ValueError("must be a date as YYYY-MM-DD")
    if text < _EARLIEST_BIRTH:  # ISO dates of four-digit years sort as they count
        raise ValueError(f"is before {_EARLIEST_BIRTH}")
    if text > _window(info).latest_birth:
        raise ValueError("is in the future")
    return value


# Strings are checked by pydantic-core's own regex engine (no Python call per field); the pipeline's
# reasons name the character (:func:`error_message`).
_Id = Annotated[str, Field(min_length=1, max_length=200, pattern=_CLEAN_PATTERN)]
_Source = Annotated[str, Field(min_length=1, max_length=64, pattern=SOURCE_NAME_PATTERN)]
_Text = Annotated[str, Field(max_length=500, pattern=_CLEAN_PATTERN)]
_Key = Annotated[str, Field(min_length=1, max_length=100, pattern=_CLEAN_PATTERN)]
_OccurredAt = Annotated[AwareDatetime, BeforeValidator(_occurred_at)]
_BirthDate = Annotated[date, BeforeValidator(_birth_date)]
_Money = Annotated[Decimal, Field(max_digits=14, decimal_places=4)]
_Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code.")]


@dataclass(frozen=True, slots=True)
class EventBounds:
    """The window ``occurred_at`` must fall in.

    From January 1st of ``earliest_year`` (UTC) to ``max_future`` after the receiving clock (sources'
    clocks drift; a time far ahead would stay first on every timeline).
    """

    max_future: timedelta = timedelta(days=1)
    earliest_year: int = 1900

    @classmethod
    def of(cls, config: StreamsConfig) -> EventBounds:
        """The bounds the streams settings configure."""
        return cls(timedelta(days=config.occurred_at_max_future_days), config.occurred_at_min_year)

    @property
    def earliest(self) -> datetime:
        """The earliest ``occurred_at`` taken."""
        return datetime(self.earliest_year, 1, 1, tzinfo=UTC)

    def window(self, now: datetime) -> Window:
        """What one validation at clock reading ``now`` compares against (computed once per batch)."""
        earliest, latest = self.earliest, now + self.max_future
        margin = timedelta(days=2)  # more than any UTC offset: a local date inside is a time inside
        return Window(
            self,
            now,
            earliest,
            latest,
            (earliest + margin).date().isoformat(),
            (latest.astimezone(UTC) - margin).date().isoformat(),
            (now.astimezone(UTC) + timedelta(hours=14)).date().isoformat(),
        )


@dataclass(frozen=True, slots=True)
class Window:
    """:class:`EventBounds` at one clock reading: the times and the latest birth date taken (ISO text)."""

    bounds: EventBounds
    now: datetime
    earliest: datetime
    latest: datetime
    #: local dates strictly between these are times inside the window, whatever their offset
    surely_from: str
    surely_to: str
    #: today somewhere on earth
    latest_birth: str


DEFAULT_BOUNDS = EventBounds()


def _window(info: ValidationInfo) -> Window:
    """The window a validation runs with (:func:`parse_event`'s ``context``), else the default one now."""
    window = info.context.get("window") if isinstance(info.context, dict) else None
    return window if isinstance(window, Window) else DEFAULT_BOUNDS.window(datetime.now(UTC))


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    event_id: _Id = Field(description="Unique within the source; a redelivered event keeps its id.")
    source: _Source = Field(
        description="The sending system, e.g. crm, webshop, partner-acme: a partner may send as its own sources only."
    )
    occurred_at: _OccurredAt = Field(
        description="When it happened at the source: an RFC 3339 date-time string with a time zone, not before "
        "1900 (streams.occurred_at_min_year) and at most one day ahead of the receiver's clock "
        "(streams.occurred_at_max_future_days).",
        json_schema_extra={"formatMinimum": "1900-01-01T00:00:00Z"},
    )
    schema_version: Literal[1] = Field(default=1, description="Version of this event's schema.")

    @property
    def identity(self) -> str:
        """What the topic is keyed by: events of one identity stay in order."""
        key = getattr(self, "customer_key", None)
        return f"{self.source}|{key}" if key else f"{self.source}|{self.event_id}"


class Profile(BaseModel):
    """A person's fields as the source holds them (all optional but the key)."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    customer_key: _Id = Field(description="The person's key in the source system.")
    first_name: _Text | None = None
    last_name: _Text | None = None
    date_of_birth: _BirthDate | None = Field(
        default=None,
        description="YYYY-MM-DD, not before 1900-01-01 and not in the future.",
        json_schema_extra={"formatMinimum": "1900-01-01"},
    )
    gender: _Text | None = None
    email: _Text | None = None
    phone: _Text | None = None
    address_line1: _Text | None = None
    address_line2: _Text | None = None
    city: _Text | None = None
    postcode: _Text | None = None
    state: _Text | None = None
    country: _Text | None = None
    national_id: _Text | None = None
    national_id_kind: _Text | None = None
    customer_number: _Text | None = None
    attributes: dict[_Key, _Text] = Field(
        default_factory=dict, max_length=100, description="Source fields with no canonical field (at most 100)."
    )


class ProfileUpdate(_Event):
    """A source record created or changed: resolved into the identity graph."""

    type: Literal["profile_update"] = "profile_update"
    profile: Profile

    @property
    def customer_key(self) -> str:
        """The person's key in the source."""
        return self.profile.customer_key


class LineItem(BaseModel):
    """One line of an order."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    line_id: _Id
    product_id: _Id
    quantity: int = Field(ge=1, le=100_000)
    unit_price: _Money = Field(ge=0)
    discount: _Money = Field(default=Decimal(0), ge=0)


class Order(_Event):
    """An order with its line items (the retail ``orders`` and ``order_line_item`` tables)."""

    type: Literal["order"] = "order"
    order_id: _Id
    customer_key: _Id
    status: Literal["placed", "paid", "shipped", "delivered", "cancelled", "returned"] = "placed"
    channel: Literal["web", "app", "store", "call_center", "partner"] = "web"
    currency: _Currency
    total: _Money = Field(ge=0)
    line_items: list[LineItem] = Field(min_length=1, max_length=1000)


class Transaction(_Event):
    """A payment or refund (the retail ``transactions`` table)."""

    type: Literal["transaction"] = "transaction"
    transaction_id: _Id
    customer_key: _Id
    order_id: _Id | None = None
    kind: Literal["payment", "refund", "chargeback"] = "payment"
    amount: _Money
    currency: _Currency
    payment_method: Literal["card", "bank_transfer", "wallet", "cash", "voucher", "other"] = "card"
    status: Literal["authorised", "settled", "declined", "failed"] = "settled"


class WebActivity(_Event):
    """A clickstream event of a known visitor."""

    type: Literal["web_activity"] = "web_activity"
    customer_key: _Id
    action: Literal["product_view", "add_to_favourites", "add_to_cart", "order_placed"]
    session_id: _Id
    product_id: _Id | None = None
    order_id: _Id | None = None
    channel: Literal["web", "app"] = "web"
    traffic_source: Literal["direct", "organic", "paid_search", "social", "email", "referral", "affiliate"] = "direct"


class Product(_Event):
    """Product reference data."""

    type: Literal["product"] = "product"
    product_id: _Id
    name: _Text
    brand_id: _Id | None = None
    category: _Text | None = None
    price: _Money | None = Field(default=None, ge=0)


class Brand(_Event):
    """Brand reference data."""

    type: Literal["brand"] = "brand"
    brand_id: _Id
    name: _Text


def _expires_at(value: Any) -> Any:
    """Take an RFC 3339 string with a time zone (or an aware datetime, from Python callers); refuse the rest."""
    if isinstance(value, datetime):
        return value  # AwareDatetime refuses a naive one
    text = value.strip() if isinstance(value, str) else None
    if text is None or not _RFC3339.fullmatch(text):
        raise ValueError("must be an RFC 3339 date-time string with a time zone, e.g. 2027-05-01T10:00:00Z")
    return text


class ConsentActor(BaseModel):
    """Who captured a consent: the customer themselves or an agent on their behalf, and their id."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    kind: Literal["customer", "agent"]
    id: _Id = Field(description="The customer's or the agent's id as the source knows them.")


class ConsentNotice(BaseModel):
    """The notice a consent answered: its id, version, language and the SHA-256 of its text."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    id: _Id
    version: _Id
    language: str = Field(
        pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$", max_length=35, description="A BCP 47 tag, e.g. en, en-GB."
    )
    text_sha256: str = Field(
        pattern=r"^[0-9a-f]{64}$", description="SHA-256 of the notice's text (UTF-8), 64 lower-case hex digits."
    )


class ConsentChange(_Event):
    """A customer granted, denied or withdrew consent for one purpose on one channel (issue 15).

    It hangs off the source record ``source|customer_key``, which must be stored (or arrive in the same
    batch); ``occurred_at`` is when the consent was captured. Each one is recorded in the consent ledger
    with a signed receipt and shows on the customer's timeline.
    """

    type: Literal["consent_change"] = "consent_change"
    # The ledger names an event source|event_id, at most 200 characters: 64 for the source, one for "|".
    event_id: str = Field(
        min_length=1,
        max_length=135,
        pattern=_CLEAN_PATTERN,
        description="Unique within the source (at most 135 characters); a redelivered event keeps its id.",
    )
    customer_key: _Id = Field(description="The key of the person's record in the source the consent came with.")
    purpose: str = Field(
        pattern=r"^[a-z][a-z0-9_]{0,63}$",
        description="One of the purposes the service asks consent for (consent.purposes; default marketing, "
        "personalisation, analytics, third_party_sharing).",
    )
    channel: Literal["email", "sms", "phone", "push", "post", "web", "in_person"]
    status: Literal["granted", "denied", "withdrawn"]
    actor: ConsentActor
    method: Literal["web_form", "call_centre", "branch", "paper", "double_opt_in", "partner"]
    notice: ConsentNotice
    jurisdiction: str = Field(
        pattern=r"^[A-Z]{2}(-[A-Z0-9]{1,3})?$", description="ISO 3166-1 alpha-2 or a 3166-2 code: DE, IN, US-CA."
    )
    expires_at: Annotated[AwareDatetime, BeforeValidator(_expires_at)] | None = Field(
        default=None, description="When a grant lapses (RFC 3339 with a time zone, after occurred_at); grants only."
    )

    @model_validator(mode="after")
    def _expiry(self) -> ConsentChange:
        if self.expires_at is not None:
            if self.status != "granted":
                raise ValueError(f"expires_at: only a grant can expire, this event is {self.status}")
            if self.expires_at <= self.occurred_at:
                raise ValueError(
                    f"expires_at {self.expires_at.isoformat()} is not after occurred_at (the capture time) "
                    f"{self.occurred_at.isoformat()}"
                )
        return self


Event = Annotated[
    ProfileUpdate | Order | Transaction | WebActivity | Product | Brand | ConsentChange, Field(discriminator="type")
]
EVENT_TYPES: tuple[type[_Event], ...] = (ProfileUpdate, Order, Transaction, WebActivity, Product, Brand, ConsentChange)
#: event types that hang off a customer's timeline
JOURNEY_TYPES = frozenset({"order", "transaction", "web_activity", "consent_change"})
_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)


def parse_event(
    payload: Any, *, bounds: EventBounds | None = None, now: datetime | None = None, window: Window | None = None
) -> Event:
    """Validate one event payload (a dict or JSON text); raises ``pydantic.ValidationError``.

    ``occurred_at`` must fall within ``bounds`` around ``now`` (default: the clock now), birth dates not
    after ``now``'s date; ``window`` gives both at once (``bounds.window(now)``, for a batch).
    """
    if window is None:
        window = (bounds or DEFAULT_BOUNDS).window(now or datetime.now(UTC))
    context = {"window": window}
    if isinstance(payload, (str, bytes)):
        return _ADAPTER.validate_json(payload, context=context)
    return _ADAPTER.validate_python(payload, context=context)


def json_schemas() -> dict[str, dict[str, Any]]:
    """The JSON Schema of every event type (file name -> schema), and of the union as ``event.json``."""
    out: dict[str, dict[str, Any]] = {}
    for t in EVENT_TYPES:
        name = t.model_fields["type"].default
        out[f"{name}.v{SCHEMA_VERSION}.json"] = t.model_json_schema()
    out[f"event.v{SCHEMA_VERSION}.json"] = _ADAPTER.json_schema()
    return out


def export_schemas(folder: Path) -> list[Path]:
    """Write :func:`json_schemas` into ``folder`` (created if missing); returns the files written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in sorted(json_schemas().items()):
        path = folder / name
        path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        written.append(path)
    return written
