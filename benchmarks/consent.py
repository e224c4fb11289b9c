"""Consent: recording with signed receipts, and the enforcement question, on the embedded store.

    python benchmarks/consent.py                          # 2,000 customers x 200 events, 5,000 questions
    python benchmarks/consent.py --customers 500 --events 100 --calls 2000

The defaults take about 8 minutes on 2 cores (recording 400,000 signed events is most of it, verifying
them another two); the smaller run above about one.

Set-up: ``--customers`` source records (one customer each) are ingested with the linker into a new
embedded store in a temporary data directory; the receipt issuer and store come from ``c360.deps``, as
the service builds them (a new Ed25519 signing key ring).

- recording: ``--events`` consent events per customer (random purpose, channel and status over a year,
  some grants with an expiry) are recorded through ``record_consent`` in batches of ``--batch`` events
  across customers, as the event pipeline records them: each event signed into its customer's receipt
  chain under the write lock. Events/s with signing over the whole ledger (aim: >= 1,000/s), and the
  rate of the first and the last tenth of the batches (does a longer chain slow it?).
- enforcement: ``--calls`` questions "may we contact customer X on channel C for purpose P now?"
  (``contact_decision``) for random customers, pairs and times, in-process; p50/p99 in microseconds
  (aim: p99 under 1 ms). Then its two parts apart: reading the customer's events of the pair
  (``store.consent_events(..., topic=...)``, as ``contact_decision`` reads them) and the pure rule over
  events already read (``may_contact``); and, for scale, reading the customer's whole ledger.
- verify: ``verify_ledger`` over every chain once, receipts/s.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

START = datetime(2025, 1, 1, tzinfo=UTC)
YEAR = timedelta(days=365)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _us(values_ns: list[int]) -> str:
    us = [v / 1000 for v in values_ns]
    return f"p50 {_pct(us, 0.50):,.0f}us, p99 {_pct(us, 0.99):,.0f}us, mean {statistics.fmean(us):,.0f}us"


def prepare(work: Path, customers: int) -> tuple[Any, Any, Any]:
    """The settings, the store with one customer per record, and the receipt issuer."""
    from c360.graph.models import SourceRecord
    from c360.resolution.linker import Linker

    from c360.deps import build_store, receipt_issuer
    from c360.settings import load_settings

    settings = load_settings(data_dir=work / ".c360")
    store = build_store(settings)
    records = [
        SourceRecord("crm", str(i), START, first_name=f"P{i}", last_name="Bench", email=f"p{i}@bench.example")
        for i in range(customers)
    ]
    for at in range(0, customers, 1000):
        Linker(store).ingest(records[at : at + 1000])
    return settings, store, receipt_issuer(settings)


def events_of(customers: int, per: int, purposes: list[str], rng: random.Random) -> list[Any]:
    """``per`` events for each customer, round by round (each round's events in capture order per customer)."""
    from c360.graph.consent import CHANNELS, ConsentEvent, Notice

    notice = Notice.of_text("privacy", "7", "en", "We write to you about offers and keep what you tell us.")
    step = YEAR / per
    out = []
    for j in range(per):
        for i in range(customers):
            at = START + step * j + timedelta(seconds=rng.randrange(int(step.total_seconds() * 0.9) or 1))
            status = rng.choices(("granted", "withdrawn", "denied"), weights=(5, 3, 2))[0]
            expires = at + timedelta(days=90) if status == "granted" and rng.random() < 0.3 else None
            agent = rng.random() < 0.4
            out.append(
                ConsentEvent(
                    id=f"bench-{i}-{j}",
                    record_uid=f"crm|{i}",
                    purpose=rng.choice(purposes),
                    channel=rng.choice(CHANNELS),
                    status=status,
                    captured_at=at,
                    actor_kind="agent" if agent else "customer",
                    actor_id=f"agent{rng.randrange(50)}" if agent else "self",
                    source="crm",
                    method="call_centre" if agent else rng.choice(("web_form", "double_opt_in", "branch")),
                    notice=notice,
                    jurisdiction="DE",
                    expires_at=expires,
                )
            )
    return out


def record(store: Any, issuer: Any, events: list[Any], batch: int) -> dict[str, float]:
    """Record ``events`` in batches; events/s overall and in the first and last tenth of the batches."""
    from c360.graph.consent_ledger import record_consent

    seconds: list[float] = []
    for at in range(0, len(events), batch):
        started = time.perf_counter()
        record_consent(store, issuer, events[at : at + batch], now=datetime.now(UTC))
        seconds.append(time.perf_counter() - started)
        if len(seconds) % max(1, len(events) // batch // 10) == 0:
            print(f"  {at + batch:,} recorded, {(at + batch) / sum(seconds):,.0f}/s", flush=True)
    tenth = max(1, len(seconds) // 10)
    return {
        "per_s": len(events) / sum(seconds),
        "first_per_s": tenth * batch / sum(seconds[:tenth]),
        "last_per_s": tenth * batch / sum(seconds[-tenth:]),
        "batch_p50_ms": _pct(seconds, 0.5) * 1000,
        "batch_p99_ms": _pct(seconds, 0.99) * 1000,
    }


def _timed(calls: list[tuple[Any, ...]], fn: Callable[..., object]) -> list[int]:
    out = []
    for args in calls:
        started = time.perf_counter_ns()
        fn(*args)
        out.append(time.perf_counter_ns() - started)
    return out


def enforce(store: Any, customers: list[str], purposes: list[str], calls: int, rng: random.Random) -> dict[str, str]:
    """``contact_decision`` for random questions, then the store read and the rule apart."""
    from c360.graph.consent import CHANNELS, may_contact
    from c360.graph.consent_ledger import contact_decision

    end = START + YEAR + timedelta(days=1)
    questions = [
        (rng.choice(customers), rng.choice(CHANNELS), rng.choice(purposes), START + (end - START) * rng.random())
        for _ in range(calls)
    ]
    for q in questions[:200]:  # warm the page cache and the code paths
        contact_decision(store, *q)
    decided = _timed([(store, *q) for q in questions], contact_decision)
    read = _timed([(q[0], None, (q[2], q[1])) for q in questions], store.consent_events)  # one pair's events
    whole = _timed([(q[0],) for q in questions], store.consent_events)  # every event of the customer
    ledgers = {c: store.consent_events(c) for c in {q[0] for q in questions}}
    rule = _timed([(ledgers[c], ch, p, at) for c, ch, p, at in questions], may_contact)
    allowed = sum(contact_decision(store, *q).allowed for q in questions[:1000])
    return {
        "decision": _us(decided),
        "read": _us(read),
        "whole": _us(whole),
        "rule": _us(rule),
        "allowed": f"{allowed / min(1000, len(questions)):.0%}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=2_000, help="Customers (one source record each).")
    parser.add_argument("--events", type=int, default=200, help="Consent events per customer.")
    parser.add_argument("--batch", type=int, default=500, help="Events per record_consent call (at most 1,000).")
    parser.add_argument("--calls", type=int, default=5_000, help="Enforcement questions asked.")
    parser.add_argument("--seed", type=int, default=15)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        settings, store, issuer = prepare(Path(tmp), args.customers)
        try:
            purposes = list(settings.consent.purposes)
            events = events_of(args.customers, args.events, purposes, rng)
            print(
                f"machine: {os.cpu_count()} cores; embedded store; {args.customers:,} customers, "
                f"{len(events):,} consent events prepared in {time.perf_counter() - started:.0f}s",
                flush=True,
            )
            r = record(store, issuer, events, args.batch)
            print(
                f"recording (record_consent, Ed25519 receipts, batches of {args.batch}): {r['per_s']:,.0f} events/s "
                f"(first tenth {r['first_per_s']:,.0f}/s, last tenth {r['last_per_s']:,.0f}/s); "
                f"a batch p50 {r['batch_p50_ms']:.0f}ms, p99 {r['batch_p99_ms']:.0f}ms",
                flush=True,
            )
            ids = [store.lookup({f"crm|{i}"}, ()).records[f"crm|{i}"].customer_id for i in range(args.customers)]
            e = enforce(store, ids, purposes, args.calls, rng)
            print(f"enforcement, {args.calls:,} questions of {args.events} events each ({e['allowed']} allowed):")
            print(f"  contact_decision (store read + rule): {e['decision']}")
            print(f"  of which store.consent_events (pair):  {e['read']}")
            print(f"  (the customer's whole ledger:          {e['whole']})")
            print(f"  of which may_contact (pure rule):      {e['rule']}", flush=True)
            from c360.graph.consent_ledger import verify_ledger

            from c360.deps import signing_keys

            started = time.perf_counter()
            reports = verify_ledger(store, signing_keys(settings).jwks())
            took = time.perf_counter() - started
            ok = sum(r.ok for r in reports.values())
            print(f"verify_ledger: {len(reports):,} chains ({ok:,} ok), {len(events) / took:,.0f} receipts/s")
        finally:
            store.close()


if __name__ == "__main__":
    main()
