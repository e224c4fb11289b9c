"""KYC through the API at the requirements' load: 50 applicants at once, pages, uploads, checks, the report.

    python benchmarks/kyc.py                          # capacity: 50 applicants in a closed loop for 120 s
    python benchmarks/kyc.py --rate 1000 --seconds 600 --seed 10000  # the SLAs at 1,000 applicants/hour
    python benchmarks/kyc.py --seconds 20 --seed 500  # a quick run

The requirements ask for 1,000 applicants an hour with 50 at once, pages under 200 ms, a document
upload processed under 30 s, the automated verification under 60 s and the regulatory report under
5 s. This starts ``c360 serve --dev`` in its own process (one uvicorn worker: the server has no
worker option) over an embedded store in a temporary data folder, with the real OFAC and UN lists,
the local encrypted document store and a fake PAN provider on loopback (``tests/fake_pan.py``), and:

1. runs ``--concurrency`` simulated applicants (asyncio, httpx), each in a loop for ``--seconds`` (or
   until ``--count`` have started): register, log in, read the one-time code from the outbox (the
   store, as the mail would carry it), verify it, start an application, upload a drawn PAN card (PNG,
   OCR'd in the request) and an address proof (a text PDF), submit (screening, the PAN service);
2. meanwhile reads pages as a KYC officer, open-loop at ``--page-rate`` per class (latency counted
   from when each was due): one application, applications by status, the officer's task queue;
3. reads the report with the applications the run made, stops the server, seeds ``--seed``
   applications through the KYC desk in-process (started and submitted, a share verified, approved
   or rejected; no documents, so no OCR), restarts the server and reads the report and pages again.

Documents are drawn once before the load (drawing is not measured). Prints the latencies (p50/p95/p99,
max), applicants/hour, every error, the server's CPU per applicant and argon2's share of it, and
whether each target held. Stops by itself; the server and the fake provider stop with it.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).parent))  # the benchmarks' own helpers
sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))  # the document drawings and the fake provider

from document_images import encoded, pan_card, text_pdf
from fake_pan import serve_provider
from served import dev_token, free_port

LISTS = Path("/work/shared/data/watchlists")
PASSWORD = "Correct-Horse-9-Battery"
GIVEN = ["Ravi", "Anita", "Suresh", "Priya", "Vikram", "Meena", "Arjun", "Kavita", "Rahul", "Deepa"]
SURNAMES = ["Sharma", "Verma", "Iyer", "Nair", "Gupta", "Reddy", "Mehta", "Joshi", "Patel", "Rao"]
#: idle seconds after which a client drops a connection: under uvicorn's 5 s, so none is reused as the server closes it
KEEPALIVE = 3.0
STEPS = ["register", "login", "otp", "verify", "start", "upload pan_card", "upload address_proof", "submit"]


def pct(values: list[float], q: float) -> float:
    """The ``q`` quantile of ``values`` (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def spread(values: list[float], unit: str = "ms") -> str:
    """p50/p95/p99/max of ``values`` on one line."""
    if not values:
        return "no samples"
    return (
        f"p50 {statistics.median(values):8.1f} {unit}  p95 {pct(values, 0.95):8.1f}  p99 {pct(values, 0.99):8.1f}  "
        f"max {max(values):8.1f}  (n={len(values):,})"
    )


# -- documents, drawn once ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Persona:
    """What one applicant enters, with their PAN card (PNG) and address proof (PDF) already made."""

    entered: dict[str, str]
    card: bytes
    bill: bytes


def persona_entered(n: int) -> dict[str, str]:
    """The details of applicant ``n``: a name, a date of birth and a PAN whose fifth letter is the surname's."""
    given, surname = GIVEN[n % len(GIVEN)], SURNAMES[(n // len(GIVEN)) % len(SURNAMES)]
    pan = f"AB{'CDEFGHJKLM'[n % 10]}P{surname[0]}{1 + n % 9_999:04d}{'ABCDEFGHJK'[(n // 7) % 10]}"
    born = date(1965 + n % 35, 1 + n % 12, 1 + n % 28)
    address = f"{1 + n % 90} MG Road, Bengaluru"
    return {"full_name": f"{given} Kumar {surname}", "date_of_birth": born.isoformat(), "pan": pan, "address": address}


def render(count: int) -> list[Persona]:
    """``count`` distinct applicants with their documents drawn."""
    made = []
    for n in range(count):
        e = persona_entered(n)
        surname = e["full_name"].split()[-1].upper()
        image = pan_card(name=e["full_name"].upper(), father=f"SURESH KUMAR {surname}",
                         dob=date.fromisoformat(e["date_of_birth"]), pan=e["pan"])  # fmt: skip
        bill = text_pdf(["ELECTRICITY BILL", e["full_name"], e["address"]])
        made.append(Persona(e, encoded(image), bill))
    return made


# -- the server ------------------------------------------------------------------------------------


@contextmanager
def serving(work: Path, config: Path, start_timeout: float = 90) -> Iterator[tuple[int, int]]:
    """``c360 --config CONFIG serve --dev`` on ``work/.c360`` until the block ends; (port, pid).

    As ``benchmarks/served.py`` does, with the settings file added (``served()`` passes none, and drops
    every ``C360_`` variable, so the KYC settings could not reach its server). Stderr: ``work/serve.log``.
    """
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("C360_")}
    argv = [sys.executable, "-m", "c360", "--config", str(config), "serve", "--dev", "--port", str(port)]
    with (work / "serve.log").open("a") as log:
        server = subprocess.Popen(argv, cwd=work, env=env, stderr=log)
        try:
            deadline = time.monotonic() + start_timeout
            while True:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=1):
                        break
                except OSError:
                    if server.poll() is not None or time.monotonic() > deadline:
                        raise SystemExit(f"c360 serve did not start: {(work / 'serve.log').read_text()}") from None
                    time.sleep(0.2)
            yield port, server.pid
        finally:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(timeout=10)


def cpu_seconds(pid: int) -> float:
    """CPU seconds of process ``pid`` and its waited-for children (Tesseract runs as a child)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


# -- the applicants --------------------------------------------------------------------------------


class Failure(Exception):
    """A step that did not answer as it should."""

    def __init__(self, step: str, detail: str) -> None:
        super().__init__(f"{step}: {detail}")
        self.step = step


@dataclass
class Run:
    """What the load measured."""

    steps: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in STEPS})
    journeys: list[float] = field(default_factory=list)
    server_parts: dict[str, list[float]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    started_ids: list[str] = field(default_factory=list)
    pages: dict[str, list[float]] = field(default_factory=dict)
    page_errors: list[str] = field(default_factory=list)
    page_retries: int = 0
    #: the steps of applicants after the first wave (the first ``--concurrency`` all start at once)
    later: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in STEPS})


async def _step(sinks: list[dict[str, list[float]]], name: str, want: int, call: Any) -> httpx.Response:
    t = time.perf_counter()
    try:
        got: httpx.Response = await call
    except httpx.HTTPError as exc:
        raise Failure(name, f"{type(exc).__name__} {exc}") from exc
    for sink in sinks:
        sink[name].append((time.perf_counter() - t) * 1000)
    if got.status_code != want:
        raise Failure(name, f"{got.status_code} {got.text[:300]}")
    return got


async def journey(client: httpx.AsyncClient, store: Any, run: Run, n: int, who: Persona, later: bool) -> None:
    """One applicant from registration to a submitted application (``later``: after the first wave)."""
    sinks = [run.steps, run.later] if later else [run.steps]
    email = f"applicant{n}@bench.example"
    began = time.perf_counter()
    await _step(
        sinks, "register", 201, client.post("/v1/applicants/register", json={"email": email, "password": PASSWORD})
    )
    sent = await _step(
        sinks, "login", 202, client.post("/v1/applicants/login", json={"login": email, "password": PASSWORD})
    )
    challenge = sent.json()["challenge_id"]
    t = time.perf_counter()
    item = await asyncio.to_thread(store.outbox_message, f"applicant-otp|{challenge}")
    for sink in sinks:
        sink["otp"].append((time.perf_counter() - t) * 1000)
    code = re.search(r"\b(\d{6})\b", item.message.body) if item is not None else None
    if code is None:
        raise Failure("otp", f"no one-time code in the outbox for {challenge}")
    answer = {"challenge_id": challenge, "code": code[1]}
    session = await _step(sinks, "verify", 200, client.post("/v1/applicants/login/verify", json=answer))
    auth = {"Authorization": f"Bearer {session.json()['token']}"}
    body = {"product": "auto_loan", "amount": "850000.00", "entered": {**who.entered, "email": email}}
    app = (await _step(sinks, "start", 201, client.post("/v1/kyc/applications", json=body, headers=auth))).json()
    run.started_ids.append(app["id"])
    base = f"/v1/kyc/applications/{app['id']}"
    for doc_type, data, media in (("pan_card", who.card, "image/png"), ("address_proof", who.bill, "application/pdf")):
        put = client.put(f"{base}/documents/{doc_type}", content=data, headers={**auth, "Content-Type": media},
                         params={"filename": f"{doc_type}.{media.split('/')[1]}"})  # fmt: skip
        up = await _step(sinks, f"upload {doc_type}", 201, put)
        if doc_type == "pan_card":
            for part, seconds in up.json().get("seconds", {}).items():
                run.server_parts.setdefault(part, []).append(seconds * 1000)
    done = await _step(sinks, "submit", 200, client.post(f"{base}/submit", headers=auth))
    if done.json().get("status") not in ("submitted", "documents_verified", "pending_approval"):
        raise Failure("submit", f"status {done.json().get('status')!r}")
    run.journeys.append(time.perf_counter() - began)


async def applicants(port: int, store: Any, people: list[Persona], run: Run, args: argparse.Namespace) -> float:
    """``--concurrency`` applicants in a loop until ``--seconds`` pass (or ``--count`` started); the wall time."""
    numbers = itertools.count()
    deadline = time.perf_counter() + args.seconds
    limits = httpx.Limits(max_connections=args.concurrency + 5, keepalive_expiry=KEEPALIVE)

    async def worker(client: httpx.AsyncClient) -> None:
        while time.perf_counter() < deadline:
            n = next(numbers)
            if args.count and n >= args.count:
                return
            try:
                await journey(client, store, run, n, people[n % len(people)], n >= args.concurrency)
            except Failure as exc:
                run.errors.append(str(exc))
                await asyncio.sleep(1)  # no storm of failures

    async def arrivals(client: httpx.AsyncClient) -> None:
        """Open loop: an applicant arrives every 3600/rate s (at most --concurrency in flight), as people do."""
        gap = 3600 / args.rate
        slots = asyncio.Semaphore(args.concurrency)
        flying: list[asyncio.Task[None]] = []

        async def one(n: int) -> None:
            try:
                await journey(client, store, run, n, people[n % len(people)], n >= args.concurrency)
            except Failure as exc:
                run.errors.append(str(exc))
            finally:
                slots.release()

        start = time.perf_counter()
        for n in numbers:
            due = start + n * gap
            if due >= deadline or (args.count and n >= args.count):
                break
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            await slots.acquire()
            flying.append(asyncio.create_task(one(n)))
        await asyncio.gather(*flying)

    began = time.perf_counter()
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=180, limits=limits) as client:
        if args.rate:
            await arrivals(client)
        else:
            await asyncio.gather(*(worker(client) for _ in range(args.concurrency)))
    return time.perf_counter() - began


async def pages(port: int, token: str, run: Run, rate: float, stop: asyncio.Event) -> None:
    """Staff page reads, open-loop at ``rate`` per class, until ``stop``; latency from when each was due."""
    classes = ["GET application", "GET applications?status=submitted", "GET tasks?role=kyc_officer"]
    headers = {"Authorization": f"Bearer {token}"}

    async def one(client: httpx.AsyncClient, name: str, url: str, due: float) -> None:
        try:
            try:
                got = await client.get(url)
            except (httpx.ReadError, httpx.RemoteProtocolError):
                # the server closed a keep-alive connection as it was reused: once more, as browsers do
                run.page_retries += 1
                got = await client.get(url)
            if got.status_code != 200:
                run.page_errors.append(f"{name}: {got.status_code} {got.text[:200]}")
        except httpx.HTTPError as exc:
            run.page_errors.append(f"{name}: {type(exc).__name__}")
        run.pages.setdefault(name, []).append((time.perf_counter() - due) * 1000)

    limits = httpx.Limits(keepalive_expiry=KEEPALIVE)
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=60, limits=limits
    ) as client:
        start, pending = time.perf_counter(), []
        for n in itertools.count():
            due = start + n / (rate * len(classes))
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            if stop.is_set():
                break
            name = classes[n % len(classes)]
            if name == "GET application":
                if not run.started_ids:
                    continue
                url = f"/v1/kyc/applications/{run.started_ids[(n * 7919) % len(run.started_ids)]}"
            elif name.startswith("GET applications"):
                url = "/v1/kyc/applications?status=submitted"
            else:
                url = "/v1/kyc/tasks?role=kyc_officer"
            pending.append(asyncio.create_task(one(client, name, url, due)))
        await asyncio.gather(*pending)


async def load(port: int, store: Any, people: list[Persona], token: str, args: argparse.Namespace) -> tuple[Run, float]:
    """The applicants and the page reads together; what they measured and the applicants' wall time."""
    run, stop = Run(), asyncio.Event()
    readers = asyncio.create_task(pages(port, token, run, args.page_rate, stop))
    wall = await applicants(port, store, people, run, args)
    stop.set()
    await readers
    return run, wall


# -- the report and seeding ------------------------------------------------------------------------


def report_times(port: int, token: str, times: int) -> tuple[list[float], int]:
    """``GET /v1/kyc/report`` ``times`` times: the latencies (ms) and how many applications it counted."""
    counted, took = 0, []
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
        for _ in range(times):
            t = time.perf_counter()
            got = client.get("/v1/kyc/report", headers={"Authorization": f"Bearer {token}"})
            took.append((time.perf_counter() - t) * 1000)
            if got.status_code != 200:
                raise SystemExit(f"report: {got.status_code} {got.text[:300]}")
            rows = got.text.splitlines()[1:]
            counted = sum(int(r.split(",")[2]) for r in rows if r)
    return took, counted


def quiet_pages(port: int, token: str, ids: list[str], each: int) -> dict[str, list[float]]:
    """Each page class read ``each`` times one after another (no other load): latencies in ms."""
    urls: dict[str, Callable[[int], str]] = {
        "GET application": lambda n: f"/v1/kyc/applications/{ids[(n * 7919) % len(ids)]}",
        "GET applications?status=submitted": lambda n: "/v1/kyc/applications?status=submitted",
        "GET tasks?role=kyc_officer": lambda n: "/v1/kyc/tasks?role=kyc_officer",
    }
    out: dict[str, list[float]] = {}
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
        for name, url in urls.items():
            for n in range(each):
                t = time.perf_counter()
                got = client.get(url(n), headers={"Authorization": f"Bearer {token}"})
                out.setdefault(name, []).append((time.perf_counter() - t) * 1000)
                if got.status_code != 200:
                    raise SystemExit(f"{name}: {got.status_code} {got.text[:300]}")
    return out


def seed(settings: Any, store: Any, count: int) -> tuple[float, dict[str, int], list[str]]:
    """``count`` applications through the KYC desk in-process: (seconds, how many per status, their ids).

    Of every ten: one stays a draft, three stay submitted, two are verified, three approved, one rejected.
    The desk is the server's (screening, the PAN service, risk) but asks for no documents, so no OCR runs.
    """
    from c360.deps import kyc_desk

    workflow = settings.kyc.workflow.model_copy(update={"required_documents": []})
    no_docs = settings.model_copy(update={"kyc": settings.kyc.model_copy(update={"workflow": workflow})})
    desk = kyc_desk(no_docs, store)
    statuses: dict[str, int] = {}
    ids = []
    t = time.perf_counter()
    for n in range(count):
        applicant = f"ap_seed{n:06d}"  # no account: the desk skips the link
        app = desk.start(applicant_id=applicant, product="auto_loan", amount=f"{100_000 + n}.00",
                         entered={**persona_entered(100_000 + n), "email": f"seed{n}@bench.example"})  # fmt: skip
        ids.append(app.id)
        kind = n % 10
        if kind:
            app = desk.submit(app.id, actor=f"applicant:{applicant}")
        if kind >= 4:
            task = next(x for x in app.open_tasks() if x.kind == "verify_documents")
            app = desk.complete_task(app.id, task.id, actor="officer-seed", outcome="verified", reason="seeded")
        if kind >= 6 and app.status == "pending_approval":
            task = next(x for x in app.open_tasks() if x.kind == "approve")
            outcome = "rejected" if kind == 9 else "approved"
            app = desk.complete_task(app.id, task.id, actor="manager-seed", outcome=outcome, reason="seeded")
        statuses[app.status] = statuses.get(app.status, 0) + 1
        if (n + 1) % 2000 == 0:
            print(f"  seeded {n + 1:,} in {time.perf_counter() - t:.0f}s", flush=True)
    return time.perf_counter() - t, statuses, ids


def argon2_ms(config: Any) -> tuple[float, float]:
    """One argon2id hash with the applicants' parameters, in this process: median (wall ms, CPU ms)."""
    from argon2 import PasswordHasher

    hasher = PasswordHasher(time_cost=config.argon2_time_cost, memory_cost=config.argon2_memory_kib,
                            parallelism=config.argon2_parallelism, hash_len=config.argon2_hash_len,
                            salt_len=config.argon2_salt_len)  # fmt: skip
    wall, cpu = [], []
    for _ in range(5):
        t, c = time.perf_counter(), time.process_time()
        hasher.hash(PASSWORD)
        wall.append((time.perf_counter() - t) * 1000)
        cpu.append((time.process_time() - c) * 1000)
    return statistics.median(wall), statistics.median(cpu)


# -- the run ---------------------------------------------------------------------------------------


def config_file(work: Path, url: str) -> Path:
    """The server's settings: the real lists, the fake PAN provider (its token file), local documents."""
    token = work / "pan-token"
    token.write_text("pan-bench-secret\n")
    token.chmod(0o600)
    kyc = {
        "ofac_dir": str(LISTS / "ofac"),
        "un_file": str(LISTS / "un" / "consolidated.xml"),
        "pan_service": {"url": url, "token_file": str(token), "retries": 0},
        "documents_store": "local",
    }
    path = work / "c360.yaml"
    path.write_text(json.dumps({"kyc": kyc}, indent=2))  # JSON is YAML
    return path


def machine() -> str:
    """Cores, memory, load and Python, on one line."""
    mem = next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemT"))
    load1, load5, _ = os.getloadavg()
    return (
        f"{os.cpu_count()} cores ({len(os.sched_getaffinity(0))} usable), {int(mem) / 2**20:.0f} GB, "
        f"load {load1:.1f}/{load5:.1f} at start, {platform.python_implementation()} {platform.python_version()}, "
        f"{platform.platform()}"
    )


def verdict(ok: bool) -> str:
    """HELD or NOT HELD."""
    return "HELD" if ok else "NOT HELD"


def print_load(
    run: Run, wall: float, cpu: float, argon: tuple[float, float], args: argparse.Namespace
) -> dict[str, Any]:
    """Print what the load measured; the headline numbers."""
    done = len(run.journeys)
    per_hour = done / wall * 3600 if wall else 0.0
    print(f"\n== {args.concurrency} at once: {done} applicants completed in {wall:.1f}s (those in flight at the end "
          f"included) = {per_hour:,.0f} applicants/hour, {len(run.errors)} errors")  # fmt: skip
    for error in run.errors[:30]:
        print(f"   error: {error}")
    total = sum(sum(v) for v in run.steps.values())
    print("per step (ms, client side, incl. queueing in the server):")
    for name in STEPS:
        values = run.steps[name]
        share = sum(values) / total * 100 if total else 0.0
        print(f"  {name:22} {spread(values)}  {share:4.1f}% of applicant time")
    print(f"  {'whole applicant':22} {spread([j * 1000 for j in run.journeys])}")
    print(f"the same after the first wave (applicants {args.concurrency + 1}th on, who start as others finish):")
    for name in STEPS:
        print(f"  {name:22} {spread(run.later[name])}")
    for part, values in sorted(run.server_parts.items()):
        print(f"  PAN card server part {part:8} {spread(values)}")
    per_app = cpu / done if done else 0.0
    argon_share = 2 * argon[1] / 1000 / per_app * 100 if per_app else 0.0
    print(f"server CPU (incl. Tesseract): {cpu:.0f}s over the load, {per_app:.2f}s per completed applicant")
    print(f"argon2id hash {argon[0]:.0f} ms wall / {argon[1]:.0f} ms CPU here; register + login hash twice = "
          f"~{argon_share:.0f}% of the server CPU per applicant")  # fmt: skip
    print("\n== pages while the load ran (ms from when due, open-loop "
          f"{args.page_rate:g}/s per class; aim p99 < 200 ms), {len(run.page_errors)} errors, "
          f"{run.page_retries} retried once on a closed keep-alive connection")  # fmt: skip
    every: list[float] = []
    for name, values in run.pages.items():
        every += values
        print(f"  {name:36} {spread(values)}")
    print(f"  {'all pages':36} {spread(every)}")
    for error in run.page_errors[:10]:
        print(f"   error: {error}")
    uploads, submits = run.steps["upload pan_card"], run.steps["submit"]
    return {
        "applicants_per_hour": round(per_hour),
        "completed": done,
        "errors": len(run.errors),
        "page_errors": len(run.page_errors),
        "pages_p99_ms": round(pct(every, 0.99), 1) if every else None,
        "upload_max_s": round(max(uploads) / 1000, 2) if uploads else None,
        "upload_max_after_first_wave_s": round(max(run.later["upload pan_card"], default=0) / 1000, 2),
        "submit_max_s": round(max(submits) / 1000, 2) if submits else None,
        "login_share_pct": round(sum(run.steps["login"]) / total * 100, 1) if total else None,
        "server_cpu_per_applicant_s": round(per_app, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=120, help="How long applicants keep starting.")
    parser.add_argument("--count", type=int, default=0, help="Stop after this many applicants started (0: by time).")
    parser.add_argument("--concurrency", type=int, default=50, help="Applicants at once (at most, with --rate).")
    parser.add_argument(
        "--rate",
        type=float,
        default=0,
        help="Applicants arriving per hour, open loop (the SLA run: --rate 1000); 0: --concurrency applicants "
        "in a closed loop, as fast as the server takes them (the capacity run).",
    )
    parser.add_argument("--page-rate", type=float, default=2, help="Staff page reads per second, per page class.")
    parser.add_argument("--seed", type=int, default=10_000, help="Applications seeded for the report (0: none).")
    parser.add_argument("--people", type=int, default=200, help="Distinct applicants (documents) drawn.")
    args = parser.parse_args()

    from c360.graphql.applicant_auth import ApplicantAuthConfig

    from c360.deps import build_store
    from c360.settings import load_settings

    print(f"machine: {machine()}")
    t = time.perf_counter()
    people = render(args.people)
    print(f"drew {len(people)} PAN cards (PNG, {statistics.median(len(p.card) for p in people) / 1024:.0f} KiB) and "
          f"address proofs (text PDF) in {time.perf_counter() - t:.1f}s (not measured)")  # fmt: skip
    argon = argon2_ms(ApplicantAuthConfig())
    with tempfile.TemporaryDirectory() as tmp, serve_provider() as (provider, url):
        work = Path(tmp)
        config = config_file(work, url)
        settings = load_settings(config, data_dir=work / ".c360")
        settings.data_dir.mkdir(parents=True)
        auth = ApplicantAuthConfig.model_validate(settings.kyc.applicants)
        print(f"settings: {config.read_text()}".replace("\n", " "))
        print(f"  api.dev_mode (staff dev tokens), embedded store, one uvicorn worker (c360 serve has no worker "
              f"option), kyc.ocr_timeout {settings.kyc.ocr_timeout:g}s, argon2id t={auth.argon2_time_cost} "
              f"m={auth.argon2_memory_kib} KiB p={auth.argon2_parallelism}; {args.concurrency} applicants at once "
              f"for {args.seconds:g}s" + (f" or {args.count} started" if args.count else ""))  # fmt: skip
        store = build_store(settings)  # this process reads the one-time codes from the outbox; seeds later
        try:
            officer, compliance = dev_token(work, "kyc_officer"), dev_token(work, "compliance_officer")
            with serving(work, config) as (port, pid):
                run, wall = asyncio.run(load(port, store, people, officer, args))
                cpu = cpu_seconds(pid)
                print(f"server pid {pid}, log {work / 'serve.log'}")
                headline = print_load(run, wall, cpu, argon, args)
                took, counted = report_times(port, compliance, 5)
                print(f"\n== report (aim < 5 s): {counted:,} applications: {spread(took)}")
                headline["report_ms"] = {counted: round(max(took), 1)}
            if args.seed:
                print(f"\n== seeding {args.seed:,} applications through the KYC desk in-process (server stopped)")
                seconds, statuses, ids = seed(settings, store, args.seed)
                print(f"seeded in {seconds:.0f}s ({args.seed / seconds:.0f}/s): {statuses}")
                headline["seed_s"] = round(seconds)
                with serving(work, config) as (port, _):
                    took, counted = report_times(port, compliance, 5)
                    print(f"report (aim < 5 s): {counted:,} applications: {spread(took)}")
                    headline["report_ms"][counted] = round(max(took), 1)
                    print("pages with them stored, one request at a time, no other load:")
                    for name, values in quiet_pages(port, officer, ids + run.started_ids, 100).items():
                        print(f"  {name:36} {spread(values)}")
        finally:
            store.close()
        print(f"fake PAN provider answered {len(provider.received):,} requests")
    h = headline
    print("\n== targets")
    pages_ok = (h["pages_p99_ms"] or 1e9) < 200 and h["page_errors"] == 0
    print(f"pages p99 < 200 ms under load: {h['pages_p99_ms']} ms, {h['page_errors']} errors -> {verdict(pages_ok)}")
    print(f"document upload < 30 s: max {h['upload_max_s']} s -> {verdict((h['upload_max_s'] or 1e9) < 30)}")
    print(f"automated verification < 60 s: max {h['submit_max_s']} s -> {verdict((h['submit_max_s'] or 1e9) < 60)}")
    worst = max(h["report_ms"].values())
    print(f"report < 5 s: worst {worst} ms over {sorted(h['report_ms'])} applications -> {verdict(worst < 5000)}")
    if args.rate:  # open loop: every applicant that arrived at --rate got through, without an error
        arrived = int(args.seconds * args.rate / 3600 - 1e-9) + 1
        held = args.rate >= 1000 and h["errors"] == 0 and h["completed"] >= arrived
    else:
        held = h["applicants_per_hour"] >= 1000 and h["errors"] == 0
    mode = f"arriving at {args.rate:,.0f}/h" if args.rate else f"{args.concurrency} at once, closed loop"
    got = f"{h['completed']} completed, {h['applicants_per_hour']:,}/h, {h['errors']} errors"
    print(f"1,000 applicants/hour ({mode}): {got} -> {verdict(held)}")
    print(json.dumps(h))


if __name__ == "__main__":
    main()
