"""Writers in two processes on real Neo4j: the store's write lock holds across processes.

Two ``c360 ingest`` processes load records of the same people at once, in small batches so that their
transactions interleave. Each person's records form a chain (email, then email + phone, then phone)
split across both files, so a writer that planned against a stale graph would create a second customer
for a person or attach a record to a customer merged away meanwhile. The result must equal a
sequential ingest of the same files.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from c360.graph.neo4j_store import Neo4jConfig, Neo4jStore

PEOPLE = 300


def _write(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["id", "email", "phone", "first_name", "last_name"])
        writer.writeheader()
        writer.writerows(rows)


def _files(folder: Path) -> tuple[Path, Path]:
    a: list[dict[str, str]] = []
    b: list[dict[str, str]] = []
    for p in range(PEOPLE):
        email, phone = f"person{p}@example.org", f"+1202555{p:04d}"
        first, last = f"First{p}", f"Last{p}"
        a.append({"id": f"{p}-1", "email": email, "phone": "", "first_name": first, "last_name": last})
        b.append({"id": f"{p}-2", "email": email, "phone": phone, "first_name": first, "last_name": last})
        a.append({"id": f"{p}-3", "email": "", "phone": phone, "first_name": first, "last_name": last})
    _write(folder / "a.csv", a)
    _write(folder / "b.csv", b)
    return folder / "a.csv", folder / "b.csv"


def _env(config: Neo4jConfig) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("C360_")}
    env.update(
        {
            "C360_GRAPH__BACKEND": "neo4j",
            "C360_GRAPH__NEO4J__URI": config.uri,
            "C360_INGEST__BATCH_SIZE": "10",
            "C360_REALTIME__ENABLED": "false",
        }
    )
    return env


def _ingest(csv_file: Path, cwd: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "c360", "ingest", str(csv_file), "--source", "shop"],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _clusters(config: Neo4jConfig) -> set[frozenset[str]]:
    with Neo4jStore(config) as store:
        by_customer: dict[str, set[str]] = {}
        for source, key, customer_id in store.iter_links():
            by_customer.setdefault(customer_id, set()).add(f"{source}|{key}")
        assert store.stats().records == 3 * PEOPLE
    return {frozenset(v) for v in by_customer.values()}


@pytest.mark.slow
def test_two_processes_ingesting_the_same_people_equal_a_sequential_ingest(
    tmp_path: Path, neo4j_config: Neo4jConfig
) -> None:
    a, b = _files(tmp_path)
    env = _env(neo4j_config)

    Neo4jStore(neo4j_config).reset(confirm=True)
    for f in (a, b):
        done = _ingest(f, tmp_path, env)
        _, err = done.communicate(timeout=120)
        assert done.returncode == 0, err
    sequential = _clusters(neo4j_config)
    truth = {frozenset(f"shop|{p}-{i}" for i in (1, 2, 3)) for p in range(PEOPLE)}
    assert sequential == truth

    Neo4jStore(neo4j_config).reset(confirm=True)
    started = time.monotonic()
    procs = [_ingest(f, tmp_path, env) for f in (a, b)]
    ended = []
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        ended.append(time.monotonic() - started)
    # Both ran for a while side by side (the second started before the first ended).
    assert min(ended) > 2.0
    assert _clusters(neo4j_config) == sequential


_HOLDER = """
import sys, time
from c360.graph.neo4j_store import Neo4jConfig, Neo4jStore
store = Neo4jStore(Neo4jConfig(uri=sys.argv[1]))
with store.exclusive():
    print("held", flush=True)
    time.sleep(120)
"""


def test_the_write_lock_waits_for_its_holder_and_a_killed_holder_releases_it(neo4j_config: Neo4jConfig) -> None:
    import threading

    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, neo4j_config.uri], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        acquired = threading.Event()

        def take() -> None:
            with Neo4jStore(neo4j_config) as store, store.exclusive():
                acquired.set()

        waiter = threading.Thread(target=take, daemon=True)
        waiter.start()
        assert not acquired.wait(2.0), "a second writer got the lock while another process held it"
        holder.kill()
        killed = time.monotonic()
        assert acquired.wait(30.0), "the lock of a killed holder was not released"
        assert time.monotonic() - killed < 30.0
        waiter.join(10)
    finally:
        holder.kill()
        holder.wait()
