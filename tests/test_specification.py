"""The model's specification: chosen from a profile of the data, costed before it runs, or given in YAML."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from c360.graph.errors import InvalidInputError
from c360.graph.models import SourceRecord
from c360.resolution.choose import choose
from c360.resolution.config import TrainingConfig
from c360.resolution.features import features
from c360.resolution.profile import profile
from c360.resolution.specification import Specification, load_spec
from c360.resolution.splink_adapter import train
from test_cli import c360

FIRST = ["anna", "ben", "carla", "dev", "emil", "fatima", "gus", "hana", "ivan", "jola", "kofi", "lena", "milo"]
LAST = ["smith", "okafor", "nguyen", "garcia", "muller", "rossi", "kowalski", "haddad", "tanaka", "silva"]
NOW = datetime(2026, 11, 1, tzinfo=UTC)


def _people(n: int, seed: int, *, postcode: str | None = None, dobs: int = 5000) -> list[SourceRecord]:
    """``n`` persons with one or two records each; ``postcode`` set: every record has that one."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        dob = date(1950, 1, 1) + timedelta(days=rng.randrange(dobs))
        street = f"{rng.randint(1, 999)} {rng.choice(LAST)} street"
        pc = postcode or f"{rng.randint(10000, 99999)}"
        for copy in range(rng.choice((1, 2))):
            out.append(
                SourceRecord(
                    "crm" if copy == 0 else "shop",
                    f"{i}",
                    NOW,
                    first_name=first if copy == 0 or rng.random() < 0.7 else first[:-1] + "x",
                    last_name=last,
                    date_of_birth=dob,
                    address_line1=street,
                    postcode=pc,
                )
            )
    return out


def _rows(records: list[SourceRecord]) -> list[dict[str, object]]:
    return [features(r, "US") for r in records]


def test_profile_reports_fill_distinct_and_top_share() -> None:
    records = _people(300, 1, postcode="99999")
    found = profile(_rows(records))
    assert found["postcode"].filled == 1.0 and found["postcode"].distinct == 1 and found["postcode"].top_share == 1.0
    assert found["email"].filled == 0.0
    assert 0.9 < found["dob"].distinct / len({r.key for r in records}) <= 1.0
    assert found["first_name"].top_share < 0.2


def test_constant_and_absent_fields_are_left_out_with_reasons() -> None:
    records = _people(400, 2, postcode="99999")
    costs: list[tuple[str, ...]] = []

    def count(rule: tuple[str, ...]) -> int:
        costs.append(rule)
        return 10 if "postcode" not in rule else 10**9

    choice = choose(profile(_rows(records)), count, TrainingConfig())
    compared = {c.column for c in choice.spec.comparisons} | {a for c in choice.spec.comparisons for a in c.also}
    assert "postcode" not in compared and "email" not in compared
    assert any(r.startswith("postcode: left out, constant") for r in choice.reasons)
    assert any(r.startswith("email: left out, absent") for r in choice.reasons)
    assert all("postcode" not in rule for rule in choice.spec.blocking)
    assert set(choice.spec.blocking) <= set(costs)  # every chosen rule was costed


def test_a_rule_over_budget_is_tightened_or_dropped_never_run() -> None:
    # Few birth dates: blocking on dob alone compares many pairs; the budget forces a tighter rule.
    records = _people(600, 3, dobs=12)
    config = TrainingConfig(max_comparisons_per_rule=2000)
    settings, _, summary = train(records, region="US", config=config)
    blocking = [tuple(r) for r in summary["specification"]["blocking"]]
    assert ("dob",) not in blocking
    assert summary["costs"]["dob"] > 2000
    assert all(summary["costs"][",".join(r)] <= 2000 for r in blocking)
    assert any(r.startswith("blocking dob:") and ("tightened" in r or "dropped" in r) for r in summary["reasons"])
    assert [tuple(r["blocking_rule"].split()) for r in settings["blocking_rules_to_generate_predictions"]]


