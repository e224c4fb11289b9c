"""A deterministic synthetic retail journey: catalog, clickstream, orders and payments as event payloads.

Given the records the identity graph knows (:class:`Shopper`: a source and a customer key), it makes a
catalog of brands and products and, per shopper, browsing sessions (product views, favourites, cart adds)
of which about 40% end in an order with its payment; a few payments are declined and retried, returned
orders get a refund. The payloads are plain JSON-able dicts in the shape of the event schemas
(``c360.streams.events``): ids are stable for a seed, money is a string with two decimals, times are ISO
8601 in UTC. Each shopper's journey comes from its own random stream (seed, source and key), so it does
not change when other shoppers are added; only the running ids do.
"""

from __future__ import annotations

import random
import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from c360.graph.errors import InvalidInputError
from faker import Faker

DEFAULT_UNTIL = datetime(2026, 11, 1, tzinfo=UTC)
_SOURCE_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
_CENT = Decimal("0.01")

BRAND_NAMES = (
    "Northwind Outfitters",
    "Aurelle",
    "Kestrel & Co.",
    "Bluefjord",
    "Maison Verdant",
    "Ridgeline Supply",
    "Lumen Home",
    "Solace Skin",
    "Pioneer Athletics",
    "Copperleaf",
    "Halden Audio",
    "Stride Lab",
    "Marigold & Finch",
    "Urbanloom",
    "Saltmarsh",
    "Vireo Sport",
    "Ember & Oak",
    "Nimbus Tech",
    "Petalworks",
    "Tidewater Denim",
    "Atlas Trek",
    "Fernhill",
    "Quill & Thread",
    "Brightvale",
)
#: category -> (price range, product nouns)
CATEGORIES: dict[str, tuple[tuple[int, int], tuple[str, ...]]] = {
    "apparel": ((12, 180), ("T-Shirt", "Hoodie", "Crew Sweater", "Chinos", "Rain Jacket", "Linen Shirt", "Dress")),
    "shoes": ((35, 240), ("Running Shoe", "Leather Sneaker", "Chelsea Boot", "Trail Shoe", "Sandal", "Loafer")),
    "beauty": ((6, 95), ("Face Serum", "Hand Cream", "Lip Balm", "Eau de Parfum", "Night Cream", "Shampoo")),
    "home": ((9, 420), ("Throw Blanket", "Ceramic Vase", "Table Lamp", "Bath Towel Set", "Scented Candle", "Mug")),
    "electronics": ((19, 1400), ("Wireless Earbuds", "Smartwatch", "Bluetooth Speaker", "Power Bank", "E-Reader")),
    "sports": ((8, 320), ("Yoga Mat", "Water Bottle", "Training Shorts", "Cycling Gloves", "Kettlebell", "Backpack")),
    "accessories": ((10, 260), ("Leather Belt", "Wool Scarf", "Tote Bag", "Sunglasses", "Wallet", "Beanie")),
    "baby": ((8, 320), ("Baby Carrier", "Crib Sheet Set", "Baby Monitor", "Stroller", "Bottle Set", "Play Mat")),
}
ADJECTIVES = ("Classic", "Essential", "Everyday", "Premium", "Organic", "Lightweight", "Signature", "Urban", "Pro")
COLOURS = ("Black", "White", "Navy", "Sand", "Olive", "Grey", "Rust", "Sky")
TRAFFIC = (
    ("direct", 30),
    ("organic", 25),
    ("paid_search", 15),
    ("social", 12),
    ("email", 9),
    ("referral", 5),
    ("affiliate", 4),
)
PAYMENT_METHODS = (("card", 62), ("wallet", 22), ("bank_transfer", 9), ("voucher", 7))
SESSIONS_PER_SHOPPER = (0, 1, 2, 3, 4, 5, 6, 7, 8)
SESSION_WEIGHTS = (4, 18, 22, 20, 14, 9, 6, 4, 3)  # mean 3.1
ORDER_RATE = 0.4
DECLINE_RATE = 0.03
CANCEL_RATE = 0.04
RETURN_RATE = 0.07


@dataclass(frozen=True, slots=True)
class Shopper:
    """One person's record key in one source, as the identity graph knows it."""

    source: str
    customer_key: str
    since: datetime  #: aware; no event of this shopper before it


@dataclass(frozen=True, slots=True)
class RetailSet:
    """The generated event payloads, by kind."""

    brands: list[dict[str, Any]]
    products: list[dict[str, Any]]
    orders: list[dict[str, Any]]
    transactions: list[dict[str, Any]]
    web_activity: list[dict[str, Any]]

    def events(self) -> list[dict[str, Any]]:
        """All events: reference data (brands, products) first, then the journey by ``occurred_at``, ``event_id``."""
        journey = [*self.orders, *self.transactions, *self.web_activity]
        journey.sort(key=_order_key)
        return [*self.brands, *self.products, *journey]

    def counts(self) -> dict[str, int]:
        """The number of events per event type."""
        return {
            "brand": len(self.brands),
            "product": len(self.products),
            "order": len(self.orders),
            "transaction": len(self.transactions),
            "web_activity": len(self.web_activity),
        }


