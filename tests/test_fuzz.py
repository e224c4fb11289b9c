"""The fuzzing tier: generated requests, events and GraphQL documents against the real app and pipeline.

- schemathesis against the OpenAPI document of the app (every operation, authenticated and not):
  no 5xx, answers as documented;
- hypothesis-generated events (well-formed and hostile) through the pipeline: never an exception,
  each one applied or a dead letter that can be stored and encoded;
- hypothesis-graphql documents against the schema: no 5xx, every error with a code and no internal text.

Bounded (``FUZZ_EXAMPLES`` per test, a deadline per example). Runs when ``C360_FUZZ=1`` (CI sets it);
``pytest -m fuzz`` selects it.
"""

from __future__ import annotations

import json
import os
import string
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = [
    pytest.mark.fuzz,
    pytest.mark.skipif(os.environ.get("C360_FUZZ") != "1", reason="the fuzzing tier runs with C360_FUZZ=1 (CI)"),
]

FUZZ_EXAMPLES = int(os.environ.get("C360_FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.filter_too_much],
    database=None,
)


# -- the app -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def app_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A dev-mode app over an embedded store with a few customers, and tokens for two roles."""
    from c360.graphql.auth import issue_dev_token
    from c360.graphql.policy import load_policy
    from fastapi.testclient import TestClient

    from c360.deps import auth_config, build_app, build_pipeline, build_store, partner_keys
    from c360.settings import load_settings

    home = tmp_path_factory.mktemp("fuzz")
    settings_ = load_settings(data_dir=home, api={"dev_mode": True})
    store = build_store(settings_)
    people = [
        {
            "event_id": f"p{i}",
            "type": "profile_update",
            "source": "crm",
            "occurred_at": "2026-05-01T10:00:00Z",
            "profile": {"customer_key": f"K{i}", "first_name": f"Ann{i}", "email": f"ann{i}@example.com"},
        }
        for i in range(5)
    ]
    build_pipeline(settings_, store).process(people)
    roles = load_policy().roles
    config = auth_config(settings_)
    key = partner_keys(settings_).issue("shop", ["shop"])
    app = build_app(settings_, store)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield {
            "app": app,
            "client": client,
            "home": home,
            "steward": issue_dev_token(config, "data_steward", "fuzz", roles=roles),
            "marketer": issue_dev_token(config, "marketer", "fuzz", roles=roles),
            "partner": key,
        }
    store.close()


def _no_internal_text(body: str) -> None:
    for leak in ("Traceback", 'File "', "Error:", "object has no attribute", "arg is an empty sequence"):
        assert leak not in body, body[:500]


# -- OpenAPI: schemathesis ------------------------------------------------------------------------------------


def _fuzz_operation(operation: Any, headers: list[dict[str, str]], failures: list[str], refusals: list[int]) -> None:
    from schemathesis.checks import not_a_server_error, response_schema_conformance, status_code_conformance

    @FUZZ
    @given(case=operation.as_strategy(), who=st.sampled_from(headers))
    def run(case: Any, who: dict[str, str]) -> None:
        response = case.call(headers=who)
        if 400 <= response.status_code < 500 and response.status_code not in (404, 405):
            refusals.append(response.status_code)
        try:
            case.validate_response(
                response, checks=[not_a_server_error, status_code_conformance, response_schema_conformance]
            )
        except Exception as exc:  # collect, then fail with every operation that broke
            failures.append(f"{operation.label}: {exc}"[:800])
        _no_internal_text(response.text)

    run()


def test_every_operation_answers_as_documented_and_never_5xx(app_env: dict[str, Any]) -> None:
    import schemathesis

    schema = schemathesis.openapi.from_asgi("/openapi.json", app_env["app"])
    headers = [
        {"Authorization": f"Bearer {app_env['steward']}"},
        {"Authorization": f"Bearer {app_env['marketer']}"},
        {"X-API-Key": app_env["partner"], "Authorization": f"Bearer {app_env['partner']}"},
        {},
    ]
    failures: list[str] = []
    refusals: list[int] = []
    log = Path(app_env["home"]) / "audit.log"
    # Lines end at b"\n" only: a value may hold U+2028 or U+0085, which str.splitlines would split at.
    before = log.read_bytes().count(b"\n") if log.exists() else 0
    for result in schema.get_all_operations():
        _fuzz_operation(result.ok(), headers, failures, refusals)
    assert not failures, "\n".join(failures[:10])
    # Zero unaudited refusals: every 4xx that refused something (not a 404) has its entry.
    entries = [json.loads(line) for line in log.read_bytes().split(b"\n")[before:] if line]
    refused = [e for e in entries if e["outcome"] not in ("ok", "not_found")]
    assert refusals and len(refused) >= len(refusals), (len(refused), len(refusals))


# -- events: hypothesis through the pipeline ---------------------------------------------------------------

_hostile_text = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=40),
    st.sampled_from(["", " ", "\x00", "a\x00b", "\ud800", "9" * 400, "../../x", "crm", "0000-01-01", "9999-12-31"]),
)
_json_leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), _hostile_text)
_json = st.recursive(
    _json_leaf,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_hostile_text, inner, max_size=4),
    max_leaves=20,
)
_times = st.one_of(
    st.sampled_from(
        ["2026-05-01T10:00:00Z", "2026-05-01T10:00:00+02:00", "9999-12-31T00:00:00Z", "1700-01-01T00:00:00Z"]
    ),
    st.integers(),
    _hostile_text,
)
_profile = st.fixed_dictionaries(
    {"customer_key": _hostile_text},
    optional={
        "first_name": _hostile_text,
        "last_name": _hostile_text,
        "email": _hostile_text,
        "phone": _hostile_text,
        "date_of_birth": st.one_of(st.sampled_from(["1990-01-01", "2999-01-01", "1899-12-31"]), _hostile_text),
        "national_id": _hostile_text,
        "attributes": st.dictionaries(_hostile_text, _hostile_text, max_size=3),
    },
)
_event = st.fixed_dictionaries(
    {
        "event_id": _hostile_text,
        "type": st.sampled_from(["profile_update", "order", "transaction", "web_activity", "consent", "x"]),
        "source": st.one_of(st.sampled_from(["crm", "shop", "web"]), _hostile_text),
        "occurred_at": _times,
    },
    optional={"profile": _profile, "customer_key": _hostile_text, "order_id": _hostile_text, "total": _json_leaf},
)


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from c360.graph.embedded import EmbeddedConfig, EmbeddedStore
    from c360.resolution.linker import Linker
    from c360.streams.pipeline import Pipeline

    store = EmbeddedStore(EmbeddedConfig(path=tmp_path_factory.mktemp("fuzz-pipeline") / "graph.db"))
    yield Pipeline(store, Linker(store))
    store.close()


