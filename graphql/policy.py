"""Roles, permissions and field masking, read from a YAML policy (by default the bundled ``policy.yaml``).

The policy names the roles, the actions, which role may do which, and per role a masking rule for every
profile field: ``full``, ``range`` (age and annual income only), ``hash`` (a keyed hash of the normalised
value, ``hmac:<key id>:<hex>``; see :mod:`~c360.graphql.hash_keys`), ``partial`` (a recognisable
fragment) or ``deny``. The file is validated strictly when loaded; every mistake is an
:class:`~c360.graph.errors.InvalidInputError` naming its place in the file.

Values that are not profile fields but may carry personal data go through the policy too:

* **record keys** (a source keyed by email shows the email in its key) follow the pseudo-field
  ``source_key``: the ``key`` and ``uid`` of source records, the ``source_key`` of golden fields, the
  record uids of link and merge evidence, of history events, of explanations and of review items, and
  the ``customer_key`` and event ids of timeline events. Its rule is ``full`` or ``hash`` (a record still
  needs a handle); a role that does not list it sees keys in full only if it sees every field a key may
  be made of (names, birth date, email, phone, national ID, customer number) in full, and hashed
  otherwise. Hashed keys are hashed exactly as given (not case-folded), so two records keep two handles.
* **free text** that may quote keys or personal data (the notes of evidence, review reasons) is shown only
  to roles whose ``source_key`` rule is ``full``; others get it left out.

Search is an oracle (a search by name that answers one customer says that person is a customer), so a
role may search by a field only when it may ``search_customers`` *and* sees that field in ``full``
(:meth:`Policy.require_search`); hashed is not enough.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from itertools import pairwise
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, get_args

import yaml
from c360.graph.errors import ConfigError, InvalidInputError
from c360.graph.models import CANONICAL_FIELDS, ReviewItem
from pydantic import BaseModel, ConfigDict, ValidationError

from .hash_keys import HashKeys
from .masking_values import age_band, age_of, normalise, number, partial, thousands
from .principal import ForbiddenError, Principal

Rule = Literal["full", "range", "hash", "partial", "deny"]
RULES: tuple[Rule, ...] = get_args(Rule)

#: The profile fields a policy masks (the canonical fields, derived ``age``, and ``annual_income``).
FIELDS: tuple[str, ...] = (
    *CANONICAL_FIELDS[:3],  # names and date of birth
    "age",
    *CANONICAL_FIELDS[3:],
    "annual_income",
)
#: The pseudo-field for source columns without a canonical field.
ATTRIBUTES = "attributes"
#: The pseudo-field for record keys (and the free text that may quote them): ``full`` or ``hash``.
SOURCE_KEY = "source_key"
DEFAULT = "default"
#: The fields a record key may be made of: a role sees keys in full by default only if it sees all of these so.
KEY_FIELDS: tuple[str, ...] = (
    "first_name",
    "last_name",
    "date_of_birth",
    "email",
    "phone",
    "national_id",
    "customer_number",
)
#: Keys of profile, record and evidence documents that hold a record key (``key``) or a record uid
#: (``source|key``); they follow the ``source_key`` rule and may not be listed under ``passthrough``.
KEY_NAMES = frozenset({"key", "source_key"})
UID_NAMES = frozenset({"uid", "record", "candidate"})
#: Which field's rule masks an identifier of each kind (other kinds: customer_number's).
IDENTIFIER_FIELDS: Mapping[str, str] = MappingProxyType(
    {"email": "email", "phone": "phone", "national_id": "national_id", "customer_number": "customer_number"}
)

_RANGE_FIELDS = frozenset({"age", "annual_income"})
_PARTIAL_FIELDS = frozenset(
    {"first_name", "last_name", "date_of_birth", "email", "phone", "postcode", "national_id", "customer_number"}
)
_ATTRIBUTE_RULES: frozenset[Rule] = frozenset({"full", "hash", "deny"})
_KEY_RULES: frozenset[Rule] = frozenset({"full", "hash"})
_ID = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
BUNDLED_POLICY = Path(__file__).resolve().with_name("policy.yaml")


def _allowed(name: str) -> frozenset[Rule]:
    """The rules that apply to a field."""
    if name == ATTRIBUTES:
        return _ATTRIBUTE_RULES
    if name == SOURCE_KEY:
        return _KEY_RULES
    rules: set[Rule] = {"full", "hash", "deny"}
    if name in _RANGE_FIELDS:
        rules.add("range")
    if name in _PARTIAL_FIELDS:
        rules.add("partial")
    return frozenset(rules)


# -- the file's shape ------------------------------------------------------------------------------


class _RoleModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str = ""
    actions: list[str] | str  # "*": every action
    fields: dict[str, Rule]


class _PolicyModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1]
    hash_salt: str = ""
    income_bands: list[int]
    passthrough: list[str] = []
    actions: dict[str, str]
    roles: dict[str, _RoleModel]


class _StrictLoader(yaml.SafeLoader):
    """A safe YAML loader that refuses a key given twice in one mapping."""


def _no_duplicates(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if isinstance(key, Hashable):
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping", node.start_mark, f"key {key!r} is given twice", key_node.start_mark
                )
            seen.add(key)
    return loader.construct_mapping(node)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicates)


# -- the policy ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Policy:
    """A loaded, validated policy: who may do what, and how each role sees each field."""

    roles: tuple[str, ...]
    actions: tuple[str, ...]
    grants: Mapping[str, frozenset[str]]
    #: role -> field (and ``attributes``) -> the rule in force (``default`` resolved)
    rules: Mapping[str, Mapping[str, Rule]]
    income_bands: tuple[int, ...]
    passthrough: frozenset[str] = frozenset()
    fields: tuple[str, ...] = FIELDS
    source: Path | None = field(default=None, compare=False)
    #: the secret of the ``hash`` rule; without one, asking for a hash is a ConfigError
    hash_keys: HashKeys | None = field(default=None, compare=False, repr=False)

    def with_hash_keys(self, keys: HashKeys) -> Policy:
        """A copy of the policy that hashes with ``keys``."""
        return replace(self, hash_keys=keys)

    def can(self, role: str, action: str) -> bool:
        """Whether ``role`` may do ``action``; an unknown role may do nothing, an unknown action is a bug."""
        if action not in self.actions:
            raise InvalidInputError(f"unknown action {action!r}; the policy knows: {', '.join(self.actions)}")
        return action in self.grants.get(role, frozenset())

    def require(self, principal_or_role: Principal | str, action: str) -> None:
        """Raise :class:`~c360.graphql.principal.ForbiddenError` unless the role may do ``action``."""
        role = principal_or_role if isinstance(principal_or_role, str) else principal_or_role.role
        if not self.can(role, action):
            raise ForbiddenError(f"role {role} may not {action}")

    def rule(self, role: str, name: str) -> Rule:
        """The rule by which ``role`` sees field ``name`` (or the ``attributes`` pseudo-field)."""
        rules = self.rules.get(role)
        if rules is None:
            raise InvalidInputError(f"unknown role {role!r}; the policy knows: {', '.join(self.roles)}")
        found = rules.get(name)
        if found is None:
            raise InvalidInputError(f"unknown field {name!r}; the policy masks: {', '.join(self.fields)}")
        return found

    def hash(self, value: Any) -> str:
        """``hmac:<key id>:<hex>``: HMAC-SHA256 of the normalised value under the current key (the ``hash`` rule)."""
        return self._keys().hash(normalise(value))

    def hash_matches(self, value: Any, hashed: str) -> bool:
        """Whether ``hashed`` is the hash of ``value`` under any key of the ring (one made before a rotation too)."""
        return self._keys().matches(normalise(value), hashed)

    def _keys(self) -> HashKeys:
        if self.hash_keys is None:
            raise ConfigError(
                "the policy has no hash key: load it with load_policy(..., hash_keys=...) "
                "(c360.deps.hash_keys(settings) opens the data directory's key ring)"
            )
        return self.hash_keys

    # -- keys, evidence, free text --------------------------------------------------------------------

    def mask_key(self, role: str, key: str) -> str:
        """A record key as ``role`` may see it (the ``source_key`` rule): as is, or its keyed hash.

        Keys are hashed exactly as given (no case-folding): distinct records keep distinct handles.
        """
        if self.rule(role, SOURCE_KEY) == "full":
            return key
        return self._keys().hash(key)

    def mask_uid(self, role: str, uid: str) -> str:
        """A record uid ``source|key`` with its key as ``role`` may see it (the source name stays)."""
        if self.rule(role, SOURCE_KEY) == "full":
            return uid
        source, bar, key = uid.partition("|")
        return f"{source}|{self.mask_key(role, key)}" if bar else self.mask_key(role, uid)

    def shows_keys(self, role: str) -> bool:
        """Whether ``role`` sees record keys (and free text) as they are."""
        return self.rule(role, SOURCE_KEY) == "full"

    def mask_note(self, role: str, note: str | None) -> str | None:
        """Free text that may quote keys or personal data: shown only where keys are shown in full."""
        return note if note is not None and self.shows_keys(role) else None

    def mask_identifier(self, role: str, uid: str) -> str | None:
        """An identifier ``kind|value`` with its value masked by its field's rule; None when denied."""
        kind, _, value = uid.partition("|")
        masked = self.mask(role, IDENTIFIER_FIELDS.get(kind, "customer_number"), value)
        return None if masked is None else f"{kind}|{masked}"

    def mask_evidence(self, role: str, evidence: Mapping[str, Any]) -> dict[str, Any]:
        """Link or merge evidence (``Evidence.to_json`` shape): identifiers, record uid and note masked."""
        out = dict(evidence)
        if "identifiers" in out:
            out["identifiers"] = [m for uid in out["identifiers"] if (m := self.mask_identifier(role, uid))]
        if out.get("record"):
            out["record"] = self.mask_uid(role, out["record"])
        if "note" in out:
            note = self.mask_note(role, out.pop("note"))
            if note is not None:
                out["note"] = note
        return out

    def mask_history_event(self, role: str, event: Mapping[str, Any]) -> dict[str, Any]:
        """A merge or split (``MergeEvent.to_json`` / ``SplitEvent.to_json``): record uids and evidence masked."""
        out = dict(event)
        out["records"] = [self.mask_uid(role, uid) for uid in out.get("records") or ()]
        if "evidence" in out:
            out["evidence"] = self.mask_evidence(role, out["evidence"])
        return out

    def mask_event(self, role: str, data: Mapping[str, Any]) -> dict[str, Any]:
        """A stored event's payload (timelines): its ``customer_key`` is a record key, ``event_id`` the source's.

        Both follow the ``source_key`` rule; the rest (order and product ids, amounts) passes.
        """
        out = dict(data)
        for name in ("customer_key", "event_id"):
            if isinstance(out.get(name), str):
                out[name] = self.mask_key(role, out[name])
        profile = out.get("profile")
        if isinstance(profile, Mapping) and isinstance(profile.get("customer_key"), str):
            out["profile"] = self.mask_record(role, profile) | {
                "customer_key": self.mask_key(role, profile["customer_key"])
            }
        return out

    def mask_review_item(self, role: str, item: ReviewItem) -> ReviewItem:
        """A review item with its record uids masked and its reason (free text) left out unless keys are shown."""
        if self.shows_keys(role):
            return item
        return replace(
            item,
            record_uid=self.mask_uid(role, item.record_uid),
            candidate_uid=self.mask_uid(role, item.candidate_uid),
            reason=None,
        )

    # -- search -------------------------------------------------------------------------------------

    def may_search(self, role: str, name: str) -> bool:
        """Whether ``role`` may search customers by field ``name``: it may search and sees the field in full."""
        if role not in self.rules or not self.can(role, "search_customers"):
            return False
        return self.rule(role, name) == "full"

    def require_search(self, principal_or_role: Principal | str, names: Sequence[str]) -> None:
        """ForbiddenError unless the role may search by every one of ``names`` (see :meth:`may_search`)."""
        role = principal_or_role if isinstance(principal_or_role, str) else principal_or_role.role
        self.require(role, "search_customers")
        for name in names:
            if not self.may_search(role, name):
                raise ForbiddenError(
                    f"role {role} may not search by {name}: a search answers who is a customer, so it needs "
                    f"{name} in full, and this role sees it as {self.rule(role, name)}"
                )

    def income_band(self, value: Any) -> str | None:
        """The band of an income (a number or numeric text), or None when it is not a number."""
        amount = number(value)
        if amount is None:
            return None
        bands = self.income_bands
        if amount < bands[0]:
            return f"<{thousands(bands[0])}"
        for low, high in pairwise(bands):
            if amount < high:
                return f"{thousands(low)}-{thousands(high)}"
        return f"{thousands(bands[-1])}+"

    def mask(self, role: str, name: str, value: Any, *, today: date | None = None) -> Any:
        """``value`` of field ``name`` as ``role`` may see it; None when denied (or absent).

        ``age`` may be given as an age or as a birth date; it is then computed as of ``today``.
        """
        rule = self.rule(role, name)
        if value is None or rule == "deny":
            return None
        if name == "age":
            value = age_of(value, today or date.today())
            if value is None:
                return None
        if rule == "full":
            return value
        if rule == "hash":
            return self.hash(value)
        if rule == "range":
            return age_band(value) if name == "age" else self.income_band(value)
        return partial(name, value)

    def mask_golden(self, role: str, golden: Mapping[str, Any], *, today: date | None = None) -> dict[str, Any]:
        """A golden record (field -> plain value) as ``role`` may see it.

        Denied fields are left out; so is any key that is neither a field nor listed under
        ``passthrough``. ``age`` is added from ``date_of_birth`` unless the role's age rule is deny.
        """
        return self._mask_mapping(role, golden, today or date.today())

    def mask_record(self, role: str, record: Mapping[str, Any], *, today: date | None = None) -> dict[str, Any]:
        """A source record (``SourceRecord.to_json()`` shape) as ``role`` may see it.

        As :meth:`mask_golden`; ``source`` and ``observed_at`` pass through, ``key`` and ``uid`` follow the
        ``source_key`` rule. In ``attributes``, ``annual_income`` follows its field's rule and the others the
        ``attributes`` rule.
        """
        return self._mask_mapping(role, record, today or date.today())

    def _mask_mapping(self, role: str, data: Mapping[str, Any], today: date) -> dict[str, Any]:
        rules = self.rules.get(role)
        if rules is None:
            raise InvalidInputError(f"unknown role {role!r}; the policy knows: {', '.join(self.roles)}")
        out: dict[str, Any] = {}
        for name, value in data.items():
            if name == ATTRIBUTES:
                attributes = self._mask_attributes(role, value or {}, today)
                if attributes:
                    out[name] = attributes
            elif name in KEY_NAMES and isinstance(value, str):
                out[name] = self.mask_key(role, value)
            elif name in UID_NAMES and isinstance(value, str):
                out[name] = self.mask_uid(role, value)
            elif name in rules:
                masked = self.mask(role, name, value, today=today)
                if masked is not None:
                    out[name] = masked
            elif name in self.passthrough:
                out[name] = value
        if "age" not in data and data.get("date_of_birth") is not None and rules["age"] != "deny":
            age = self.mask(role, "age", data["date_of_birth"], today=today)
            if age is not None:
                out["age"] = age
        return out

    def _mask_attributes(self, role: str, attributes: Mapping[str, Any], today: date) -> dict[str, Any]:
        rule = self.rule(role, ATTRIBUTES)
        out: dict[str, Any] = {}
        for name, value in attributes.items():
            if name == "annual_income":
                masked = self.mask(role, name, value, today=today)
            elif value is None or rule == "deny":
                masked = None
            else:
                masked = value if rule == "full" else self.hash(value)
            if masked is not None:
                out[name] = masked
        return out


