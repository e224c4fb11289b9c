"""Lookalike audiences and clusters from the shell (issue 17, point 5), and exports refusing unknown segments.

A real embedded store in ./.c360 of a working folder: 30 shoppers ingested through the pipeline (ten big
spenders ordering often and lately, twenty who ordered once, little), snapshotted with ``c360 ml
snapshot``; the seed segment's memberships written with ``store.apply_segment_changes``."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from c360.graph.embedded import EmbeddedConfig, EmbeddedStore
from c360.graph.insights import SegmentChange
from c360.graph.store import GraphStore
from c360.resolution.linker import Linker
from c360.streams.pipeline import Pipeline
from payloads import order_event, profile_event
from test_cli import c360

SEED = "vip"
AUDIENCE = "lookalike_vip"
BIG = [f"K{i:02d}" for i in range(10)]
SMALL = [f"K{i:02d}" for i in range(10, 30)]
SEEDED = BIG[:6]  # the other four big spenders are the lookalikes to find


def order(key: str, n: int, at: str, total: int) -> dict[str, Any]:
    return order_event(f"{key}-o{n}", key, at, order_id=f"O-{key}-{n}", total=f"{total}.00", product_id=f"P{n % 3}")


@contextmanager
def opened(home: Path) -> Iterator[GraphStore]:
    store = EmbeddedStore(EmbeddedConfig(path=home / ".c360" / "graph.db"))
    try:
        yield store
    finally:
        store.close()


def ids(home: Path) -> dict[str, str]:
    """Customer key -> customer id."""
    with opened(home) as store:
        return {k: c for s, k, c in store.iter_links() if s == "crm"}


def enter(store: GraphStore, segment: str, customers: list[str]) -> None:
    at = datetime(2026, 11, 1, tzinfo=UTC)
    changes = [
        SegmentChange(f"{segment}|{c}", segment, c, "entered", at, "picked by hand", "manual") for c in customers
    ]
    assert len(store.apply_segment_changes(changes)) == len(customers)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("audiences")
    with opened(home) as store:
        pipeline = Pipeline(store, Linker(store))
        keys = BIG + SMALL
        profiles = [
            profile_event(f"p{i}", "crm", k, i, first_name=f"F{i}", email=f"{k}@x.example") for i, k in enumerate(keys)
        ]
        big = [
            order(k, n, f"2026-{6 + n:02d}-{10 + i:02d}T10:00:00Z", 180 + 7 * i + 11 * n)
            for i, k in enumerate(BIG)
            for n in range(6)
        ]
        small = [order(k, 0, f"2026-05-{10 + i % 15:02d}T10:00:00Z", 8 + i % 5) for i, k in enumerate(SMALL)]
        for batch in (profiles, big, small):
            assert not pipeline.process(batch).rejected
        links = {k: c for s, k, c in store.iter_links() if s == "crm"}
        enter(store, SEED, [links[k] for k in SEEDED])
        enter(store, "duo", [links[k] for k in SEEDED[:2]])
    c360("ml", "snapshot", "--quiet", cwd=home)
    return home


@pytest.fixture
def home(template: Path, tmp_path: Path) -> Path:
    """A copy of the template's working folder, for a test that changes it."""
    shutil.copytree(template, tmp_path / "home")
    return tmp_path / "home"


def audit(home: Path, action: str) -> list[dict[str, Any]]:
    lines = (home / ".c360" / "audit.log").read_text().splitlines()
    return [e for e in map(json.loads, lines) if e.get("action") == action]


def members(home: Path, segment: str) -> set[str]:
    with opened(home) as store:
        page, _ = store.segment_members(segment, first=1000)
    return {m.customer_id for m in page}