def test_households_with_one_postcode_train_quickly() -> None:
    """The shape that once compared every pair: one postcode for everyone."""
    records = _people(3000, 4, postcode="12345")
    _, _, summary = train(records, region="US", config=TrainingConfig(u_max_pairs=1e5))
    assert all("postcode" not in rule for rule in summary["specification"]["blocking"])
    assert summary["seconds"] < 60


def test_data_it_cannot_train_on_gets_a_clear_error() -> None:
    names_only = [SourceRecord("crm", str(i), NOW, first_name=f"n{i}", last_name=f"l{i % 7}") for i in range(50)]
    with pytest.raises(InvalidInputError, match="only first_name, last_name carry evidence"):
        train(names_only, region="US")
    no_names = [SourceRecord("crm", str(i), NOW, email=f"u{i}@example.org", city=f"c{i}") for i in range(50)]
    with pytest.raises(InvalidInputError, match="no usable name column"):
        train(no_names, region="US")


def test_spec_files_are_validated_strictly(tmp_path: Path) -> None:
    def bad(text: str, message: str) -> None:
        path = tmp_path / "spec.yaml"
        path.write_text(text, encoding="utf-8")
        with pytest.raises(InvalidInputError, match=message):
            load_spec(path)

    bad("comparisons: [{column: first_name}, {column: dob}]\nblocking: [[dob]]\nextra: 1\n", "extra: Extra inputs")
    bad("comparisons: [{column: first_name}, {column: shoe_size}]\nblocking: [[dob]]\n", "unknown column 'shoe_size'")
    bad("comparisons: [{column: first_name}, {column: dob, kind: name}]\nblocking: [[dob]]\n", "does not apply to dob")
    bad("comparisons: [{column: dob}, {column: email}]\nblocking: [[dob]]\n", "must include first_name or last_name")
    bad("comparisons: [{column: first_name}, {column: dob}]\nblocking: [[height]]\n", "unknown column")
    bad("comparisons: [{column: first_name}, {column: dob}]\nblocking: [[dob]]\nem_sessions: [[name_pair]]\n", "EM")
    bad("comparisons: [{column: first_name}, {column: address, also: [email]}]\nblocking: [[dob]]\n", "also: email")
    bad("comparisons: [first_name\n", "not valid YAML")
    (tmp_path / "spec.yaml").write_bytes(b"comparisons: [\xff]\n")
    with pytest.raises(InvalidInputError, match="not UTF-8 text"):
        load_spec(tmp_path / "spec.yaml")
    good = tmp_path / "good.yaml"
    good.write_text(
        "comparisons:\n  - {column: first_name, kind: text}\n  - {column: last_name}\n  - {column: dob, kind: exact}\n"
        "blocking: [[dob], [first_name, last_name]]\n",
        encoding="utf-8",
    )
    spec = load_spec(good)
    assert [(c.column, c.kind, c.tf) for c in spec.comparisons] == [
        ("first_name", "text", True),
        ("last_name", "name", True),
        ("dob", "exact", False),
    ]
    assert spec.em_sessions == (("dob",), ("first_name", "last_name"))
    assert Specification.from_json(spec.to_json()) == spec


