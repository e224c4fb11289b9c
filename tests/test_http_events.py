"""Partner events over HTTP: ``c360 serve`` as a real server on loopback, posted to with httpx."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from test_cli import c360
from test_pipeline import order, profile


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serving(home: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[str]:
    """Run ``c360 serve`` in ``home`` until the block ends; yields its URL once /healthz answers.

    Its stderr goes to ``home/serve.log``, a file, not a pipe nobody reads (a full pipe blocks the server).
    """
    port = _free_port()
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("C360_")} | (env or {})
    log = (home / "serve.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "c360", "serve", "--port", str(port), *args], cwd=home, env=full_env, stderr=log
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        with httpx.Client() as probe:
            while True:
                try:
                    if probe.get(f"{url}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    proc.kill()
                    raise RuntimeError(f"c360 serve did not start: {(home / 'serve.log').read_text()}")
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    """One client for the module: ``httpx.get`` makes a client, and an SSL context, per request (~80 ms)."""
    with httpx.Client() as client:
        yield client


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, Path]]:
    home = tmp_path_factory.mktemp("serve")
    key = c360("partner", "add", "acme", "--sources", "acme,crm", cwd=home).stdout.strip()
    with serving(home) as url:
        yield url, key, home


def test_partner_events_are_applied_rejected_or_refused(server: tuple[str, str, Path], http: httpx.Client) -> None:
    url, key, home = server
    auth = {"Authorization": f"Bearer {key}"}
    assert http.get(f"{url}/readyz").json()["status"] == "ready"
    batch = [
        profile("p1", "1", 0, first_name="Ann", email="ann@example.com"),
        order("o1", "1", 5),
        {**order("o2", "1", 6), "quantity": "many"},
        {**order("o3", "1", 7), "source": "shop"},  # not a source acme may send as
    ]
    answer = http.post(f"{url}/v1/events", json=batch, headers=auth)
    assert answer.status_code == 200
    body = answer.json()
    assert body["event_ids"] == ["crm|p1", "crm|o1"] and body["accepted"] == 2
    assert [(r["index"], r["event_id"]) for r in body["rejected"]] == [(2, "o2"), (3, "o3")]
    assert "shop" in body["rejected"][1]["reason"]
    # The order is on the customer's timeline as soon as the answer came (embedded mode).
    found = json.loads(c360("customer", "find", "--email", "ann@example.com", cwd=home).stdout)
    cid = found[0]["id"]
    timeline = json.loads(c360("customer", "timeline", cid, cwd=home).stdout)
    assert [e["id"] for e in timeline["events"]] == ["crm|o1"]
    # The same batch again: nothing applied twice.
    again = http.post(f"{url}/v1/events", json={"events": batch[:2]}, headers=auth).json()
    assert again["accepted"] == 0 and again["duplicates"] == 2
    letters = json.loads(c360("dlq", "list", "--json", cwd=home).stdout)
    assert len(letters) == 2 and {d["source"] for d in letters} == {"crm", "shop"}


def test_bad_requests_get_problem_answers(server: tuple[str, str, Path], http: httpx.Client) -> None:
    url, key, home = server
    auth = {"Authorization": f"Bearer {key}"}
    no_key = http.post(f"{url}/v1/events", json=[])
    assert no_key.status_code == 401 and no_key.headers["content-type"] == "application/problem+json"
    assert no_key.headers["www-authenticate"] == "Bearer"
    wrong = http.post(f"{url}/v1/events", json=[], headers={"X-API-Key": key + "x"})
    assert wrong.status_code == 401
    broken = http.post(f"{url}/v1/events", content=b"{not json", headers=auth)
    assert broken.status_code == 400 and "not JSON" in broken.json()["detail"]
    assert "Traceback" not in broken.text
    assert any(d["payload"] == "{not json" for d in json.loads(c360("dlq", "list", "--json", cwd=home).stdout))
    shape = http.post(f"{url}/v1/events", json={"nope": 1}, headers=auth)
    assert shape.status_code == 422  # JSON, but not a batch
    many = http.post(f"{url}/v1/events", json=[{}] * 1001, headers=auth)
    assert many.status_code == 413
    assert http.get(f"{url}/nowhere").headers["content-type"] == "application/problem+json"


def test_partner_keys_are_stored_hashed_and_can_be_revoked(tmp_path: Path) -> None:
    key = c360("partner", "add", "beta", cwd=tmp_path).stdout.strip()
    assert key.startswith("c360_beta_") and len(key) > 40
    stored = (tmp_path / ".c360" / "partners.json").read_text()
    assert key not in stored and "key_sha256" in stored
    dup = c360("partner", "add", "beta", cwd=tmp_path, ok=False)
    assert dup.returncode != 0 and "--rotate" in dup.stderr
    bad = c360("partner", "add", "Has Space", cwd=tmp_path, ok=False)
    assert bad.returncode != 0
    c360("partner", "revoke", "beta", cwd=tmp_path)
    assert "no partners" in c360("partner", "list", cwd=tmp_path).stdout