def test_a_lookalike_audience_is_written_as_a_segment_with_insights_and_a_rerun_replaces_it(home: Path) -> None:
    keys = ids(home)
    done = c360("ml", "lookalike", SEED, "--top", "5", "--method", "centroid", cwd=home)
    # The lift report: one of six seed members hidden, among 25 candidates; the top 5 finds it.
    assert "hidden seed members" in done.stdout and "expected at random" in done.stdout
    assert "5 lookalikes of vip (6 seed members, centroid, holdout lift 5.00)" in done.stdout
    assert "written to segment lookalike_vip: 5 entered, 0 exited, 5 insights" in done.stdout
    first = members(home, AUDIENCE)
    assert {keys[k] for k in BIG[6:]} < first and not first & {keys[k] for k in SEEDED}
    with opened(home) as store:
        stored = {cid: [i for i in got if i.name == AUDIENCE] for cid, got in store.insights_of(list(first)).items()}
    scores = {cid: i.score for cid, (i,) in stored.items()}
    assert set(scores) == first and all(s is not None and 0 < s <= 1 for s in scores.values())
    (sample,) = stored[keys[BIG[6]]]
    assert sample.model == "lookalike@centroid" and sample.label == "in the audience"
    assert sample.detail["seed_size"] == 6 and sample.detail["lift"] == 5.0 and sample.detail["seed"] == SEED

    again = json.loads(c360("ml", "lookalike", SEED, "--top", "2", "--method", "centroid", "--json", cwd=home).stdout)
    kept = {m["customer_id"] for m in again["members"]}
    assert again["written"] == {"entered": 0, "exited": 3, "insights": 5}
    assert members(home, AUDIENCE) == kept and kept < first
    # The best two keep their place; the three who left carry the insight without a score, and the exit
    # is on their timeline.
    assert kept == set(sorted(scores, key=lambda c: -(scores[c] or 0))[:2])
    gone = sorted(first - kept)
    with opened(home) as store:
        left = [i for i in store.insights_of(gone)[gone[0]] if i.name == AUDIENCE]
        timeline = store.timeline(gone[0], first=10, types=["segment_entered", "segment_exited"]).events
    assert [(i.score, i.label) for i in left] == [(None, "left the audience")]
    assert sorted(e.type for e in timeline) == ["segment_entered", "segment_exited"]
    reasons = {e.type: json.loads(e.data)["reason"] for e in timeline}
    assert {json.loads(e.data)["source"] for e in timeline} == {"lookalike"}
    assert reasons["segment_entered"].startswith("among the 5 customers most like vip (centroid, as of 2026-")
    assert reasons["segment_exited"].startswith("no longer among the 2 customers most like vip")
    # A third run with the first size lets them enter again (the earlier entries' ids are not replays).
    third = json.loads(c360("ml", "lookalike", SEED, "--top", "5", "--method", "centroid", "--json", cwd=home).stdout)
    assert third["written"]["entered"] == 3 and members(home, AUDIENCE) == first
    # A dry run scores and reports but writes nothing.
    dry = json.loads(c360("ml", "lookalike", SEED, "--top", "1", "--dry-run", "--json", cwd=home).stdout)
    assert dry["written"] is None and len(dry["members"]) == 1 and members(home, AUDIENCE) == first

    entries = audit(home, "ml_lookalike")
    assert [(e["target"], e["outcome"]) for e in entries] == [(AUDIENCE, "ok")] * 4
    assert "5 entered, 0 exited" in entries[0]["detail"] and "3 exited" in entries[1]["detail"]
    assert c360("audit", "verify", cwd=home).returncode == 0


def test_the_logistic_method_and_another_segment_name(home: Path) -> None:
    keys = ids(home)
    doc = json.loads(c360("ml", "lookalike", SEED, "--top", "4", "--as-segment", "big_like", "--json", cwd=home).stdout)
    assert doc["method"] == "logistic" and doc["segment"] == "big_like" and doc["seed_size"] == 6
    assert set(doc["lift"]) == {"hidden", "candidates", "top_n", "found", "expected_at_random", "lift"}
    assert doc["lift"]["hidden"] == 1 and doc["lift"]["candidates"] == 25
    assert members(home, "big_like") == {keys[k] for k in BIG[6:]}
    with opened(home) as store:
        got = store.insights_of([keys[BIG[6]]])[keys[BIG[6]]]
    assert [(i.name, i.model, i.detail["segment"]) for i in got] == [(AUDIENCE, "lookalike@logistic", "big_like")]


def test_bad_seeds_and_options_are_refused_and_audited(home: Path) -> None:
    def refused(*args: str, code: int = 2) -> str:
        proc = c360("ml", "lookalike", *args, cwd=home, ok=False)
        assert proc.returncode == code, proc.stdout + proc.stderr
        return proc.stderr

    assert "unknown segment 'nope'" in refused("nope", "--top", "3")
    assert "has no members" in refused("frequent_buyers", "--top", "3")
    assert "use --holdout 0" in refused("duo", "--top", "3")
    assert "rule segment" in refused(SEED, "--top", "3", "--as-segment", "frequent_buyers")
    assert "the seed itself" in refused(SEED, "--top", "3", "--as-segment", SEED)
    assert "expected one of" in refused(SEED, "--top", "3", "--method", "knn")
    assert "not a segment name" in refused("Bad-Name", "--top", "3")
    # A seed of two is fine without the lift report.
    small = c360("ml", "lookalike", "duo", "--top", "3", "--holdout", "0", "--dry-run", cwd=home)
    assert "lift report: none" in small.stdout
    assert not members(home, "lookalike_duo")
    shutil.rmtree(home / ".c360" / "ml")
    assert "c360 ml snapshot" in refused(SEED, "--top", "3", code=1)
    outcomes = [(e["target"], e["outcome"]) for e in audit(home, "ml_lookalike")]
    # The options checked before the store is opened leave no entry; the rest are refused (or ok).
    assert outcomes == [
        ("lookalike_nope", "refused"),
        ("lookalike_frequent_buyers", "refused"),
        ("lookalike_duo", "refused"),
        ("lookalike_duo", "ok"),
        (AUDIENCE, "not_found"),
    ]


