"""The role policy: generated checks over every (role, field) and (role, action), the stated requirements,
and policy files that must be rejected with a message naming the place."""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml
from c360.graph.errors import ConfigError, InvalidInputError
from c360.graphql.auth import ForbiddenError, Principal
from c360.graphql.hash_keys import HashKeys
from c360.graphql.policy import ATTRIBUTES, BUNDLED_POLICY, FIELDS, RULES, SOURCE_KEY, Policy, load_policy

KEYS = HashKeys.generate()
POLICY = load_policy(hash_keys=KEYS)
TODAY = date(2024, 6, 1)
BORN = date(1990, 5, 17)  # 34 on TODAY

SAMPLE: dict[str, Any] = {
    "first_name": "  Jane ",
    "last_name": "Doe",
    "date_of_birth": BORN,
    "age": 34,
    "gender": "F",
    "email": "Jane.Doe@Example.com",
    "phone": "+1 (415) 555-1234",
    "address_line1": "1 Main Street",
    "address_line2": "Apt 4",
    "city": "Springfield",
    "postcode": "SW1A 1AA",
    "state": "CA",
    "country": "GB",
    "national_id": "123-45-6789",
    "national_id_kind": "ssn",
    "customer_number": "CUST-000123",
    "annual_income": 62000,
}
#: What `partial` shows of each sample value, and what it must not show.
PARTIAL: dict[str, tuple[str, str]] = {
    "first_name": ("J***", "Jane"),
    "last_name": ("D***", "Doe"),
    "date_of_birth": ("1990", "05-17"),
    "email": ("J***@Example.com", "Jane.Doe"),
    "phone": ("*******1234", "555"),
    "postcode": ("SW1A ***", "1AA"),
    "national_id": ("*****6789", "123"),
    "customer_number": ("******0123", "CUST"),
}
EXPECTED_GRANTS: dict[str, set[str]] = {
    "data_steward": {
        "read_profile", "search_customers", "read_timeline", "read_orders", "read_transactions", "read_history",
        "read_review_queue", "approve_review", "reject_review", "merge", "split", "explain", "read_consent",
        "check_consent", "read_insights",
    },
    "marketer": {
        "read_profile", "search_customers", "read_timeline", "read_orders", "read_transactions", "check_consent",
        "query_lens", "read_insights",
    },
    "data_consumer": {
        "read_profile", "search_customers", "read_timeline", "check_consent", "query_lens", "read_insights",
    },
    "partner": {"post_events"},
    "kyc_officer": {
        "read_profile", "search_customers", "read_history", "explain", "read_cases", "comment_case",
        "read_kyc_applications", "read_kyc_documents", "read_kyc_pan", "read_kyc_aadhaar", "verify_kyc_documents",
    },
    "approval_manager": {
        "read_profile", "search_customers", "read_timeline", "read_history", "explain", "read_review_queue",
        "approve_review", "reject_review", "merge", "read_kyc_applications", "read_kyc_documents",
        "approve_kyc_application", "assign_kyc_task",
    },
    "compliance_officer": {
        "read_profile", "search_customers", "read_history", "read_audit", "read_review_queue", "read_timeline",
        "read_consent", "check_consent", "read_consent_receipts", "read_cases", "read_kyc_applications",
        "read_kyc_documents", "review_kyc_screening", "read_kyc_report", "assign_kyc_task", "read_insights",
    },
    "applicant": {"apply_kyc", "read_own_application"},
    "service_agent": {
        "read_profile", "search_customers", "read_timeline", "read_consent", "check_consent", "record_consent",
        "read_cases", "open_case", "update_case", "comment_case",
    },
    "service_supervisor": {
        "read_profile", "search_customers", "read_timeline", "read_consent", "check_consent", "record_consent",
        "read_cases", "open_case", "update_case", "comment_case", "assign_case",
    },
    "admin": set(POLICY.actions),
}  # fmt: skip
ROLE_FIELDS = [(role, name) for role in POLICY.roles for name in POLICY.fields]
ROLE_ACTIONS = [(role, action) for role in POLICY.roles for action in POLICY.actions]
BAND = re.compile(r"^(<\d+k|\d+k-\d+k|\d+k\+)$")


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def keyed(text: str, keys: HashKeys = KEYS) -> str:
    """The ``hash`` rule's answer, computed here: HMAC-SHA256 under the current key, with its id."""
    return f"hmac:{keys.current}:" + hmac.new(keys.secrets[keys.current], text.encode(), hashlib.sha256).hexdigest()