@FUZZ
@given(batch=st.lists(st.one_of(_event, _json), min_size=1, max_size=6))
def test_any_batch_is_applied_or_dead_lettered_and_never_raises(pipeline: Any, batch: list[Any]) -> None:
    outcome = pipeline.process(batch)
    rejected = {r.index for r in outcome.rejected}
    assert len(outcome.accepted) + outcome.duplicates + len(rejected) == len(batch)
    json.dumps(outcome.to_json())  # the answer encodes
    for r in outcome.rejected:
        letter = pipeline.store.get_dead_letter(r.dead_letter)
        json.dumps(letter.to_json()).encode("utf-8")  # no lone surrogate survives into a letter


# -- GraphQL: hypothesis-graphql ---------------------------------------------------------------------------


def test_generated_graphql_documents_never_5xx_and_every_error_has_a_code(app_env: dict[str, Any]) -> None:
    from c360.graphql.schema import build_schema
    from hypothesis_graphql import queries

    sdl = str(build_schema())
    client = app_env["client"]
    headers = {"Authorization": f"Bearer {app_env['steward']}"}

    @FUZZ
    @given(query=queries(sdl), noise=st.sampled_from(["", "{", " #", string.printable[:20]]))
    def run(query: str, noise: str) -> None:
        for document in (query, query + noise):
            response = client.post("/graphql", json={"query": document}, headers=headers)
            assert response.status_code < 500, (document, response.text[:500])
            _no_internal_text(response.text)
            body = response.json()
            for error in body.get("errors") or []:
                assert (error.get("extensions") or {}).get("code"), (document, error)

    run()


def test_fuzz_state_is_real(app_env: dict[str, Any]) -> None:
    """The fixture's store holds what the fuzzers read (a fuzz run against an empty app proves little)."""
    response = app_env["client"].get(
        "/v1/customers", params={"email": "ann1@example.com"}, headers={"Authorization": f"Bearer {app_env['steward']}"}
    )
    assert response.status_code == 200, response.text
    assert Path(app_env["home"]).is_dir()
