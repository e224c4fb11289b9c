"""Event schemas: what partners and source systems send, versioned and exported as JSON Schema.

Every event carries an ``event_id`` (unique per source, the key of idempotency), its ``source`` system, the
time it ``occurred_at`` and its ``schema_version``. Events about a person name them by
``customer_key``: the key of the person's record in that source (``source|customer_key`` is the record
uid the identity graph links to a customer), so an order that arrives before its profile still lands on
the right customer once the profile does, and follows the record through merges and splits.
"""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter

SCHEMA_VERSION = 1

_Id = Annotated[str, Field(min_length=1, max_length=200)]
_Source = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_.-]*$")]
_Text = Annotated[str, Field(max_length=500)]
_Money = Annotated[Decimal, Field(max_digits=14, decimal_places=4)]
_Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code.")]


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    event_id: _Id = Field(description="Unique within the source; a redelivered event keeps its id.")
    source: _Source = Field(description="The sending system, e.g. crm, webshop, partner-acme.")
    occurred_at: AwareDatetime = Field(description="When it happened at the source (with a time zone).")
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
    date_of_birth: date | None = None
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
    attributes: dict[str, _Text] = Field(default_factory=dict, description="Source fields with no canonical field.")


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


Event = Annotated[ProfileUpdate | Order | Transaction | WebActivity | Product | Brand, Field(discriminator="type")]
EVENT_TYPES: tuple[type[_Event], ...] = (ProfileUpdate, Order, Transaction, WebActivity, Product, Brand)
#: event types that hang off a customer's timeline
JOURNEY_TYPES = frozenset({"order", "transaction", "web_activity"})
_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)


def parse_event(payload: Any) -> Event:
    """Validate one event payload (a dict or JSON text); raises ``pydantic.ValidationError``."""
    if isinstance(payload, (str, bytes)):
        return _ADAPTER.validate_json(payload)
    return _ADAPTER.validate_python(payload)


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
