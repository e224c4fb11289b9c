"""What a GraphQL document and its variables may hold, checked in one walk without expanding fragments.

The limits of one document (:class:`Limits`, for :mod:`~c360.graphql.query_cost` too), and the checks
that need no fragment expanded: no empty selection set (graphql-core parses them), no introspection
(``__schema``, ``__type``) unless allowed (dev mode), no string longer than :attr:`Limits.max_string`
characters in the document or, at any depth, in the variables (a 10 MB ``customer(id:)`` was
answered and audited whole).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from c360.graph.errors import InvalidInputError
from graphql.language import DocumentNode, FieldNode, Node, SelectionSetNode, StringValueNode, Visitor, visit

from .errors import IntrospectionDisabled


@dataclass(frozen=True, slots=True)
class Limits:
    """What one GraphQL document may ask for."""

    max_cost: int = 5000
    max_depth: int = 10
    max_aliases: int = 30
    max_selections: int = 10_000
    max_repeats: int = 2000
    max_string: int = 2048
    introspection: bool = False


@dataclass(frozen=True, slots=True)
class Problem:
    """Why a document is refused, and where."""

    error: InvalidInputError
    nodes: tuple[Node, ...] = ()


_EMPTY = "a selection set cannot be empty: name the fields you want"


class _Literals(Visitor):
    def __init__(self, limits: Limits) -> None:
        super().__init__()
        self.limits = limits
        self.problems: list[Problem] = []

    def enter_field(self, node: FieldNode, *_: Any) -> None:
        introspection = node.name.value in ("__schema", "__type") and not self.limits.introspection
        if introspection and not any(isinstance(p.error, IntrospectionDisabled) for p in self.problems):
            self.problems.append(Problem(IntrospectionDisabled("introspection is disabled in production"), (node,)))

    def enter_selection_set(self, node: SelectionSetNode, *_: Any) -> None:
        if not node.selections and not any(p.error.args == (_EMPTY,) for p in self.problems):
            self.problems.append(Problem(InvalidInputError(_EMPTY), (node,)))

    def enter_string_value(self, node: StringValueNode, *_: Any) -> None:
        if len(node.value) > self.limits.max_string:
            message = f"a string of {len(node.value)} characters, more than {self.limits.max_string}"
            self.problems.append(Problem(InvalidInputError(message), (node,)))


def literal_problems(document: DocumentNode, limits: Limits) -> list[Problem]:
    """Introspection fields and long strings anywhere in the document (one walk, fragments not expanded)."""
    visitor = _Literals(limits)
    visit(document, visitor)
    return visitor.problems[:5]


def variable_problems(variables: Mapping[str, Any] | None, limits: Limits) -> list[Problem]:
    """Strings in the variables longer than the limit (at any depth, walked without recursion)."""
    stack: list[tuple[str, Any]] = list((variables or {}).items())
    while stack:
        name, value = stack.pop()
        if isinstance(value, str) and len(value) > limits.max_string:
            message = f"variable ${name} holds a string of {len(value)} characters, more than {limits.max_string}"
            return [Problem(InvalidInputError(message))]
        if isinstance(value, dict):
            stack.extend((name, v) for v in value.values())
            stack.extend((name, k) for k in value)
        elif isinstance(value, list):
            stack.extend((name, v) for v in value)
    return []