def test_a_lookalike_segment_exports_and_an_unknown_segment_is_refused(home: Path) -> None:
    c360("ml", "lookalike", SEED, "--top", "3", cwd=home)
    args = ["--purpose", "marketing", "--channel", "email", "--format", "csv"]
    done = c360("ml", "export", AUDIENCE, *args, "--to", "out.csv", cwd=home)
    assert "3 members, 0 exported" in done.stdout  # nobody consented to marketing e-mail
    unknown = c360("ml", "export", "nope", *args, "--to", "nope.csv", cwd=home, ok=False)
    assert unknown.returncode == 2 and "unknown segment 'nope'" in unknown.stderr
    assert not (home / "nope.csv").exists() and not (home / "nope.csv.manifest.json").exists()
    # A rule segment with no members yet is defined: it exports (an empty file), it is not refused.
    assert c360("ml", "export", "frequent_buyers", *args, "--to", "fb.csv", cwd=home).returncode == 0
    outcomes = [(e["target"], e["outcome"]) for e in audit(home, "ml_export")]
    assert outcomes == [(AUDIENCE, "ok"), ("nope", "refused"), ("frequent_buyers", "ok")]


def test_clusters_list_the_latest_artifact_with_the_insight_counts(home: Path) -> None:
    missing = c360("ml", "clusters", cwd=home, ok=False)
    assert missing.returncode == 1 and "c360 ml train --model clusters" in missing.stderr
    c360("ml", "train", "--model", "clusters", "--quiet", cwd=home)
    before = json.loads(c360("ml", "clusters", "--json", cwd=home).stdout)
    assert before["version"] == "clusters@v1" and before["k"] == len(before["clusters"]) >= 2
    assert sum(c["size"] for c in before["clusters"]) == 30 and before["insights"] == []
    assert str(before["k"]) in before["silhouettes"] and before["silhouette"] == max(before["silhouettes"].values())
    assert all(c["description"] for c in before["clusters"])
    c360("ml", "score", "--quiet", cwd=home)
    after = json.loads(c360("ml", "clusters", "--json", cwd=home).stdout)
    assert sum(c["insights"] for c in after["clusters"]) == 30 and after["insights_complete"]
    words = {c["label"]: c["description"] for c in after["clusters"]}
    assert all(row["model"] == "clusters@v1" and words[row["cluster"]] == row["words"] for row in after["insights"])
    shown = c360("ml", "clusters", cwd=home).stdout
    assert "clusters@v1" in shown and "silhouette per k tried: k=2" in shown
    assert all(c["description"] in shown for c in after["clusters"])
    assert [e["outcome"] for e in audit(home, "ml_clusters")] == ["ok"] * 3


def test_writing_an_audience_replaces_its_members_under_the_write_lock_on_every_backend(store: GraphStore) -> None:
    from c360.ml.lookalike import LiftReport, Lookalike, LookalikeAudience

    from c360.cli.ml_audiences import members_of, write_audience  # here: the CLI's consoles are made on import

    pipeline = Pipeline(store, Linker(store))
    assert not pipeline.process(
        [profile_event(f"p{i}", "crm", f"K{i}", i, first_name=f"F{i}") for i in range(5)]
    ).rejected
    c = sorted(cid for _, _, cid in store.iter_links())
    as_of = datetime(2026, 11, 1, tzinfo=UTC)

    def audience(*picked: tuple[int, float]) -> LookalikeAudience:
        lift = LiftReport(hidden=1, candidates=4, top_n=len(picked), found=1, expected_at_random=0.5, lift=2.0)
        return LookalikeAudience("logistic", 2, tuple(Lookalike(c[i], s) for i, s in picked), lift)

    first = write_audience(
        store, "lookalike_vip", "vip", audience((2, 0.9), (3, 0.8), (4, 0.7)), as_of=as_of, now=as_of
    )
    assert first.to_json() == {"entered": 3, "exited": 0, "insights": 3}
    later = datetime(2026, 11, 2, tzinfo=UTC)
    second = write_audience(store, "lookalike_vip", "vip", audience((4, 0.95), (0, 0.6)), as_of=later, now=later)
    assert second.to_json() == {"entered": 1, "exited": 2, "insights": 4}
    assert members_of(store, "lookalike_vip") == sorted([c[0], c[4]])
    got = {cid: [(i.score, i.label, i.detail.get("rank")) for i in v] for cid, v in store.insights_of(c[2:]).items()}
    assert got == {
        c[2]: [(None, "left the audience", None)],
        c[3]: [(None, "left the audience", None)],
        c[4]: [(0.95, "in the audience", 1)],
    }
    # The same audience written again changes no membership.
    assert (
        write_audience(store, "lookalike_vip", "vip", audience((4, 0.95), (0, 0.6)), as_of=later, now=later).entered
        == 0
    )
