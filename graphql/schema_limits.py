"""The schema's guards: error codes on every error (from the error table), and limits on query cost."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import strawberry
from c360.graph.errors import C360Error
from graphql.error import GraphQLError
from graphql.language import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
)
from graphql.validation import ValidationRule
from strawberry.extensions import SchemaExtension

from .errors import error_code
from .service import MAX_PAGE

log = logging.getLogger(__name__)

#: limits on what one query may ask for
MAX_DEPTH = 10
MAX_ALIASES = 30
MAX_TOKENS = 3000


class ErrorCodes(SchemaExtension):
    """Gives every error an ``extensions.code``; hides the message of unexpected ones (they are logged)."""

    def on_operation(self) -> Iterator[None]:
        """After the operation: recode its errors."""
        yield
        result = self.execution_context.result
        errors = getattr(result, "errors", None)
        if not errors:
            return
        out = []
        for error in errors:
            original = error.original_error
            code = error_code(original)
            message = error.message
            if code == "INTERNAL_SERVER_ERROR":
                if not isinstance(original, C360Error):
                    log.error("unexpected error in a GraphQL resolver", exc_info=original)
                message = "internal error; it is logged"
            out.append(
                GraphQLError(
                    message, nodes=error.nodes, positions=error.positions, path=error.path, extensions={"code": code}
                )
            )
        result.errors = out  # type: ignore[union-attr]


#: most fields a query may cost, counting each field once per item of the pages around it
MAX_COST = 5000
_PAGED = frozenset({"customers", "timeline", "orders", "transactions", "reviewQueue"})


def _page_size(node: FieldNode) -> int:
    for arg in node.arguments or ():
        if arg.name.value == "first":
            return max(1, int(arg.value.value)) if isinstance(arg.value, IntValueNode) else MAX_PAGE
    return 20 if node.name.value in _PAGED else 1  # the schema's default page size


def _cost(
    selections: SelectionSetNode | None, fragments: dict[str, FragmentDefinitionNode], seen: frozenset[str]
) -> int:
    """Fields a selection may resolve: a field inside a page counts once per item of that page."""
    total = 0
    for node in selections.selections if selections else ():
        if isinstance(node, FieldNode):
            total += 1 + _page_size(node) * _cost(node.selection_set, fragments, seen)
        elif isinstance(node, InlineFragmentNode):
            total += _cost(node.selection_set, fragments, seen)
        elif isinstance(node, FragmentSpreadNode) and node.name.value not in seen:
            fragment = fragments.get(node.name.value)
            if fragment is not None:
                total += _cost(fragment.selection_set, fragments, seen | {node.name.value})
    return total


def cost_rule(max_cost: int) -> type[ValidationRule]:
    """A validation rule that refuses operations whose estimated cost exceeds ``max_cost``."""

    class QueryCost(ValidationRule):
        def enter_document(self, node: DocumentNode, *_: Any) -> None:
            fragments = {d.name.value: d for d in node.definitions if isinstance(d, FragmentDefinitionNode)}
            for d in node.definitions:
                if isinstance(d, OperationDefinitionNode):
                    cost = _cost(d.selection_set, fragments, frozenset())
                    if cost > max_cost:
                        self.report_error(
                            GraphQLError(
                                f"the query may resolve {cost} fields, more than {max_cost}; ask for smaller pages", d
                            )
                        )

    return QueryCost


class Schema(strawberry.Schema):
    """The strawberry schema, logging only unexpected errors."""

    def process_errors(self, errors: list[GraphQLError], execution_context: Any = None) -> None:
        """Log only what is unexpected: a NOT_FOUND or FORBIDDEN is the client's business, not an incident."""
        unexpected = [e for e in errors if error_code(e.original_error) == "INTERNAL_SERVER_ERROR"]
        if unexpected:
            super().process_errors(unexpected, execution_context)
