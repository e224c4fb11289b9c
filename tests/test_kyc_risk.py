"""KYC risk rules: the default rules each fire on their facts, categories and re-KYC dates at the boundaries,
the condition language, and rules files that are wrong."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from c360.graph.errors import InvalidInputError
from c360.graph.verification import CHECKS, Verification, new_verification_id
from c360.resolution.kyc_risk import (
    DEFAULT_RULES,
    PLACEHOLDERS,
    RiskFacts,
    RiskRules,
    ScreeningFinding,
    assess,
    load_rules,
    parse_rules,
)

TODAY = date(2026, 3, 2)
AT = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


def ver(check: str, result: str = "pass", at: datetime = AT) -> Verification:
    return Verification(new_verification_id(), "app_1", check, result, 1.0, "test", {}, "test", at)  # type: ignore[arg-type]


def hit(key: str = "ofac_sdn:1572", score: float = 0.97, **kw: Any) -> ScreeningFinding:
    return ScreeningFinding(key.partition(":")[0], key, score, programs=("CUBA",), **kw)


CLEAN = RiskFacts(
    product="auto_loan",
    amount=Decimal("800000"),
    verifications=tuple(ver(c) for c in CHECKS),
    age_years=35,
    country="IN",
    document_types={"aadhaar", "pan_card"},
)


def fail(check: str, result: str = "fail") -> RiskFacts:
    others = [v for v in CLEAN.verifications if v.check != check]
    return dataclasses.replace(CLEAN, verifications=(*others, ver(check, result)))


@pytest.fixture(scope="module")
def rules() -> RiskRules:
    return load_rules(None)


#: For each default rule, facts made for it and the rules they fire (some fire together by design).
CASES: dict[str, tuple[RiskFacts, set[str]]] = {
    "sanctions_confirmed": (
        dataclasses.replace(CLEAN, screening=(hit(confirmed=True),)),
        {"sanctions_confirmed", "screening_strong_hit"},
    ),
    "screening_strong_hit": (dataclasses.replace(CLEAN, screening=(hit(score=0.95),)), {"screening_strong_hit"}),
    "screening_possible_hit": (dataclasses.replace(CLEAN, screening=(hit(score=0.9),)), {"screening_possible_hit"}),
    "pep": (dataclasses.replace(CLEAN, pep=True), {"pep"}),
    "fatf_call_for_action_country": (
        dataclasses.replace(CLEAN, country="KP"),
        {"fatf_call_for_action_country", "foreign_country"},
    ),
    "pan_service_failed": (fail("pan_service"), {"pan_service_failed"}),
    "pan_service_review": (fail("pan_service", "manual_review"), {"pan_service_review"}),
    "pan_invalid": (fail("pan_format"), {"pan_invalid"}),
    "pan_holder_mismatch": (fail("pan_holder"), {"pan_holder_mismatch"}),
    "pan_surname_mismatch": (fail("pan_surname"), {"pan_surname_mismatch"}),
    "pan_document_mismatch": (fail("pan_document"), {"pan_document_mismatch"}),
    "aadhaar_invalid": (fail("aadhaar_checksum"), {"aadhaar_invalid"}),
    "document_expired": (fail("document_expiry"), {"document_expired"}),
    "no_address_proof": (
        dataclasses.replace(CLEAN, document_types={"pan_card", "salary_slip"}),
        {"no_address_proof"},
    ),
    "name_mismatch": (fail("name_match"), {"name_mismatch"}),
    "name_review": (fail("name_match", "manual_review"), {"name_review"}),
    "dob_mismatch": (fail("dob_match"), {"dob_mismatch"}),
    "dob_review": (fail("dob_match", "manual_review"), {"dob_review"}),
    "identity_inconclusive": (fail("dob_match", "inconclusive"), {"identity_inconclusive"}),
    "age_unknown": (dataclasses.replace(CLEAN, age_years=None), {"age_unknown"}),
    "young_large_loan": (
        dataclasses.replace(CLEAN, age_years=20, amount=Decimal("1000000")),
        {"young_large_loan"},
    ),
    "large_amount": (dataclasses.replace(CLEAN, amount=Decimal("2000000")), {"large_amount"}),
    "very_large_amount": (
        dataclasses.replace(CLEAN, amount=Decimal("10000000")),
        {"large_amount", "very_large_amount"},
    ),
    "foreign_country": (dataclasses.replace(CLEAN, country="AE"), {"foreign_country"}),
    "country_unknown": (dataclasses.replace(CLEAN, country=None), {"country_unknown"}),
}


def test_clean_facts_fire_nothing_and_are_low_risk(rules: RiskRules) -> None:
    a = assess(rules, CLEAN, today=TODAY)
    assert (a.score, a.category, a.fired, a.reasons, a.needs_edd) == (0.0, "low", (), (), False)
    assert a.rekyc_due == date(2036, 3, 2)


def test_every_default_rule_has_a_case(rules: RiskRules) -> None:
    assert {r.id for r in rules.rules} == set(CASES)


@pytest.mark.parametrize("rule_id", sorted(CASES))
def test_each_default_rule_fires_on_its_facts(rules: RiskRules, rule_id: str) -> None:
    facts, expected = CASES[rule_id]
    a = assess(rules, facts, today=TODAY)
    assert set(a.fired) == expected
    by_id = {r.id: r for r in rules.rules}
    assert a.score == pytest.approx(sum(by_id[i].score for i in expected))
    assert len(a.reasons) == len(a.fired) and all("{" not in r for r in a.reasons)


def test_the_near_misses_do_not_fire(rules: RiskRules) -> None:
    near = [
        dataclasses.replace(CLEAN, amount=Decimal("1999999.99")),  # just under 20 lakh
        dataclasses.replace(CLEAN, age_years=21, amount=Decimal("1500000")),  # not young
        dataclasses.replace(CLEAN, age_years=20, amount=Decimal("999999")),  # not large
        dataclasses.replace(CLEAN, amount=Decimal("5000000"), currency="USD"),  # not INR
        dataclasses.replace(CLEAN, amount=Decimal("5000000"), product="two_wheeler_loan"),
        dataclasses.replace(CLEAN, screening=(hit(suppressed=True),)),  # a remembered false positive
        dataclasses.replace(CLEAN, document_types={"address_proof"}),
    ]
    for facts in near:
        assert assess(rules, facts, today=TODAY).fired == ()


def test_high_risk_facts_explain_themselves(rules: RiskRules) -> None:
    facts = dataclasses.replace(
        fail("name_match"), screening=(hit("un_consolidated:6908002", 0.91),), amount=Decimal("2500000")
    )
    a = assess(rules, facts, today=TODAY)
    assert a.fired == ("screening_possible_hit", "name_mismatch", "large_amount")  # the file's order
    assert a.category == "high" and a.needs_edd and a.forced_by == ()
    assert a.score == 35 + 35 + 15
    assert "Possible sanctions match not cleared (un_consolidated:6908002; best score 0.91)" in a.reasons
    assert "A large auto loan (INR 2,500,000, from 20 lakh)" in a.reasons
    assert a.rekyc_due == date(2028, 3, 2)


def test_force_high_whatever_the_score(rules: RiskRules) -> None:
    a = assess(rules, dataclasses.replace(CLEAN, pep=True), today=TODAY)
    assert a.score == 40 < rules.categories.high_from
    assert (a.category, a.needs_edd, a.forced_by) == ("high", True, ("pep",))
    assert a.reasons == ("Politically exposed person: always high risk, enhanced due diligence",)


def test_only_the_latest_verification_of_a_check_counts(rules: RiskRules) -> None:
    earlier, later = AT - timedelta(hours=1), AT
    failed_then_passed = dataclasses.replace(
        CLEAN, verifications=(*CLEAN.verifications, ver("pan_service", "manual_review", earlier))
    )
    assert assess(rules, failed_then_passed, today=TODAY).fired == ()
    review_last = dataclasses.replace(CLEAN, verifications=(*CLEAN.verifications, ver("pan_service", "fail", later)))
    assert assess(rules, review_last, today=TODAY).fired == ("pan_service_failed",)


def _rules(*scores: float, **top: Any) -> RiskRules:
    rules = [
        {"id": f"r{i}", "description": f"rule {i}", "when": {"pep": True}, "score": s} for i, s in enumerate(scores)
    ]
    return parse_rules({"version": 1, "rules": rules, **top})


@pytest.mark.parametrize(
    ("score", "category", "due"),
    [
        (29.99, "low", date(2034, 2, 28)),  # 29 February + 10 years
        (30, "medium", date(2032, 2, 29)),
        (59.99, "medium", date(2032, 2, 29)),
        (60, "high", date(2026, 2, 28)),
        (-5, "low", date(2034, 2, 28)),
    ],
)
def test_categories_and_rekyc_dates_at_the_boundaries(score: float, category: str, due: date) -> None:
    a = assess(_rules(score), dataclasses.replace(CLEAN, pep=True), today=date(2024, 2, 29))
    assert (a.score, a.category, a.rekyc_due, a.needs_edd) == (score, category, due, category == "high")


def test_configured_thresholds_and_periods() -> None:
    rules = _rules(10, 15, categories={"medium_from": 20, "high_from": 25}, rekyc_years={"high": 1, "medium": 3})
    a = assess(rules, dataclasses.replace(CLEAN, pep=True), today=TODAY)
    assert (a.score, a.category, a.rekyc_due, a.fired) == (25, "high", date(2027, 3, 2), ("r0", "r1"))
    assert assess(rules, CLEAN, today=TODAY).rekyc_due == date(2036, 3, 2)  # low keeps its default 10


def _when(condition: Any, facts: RiskFacts) -> bool:
    rules = parse_rules({"version": 1, "rules": [{"id": "x", "description": "d", "when": condition, "score": 1}]})
    return assess(rules, facts, today=TODAY).fired == ("x",)


def test_the_condition_language() -> None:
    f = dataclasses.replace(CLEAN, screening=(hit(score=0.9), hit("ofac_sdn:7846", 0.8, suppressed=True)))
    assert _when({"all": [{"pep": False}, {"product": "auto_loan"}, {"currency": ["inr"]}]}, f)
    assert not _when({"all": [{"pep": False}, {"pep": True}]}, f)
    assert _when({"any": [{"pep": True}, {"not": {"country": {"not_in": ["IN"]}}}]}, f)
    assert _when({"screening": {"unsuppressed_hits": {"eq": 1}, "suppressed_hits": {"eq": 1}}}, f)
    assert _when({"screening": {"programs": ["CUBA"], "lists": "ofac_sdn"}}, f)
    assert not _when({"screening": {"unsuppressed_hits": {"gte": 1}, "lists": ["un_consolidated"]}}, f)
    assert not _when({"screening": {"max_score": {"gte": 0.91}}}, f)
    assert not _when({"screening": {"max_score": {"lt": 1}}}, CLEAN)  # no hit: no max score
    assert _when({"document_types": {"includes_all": ["aadhaar", "pan_card"]}}, f)
    assert not _when({"document_types": {"includes_all": ["aadhaar", "passport"]}}, f)
    assert _when({"age_years": {"gt": 34, "lte": 35}}, f)
    assert not _when({"age_years": {"lt": 200}}, dataclasses.replace(f, age_years=None))  # unknown never compares
    assert not _when({"country": {"not_in": ["IN"]}}, dataclasses.replace(f, country=None))
    assert _when({"missing": "country"}, dataclasses.replace(f, country=None))
    assert _when({"check": ["pan_format", "pan_service"], "result": ["pass"]}, f)
    assert not _when({"check": "pan_service", "result": "pass"}, dataclasses.replace(f, verifications=()))


def test_descriptions_render_facts_and_unknowns() -> None:
    rules = parse_rules(
        {
            "version": 1,
            "rules": [
                {
                    "id": "x",
                    "description": "{currency} {amount:,.2f}; age {age_years}; {hits} at {max_score:.3f}; {{literal}}",
                    "when": {"pep": False},
                    "score": 1,
                }
            ],
        }
    )
    a = assess(rules, dataclasses.replace(CLEAN, age_years=None), today=TODAY)
    assert a.reasons == ("INR 800,000.00; age unknown; none at unknown; {literal}",)


def test_every_placeholder_renders() -> None:
    template = " ".join(f"{name}={{{name}}}" for name in PLACEHOLDERS)
    rules = parse_rules(
        {"version": 1, "rules": [{"id": "x", "description": template, "when": {"pep": True}, "score": 1}]}
    )
    facts = dataclasses.replace(
        CLEAN, pep=True, screening=(hit(confirmed=True), hit("ofac_sdn:7846", 0.9, suppressed=True))
    )
    (reason,) = assess(rules, facts, today=TODAY).reasons
    assert "pep=yes" in reason and "hits=ofac_sdn:1572 " in reason and "confirmed=ofac_sdn:1572 " in reason
    assert "suppressed_hits=1" in reason and "max_score=0.97" in reason and "programs=CUBA" in reason


_GOOD_RULE = "  - {id: ok, description: fine, when: {pep: true}, score: 1}\n"


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("version: 1\nrules: [\n", r"not valid YAML at line \d+"),
        ("version: 1\nversion: 1\nrules: []\n", "given twice"),
        ("- a list\n", "must be a mapping"),
        ("version: 2\nrules:\n" + _GOOD_RULE, r"version: Input should be 1"),
        ("version: 1\nowner: me\nrules:\n" + _GOOD_RULE, "owner: Extra inputs are not permitted"),
        ("version: 1\nrules: []\n", "rules: .*at least 1 item"),
        (
            "version: 1\nrules:\n" + _GOOD_RULE + "  - {id: bad, description: d, when: {age: {gte: 1}}, score: 1}\n",
            r"rule 'bad': when: unknown condition 'age': expected one of all, any, not, check",
        ),
        (
            "version: 1\nrules:\n  - {id: bad, description: d, when: {all: [{pep: true}, {check: pan, result: fail}]},"
            " score: 1}\n",
            r"rule 'bad': when\.all\[1\]\.check: unknown check 'pan'",
        ),
        (
            "version: 1\nrules:\n  - {id: bad, description: d, when: {check: pan_service, result: failed}, score: 1}\n",
            r"rule 'bad': when\.check\.result: unknown result 'failed'",
        ),
        (
            "version: 1\nrules:\n  - {id: bad, description: d, when: {amount: {above: 5}}, score: 1}\n",
            r"rule 'bad': when\.amount\.above: Extra inputs are not permitted",
        ),
        (
            "version: 1\nrules:\n  - {id: bad, description: d, when: {amount: {}}, score: 1}\n",
            r"rule 'bad': when\.amount: give at least one of gte",
        ),
        (
            'version: 1\nrules:\n  - {id: bad, description: d, when: "amount > 5", score: 1}\n',
            r"rule 'bad': when: a condition is a mapping",
        ),
        (
            "version: 1\nrules:\n  - {id: bad, description: 'hi {name}', when: {pep: true}, score: 1}\n",
            r"rule 'bad': description: unknown placeholder \{name\}",
        ),
        (
            "version: 1\nrules:\n  - {id: bad, description: 'hi {amount!r}', when: {pep: true}, score: 1}\n",
            r"rule 'bad': description: placeholder \{amount\}: no conversions",
        ),
        (
            "version: 1\nrules:\n  - {id: bad, description: '{hits:.2f}', when: {pep: true}, score: 1}\n",
            r"rule 'bad': description: placeholder \{hits:\.2f\}",
        ),
        (
            "version: 1\nrules:\n  - {id: bad, description: 'x {', when: {pep: true}, score: 1}\n",
            r"rule 'bad': description: unbalanced braces",
        ),
        ("version: 1\nrules:\n  - {id: bad, description: d, when: {pep: yes please}, score: 1}\n", r"when\.pep"),
        (
            "version: 1\nrules:\n  - {id: bad, description: d, when: {pep: true}}\n",
            r"rule 'bad': score: Field required",
        ),
        ("version: 1\nrules:\n  - {id: bad, description: d, when: {pep: true}, score: .nan}\n", "rule 'bad': score"),
        ("version: 1\nrules:\n  - {id: Bad-Id, description: d, when: {pep: true}, score: 1}\n", r"rule 'Bad-Id': id"),
        ("version: 1\nrules:\n  - {description: d, when: {pep: true}, score: 1}\n", r"rule #1: id: Field required"),
        ("version: 1\nrules:\n" + _GOOD_RULE + _GOOD_RULE, "the rule id 'ok' is given twice"),
        (
            "version: 1\ncategories: {medium_from: 60, high_from: 60}\nrules:\n" + _GOOD_RULE,
            r"categories: medium_from \(60.0\) must be below high_from",
        ),
        ("version: 1\nrekyc_years: {high: 9}\nrules:\n" + _GOOD_RULE, "rekyc_years: a riskier category cannot wait"),
    ],
)
def test_bad_rules_files_name_the_file_the_rule_and_the_field(tmp_path: Path, text: str, error: str) -> None:
    path = tmp_path / "custom.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InvalidInputError, match=error) as info:
        load_rules(path)
    assert str(info.value).startswith(str(path))


def test_unreadable_rules_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="cannot read the risk rules"):
        load_rules(tmp_path / "absent.yaml")
    (tmp_path / "latin1.yaml").write_bytes(b"version: 1 # caf\xe9\n")
    with pytest.raises(InvalidInputError, match="not UTF-8"):
        load_rules(tmp_path / "latin1.yaml")


def test_a_custom_rules_file(tmp_path: Path) -> None:
    path = tmp_path / "bank.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "categories": {"medium_from": 10, "high_from": 20},
                "rekyc_years": {"high": 1, "medium": 5, "low": 10},
                "rules": [
                    {
                        "id": "foreign_currency",
                        "description": "A loan in {currency}",
                        "when": {"currency": {"not_in": ["INR"]}},
                        "score": 12,
                    },
                    {
                        "id": "any_ofac_hit",
                        "description": "{unsuppressed_hits} OFAC hit(s): {hits}",
                        "when": {"screening": {"lists": ["ofac_sdn"], "unsuppressed_hits": {"gte": 1}}},
                        "score": 5,
                        "force_high": True,
                    },
                ],
            }
        ),
        encoding="utf-8",
    )
    rules = load_rules(path)
    a = assess(rules, dataclasses.replace(CLEAN, currency="USD"), today=TODAY)
    assert (a.category, a.fired, a.reasons, a.rekyc_due) == (
        "medium",
        ("foreign_currency",),
        ("A loan in USD",),
        date(2031, 3, 2),
    )
    b = assess(rules, dataclasses.replace(CLEAN, screening=(hit(score=0.5),)), today=TODAY)
    assert (b.category, b.forced_by, b.reasons) == ("high", ("any_ofac_hit",), ("1 OFAC hit(s): ofac_sdn:1572",))


def test_the_bundled_rules_are_the_default() -> None:
    assert DEFAULT_RULES.name == "kyc_risk.yaml" and DEFAULT_RULES.is_file()
    assert load_rules() == load_rules(DEFAULT_RULES)


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"country": "India"}, "ISO 3166"),
        ({"currency": "rupees"}, "ISO 4217"),
        ({"amount": Decimal("-1")}, "amount"),
        ({"amount": Decimal("NaN")}, "amount"),
        ({"amount": 1.5}, "amount"),
        ({"age_years": True}, "age_years"),
        ({"product": "Auto Loan"}, "product"),
        ({"document_types": "passport"}, "document_types"),
        ({"verifications": ("pan_service",)}, "verifications"),
        ({"pep": "no"}, "pep"),
    ],
)
def test_bad_facts_are_refused(change: dict[str, Any], error: str) -> None:
    with pytest.raises(InvalidInputError, match=error):
        dataclasses.replace(CLEAN, **change)


def test_bad_findings_and_arguments_are_refused(rules: RiskRules) -> None:
    with pytest.raises(InvalidInputError, match="not of the list"):
        ScreeningFinding("ofac_sdn", "un_consolidated:1", 0.9)
    with pytest.raises(InvalidInputError, match="from 0 to 1"):
        ScreeningFinding("ofac_sdn", "ofac_sdn:1", 1.5)
    with pytest.raises(InvalidInputError, match="both suppressed and confirmed"):
        ScreeningFinding("ofac_sdn", "ofac_sdn:1", 0.9, suppressed=True, confirmed=True)
    with pytest.raises(InvalidInputError, match="today must be a date"):
        assess(rules, CLEAN, today=AT)  # a datetime is not a date here
    assert RiskFacts(product="auto_loan", amount=Decimal(5)).amount == Decimal(5)
    assert RiskFacts(product="auto_loan", amount=5).amount == Decimal(5)  # type: ignore[arg-type]