def normalised(value: Any) -> str:
    return (value.isoformat() if isinstance(value, date) else str(value)).strip().casefold()


def test_the_bundled_policy_names_the_roles_actions_and_fields() -> None:
    assert set(POLICY.roles) == set(EXPECTED_GRANTS)
    assert set(POLICY.actions) == set().union(*EXPECTED_GRANTS.values())
    assert len(POLICY.actions) == 36
    assert POLICY.fields == FIELDS and len(FIELDS) == 17
    assert POLICY.source == BUNDLED_POLICY and BUNDLED_POLICY.name == "policy.yaml"


# -- generated: every (role, field) ----------------------------------------------------------------


@pytest.mark.parametrize(("role", "name"), ROLE_FIELDS)
def test_each_field_is_masked_by_its_rule(role: str, name: str) -> None:
    rule = POLICY.rule(role, name)
    value = SAMPLE[name]
    masked = POLICY.mask(role, name, value, today=TODAY)
    assert POLICY.mask(role, name, None, today=TODAY) is None
    if rule == "full":
        assert masked == value
    elif rule == "deny":
        assert masked is None
    elif rule == "hash":
        assert masked == keyed(normalised(value))
        assert re.fullmatch(r"hmac:k1:[0-9a-f]{64}", masked) and masked != value
        assert masked.rpartition(":")[2] != sha256(normalised(value))  # not the unkeyed digest
    elif rule == "range":
        assert name in ("age", "annual_income")
        assert masked == ("30-39" if name == "age" else "50k-75k")
        assert re.fullmatch(r"\d+-\d+", masked) if name == "age" else BAND.fullmatch(masked)
    else:
        assert rule == "partial"
        shown, hidden = PARTIAL[name]
        assert masked == shown and hidden not in masked


@pytest.mark.parametrize("role", POLICY.roles)
def test_age_follows_its_rule_from_a_birth_date_or_an_iso_string(role: str) -> None:
    from_date = POLICY.mask(role, "age", BORN, today=TODAY)
    assert from_date == POLICY.mask(role, "age", "1990-05-17", today=TODAY)
    assert from_date == POLICY.mask(role, "age", 34, today=TODAY)


@pytest.mark.parametrize("role", POLICY.roles)
def test_a_golden_record_is_masked_field_by_field_and_gains_age(role: str) -> None:
    golden = {k: v for k, v in SAMPLE.items() if k != "age"} | {"id": "C1", "shoe_size": 42}
    masked = POLICY.mask_golden(role, golden, today=TODAY)
    for name in FIELDS:
        rule = POLICY.rule(role, name)
        assert (name in masked) == (rule != "deny"), name
        if name in masked:
            assert masked[name] == POLICY.mask(role, name, SAMPLE[name], today=TODAY)
    assert masked["id"] == "C1"  # passthrough
    assert "shoe_size" not in masked  # neither a field nor passthrough


