"""The ML in the API (issue 17): lens queries over REST and GraphQL, insights and segments on the profile, by role.

The app is ``deps.build_app`` over an embedded store with six customers (four in California), their
snapshot written by ``c360.ml.snapshot`` (Parquet files under DATA_DIR/ml/parquet), segment memberships
applied to the store and insights written with ``store.put_insights``. Tokens are dev JWTs per role.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest
import typer
from c360.graph.errors import ConflictError
from c360.graph.insights import Insight, SegmentChange
from c360.graph.store import GraphStore
from c360.graphql.auth import issue_dev_token
from c360.graphql.errors import QueryTimeout
from c360.graphql.policy import load_policy
from c360.ml.lens import LensResult, parse_query
from c360.ml.lens_source import LensSource, _interruptible, labelled_model
from c360.ml.snapshot import snapshot
from fastapi.testclient import TestClient
from payloads import profile_event
from typer.testing import CliRunner

from c360.cli.common import State
from c360.cli.lens import lens_app
from c360.deps import auth_config, build_app, build_pipeline, build_store
from c360.settings import ApiSettings, Settings

POLICY = load_policy()
SEGMENTS = {
    "high_spending_customers": "High Spending Customers",
    "expecting_parents": "Expecting Parents",
    "frequent_cart_abandoner": "Frequent Cart Abandoner",
    "frequent_buyers": "Frequent Buyers",
}
# key, state, first name, birth date
CUSTOMERS = [
    ("C1", "CA", "Ann", "1990-03-01"),
    ("C2", "CA", "Bob", "1960-07-01"),
    ("C3", "CA", "Cy", "2001-01-15"),
    ("C4", "NY", "Dee", "1985-05-05"),
    ("C5", "TX", "Eve", "1979-09-09"),
    ("C6", "CA", "Fay", "1999-12-31"),  # in no segment
]
MEMBERS = [
    ("high_spending_customers", "C1"),
    ("high_spending_customers", "C2"),
    ("high_spending_customers", "C4"),
    ("expecting_parents", "C1"),
    ("expecting_parents", "C5"),
    ("frequent_cart_abandoner", "C3"),
    ("frequent_cart_abandoner", "C4"),
    ("frequent_buyers", "C1"),
    ("frequent_buyers", "C2"),
    ("frequent_buyers", "C3"),
]
EXAMPLE = {
    "measures": ["customer.count"],
    "dimensions": ["segment.name"],
    "filters": [{"member": "customer.state", "op": "equals", "values": ["CA"]}],
}
IN_CALIFORNIA = {
    "High Spending Customers": 2,
    "Expecting Parents": 1,
    "Frequent Cart Abandoner": 1,
    "Frequent Buyers": 3,
}
LENS = """query($q: LensQueryInput!) { lens(query: $q) { columns rows rowCount seconds } }"""
PROFILE = """query($id: ID!) { customer(id: $id) { id status
  insights { name score label detail model computedAt } segments { segmentId since reason } } }"""
AT = datetime(2026, 6, 1, 12, tzinfo=UTC)
TIMELINE = """query($id: ID!, $types: [String!]) { customer(id: $id) { id
  timeline(first: 50, types: $types) { events { id type occurredAt data } } } }"""


@dataclass
class Api:
    settings: Settings
    client: TestClient
    store: GraphStore
    ids: dict[str, str]

    def headers(self, role: str) -> dict[str, str]:
        token = issue_dev_token(auth_config(self.settings), role, "tester", roles=POLICY.roles)
        return {"Authorization": f"Bearer {token}"}

    def gql(self, query: str, role: str, **variables: Any) -> dict[str, Any]:
        response = self.client.post(
            "/graphql", json={"query": query, "variables": variables}, headers=self.headers(role)
        )
        body: dict[str, Any] = response.json()
        return body

    def lens(self, role: str, query: Any) -> Any:
        return self.client.post("/v1/lens/query", json=query, headers=self.headers(role))

    def audit(self, action: str) -> list[dict[str, Any]]:
        lines = (self.settings.data_dir / "audit.log").read_text(encoding="utf-8").splitlines()
        entries = [json.loads(line) for line in lines if line.strip()]
        return [e for e in entries if isinstance(e, dict) and e.get("action") == action]


def _settings(home: Path, **api: Any) -> Settings:
    settings = Settings(data_dir=home / ".c360", api=ApiSettings(dev_mode=True, **api))
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return settings


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    settings = _settings(tmp_path_factory.mktemp("ml-api"))
    store = build_store(settings)
    events = [
        profile_event(
            f"p-{key}", "crm", key, i, first_name=name, last_name="Field", email=f"{name.lower()}@example.com",
            state=state, date_of_birth=dob,
        )
        for i, (key, state, name, dob) in enumerate(CUSTOMERS)
    ]  # fmt: skip
    assert len(build_pipeline(settings, store).process(events).accepted) == len(CUSTOMERS)
    records = store.lookup([f"crm|{key}" for key, *_ in CUSTOMERS], []).records
    ids = {key: records[f"crm|{key}"].customer_id for key, *_ in CUSTOMERS}
    assert snapshot(store, settings.data_dir / "ml").complete
    changes = [
        SegmentChange(f"{seg}|{key}|entered", seg, ids[key], "entered", AT, f"rule of {seg}", "backfill")
        for seg, key in MEMBERS
    ]
    assert len(store.apply_segment_changes(changes)) == len(MEMBERS)
    ann = ids["C1"]
    detail = {
        "top_features": ["recency_days", "frequency"],
        "email": "ann@example.com",
        "note": "from crm|C1",
        "nested": [{"first_name": "Ann", "weight": 0.4}],
        "attributes": {"loyalty_tier": "gold"},
    }
    written = store.put_insights(
        [
            Insight(ann, "churn", "churn@v3", AT, score=0.82, detail=detail),
            Insight(ann, "rfm", "rfm@2026-06-01", AT, label="champions", detail={"r": 5, "f": 4, "m": 5}),
        ]
    )
    assert written == 2
    with TestClient(build_app(settings, store)) as client:
        yield Api(settings, client, store, ids)
    store.close()


def _counts(rows: list[dict[str, Any]]) -> dict[str, int]:
    return {row["segment.name"]: row["customer.count"] for row in rows}


def _codes(body: dict[str, Any]) -> list[str]:
    return [e["extensions"]["code"] for e in body.get("errors") or []]


# -- the lens ------------------------------------------------------------------------------------------------


def test_rest_answers_the_requirements_example_and_audits_it(api: Api) -> None:
    response = api.lens("marketer", EXAMPLE)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["columns"] == ["segment.name", "customer.count"]
    assert _counts(body["rows"]) == IN_CALIFORNIA
    assert body["row_count"] == 4
    entry = api.audit("query_lens")[-1]
    assert entry["outcome"] == "ok" and entry["role"] == "marketer"
    assert "segment.name" in entry["detail"] and "customer.state equals" in entry["detail"]
    assert "CA" not in entry["detail"]  # filter values (they may be personal) stay out of the trail


def test_graphql_answers_the_requirements_example(api: Api) -> None:
    q = {**EXAMPLE, "filters": [{"member": "state", "op": "equals", "values": ["CA"]}], "order": [
        {"member": "customer.count", "direction": "desc"}]}  # fmt: skip
    body = api.gql(LENS, "data_consumer", q=q)
    assert not body.get("errors"), body
    lens = body["data"]["lens"]
    assert lens["columns"] == ["segment.name", "customer.count"] and lens["rowCount"] == 4
    assert _counts(lens["rows"]) == IN_CALIFORNIA
    assert lens["rows"][0] == {"segment.name": "Frequent Buyers", "customer.count": 3}


def test_lens_reads_the_snapshots_tables_and_the_stores_segments_together(api: Api) -> None:
    everyone = api.lens("marketer", {"measures": ["customer.count"], "dimensions": ["customer.state"]}).json()
    assert {r["customer.state"]: r["customer.count"] for r in everyone["rows"]} == {"CA": 4, "NY": 1, "TX": 1}
    by_band = api.lens("marketer", {"measures": ["members"], "dimensions": ["segment.id", "customer.age_band"],
                                    "as_of": "2026-06-30T00:00:00Z"}).json()  # fmt: skip
    assert {(r["segment.id"], r["customer.age_band"]) for r in by_band["rows"]} >= {
        ("frequent_cart_abandoner", "25-34"),  # C3, born 2001
        ("high_spending_customers", "35-44"),  # C4, born 1985
    }


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"measures": ["customer.cuont"]}, "unknown member 'customer.cuont'"),
        ({"measures": ["count"]}, "member 'count' is ambiguous"),
        ({"measures": ["customer.count"], "filters": [{"member": "state", "op": "like", "values": ["C%"]}]}, "op"),
        ({"measures": ["customer.count"], "limit": 10_000_000}, "over the model's maximum"),
        ({"measures": ["customer.count"], "dimensions": ["order.total"], "surprise": 1}, "surprise"),
        ({}, "name at least one measure or dimension"),
    ],
)
def test_bad_queries_are_400_problems_and_bad_user_input(api: Api, query: dict[str, Any], message: str) -> None:
    response = api.lens("marketer", query)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert message in response.json()["detail"]
    if "surprise" not in query:  # a GraphQL input has no room for unknown keys
        gql = api.gql(LENS, "marketer", q=query)
        assert _codes(gql) == ["BAD_USER_INPUT"], gql
        assert message in gql["errors"][0]["message"]
        assert gql["data"] == {"lens": None}


def test_bodies_that_are_not_a_query_object(api: Api) -> None:
    headers = {**api.headers("marketer"), "content-type": "application/json"}
    not_json = api.client.post("/v1/lens/query", content=b"{measures:", headers=headers)
    assert not_json.status_code == 400 and "not JSON" in not_json.json()["detail"]
    a_list = api.client.post("/v1/lens/query", content=b"[1, 2]", headers=headers)
    assert a_list.status_code == 400 and "JSON object" in a_list.json()["detail"]
    huge = json.dumps({"measures": ["customer.count"], "pad": "x" * 70_000}).encode()
    assert api.client.post("/v1/lens/query", content=huge, headers=headers).status_code == 413


@pytest.mark.parametrize("role", ["service_agent", "kyc_officer", "data_steward"])
def test_roles_without_query_lens_are_refused_and_audited_denied(api: Api, role: str) -> None:
    response = api.lens(role, EXAMPLE)
    assert response.status_code == 403, response.text
    assert _codes(api.gql(LENS, role, q=EXAMPLE)) == ["FORBIDDEN"]
    entry = api.audit("query_lens")[-1]
    assert entry["role"] == role and entry["outcome"] == "denied"


@pytest.mark.parametrize(
    ("role", "query", "field"),
    [
        ("marketer", {"measures": ["customer.count"], "dimensions": ["customer.email"]}, "email"),
        ("marketer", {"dimensions": ["first_name"]}, "first_name"),
        ("marketer", {"dimensions": ["customer.date_of_birth"]}, "date_of_birth"),
        ("marketer", {"dimensions": ["customer.postcode"]}, "postcode"),  # partial is not full
        # a filter is an oracle: "customers with this email: 1"
        (
            "marketer",
            {
                "measures": ["customer.count"],
                "filters": [{"member": "email", "op": "equals", "values": ["ann@example.com"]}],
            },
            "email",
        ),
        ("data_consumer", {"measures": ["customer.count"], "dimensions": ["customer.gender"]}, "gender"),
        ("data_consumer", {"dimensions": ["customer.last_name"]}, "last_name"),
    ],
)
def test_personal_members_need_the_field_in_full(api: Api, role: str, query: dict[str, Any], field: str) -> None:
    response = api.lens(role, query)
    assert response.status_code == 403, response.text
    assert f"it shows {field}, which this role sees as {POLICY.rule(role, field)}" in response.json()["detail"]
    entry = api.audit("query_lens")[-1]
    assert entry["outcome"] == "denied" and field in entry["detail"]
    assert _codes(api.gql(LENS, role, q=query)) == ["FORBIDDEN"]


def test_what_a_role_sees_in_full_it_may_query(api: Api) -> None:
    admin = api.lens("admin", {"dimensions": ["customer.email"], "filters": [{"member": "state", "op": "equals",
                                                                                "values": ["NY"]}]})  # fmt: skip
    assert admin.status_code == 200 and admin.json()["rows"] == [{"customer.email": "dee@example.com"}]
    per_customer = api.lens("marketer", {"measures": ["customer.count"], "dimensions": ["customer.customer_id"]})
    assert per_customer.status_code == 200 and per_customer.json()["row_count"] == len(CUSTOMERS)
    bands = api.lens("data_consumer", {"measures": ["customer.count"], "dimensions": ["customer.age_band"]})
    assert bands.status_code == 200, bands.text  # age as a range: the band is a range


def test_no_snapshot_is_a_clear_404(api: Api, tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    store = build_store(settings)
    try:
        with TestClient(build_app(settings, store)) as client:
            other = Api(settings, client, store, {})
            response = other.lens("marketer", EXAMPLE)
            assert response.status_code == 404, response.text
            assert "run `c360 ml snapshot` first" in response.json()["detail"]
            body = other.gql(LENS, "marketer", q=EXAMPLE)
            assert _codes(body) == ["NOT_FOUND"] and "c360 ml snapshot" in body["errors"][0]["message"]
            assert other.audit("query_lens")[-1]["outcome"] == "not_found"
    finally:
        store.close()


def test_a_query_over_its_time_budget_is_a_503_with_retry_after(api: Api, tmp_path: Path) -> None:
    settings = _settings(tmp_path, lens_timeout=1e-6)
    shutil.copytree(api.settings.data_dir / "ml" / "parquet", settings.data_dir / "ml" / "parquet")
    with TestClient(build_app(settings, api.store)) as client:
        other = Api(settings, client, api.store, api.ids)
        response = other.lens("marketer", EXAMPLE)
        assert response.status_code == 503, response.text
        assert "time budget" in response.json()["detail"] and response.headers["retry-after"]
        assert _codes(other.gql(LENS, "marketer", q=EXAMPLE)) == ["TIMEOUT"]
        assert other.audit("query_lens")[-1]["outcome"] == "refused"


def test_duckdb_is_interrupted_when_the_budget_is_spent() -> None:
    con = duckdb.connect(":memory:")
    heavy = "SELECT count(*) FROM range(100000000) a, range(100000000) b WHERE a.range + b.range = -1"
    started = time.monotonic()

    def work() -> LensResult:
        con.execute(heavy).fetchall()
        raise AssertionError("the query was not interrupted")

    with pytest.raises(QueryTimeout, match=r"time budget of 0\.2 s"):
        _interruptible(con, started + 0.2, 0.2, work)
    assert con.execute("SELECT 42").fetchone() == (42,)  # the connection still works after the interrupt
    con.close()


def test_the_snapshot_file_is_never_locked_by_the_api(api: Api) -> None:
    assert api.lens("marketer", EXAMPLE).status_code == 200
    # a writer (c360 ml snapshot) can open the snapshot file while the API answers queries
    writer = duckdb.connect(str(api.settings.data_dir / "ml" / "snapshot.duckdb"))
    try:
        assert api.lens("marketer", EXAMPLE).status_code == 200
    finally:
        writer.close()


# -- insights and segments on the profile --------------------------------------------------------------------


def test_insights_come_back_with_their_model_version_masked_by_role(api: Api) -> None:
    ann = api.ids["C1"]
    body = api.gql(PROFILE, "marketer", id=ann)
    assert not body.get("errors"), body
    customer = body["data"]["customer"]
    churn, rfm = customer["insights"]
    assert (churn["name"], churn["score"], churn["model"]) == ("churn", 0.82, "churn@v3")
    assert churn["computedAt"].startswith("2026-06-01T12:00:00")
    assert churn["detail"]["top_features"] == ["recency_days", "frequency"]
    assert churn["detail"]["email"].startswith("hmac:")  # the marketer sees email hashed, here too
    assert "note" not in churn["detail"]  # free text: only for roles that see record keys
    assert churn["detail"]["nested"] == [{"weight": 0.4}]  # the marketer sees no first names, at any depth
    assert "attributes" not in churn["detail"]
    assert (rfm["label"], rfm["model"], rfm["detail"]) == ("champions", "rfm@2026-06-01", {"r": 5, "f": 4, "m": 5})
    assert [s["segmentId"] for s in customer["segments"]] == ["expecting_parents", "frequent_buyers",
                                                               "high_spending_customers"]  # fmt: skip
    assert customer["segments"][0]["reason"] == "rule of expecting_parents"
    steward = api.gql(PROFILE, "data_steward", id=ann)["data"]["customer"]
    assert steward["insights"][0]["detail"]["email"] == "ann@example.com"
    assert steward["insights"][0]["detail"]["note"] == "from crm|C1"
    assert steward["insights"][0]["detail"]["nested"] == [{"first_name": "Ann", "weight": 0.4}]
    entries = [e for e in api.audit("read_insights") if e["target"] == ann]
    assert {(e["role"], e["outcome"], e["detail"]) for e in entries} >= {
        ("marketer", "ok", "insights"),
        ("marketer", "ok", "segments"),
    }


@pytest.mark.parametrize("role", ["service_agent", "kyc_officer", "approval_manager"])
def test_roles_without_read_insights_get_null_and_forbidden_the_rest_answers(api: Api, role: str) -> None:
    ann = api.ids["C2"]
    body = api.gql(PROFILE, role, id=ann)
    customer = body["data"]["customer"]
    assert customer["id"] == ann and customer["status"] == "active"
    assert customer["insights"] is None and customer["segments"] is None
    assert sorted(e["path"][-1] for e in body["errors"]) == ["insights", "segments"]
    assert set(_codes(body)) == {"FORBIDDEN"}
    denied = [e for e in api.audit("read_insights") if e["role"] == role and e["target"] == ann]
    assert [e["outcome"] for e in denied] == ["denied", "denied"]
    assert api.client.get(f"/v1/customers/{ann}/insights", headers=api.headers(role)).status_code == 403


def test_rest_insights_of_a_customer(api: Api) -> None:
    ann = api.ids["C1"]
    response = api.client.get(f"/v1/customers/{ann}/insights", headers=api.headers("data_consumer"))
    assert response.status_code == 200, response.text
    doc = response.json()
    assert doc["customer_id"] == ann and doc["requested_id"] == ann
    assert [(i["name"], i["model"]) for i in doc["insights"]] == [("churn", "churn@v3"), ("rfm", "rfm@2026-06-01")]
    assert doc["insights"][0]["detail"]["email"].startswith("hmac:")
    assert {s["segment_id"] for s in doc["segments"]} == {
        "expecting_parents",
        "frequent_buyers",
        "high_spending_customers",
    }
    fay = api.client.get(f"/v1/customers/{api.ids['C6']}/insights", headers=api.headers("marketer")).json()
    assert fay["insights"] == [] and fay["segments"] == []
    missing = api.client.get("/v1/customers/nobody/insights", headers=api.headers("marketer"))
    assert missing.status_code == 404 and api.audit("read_insights")[-1]["outcome"] == "not_found"


def test_segment_counts_over_rest_and_graphql(api: Api) -> None:
    expected = [
        {"id": "expecting_parents", "name": "Expecting Parents", "members": 2},
        {"id": "frequent_buyers", "name": "Frequent Buyers", "members": 3},
        {"id": "frequent_cart_abandoner", "name": "Frequent Cart Abandoner", "members": 2},
        {"id": "high_spending_customers", "name": "High Spending Customers", "members": 3},
    ]
    response = api.client.get("/v1/segments", headers=api.headers("marketer"))
    assert response.status_code == 200 and response.json() == {"segments": expected}
    body = api.gql("{ segmentCounts { id name members } }", "data_consumer")
    assert body["data"]["segmentCounts"] == expected
    assert api.client.get("/v1/segments", headers=api.headers("service_agent")).status_code == 403
    assert _codes(api.gql("{ segmentCounts { id } }", "service_agent")) == ["FORBIDDEN"]


def test_a_new_snapshot_is_read_by_the_next_query(api: Api, tmp_path: Path) -> None:
    source = LensSource(tmp_path, labelled_model())
    parquet = tmp_path / "parquet"
    shutil.copytree(api.settings.data_dir / "ml" / "parquet", parquet)
    by_state = parse_query({"measures": ["customer.count"], "dimensions": ["customer.state"]})
    first = {r["customer.state"]: r["customer.count"] for r in source.run(by_state, api.store).records()}
    assert first == {"CA": 4, "NY": 1, "TX": 1}
    with duckdb.connect() as writer:  # as the snapshot writes: a new file renamed over the old one
        customers = str(parquet / "customers.parquet")
        fewer = f"SELECT * FROM read_parquet('{customers}') WHERE state <> 'CA'"
        writer.execute(f"COPY ({fewer}) TO '{parquet}/.c.tmp' (FORMAT parquet)")
    (parquet / ".c.tmp").replace(parquet / "customers.parquet")
    again = {r["customer.state"]: r["customer.count"] for r in source.run(by_state, api.store).records()}
    assert again == {"NY": 1, "TX": 1}
    source.close()
    (parquet / "orders.parquet").write_bytes(b"not parquet")  # a damaged snapshot is a clear conflict, not a 500
    with pytest.raises(ConflictError, match=r"orders\.parquet cannot be read: run `c360 ml snapshot` again"):
        source.run(parse_query({"measures": ["order.count"]}), api.store)


def test_memberships_are_read_again_after_their_time_to_live(api: Api, tmp_path: Path) -> None:
    shutil.copytree(api.settings.data_dir / "ml" / "parquet", tmp_path / "parquet")
    kept, fresh = (
        LensSource(tmp_path, labelled_model(), members_ttl=3600),
        LensSource(tmp_path, labelled_model(), members_ttl=0),
    )
    buyers = parse_query({"measures": ["segment.members"], "filters": [{"member": "segment.id", "op": "equals",
                                                                         "values": ["frequent_buyers"]}]})  # fmt: skip
    assert kept.run(buyers, api.store).records() == [{"segment.members": 3}]
    fay, at = api.ids["C6"], datetime(2026, 6, 2, tzinfo=UTC)
    api.store.apply_segment_changes([SegmentChange("ttl|in", "frequent_buyers", fay, "entered", at, "test", "test")])
    try:
        assert kept.run(buyers, api.store).records() == [{"segment.members": 3}]  # within its time to live
        assert fresh.run(buyers, api.store).records() == [{"segment.members": 4}]
    finally:
        api.store.apply_segment_changes(
            [SegmentChange("ttl|out", "frequent_buyers", fay, "exited", at, "test", "test")]
        )
    assert fresh.run(buyers, api.store).records() == [{"segment.members": 3}]
    kept.close()
    fresh.close()


def test_a_page_of_customers_with_their_insights_passes_the_cost_analysis(api: Api) -> None:
    page = """{ customers(first: 100) { nodes { id insights { name model score } segments { segmentId since } } } }"""
    body = api.gql(page, "marketer")
    assert not body.get("errors"), body
    nodes = {n["id"]: n for n in body["data"]["customers"]["nodes"]}
    assert len(nodes) == len(CUSTOMERS)
    assert [i["model"] for i in nodes[api.ids["C1"]]["insights"]] == ["churn@v3", "rfm@2026-06-01"]
    assert [s["segmentId"] for s in nodes[api.ids["C4"]]["segments"]] == ["frequent_cart_abandoner",
                                                                          "high_spending_customers"]  # fmt: skip


def test_without_credentials_the_ml_routes_are_401(api: Api) -> None:
    assert api.client.post("/v1/lens/query", json=EXAMPLE).status_code == 401
    assert api.client.get("/v1/segments").status_code == 401
    assert api.client.get(f"/v1/customers/{api.ids['C1']}/insights").status_code == 401


# -- one lens for the CLI and the API ------------------------------------------------------------------------


def _cli_lens(data_dir: Path, *args: str) -> dict[str, Any]:
    root = typer.Typer()

    @root.callback()
    def _state(ctx: typer.Context) -> None:
        ctx.obj = State(data_dir=data_dir)

    root.add_typer(lens_app, name="lens")
    result = CliRunner().invoke(root, ["lens", "query", *args, "--json"])
    assert result.exit_code == 0, result.output
    answer: dict[str, Any] = json.loads(result.stdout)
    return answer


@pytest.mark.parametrize(
    ("args", "query"),
    [
        (("-m", "customer.count", "-d", "segment.name", "-f", "customer.state:equals:CA"), EXAMPLE),
        (
            ("-m", "members", "-d", "segment.id,customer.age_band", "--as-of", "2026-06-30T00:00:00",
             "--order", "segment.id", "--order", "customer.age_band"),
            {"measures": ["members"], "dimensions": ["segment.id", "customer.age_band"],
             "as_of": "2026-06-30T00:00:00Z", "order": [{"member": "segment.id"}, {"member": "customer.age_band"}]},
        ),
    ],
)  # fmt: skip
def test_the_cli_and_the_api_answer_a_query_alike(api: Api, args: tuple[str, ...], query: dict[str, Any]) -> None:
    # one store, one snapshot: `c360 lens query` and POST /v1/lens/query give the same columns and rows
    cli = _cli_lens(api.settings.data_dir, *args)
    rest = api.lens("marketer", query).json()
    assert cli["columns"] == rest["columns"] and cli["rows"] == rest["rows"]
    if query is EXAMPLE:
        assert _counts(cli["rows"]) == IN_CALIFORNIA
    variables = {("asOf" if k == "as_of" else k): v for k, v in query.items()}  # GraphQL's names
    graph = api.gql(LENS, "marketer", q=variables)
    assert graph["data"]["lens"]["rows"] == cli["rows"], graph


# -- segment events on the timeline --------------------------------------------------------------------------


def _timeline(api: Api, role: str, key: str, types: list[str] | None = None) -> dict[str, Any]:
    return api.gql(TIMELINE, role, id=api.ids[key], types=types)


def test_a_marketer_sees_segment_entered_and_exited_events_with_their_reason(api: Api) -> None:
    fay = api.ids["C6"]  # in no segment: enters frequent_buyers on a condition on email, exits on a count
    on_email = "rule.any[1]: email contains '@example.com'"
    on_carts = "rule.all[0]: count(action=add_to_cart) in 30 days gte 3"
    entered_at, exited_at = datetime(2026, 6, 5, tzinfo=UTC), datetime(2026, 6, 6, tzinfo=UTC)  # her newest
    api.store.apply_segment_changes(
        [SegmentChange("tl|in", "frequent_buyers", fay, "entered", entered_at, on_email, "realtime")]
    )
    try:
        # while a member: the profile's segments, REST insights and the timeline show the reason alike
        hidden = "a condition on email (hidden from this role)"  # the marketer sees email hashed
        member = api.gql(PROFILE, "marketer", id=fay)["data"]["customer"]["segments"]
        assert member == [{"segmentId": "frequent_buyers", "since": "2026-06-05T00:00:00+00:00", "reason": hidden}]
        rest = api.client.get(f"/v1/customers/{fay}/insights", headers=api.headers("marketer")).json()
        assert rest["segments"][0]["reason"] == hidden
        steward = api.gql(PROFILE, "data_steward", id=fay)["data"]["customer"]["segments"]
        assert steward[0]["reason"] == on_email  # the steward sees email in full
        body = _timeline(api, "marketer", "C6")
        assert not body.get("errors"), body
        entered = body["data"]["customer"]["timeline"]["events"][0]
        assert entered["type"] == "segment_entered" and entered["occurredAt"].startswith("2026-06-05")
        assert entered["data"] == {"segment": "frequent_buyers", "reason": hidden, "source": "realtime"}
        steward_events = _timeline(api, "data_steward", "C6")["data"]["customer"]["timeline"]["events"]
        assert steward_events[0]["data"]["reason"] == on_email
    finally:
        api.store.apply_segment_changes(
            [SegmentChange("tl|out", "frequent_buyers", fay, "exited", exited_at, on_carts, "realtime")]
        )
    events = _timeline(api, "data_consumer", "C6")["data"]["customer"]["timeline"]["events"]
    assert [e["type"] for e in events[:2]] == ["segment_exited", "segment_entered"]  # newest first
    assert events[0]["data"] == {"segment": "frequent_buyers", "reason": on_carts, "source": "realtime"}
    only_exits = _timeline(api, "marketer", "C6", ["segment_exited"])["data"]["customer"]["timeline"]["events"]
    assert {e["type"] for e in only_exits} == {"segment_exited"} and only_exits[0]["data"]["reason"] == on_carts
    assert api.gql(PROFILE, "marketer", id=fay)["data"]["customer"]["segments"] == []


@pytest.mark.parametrize("role", ["service_agent", "service_supervisor"])
def test_service_roles_do_not_see_segment_events(api: Api, role: str) -> None:
    ann = api.ids["C1"]  # three segment_entered events from the backfill
    body = _timeline(api, role, "C1")
    assert not body.get("errors"), body
    assert body["data"]["customer"]["timeline"]["events"] == []
    assert len(_timeline(api, "marketer", "C1")["data"]["customer"]["timeline"]["events"]) == 3
    for asked in (["segment_entered"], ["order", "segment_exited"]):
        refused = _timeline(api, role, "C1", asked)
        assert _codes(refused) == ["FORBIDDEN"], refused
        assert refused["errors"][0]["path"] == ["customer", "timeline"]
        entry = api.audit("read_insights")[-1]
        assert (entry["role"], entry["target"], entry["outcome"]) == (role, ann, "denied")
    unknown = _timeline(api, role, "C1", ["segment_joined"])
    assert _codes(unknown) == ["BAD_USER_INPUT"] and "types may be" in unknown["errors"][0]["message"]
