"""Issue 13's GraphQL findings, each reproduced as the attacker sent it, then held.

- the fragment bomb (eight fragments, each spreading the next ten times: 10^8 expansions) is refused
  in milliseconds by a cost, depth and alias analysis linear in the document, while a real
  ``c360 serve`` keeps answering ``/healthz``;
- bodies over the GraphQL body limit get a 413, strings over the argument limit a BAD_USER_INPUT, and
  neither is echoed or audited;
- introspection and "did you mean" suggestions only in dev mode;
- bad input (a variable of the wrong type, a garbage or overflowing cursor, an empty selection, an
  unknown fragment) gets a client code and a message about the input; an unexpected error
  INTERNAL_SERVER_ERROR and a generic message;
- a role list must name exactly one role, each entry a known one;
- nested lists are counted once: the front-end's orders with line items pass, a truly costly query not.

The in-process tests talk to the app through httpx's ASGI transport on one event loop; the bomb is sent
to a real server on loopback, so a blocked event loop would really block /healthz.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from c360.graph.embedded import EmbeddedConfig, EmbeddedStore
from c360.graphql.app import ApiOptions, create_app
from c360.graphql.audit import AuditLog
from c360.graphql.auth import AuthConfig, AuthError, TokenVerifier, dev_secret, issue_dev_token
from c360.graphql.partners import PartnerKeys
from c360.graphql.policy import load_policy
from c360.graphql.service import ProfileService
from c360.resolution.linker import Linker
from c360.streams.pipeline import Pipeline
from c360.streams.runner import Runner
from payloads import profile_event
from test_cli import c360
from test_pipeline import order

POLICY = load_policy()


def fragment_bomb(spreading: int = 8, fan: int = 10) -> str:
    """``spreading`` fragments, each spreading the next ``fan`` times, the last one a leaf: fan^spreading."""
    frags = [f"fragment F{i} on Query {{ {' '.join([f'...F{i + 1}'] * fan)} }}" for i in range(spreading)]
    frags.append(f"fragment F{spreading} on Query {{ __typename }}")
    return "query Bomb { ...F0 } " + " ".join(frags)


# -- the real server ------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def _serve(home: Path, *args: str) -> Iterator[str]:
    """``c360 serve`` on loopback until the block ends; killed if it does not stop (a blocked loop)."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("C360_")}
    with (home / "serve.log").open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "c360", "serve", "--port", str(port), *args], cwd=home, env=env, stderr=log
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"c360 serve did not start: {(home / 'serve.log').read_text()}")
                time.sleep(0.1)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


def test_the_fragment_bomb_is_refused_in_milliseconds_while_healthz_keeps_answering(tmp_path: Path) -> None:
    key = c360("partner", "add", "acme", "--sources", "acme", cwd=tmp_path).stdout.strip()
    bomb = fragment_bomb()  # 10^8 expansions; a partner key is enough to send it
    assert len(bomb.split()) < 300  # far under the token limit
    with _serve(tmp_path) as url, httpx.Client(timeout=10) as attacker, httpx.Client(timeout=10) as probe:
        answers: list[tuple[float, httpx.Response]] = []
        stop = threading.Event()

        def attack() -> None:
            for _ in range(20):
                start = time.perf_counter()
                try:
                    answer = attacker.post(
                        f"{url}/graphql", json={"query": bomb}, headers={"Authorization": f"Bearer {key}"}
                    )
                except httpx.TimeoutException:
                    break
                answers.append((time.perf_counter() - start, answer))
            stop.set()

        thread = threading.Thread(target=attack)
        thread.start()
        health: list[float] = []
        while not stop.is_set() or not health:
            start = time.perf_counter()
            with suppress(httpx.TimeoutException):
                assert probe.get(f"{url}/healthz").status_code == 200
            health.append(time.perf_counter() - start)
            time.sleep(0.005)
        thread.join()
    assert len(answers) == 20, "the bomb got no answer in 10 s"
    for seconds, answer in answers:
        assert seconds < 1.0, f"the bomb took {seconds:.2f} s"  # minutes before (10^8 expansions)
        errors = answer.json()["errors"]
        assert errors[0]["extensions"]["code"] == "BAD_USER_INPUT"
        assert "more than 5000" in errors[0]["message"] and answer.json()["data"] is None
    assert max(health) < 1.0, f"/healthz took up to {max(health):.2f} s during the attack"