@pytest.mark.parametrize("role", POLICY.roles)
def test_a_source_record_keeps_its_provenance_and_masks_its_attributes(role: str) -> None:
    record = {
        "source": "crm",
        "key": "42",
        "observed_at": "2024-01-02T03:04:05+00:00",
        "email": SAMPLE["email"],
        "date_of_birth": "1990-05-17",
        "attributes": {"annual_income": "62,000", "loyalty_tier": "Gold"},
        "internal_note": "do not show",
    }
    masked = POLICY.mask_record(role, record, today=TODAY)
    assert {k: masked[k] for k in ("source", "observed_at")} == {k: record[k] for k in ("source", "observed_at")}
    # The key is a value that may carry PII: it follows the source_key rule.
    assert masked["key"] == ("42" if POLICY.rule(role, SOURCE_KEY) == "full" else keyed("42"))
    assert "internal_note" not in masked
    assert masked.get("email") == POLICY.mask(role, "email", SAMPLE["email"])
    assert masked.get("age") == POLICY.mask(role, "age", BORN, today=TODAY)
    attributes = masked.get("attributes", {})
    income, tier = POLICY.rule(role, "annual_income"), POLICY.rule(role, ATTRIBUTES)
    assert attributes.get("annual_income") == {"full": "62,000", "range": "50k-75k", "deny": None}.get(income, "?")
    assert attributes.get("loyalty_tier") == {"full": "Gold", "hash": keyed("gold"), "deny": None}[tier]


# -- generated: every (role, action) ---------------------------------------------------------------


@pytest.mark.parametrize(("role", "action"), ROLE_ACTIONS)
def test_each_role_may_do_exactly_its_granted_actions(role: str, action: str) -> None:
    allowed = action in EXPECTED_GRANTS[role]
    assert POLICY.can(role, action) is allowed
    principal = Principal("someone", role, "partner" if role == "partner" else "user")
    if allowed:
        POLICY.require(principal, action)
        POLICY.require(role, action)
    else:
        with pytest.raises(ForbiddenError, match=f"role {role} may not {action}") as caught:
            POLICY.require(principal, action)
        assert caught.value.code == "FORBIDDEN"


def test_unknown_roles_may_do_nothing_and_unknown_actions_or_fields_are_bugs() -> None:
    assert POLICY.can("intruder", "read_profile") is False
    with pytest.raises(ForbiddenError):
        POLICY.require("intruder", "read_profile")
    with pytest.raises(InvalidInputError, match="unknown action 'fly'"):
        POLICY.can("admin", "fly")
    with pytest.raises(InvalidInputError, match="unknown role 'intruder'"):
        POLICY.mask("intruder", "email", "a@b.c")
    with pytest.raises(InvalidInputError, match="unknown field 'shoe_size'"):
        POLICY.rule("admin", "shoe_size")
    with pytest.raises(InvalidInputError, match="unknown role"):
        POLICY.mask_golden("intruder", {"email": "a@b.c"})


# -- the stated requirements -----------------------------------------------------------------------


def test_a_marketer_sees_age_and_income_as_ranges_and_no_birth_date() -> None:
    masked = POLICY.mask_golden("marketer", {"date_of_birth": BORN, "annual_income": 62000}, today=TODAY)
    assert masked == {"age": "30-39", "annual_income": "50k-75k"}
    assert POLICY.rule("marketer", "date_of_birth") == "deny"
    for name in ("first_name", "last_name", "email", "phone", "national_id"):
        assert POLICY.rule("marketer", name) in ("hash", "deny")
    assert POLICY.mask("marketer", "email", "  JANE@example.COM ") == keyed("jane@example.com")


def test_a_data_consumer_sees_personal_data_as_keyed_hashes() -> None:
    assert POLICY.mask("data_consumer", "email", "Jane.Doe@Example.com") == keyed("jane.doe@example.com")
    for name in ("first_name", "last_name", "email", "phone", "national_id", "date_of_birth", "address_line1"):
        assert POLICY.rule("data_consumer", name) == "hash"


@pytest.mark.parametrize("role", ["data_steward", "admin"])
def test_stewards_and_admins_see_everything(role: str) -> None:
    assert all(POLICY.rule(role, name) == "full" for name in (*FIELDS, ATTRIBUTES))
    assert POLICY.mask_golden(role, SAMPLE, today=TODAY) == SAMPLE


def test_national_id_full_for_kyc_partial_for_compliance_and_partners_see_nothing() -> None:
    assert POLICY.mask("kyc_officer", "national_id", "123-45-6789") == "123-45-6789"
    assert POLICY.mask("compliance_officer", "national_id", "123-45-6789") == "*****6789"
    assert all(POLICY.rule("partner", name) == "deny" for name in (*FIELDS, ATTRIBUTES))
    assert POLICY.mask_golden("partner", SAMPLE | {"id": "C1"}, today=TODAY) == {"id": "C1"}