def test_train_with_a_spec_file_and_model_show_prints_profile_spec_and_reasons(tmp_path: Path) -> None:
    data = tmp_path / "people.csv"
    records = _people(300, 5, postcode="55555")
    lines = ["id,first,last,dob,street,postcode"]
    lines += [
        f"{r.source}-{r.key},{r.first_name},{r.last_name},{r.date_of_birth},{r.address_line1},{r.postcode}"
        for r in records
    ]
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    mapping = tmp_path / "m.yaml"
    mapping.write_text(
        "key: id\nfields: {first_name: first, last_name: last, date_of_birth: dob, address_line1: street, "
        "postcode: postcode}\n",
        encoding="utf-8",
    )
    c360("ingest", str(data), "--source", "crm", "--mapping", str(mapping), cwd=tmp_path)
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "comparisons: [{column: first_name}, {column: last_name}, {column: dob}]\nblocking: [[dob]]\n", "utf-8"
    )
    trained = c360("resolve", "train", "--spec", str(spec), cwd=tmp_path)
    assert "3 comparisons, 1 blocking rules" in trained.stdout and str(spec) in trained.stdout
    shown = c360("resolve", "model", "show", cwd=tmp_path).stdout
    assert f"specification ({spec})" in shown and "blocking: dob (" in shown
    assert "prior from" in shown  # the file named no deterministic rules: chosen, and said so
    automatic = c360("resolve", "train", cwd=tmp_path).stdout
    assert "specification automatic" in automatic
    shown = c360("resolve", "model", "show", cwd=tmp_path).stdout
    assert "postcode: left out, constant" in shown and "profile of the training records" in shown
    broken = tmp_path / "broken.yaml"
    broken.write_text("comparisons: [{column: first_name}]\nblocking: [[dob]]\n", "utf-8")
    failed = c360("resolve", "train", "--spec", str(broken), cwd=tmp_path, ok=False)
    assert failed.returncode != 0 and "invalid resolution specification" in failed.stderr + failed.stdout


def test_sampled_u_loses_the_matches_it_contains() -> None:
    from c360.resolution.splink_adapter import without_matches_in_u

    settings = {
        "probability_two_random_records_match": 1e-3,
        "comparisons": [
            {
                "output_column_name": "national_id",
                "comparison_levels": [
                    {"is_null_level": True, "sql_condition": "null"},
                    {"sql_condition": "exact", "m_probability": 0.9, "u_probability": 1e-3},
                    {"sql_condition": "ELSE", "m_probability": 0.1, "u_probability": 0.999},
                    {"sql_condition": "other", "m_probability": 0.5, "u_probability": 1e-4},
                ],
            }
        ],
    }
    levels = without_matches_in_u(settings, floor=1e-6)["comparisons"][0]["comparison_levels"]
    assert levels[1]["u_probability"] == pytest.approx((1e-3 - 0.9e-3) / (1 - 1e-3))
    assert levels[2]["u_probability"] == pytest.approx((0.999 - 0.1e-3) / (1 - 1e-3))
    assert levels[3]["u_probability"] == 1e-6  # all of it was matches: the floor
    assert "u_probability" not in levels[0]


def test_em_skips_sessions_whose_pairs_hold_too_few_matches(tmp_path: Path) -> None:
    """A census with dates of birth and a tax file without, of one town full of households.

    Pairs born on one day are all census pairs (different people); pairs at one address are mostly
    household members. EM on either would learn another class than the person: both are skipped.
    """
    import collections
    import dataclasses

    from c360.connectors.files import FileSource
    from c360.connectors.synthetic import generate

    ds = generate(1200, tmp_path / "data", seed=12, household_rate=0.6, namesake_rate=0.05)
    truth = ds.truth_map()
    by_person: dict[str, list[SourceRecord]] = collections.defaultdict(list)
    for sf in ds.sources:
        for r in FileSource(sf.path, sf.source, ds.mapping_of(sf)):
            by_person[truth[(r.source, r.key)]].append(r)
    records = []
    for found in by_person.values():
        plain = {"email": None, "phone": None, "customer_number": None, "postcode": "98001", "city": "Anytown"}
        records.append(dataclasses.replace(found[0], source="census", national_id=None, **plain))
        if len(found) > 1:
            records.append(dataclasses.replace(found[1], source="tax", date_of_birth=None, **plain))
    _, _, summary = train(records, region="US", config=TrainingConfig(u_max_pairs=2e5))
    sessions = summary["specification"]["em_sessions"]
    assert ["dob"] not in sessions and ["address"] not in sessions
    assert any(r.startswith("EM on dob: only 0.0%") for r in summary["reasons"])
    assert any("their m stay at Splink's defaults" in r for r in summary["reasons"])