# -- loading ---------------------------------------------------------------------------------------


def _where(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"


def _build(model: _PolicyModel, path: Path) -> Policy:
    def fail(where: str, problem: str) -> InvalidInputError:
        return InvalidInputError(f"{path.name}: {where}: {problem}")

    for action in model.actions:
        if not _ID.match(action):
            raise fail(f"actions.{action}", "an action id is lower-case letters, digits and '_'")
    if not model.roles:
        raise fail("roles", "the policy defines no roles")
    bands = tuple(model.income_bands)
    if not bands or any(b <= 0 for b in bands) or any(a >= b for a, b in pairwise(bands)):
        raise fail("income_bands", "give positive band edges in increasing order, e.g. [25000, 50000]")
    if model.hash_salt:
        raise fail(
            "hash_salt",
            "hashes are keyed now (HMAC with the secret key ring of the data directory, api.hash_key_file); "
            "a salt in the policy file is not a secret: remove it",
        )
    clash = set(model.passthrough) & ({*FIELDS, ATTRIBUTES, SOURCE_KEY})
    if clash:
        raise fail("passthrough", f"{', '.join(sorted(clash))} are masked fields; they cannot pass through")
    keys = set(model.passthrough) & (KEY_NAMES | UID_NAMES)
    if keys:
        raise fail("passthrough", f"{', '.join(sorted(keys))} hold record keys: they follow the source_key rule")

    grants: dict[str, frozenset[str]] = {}
    rules: dict[str, Mapping[str, Rule]] = {}
    for role, spec in model.roles.items():
        if not _ID.match(role):
            raise fail(f"roles.{role}", "a role id is lower-case letters, digits and '_'")
        if spec.actions == "*":
            grants[role] = frozenset(model.actions)
        elif isinstance(spec.actions, str):
            raise fail(f"roles.{role}.actions", f'give a list of actions, or "*" for all (got {spec.actions!r})')
        else:
            unknown = [a for a in spec.actions if a not in model.actions]
            if unknown:
                raise fail(
                    f"roles.{role}.actions",
                    f"unknown action {unknown[0]!r} (known: {', '.join(model.actions)})",
                )
            grants[role] = frozenset(spec.actions)
        if DEFAULT not in spec.fields:
            raise fail(f"roles.{role}.fields", "needs a 'default' rule for the fields it does not list")
        unknown = [f for f in spec.fields if f not in (*FIELDS, ATTRIBUTES, SOURCE_KEY, DEFAULT)]
        if unknown:
            raise fail(f"roles.{role}.fields", f"unknown field {unknown[0]!r} (fields: {', '.join(FIELDS)})")
        resolved: dict[str, Rule] = {}
        for name in (*FIELDS, ATTRIBUTES):
            listed = name in spec.fields
            rule = spec.fields[name] if listed else spec.fields[DEFAULT]
            allowed = _allowed(name)
            if rule not in allowed:
                where = f"roles.{role}.fields.{name if listed else DEFAULT}"
                hint = "" if listed else f"; list a rule for {name}"
                raise fail(
                    where,
                    f"rule {rule!r} does not apply to {name} (it may be {', '.join(sorted(allowed))}){hint}",
                )
            resolved[name] = rule
        if SOURCE_KEY in spec.fields:
            key_rule = spec.fields[SOURCE_KEY]
            if key_rule not in _KEY_RULES:
                raise fail(
                    f"roles.{role}.fields.{SOURCE_KEY}",
                    f"rule {key_rule!r} does not apply to {SOURCE_KEY} (it may be full, hash)",
                )
        else:  # not `default`: keys may be made of any identifying field, so full only if all of them are
            key_rule = "full" if all(resolved[f] == "full" for f in KEY_FIELDS) else "hash"
        resolved[SOURCE_KEY] = key_rule
        rules[role] = MappingProxyType(resolved)
    return Policy(
        roles=tuple(model.roles),
        actions=tuple(model.actions),
        grants=MappingProxyType(grants),
        rules=MappingProxyType(rules),
        income_bands=bands,
        passthrough=frozenset(model.passthrough),
        source=path,
    )


def load_policy(path: Path | None = None, *, hash_keys: HashKeys | None = None) -> Policy:
    """Read and validate a policy file (None: the bundled ``policy.yaml``).

    ``hash_keys`` is the secret of the ``hash`` rule (the API passes the data directory's ring,
    :func:`c360.deps.hash_keys`); a policy loaded without one knows roles and rules but cannot hash.
    """
    path = path or BUNDLED_POLICY
    origin = path.name
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_StrictLoader)  # a SafeLoader
    except OSError as exc:
        raise InvalidInputError(f"cannot read the policy {path}: {exc.strerror}") from exc
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise InvalidInputError(f"{origin}: not valid YAML{at}: {exc.problem or exc.context}") from exc
    except yaml.YAMLError as exc:
        raise InvalidInputError(f"{origin}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidInputError(f"{origin}: the policy must be a mapping (version, actions, roles, ...)")
    try:
        model = _PolicyModel.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        got = first.get("input")
        shown = f" (got {got!r})" if isinstance(got, str | int | float) and first["type"] != "missing" else ""
        more = f"; and {exc.error_count() - 1} more problem(s)" if exc.error_count() > 1 else ""
        raise InvalidInputError(f"{origin}: {_where(first['loc'])}: {first['msg']}{shown}{more}") from exc
    policy = _build(model, path)
    return policy if hash_keys is None else policy.with_hash_keys(hash_keys)