@pytest.mark.parametrize(
    ("income", "band"),
    [(0, "<25k"), (24_999, "<25k"), (25_000, "25k-50k"), (62_000, "50k-75k"), ("62,000", "50k-75k"),
     (99_999.5, "75k-100k"), (100_000, "100k-150k"), (150_000, "150k+"), (2_000_000, "150k+"), ("n/a", None)],
)  # fmt: skip
def test_income_bands(income: Any, band: str | None) -> None:
    assert POLICY.mask("marketer", "annual_income", income) == band


@pytest.mark.parametrize(
    ("value", "band"),
    [(BORN, "30-39"), (date(1990, 6, 1), "30-39"), (date(1994, 6, 2), "20-29"), (date(1994, 6, 1), "30-39"),
     (9, "0-9"), ("71", "70-79"), ("not a date", None), (date(2030, 1, 1), None), (-1, None), (True, None)],
)  # fmt: skip
def test_age_bands(value: Any, band: str | None) -> None:
    assert POLICY.mask("marketer", "age", value, today=TODAY) == band


def test_partial_values_of_odd_shapes() -> None:
    assert POLICY.mask("compliance_officer", "email", "no-at-sign") == "***"
    assert POLICY.mask("compliance_officer", "phone", "12") == "***"
    assert POLICY.mask("compliance_officer", "national_id", "AB12") == "****"
    assert POLICY.mask("marketer", "postcode", "94103") == "941**"
    assert POLICY.mask("compliance_officer", "date_of_birth", "1990-05-17") == "1990"


# -- policy files ----------------------------------------------------------------------------------


def _bundled() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(BUNDLED_POLICY.read_text(encoding="utf-8"))
    return data


def _write(tmp_path: Path, data: Any) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data), encoding="utf-8")
    return path


def test_another_key_changes_the_hashes_and_a_salt_in_the_file_is_refused(tmp_path: Path) -> None:
    other = HashKeys.generate()
    policy = load_policy(hash_keys=other)
    assert policy.mask("data_consumer", "email", " A@B.C ") == keyed("a@b.c", other)
    assert policy.mask("data_consumer", "email", "a@b.c") != POLICY.mask("data_consumer", "email", "a@b.c")
    with pytest.raises(InvalidInputError, match=r"policy.yaml: hash_salt: hashes are keyed now"):
        load_policy(_write(tmp_path, _bundled() | {"hash_salt": "pepper"}))
    with pytest.raises(ConfigError, match="no hash key"):
        load_policy().mask("data_consumer", "email", "a@b.c")  # no built-in key to fall back on


def test_income_bands_are_configurable(tmp_path: Path) -> None:
    policy = load_policy(_write(tmp_path, _bundled() | {"income_bands": [40000, 80000, 120500]}))
    assert [policy.income_band(v) for v in (1, 40000, 90000, 130000)] == ["<40k", "40k-80k", "80k-120500", "120500+"]


def _role(data: dict[str, Any], role: str, **changes: Any) -> dict[str, Any]:
    data["roles"][role].update(changes)
    return data


def _rule(data: dict[str, Any], role: str, name: str, rule: Any) -> dict[str, Any]:
    data["roles"][role]["fields"][name] = rule
    return data


def _without_default(data: dict[str, Any]) -> dict[str, Any]:
    del data["roles"]["marketer"]["fields"]["default"]
    return data