# -- the in-process app ---------------------------------------------------------------------------------


@dataclass
class Api:
    """Two apps over one store: production and dev mode; tokens for any role."""

    loop: asyncio.AbstractEventLoop
    prod: Any
    dev: Any
    config: AuthConfig
    audit_path: Path
    customer: str

    def token(self, role: str = "data_steward") -> str:
        return issue_dev_token(self.config, role, roles=POLICY.roles)

    def post(self, app: Any, content: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://c360") as client:
                auth = {"Authorization": f"Bearer {self.token()}", "Content-Type": "application/json"}
                return await client.post("/graphql", content=content, headers=auth | (headers or {}))

        return self.loop.run_until_complete(send())

    def gql(self, query: str, dev: bool = False, **variables: Any) -> dict[str, Any]:
        body = json.dumps({"query": query, "variables": variables or None}).encode()
        response = self.post(self.dev if dev else self.prod, body)
        out: dict[str, Any] = response.json()
        out["status"] = response.status_code
        return out


def _app(
    tmp: Path,
    store: Any,
    pipeline: Pipeline,
    *,
    dev: bool,
    service: ProfileService | None = None,
    key: Path | None = None,
) -> Any:
    audit = AuditLog(tmp / "audit.log")
    config = AuthConfig(dev_mode=True, dev_key_file=key or tmp / "dev.key")
    options = ApiOptions(
        policy=POLICY, audit=audit, verifier=TokenVerifier(config, POLICY.roles), dev_mode=dev, service=service
    )
    return create_app(store=store, sink=Runner(pipeline), partners=PartnerKeys(tmp / "partners.json"), options=options)


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    tmp = tmp_path_factory.mktemp("hardening")
    store = EmbeddedStore(EmbeddedConfig(path=tmp / "graph.db"))
    pipeline = Pipeline(store, Linker(store))
    events = [
        profile_event(f"p{i}", "crm", f"K{i}", i, first_name=f"N{i}", email=f"p{i}@example.com") for i in range(5)
    ]
    events += [order(f"o{i}", "K0", i) for i in range(3)]
    assert len(pipeline.process(events).accepted) == len(events)
    loop = asyncio.new_event_loop()
    prod = _app(tmp, store, pipeline, dev=False)
    dev = _app(tmp, store, pipeline, dev=True)
    customer = store.list_customers(1)[0][0]
    yield Api(loop, prod, dev, AuthConfig(dev_mode=True, dev_key_file=tmp / "dev.key"), tmp / "audit.log", customer)
    loop.close()
    store.close()


def _code(body: dict[str, Any]) -> str:
    return str(body["errors"][0]["extensions"]["code"])


def test_the_analysis_is_linear_and_memoised(api: Api) -> None:
    for spreading in (8, 9, 12):
        start = time.perf_counter()
        body = api.gql(fragment_bomb(spreading))
        assert time.perf_counter() - start < 0.5  # a few ms of analysis; the rest is a loaded machine
        assert _code(body) == "BAD_USER_INPUT" and "more than 5000" in body["errors"][0]["message"]
    # Empty leaves count too: spreads of an empty fragment expand as much.
    empty = fragment_bomb(8).replace("{ __typename }", "{ }")
    start = time.perf_counter()
    assert _code(api.gql(empty)) == "BAD_USER_INPUT" and time.perf_counter() - start < 0.5
    # Aliases and depth are counted through fragments, once per spread, without walking them again.
    alias = "fragment A on Query { a: __typename b: __typename } fragment B on Query { ...A ...A ...A } "
    aliases = api.gql(alias + "fragment C on Query { ...B ...B ...B } { ...C ...C }")
    assert _code(aliases) == "BAD_USER_INPUT" and "36 aliases" in aliases["errors"][0]["message"]
    deep = "fragment D on Customer { sourceRecords { fields { name } } } "
    deep += "{ customers { nodes { ...D } } }"
    assert "errors" not in api.gql(deep)
    # A cycle is invalid GraphQL, and said so; the analysis does not loop on it.
    cycle = api.gql("fragment X on Query { ...Y } fragment Y on Query { ...X } { ...X }")
    assert _code(cycle) == "BAD_USER_INPUT" and "within itself" in cycle["errors"][0]["message"]


def test_fields_repeated_hundreds_of_times_are_refused_before_the_quadratic_overlap_check(api: Api) -> None:
    # graphql-core compares every pair of same-named fields: 600 of them took about 2.5 s on the loop.
    many = "{ customer(id: $id) { " + " ".join(["golden { name }"] * 600) + " } }"
    start = time.perf_counter()
    body = api.gql(many.replace("$id", json.dumps(api.customer)))
    assert time.perf_counter() - start < 1.0  # 11 s before; most of it now is parsing 1,800 tokens
    assert _code(body) == "BAD_USER_INPUT" and "golden" in body["errors"][0]["message"]
    # A field asked for a few times over fragments, as colocated fragments do, is fine.
    frags = " ".join(f"fragment G{i} on Customer {{ id golden {{ name }} }}" for i in range(6))
    spread = " ".join(f"...G{i}" for i in range(6))
    ok = api.gql(f'{frags} {{ customer(id: "{api.customer}") {{ {spread} }} }}')
    assert "errors" not in ok, ok


def test_the_front_end_orders_with_line_items_pass_and_a_truly_costly_query_does_not(api: Api) -> None:
    front = """query($id: ID!, $after: String) { customer(id: $id) {
      id golden { name value source sourceKey rule } identifiers { kind value flagged }
      timeline(first: 20, after: $after) { events { id type occurredAt data } pageInfo { hasNextPage endCursor } }
      orders(first: 20) { orders { orderId occurredAt source status channel currency total
        lineItems { lineId productId quantity unitPrice discount } } pageInfo { hasNextPage endCursor } }
      transactions(first: 20) { transactions { transactionId occurredAt amount currency kind status }
        pageInfo { hasNextPage endCursor } } } }"""
    body = api.gql(front, id=api.customer)
    assert "errors" not in body, body
    assert len(body["data"]["customer"]["orders"]["orders"]) == 3
    # A hundred customers with a hundred orders each: a page inside a page multiplies.
    costly = "{ customers(first: 100) { nodes { orders(first: 100) { orders { lineItems { productId } } } } } }"
    refused = api.gql(costly)
    assert _code(refused) == "BAD_USER_INPUT" and "more than 5000" in refused["errors"][0]["message"]
    # Page sizes given as variables count with their values.
    paged = "query($n: Int!) { customers(first: $n) { nodes { timeline(first: $n) { events { id type } } } } }"
    assert "errors" not in api.gql(paged, n=10)
    assert "more than 5000" in api.gql(paged, n=100)["errors"][0]["message"]


def test_bodies_over_the_limit_get_413_and_long_strings_are_refused_unechoed_and_unaudited(api: Api) -> None:
    huge = "x" * (10 * 1024 * 1024)
    start = time.perf_counter()
    response = api.post(api.prod, json.dumps({"query": f'{{ customer(id: "{huge}") {{ id }} }}'}).encode())
    assert response.status_code == 413 and time.perf_counter() - start < 1.0
    assert response.json()["errors"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"
    assert len(response.content) < 1000

    async def chunks() -> Any:  # no Content-Length: counted as it comes
        for _ in range(100):
            yield b" " * 65536

    async def chunked() -> httpx.Response:
        transport = httpx.ASGITransport(app=api.prod)
        async with httpx.AsyncClient(transport=transport, base_url="http://c360") as client:
            return await client.post("/graphql", content=chunks(), headers={"Content-Type": "application/json"})

    assert api.loop.run_until_complete(chunked()).status_code == 413
    long_id = "y" * 20_000  # under the body limit, over the string limit
    for body in (
        api.gql(f'{{ customer(id: "{long_id}") {{ id }} }}'),
        api.gql("query($id: ID!) { customer(id: $id) { id } }", id=long_id),
        api.gql(
            'mutation($r: [String!]!) { split(customerId: "C1", records: $r, reason: "x") { remaining { id } } }',
            r=["a", long_id],
        ),
    ):
        assert body["status"] == 200 and _code(body) == "BAD_USER_INPUT"
        assert "characters" in body["errors"][0]["message"] and len(json.dumps(body)) < 1000
    assert long_id not in api.audit_path.read_text()


def test_introspection_and_suggestions_only_in_dev_mode(api: Api) -> None:
    for query in (
        "{ __schema { types { name } } }",
        '{ __type(name: "Customer") { fields { name } } }',
        "fragment I on Query { __schema { queryType { name } } } { ...I }",
        "{ customers { nodes { id } } a: __schema { queryType { name } } }",
    ):
        refused = api.gql(query)
        assert _code(refused) == "INTROSPECTION_DISABLED" and refused["data"] is None, refused
        assert "errors" not in api.gql(query.replace("{ customers { nodes { id } } ", "{ "), dev=True)
    assert api.gql("{ __typename }")["data"] == {"__typename": "Query"}
    typo = '{ custmer(id: "x") { id } }'
    assert "Did you mean" in api.gql(typo, dev=True)["errors"][0]["message"]
    for query in (typo, '{ customer(id: "x") { idd } }', "{ customer }", "{ customers(frist: 1) { nodes { id } } }"):
        body = api.gql(query)
        assert _code(body) == "BAD_USER_INPUT"
        assert all("Did you mean" not in e["message"] for e in body["errors"]), body


def _cursor(value: str) -> str:
    return base64.urlsafe_b64encode(value.encode()).decode().rstrip("=")


def test_bad_input_gets_a_client_code_and_no_internal_text(api: Api) -> None:
    bad = [
        ("{ }", {}),
        ("{ customers { } }", {}),
        ("fragment F on Query { } { ...F }", {}),
        ("{ customers { nodes { ...G } } }", {}),
        ("query($n: Int) { customers(first: $n) { nodes { id } } }", {"n": "abc"}),
        ("query($n: Int) { customers(first: $n) { nodes { id } } }", {"n": 10**20}),
        ("query($x: ID!) { customer(id: $x) { id } }", {}),
        ("query($x: ID!) { customer(id: $x) { id } }", {"x": {"a": 1}}),
        (f'{{ reviewQueue(after: "{_cursor("9" * 40)}") {{ items {{ id }} }} }}', {}),
        (f'{{ customers(search: "N1", after: "{_cursor("9" * 40)}") {{ nodes {{ id }} }} }}', {}),
        (f'{{ reviewQueue(after: "{_cursor("²")}") {{ items {{ id }} }} }}', {}),
        ('{ reviewQueue(after: "G") { items { id } } }', {}),
        ('{ customers(first: 1) { nodes { timeline(after: "G") { events { id } } } } }', {}),
    ]
    for query, variables in bad:
        body = api.gql(query, **variables)
        assert body["data"] is None or body.get("errors"), (query, body)
        for error in body["errors"]:
            assert error["extensions"]["code"] == "BAD_USER_INPUT", (query, body)
            assert error["message"] not in ("'G'", "max() arg is an empty sequence"), (query, body)
            assert "internal error" not in error["message"]
    for body in (b'"G"', b"5", b"null"):  # JSON, but not an object: was an AttributeError and a 500
        response = api.post(api.prod, body)
        assert response.status_code == 400 and "JSON object" in response.text, (body, response.text)


class _Broken:
    """A store whose customer list fails the way a bug would."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        if name == "list_customers":

            def broken(*_: Any, **__: Any) -> Any:
                raise ValueError("max() arg is an empty sequence")

            return broken
        return getattr(self.inner, name)


def test_an_unexpected_error_is_internal_with_a_generic_message(api: Api, tmp_path: Path) -> None:
    store = EmbeddedStore(EmbeddedConfig(path=tmp_path / "graph.db"))
    broken: Any = _Broken(store)
    audit = AuditLog(tmp_path / "audit.log")
    service = ProfileService(broken, POLICY, audit)
    app = _app(
        tmp_path, broken, Pipeline(store, Linker(store)), dev=False, service=service, key=api.config.dev_key_file
    )
    response = api.post(app, json.dumps({"query": "{ customers { nodes { id } } }"}).encode())
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    assert "max()" not in response.text and error["message"] == "internal error; it is logged"
    store.close()


# -- role lists -----------------------------------------------------------------------------------------


def _verifier(tmp_path: Path) -> tuple[TokenVerifier, bytes]:
    config = AuthConfig(dev_mode=True, dev_key_file=tmp_path / "dev.key")
    return TokenVerifier(config, POLICY.roles), dev_secret(tmp_path / "dev.key")


def _token(secret: bytes, role: Any) -> str:
    now = int(time.time())
    claims = {"iss": "c360-dev", "aud": "c360", "sub": "u", "iat": now, "exp": now + 60, "role": role}
    return jwt.encode(claims, secret, algorithm="HS256")


def test_a_role_list_must_name_exactly_one_known_role(tmp_path: Path) -> None:
    verifier, secret = _verifier(tmp_path)
    assert verifier.verify(_token(secret, "admin")).role == "admin"
    assert verifier.verify(_token(secret, ["marketer"])).role == "marketer"
    assert verifier.verify(_token(secret, ["marketer", "marketer"])).role == "marketer"
    for roles, why in (
        (["superuser", "admin"], "not a known role"),
        (["marketer", "admin"], "several roles"),
        (["admin", "marketer"], "several roles"),
        (["offline_access", "kyc_officer"], "not a known role"),
        ([], "no 'role' claim"),
        (["admin", 5], "not a known role"),
    ):
        with pytest.raises(AuthError, match=why):
            verifier.verify(_token(secret, roles))


def test_the_analysis_cache_keeps_only_documents_that_pass() -> None:
    from c360.graphql.query_cost import Analyser, Limits
    from c360.graphql.schema import build_schema
    from graphql.language import parse

    schema = build_schema()._schema  # type: ignore[attr-defined]
    analyser = Analyser(Limits(), size=2)
    bomb = fragment_bomb()
    assert analyser.problems(schema, parse(bomb), None, bomb)
    assert not analyser._verdicts  # a refused document's nodes are not kept alive
    for text in ("{ __typename }", "{ customers { nodes { id } } }", "query A { __typename }"):
        assert analyser.problems(schema, parse(text), None, text) == []
    assert list(analyser._verdicts) == ["{ customers { nodes { id } } }", "query A { __typename }"]


def test_the_graphql_body_limit_is_a_setting(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from c360.deps import build_app, build_store
    from c360.settings import load_settings

    settings = load_settings(data_dir=tmp_path, api={"dev_mode": True, "graphql_max_body": 2048})
    store = build_store(settings)
    try:
        with TestClient(build_app(settings, store)) as client:
            small = client.post("/graphql", json={"query": "{ __typename }"})
            big = client.post("/graphql", json={"query": "{ __typename }", "variables": {"x": "y" * 3000}})
        assert small.status_code in (200, 401) and big.status_code == 413
        assert big.json()["errors"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"
    finally:
        store.close()


def test_the_openapi_document_describes_the_profile_and_every_answer(tmp_path: Path) -> None:
    from c360.graphql.auth import issue_dev_token
    from c360.graphql.routes_customers import ProfileDocument
    from fastapi.testclient import TestClient

    from c360.deps import build_app, build_pipeline, build_store
    from c360.settings import load_settings

    settings = load_settings(data_dir=tmp_path, api={"dev_mode": True})
    store = build_store(settings)
    try:
        event = {
            "event_id": "e1",
            "type": "profile_update",
            "source": "crm",
            "occurred_at": "2026-05-01T10:00:00Z",
            "profile": {"customer_key": "K1", "first_name": "Ann", "email": "ann@example.com"},
        }
        build_pipeline(settings, store).process([event])
        app = build_app(settings, store)
        spec = app.openapi()
        profile = spec["paths"]["/v1/customers/{customer_id}"]["get"]["responses"]
        assert profile["200"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/ProfileDocument"
        }
        for path in ("/v1/customers/{customer_id}", "/v1/customers"):
            assert {"400", "401", "403", "404", "422", "429", "503"} <= set(spec["paths"][path]["get"]["responses"])
        assert "requestBody" in spec["paths"]["/v1/events"]["post"]
        token = issue_dev_token(AuthConfig(dev_mode=True, dev_key_file=tmp_path / "dev-signing.key"), "data_steward")
        with TestClient(app) as client:
            found = client.get(
                "/v1/customers", params={"email": "ann@example.com"}, headers={"Authorization": f"Bearer {token}"}
            )
            assert found.status_code == 200, found.text
            (doc,) = found.json()["customers"]
            ProfileDocument.model_validate(doc)
            one = client.get(f"/v1/customers/{doc['id']}", headers={"Authorization": f"Bearer {token}"})
            assert ProfileDocument.model_validate(one.json()).id == doc["id"]
    finally:
        store.close()