def _order_key(event: dict[str, Any]) -> tuple[datetime, str]:
    return datetime.fromisoformat(event["occurred_at"]), event["event_id"]


def _aware(value: object, what: str) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInputError(f"{what} must be a datetime with a time zone, not {value!r}")
    return value.astimezone(UTC)


def _check_source(source: object, what: str) -> None:
    if not isinstance(source, str) or not _SOURCE_RE.match(source):
        raise InvalidInputError(f"{what} {source!r} is not a source name (lower case letters, digits, _ . -)")


def _check_key(key: object) -> None:
    if not isinstance(key, str) or not key.strip() or len(key) > 200 or key != key.strip():
        raise InvalidInputError(f"customer key {key!r} must be a non-empty string of at most 200 characters")


def _count(value: object, what: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidInputError(f"{what} must be an integer of at least {minimum}, not {value!r}")
    return value


def _money(value: Decimal) -> str:
    return str(value.quantize(_CENT, rounding=ROUND_HALF_UP))


def _iso(t: datetime) -> str:
    return t.isoformat()


def shoppers_from_keys(keys: Iterable[tuple[str, str]], *, start: datetime, seed: int) -> list[Shopper]:
    """Shoppers for ``(source, customer_key)`` pairs, each ``since`` a whole second in the year before ``start``."""
    start = _aware(start, "start").replace(microsecond=0)
    rng = random.Random(seed)
    year = 365 * 24 * 3600
    out: list[Shopper] = []
    seen: set[tuple[str, str]] = set()
    for source, key in keys:
        _check_source(source, "source")
        _check_key(key)
        if (source, key) in seen:
            raise InvalidInputError(f"duplicate shopper {source}|{key}")
        seen.add((source, key))
        out.append(Shopper(source, key, start - timedelta(seconds=rng.randint(0, year))))
    return out


def _catalog(
    rng: random.Random, seed: int, brands: int, products: int, source: str, at: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    names = list(BRAND_NAMES)
    rng.shuffle(names)
    taken = set(names)
    fk = Faker() if brands > len(names) else None  # invented company names beyond the list
    if fk is not None:
        fk.seed_instance(seed)
    while fk is not None and len(names) < brands:
        name = str(fk.company())
        if name not in taken:
            taken.add(name)
            names.append(name)
    cats = list(CATEGORIES)
    brand_events: list[dict[str, Any]] = []
    by_category: dict[str, list[tuple[str, str]]] = {c: [] for c in cats}
    for n, name in enumerate(names[:brands], 1):
        brand_id = f"B{n:04d}"
        brand_events.append(
            {"event_id": f"{source}-brd-{n:05d}", "source": source, "occurred_at": at, "schema_version": 1}
            | {"type": "brand", "brand_id": brand_id, "name": name}
        )
        for cat in rng.sample(cats, rng.randint(1, 3)):  # what the brand makes
            by_category[cat].append((brand_id, name))
    product_events: list[dict[str, Any]] = []
    seen_names: set[str] = set()
    for n in range(1, products + 1):
        cat = rng.choice([c for c in cats if by_category[c]])
        (lo, hi), nouns = CATEGORIES[cat]
        brand_id, brand = rng.choice(by_category[cat])
        name = f"{brand} {rng.choice(ADJECTIVES)} {rng.choice(nouns)}"
        if name in seen_names:
            name = f"{name}, {rng.choice(COLOURS)}"
        seen_names.add(name)
        whole = int(lo * (hi / lo) ** rng.random())  # log-uniform: many cheap, few dear
        price = Decimal(whole) + Decimal(rng.choice(("0.99", "0.90", "0.00", "0.50", "0.95")))
        product_events.append(
            {"event_id": f"{source}-prd-{n:06d}", "source": source, "occurred_at": at, "schema_version": 1}
            | {"type": "product", "product_id": f"P{n:06d}", "name": name, "brand_id": brand_id}
            | {"category": cat, "price": _money(price)}
        )
    return brand_events, product_events


class _Journeys:
    """Builds every shopper's sessions; holds the running ids."""

    def __init__(self, seed: int, until: datetime, products: list[dict[str, Any]]) -> None:
        self.seed = seed
        self.until = until
        self.products = [(p["product_id"], Decimal(p["price"]), p["category"]) for p in products]
        self.by_category: dict[str, list[int]] = {}
        for i, (_, _, cat) in enumerate(self.products):
            self.by_category.setdefault(cat, []).append(i)
        self.categories = sorted(self.by_category)
        self.orders: list[dict[str, Any]] = []
        self.transactions: list[dict[str, Any]] = []
        self.web: list[dict[str, Any]] = []
        self.n_order = self.n_txn = self.n_web = 0

    def shopper(self, s: Shopper, since: datetime) -> None:
        rng = random.Random(f"{self.seed}|{s.source}|{s.customer_key}")
        span = int((self.until - since).total_seconds())
        sessions = rng.choices(SESSIONS_PER_SHOPPER, SESSION_WEIGHTS)[0]
        sessions = min(sessions, 1 + span // (3 * 24 * 3600))  # a new shopper has had little time
        currency = "USD" if rng.random() < 0.75 else "EUR"
        favourite = rng.sample(self.categories, min(2, len(self.categories)))
        app_user = rng.random() < 0.35
        plans = [self._plan(rng, favourite) for _ in range(sessions)]
        starts = sorted(rng.randint(0, max(0, span - plan[-1][0])) for plan in plans)
        for start, plan in zip(starts, plans, strict=True):
            length = plan[-1][0]
            scale = 1.0 if start + length <= span else span / length  # squeeze a session into a short span
            channel = ("app" if app_user else "web") if rng.random() < 0.85 else ("web" if app_user else "app")
            traffic = rng.choices([t for t, _ in TRAFFIC], [w for _, w in TRAFFIC])[0]
            session_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            self._session(rng, s, since, start, scale, plan, channel, traffic, session_id, currency)

    def _plan(self, rng: random.Random, favourite: list[str]) -> list[tuple[int, str, int]]:
        """A session as (seconds from start, action, product index); an order adds two steps of the payment."""
        converts = rng.random() < ORDER_RATE
        steps: list[tuple[int, str, int]] = []
        t, carted = 0, set[int]()
        for _ in range(min(12, 1 + int(rng.expovariate(0.4)))):
            if steps:
                t += rng.randint(8, 240)
            cat = rng.choice(favourite) if rng.random() < 0.7 else rng.choice(self.categories)
            p = rng.choice(self.by_category[cat])
            steps.append((t, "product_view", p))
            if rng.random() < 0.08:
                t += rng.randint(2, 30)
                steps.append((t, "add_to_favourites", p))
            if p not in carted and rng.random() < (0.45 if converts else 0.12):
                t += rng.randint(3, 60)
                steps.append((t, "add_to_cart", p))
                carted.add(p)
        if converts:
            if not carted:
                t += rng.randint(3, 60)
                steps.append((t, "add_to_cart", steps[-1][2]))
            t += rng.randint(30, 420)
            steps.append((t, "order_placed", -1))
            t += rng.randint(2, 20)
            steps.append((t, "payment", -1))
            t += rng.randint(40, 400)
            steps.append((t, "retry", -1))
        return steps

    def _session(
        self,
        rng: random.Random,
        s: Shopper,
        since: datetime,
        start: int,
        scale: float,
        plan: list[tuple[int, str, int]],
        channel: str,
        traffic: str,
        session_id: str,
        currency: str,
    ) -> None:
        head = {"source": s.source, "schema_version": 1}
        cart: list[int] = []
        times = [since + timedelta(seconds=start + int(offset * scale)) for offset, _, _ in plan]
        for at, (_, action, p) in zip(times, plan, strict=True):
            if action in ("payment", "retry"):
                break
            self.n_web += 1
            web = {"event_id": f"{s.source}-web-{self.n_web:09d}", **head, "occurred_at": _iso(at)}
            web |= {"type": "web_activity", "customer_key": s.customer_key, "action": action}
            web |= {"session_id": session_id, "channel": channel, "traffic_source": traffic}
            if action == "order_placed":
                web["order_id"] = self._order(rng, s, times[-3:], cart, channel, currency)
            else:
                web["product_id"] = self.products[p][0]
            if action == "add_to_cart":
                cart.append(p)
            self.web.append(web)

    def _order(
        self, rng: random.Random, s: Shopper, times: list[datetime], cart: list[int], channel: str, currency: str
    ) -> str:
        placed, paid_at, retry_at = times
        self.n_order += 1
        order_id = f"O{self.n_order:08d}"
        lines: list[dict[str, Any]] = []
        nets: list[Decimal] = []
        for i, p in enumerate(cart, 1):
            product_id, price, _ = self.products[p]
            qty = rng.choices((1, 2, 3, 4), (80, 14, 4, 2))[0]
            gross = price * qty
            discount = (gross * Decimal(rng.choice((10, 15, 20, 25))) / 100).quantize(_CENT, ROUND_HALF_UP)
            line = {"line_id": f"{order_id}-{i}", "product_id": product_id, "quantity": qty, "unit_price": str(price)}
            if rng.random() < 0.15 and discount > 0:
                line["discount"] = str(discount)
            else:
                discount = Decimal("0.00")
            lines.append(line)
            nets.append((gross - discount).quantize(_CENT))
        total = sum(nets, Decimal("0.00")).quantize(_CENT)
        age = self.until - placed
        refund_at = placed + timedelta(days=rng.randint(8, 40), seconds=rng.randint(0, 86_399))
        roll = rng.random()
        if roll < CANCEL_RATE:
            status = "cancelled"
        elif age < timedelta(days=1):
            status = "paid"
        elif age < timedelta(days=5):
            status = "shipped" if roll < 0.75 else "paid"
        elif roll > 1 - RETURN_RATE and refund_at <= self.until:
            status = "returned"
        else:
            status = "delivered"
        self.orders.append(
            {"event_id": f"{s.source}-ord-{self.n_order:08d}", "source": s.source, "occurred_at": _iso(placed)}
            | {"schema_version": 1, "type": "order", "order_id": order_id, "customer_key": s.customer_key}
            | {"status": status, "channel": channel, "currency": currency, "total": str(total), "line_items": lines}
        )
        method = rng.choices([m for m, _ in PAYMENT_METHODS], [w for _, w in PAYMENT_METHODS])[0]
        if status == "cancelled":  # cancelled before capture: the authorisation is never settled
            self._txn(s, paid_at, order_id, "payment", total, currency, method, "authorised")
        elif rng.random() < DECLINE_RATE:
            self._txn(s, paid_at, order_id, "payment", total, currency, "card", "declined")
            self._txn(s, retry_at, order_id, "payment", total, currency, method, "settled")
        else:
            self._txn(s, paid_at, order_id, "payment", total, currency, method, "settled")
        if status == "returned":  # some or all lines come back
            back = rng.sample(nets, rng.randint(1, len(nets)))
            refund = sum(back, Decimal("0.00")).quantize(_CENT)
            self._txn(s, refund_at, order_id, "refund", refund, currency, method, "settled")
        return order_id

    def _txn(
        self,
        s: Shopper,
        at: datetime,
        order_id: str,
        kind: str,
        amount: Decimal,
        currency: str,
        method: str,
        status: str,
    ) -> None:
        self.n_txn += 1
        self.transactions.append(
            {"event_id": f"{s.source}-txn-{self.n_txn:08d}", "source": s.source, "occurred_at": _iso(at)}
            | {"schema_version": 1, "type": "transaction", "transaction_id": f"T{self.n_txn:08d}"}
            | {"customer_key": s.customer_key, "order_id": order_id, "kind": kind, "amount": str(amount)}
            | {"currency": currency, "payment_method": method, "status": status}
        )


def generate_retail(
    shoppers: Sequence[Shopper],
    *,
    seed: int = 42,
    brands: int = 12,
    products: int = 120,
    until: datetime | None = None,
    catalog_source: str = "catalog",
) -> RetailSet:
    """Generate a catalog and every shopper's journey between its ``since`` and ``until``.

    ``until`` defaults to 2026-11-01 UTC (never the clock), so the output depends only on the arguments.
    Raises :class:`InvalidInputError` for bad counts, naive datetimes, a shopper whose ``since`` lies after
    ``until``, duplicate shoppers or malformed source names and keys.
    """
    _count(seed, "seed", -(2**63))
    _count(brands, "brands", 1)
    _count(products, "products", 1)
    _check_source(catalog_source, "catalog_source")
    end = _aware(DEFAULT_UNTIL if until is None else until, "until")
    checked: list[tuple[Shopper, datetime]] = []
    seen: set[tuple[str, str]] = set()
    for s in shoppers:
        if not isinstance(s, Shopper):
            raise InvalidInputError(f"not a Shopper: {s!r}")
        _check_source(s.source, "source")
        _check_key(s.customer_key)
        since = _aware(s.since, f"since of {s.source}|{s.customer_key}")
        if since > end:
            raise InvalidInputError(f"{s.source}|{s.customer_key}: since {since.isoformat()} is after until")
        if (s.source, s.customer_key) in seen:
            raise InvalidInputError(f"duplicate shopper {s.source}|{s.customer_key}")
        seen.add((s.source, s.customer_key))
        checked.append((s, since))
    rng = random.Random(seed)
    first = min((since for _, since in checked), default=end - timedelta(days=365))
    catalog_at = (first - timedelta(days=1)).replace(microsecond=0).isoformat()
    brand_events, product_events = _catalog(rng, seed, brands, products, catalog_source, catalog_at)
    journeys = _Journeys(seed, end, product_events)
    for s, since in checked:
        journeys.shopper(s, since)
    for events in (journeys.orders, journeys.transactions, journeys.web):
        events.sort(key=_order_key)
    return RetailSet(brand_events, product_events, journeys.orders, journeys.transactions, journeys.web)