BAD: list[tuple[str, Any, str]] = [
    (
        "unknown rule",
        lambda d: _rule(d, "marketer", "email", "blur"),
        r"roles\.marketer\.fields\.email: Input should be 'full', 'range', 'hash', 'partial' or 'deny' \(got 'blur'\)",
    ),
    (
        "unknown field",
        lambda d: _rule(d, "marketer", "shoe_size", "full"),
        r"roles\.marketer\.fields: unknown field 'shoe_size'",
    ),
    (
        "unknown action",
        lambda d: _role(d, "marketer", actions=["read_profile", "fly"]),
        r"roles\.marketer\.actions: unknown action 'fly'",
    ),
    (
        "range on a field",
        lambda d: _rule(d, "marketer", "email", "range"),
        r"roles\.marketer\.fields\.email: rule 'range' does not apply to email",
    ),
    (
        "partial on a field",
        lambda d: _rule(d, "marketer", "gender", "partial"),
        r"roles\.marketer\.fields\.gender: rule 'partial' does not apply to gender",
    ),
    (
        "default that does not fit",
        lambda d: _rule(d, "partner", "default", "partial"),
        r"roles\.partner\.fields\.default: rule 'partial' does not apply to age .*list a rule for age",
    ),
    (
        "partial attributes",
        lambda d: _rule(d, "admin", "attributes", "partial"),
        r"roles\.admin\.fields\.attributes: rule 'partial' does not apply to attributes",
    ),
    ("no default", _without_default, r"roles\.marketer\.fields: needs a 'default' rule"),
    ("unknown top-level key", lambda d: d | {"rolez": {}}, r"rolez: Extra inputs are not permitted"),
    ("unknown role key", lambda d: _role(d, "admin", colour="red"), r"roles\.admin\.colour: Extra inputs"),
    ("missing actions", lambda d: {k: v for k, v in d.items() if k != "actions"}, r"actions: Field required"),
    (
        "actions all",
        lambda d: _role(d, "admin", actions="all"),
        r"roles\.admin\.actions: give a list of actions, or \"\*\" for all \(got 'all'\)",
    ),
    ("bad role id", lambda d: d | {"roles": d["roles"] | {"Boss": d["roles"]["admin"]}}, r"roles\.Boss: a role id"),
    ("version", lambda d: d | {"version": 2}, r"version: Input should be 1"),
    ("bands out of order", lambda d: d | {"income_bands": [50000, 25000]}, r"income_bands: give positive band edges"),
    ("no bands", lambda d: d | {"income_bands": []}, r"income_bands"),
    ("passthrough of a field", lambda d: d | {"passthrough": ["id", "email"]}, r"passthrough: email are masked"),
    (
        "passthrough of a key",
        lambda d: d | {"passthrough": ["id", "key", "uid"]},
        r"passthrough: key, uid hold record keys: they follow the source_key rule",
    ),
    (
        "source_key denied",
        lambda d: _rule(d, "marketer", "source_key", "deny"),
        r"roles\.marketer\.fields\.source_key: rule 'deny' does not apply to source_key \(it may be full, hash\)",
    ),
    ("no roles", lambda d: d | {"roles": {}}, r"roles: the policy defines no roles"),
    ("not a mapping", lambda d: "- just\n- a list\n", r"the policy must be a mapping"),
    ("empty", lambda d: "", r"the policy must be a mapping"),
    ("not YAML", lambda d: "roles: [unclosed\n", r"not valid YAML at line 2, column 1"),
    (
        "duplicate key",
        lambda d: BUNDLED_POLICY.read_text() + "\nroles: {}\n",
        r"not valid YAML at line \d+, column 1: key 'roles' is given twice$",
    ),
]


@pytest.mark.parametrize(("case", "change", "message"), BAD, ids=[b[0] for b in BAD])
def test_a_bad_policy_file_is_rejected_naming_the_place(tmp_path: Path, case: str, change: Any, message: str) -> None:
    path = _write(tmp_path, change(_bundled()))
    with pytest.raises(InvalidInputError, match=message) as caught:
        load_policy(path)
    assert str(caught.value).startswith("policy.yaml: "), case


def test_a_missing_policy_file_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="cannot read the policy"):
        load_policy(tmp_path / "nope.yaml")


def test_the_rule_names_are_the_documented_ones() -> None:
    assert RULES == ("full", "range", "hash", "partial", "deny")
    assert isinstance(POLICY, Policy)
