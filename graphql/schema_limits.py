"""The schema's guards: what a query may ask for, checked before it runs, and a code on every error.

:class:`QueryGuard` replaces strawberry's validation step. It first runs the analysis of
:mod:`~c360.graphql.query_cost` (linear in the document: cost, depth, aliases, size, repeated
fields, introspection, string lengths), and only a document that passes goes on to graphql-core's
rules, whose result is cached by document text. strawberry's ``QueryDepthLimiter`` and
``MaxAliasesLimiter`` are not used: they expand fragments without memoising (a fragment bomb took
minutes on the event loop) and fail with internal messages on empty selections and unknown fragments.

:class:`Schema` gives every error of every answer an ``extensions.code`` from the error table
(:func:`~c360.graphql.errors.graphql_answer`), hides the message of unexpected ones (they are
logged) and, outside dev mode, drops graphql-core's "did you mean" suggestions.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from typing import Any

import strawberry
from graphql.error import GraphQLError
from graphql.language import DocumentNode
from graphql.type import GraphQLSchema
from graphql.validation import ASTValidationRule, specified_rules, validate
from strawberry.extensions import SchemaExtension
from strawberry.schema.validation_rules.maybe_null import MaybeNullValidationRule
from strawberry.schema.validation_rules.one_of import OneOfInputValidationRule
from strawberry.types import ExecutionResult

from .errors import graphql_answer, graphql_message
from .query_cost import Analyser, Limits

log = logging.getLogger(__name__)

#: the default limits on what one query may ask for
LIMITS = Limits()
MAX_DEPTH = LIMITS.max_depth
MAX_ALIASES = LIMITS.max_aliases
MAX_COST = LIMITS.max_cost
MAX_TOKENS = 3000


class ValidationResults:
    """Which documents graphql-core found valid, by document text (``size`` of them, least recently used out)."""

    def __init__(self, schema_rules: Sequence[type[ASTValidationRule]], *, dev_mode: bool, size: int = 256) -> None:
        self.rules = (*specified_rules, *schema_rules, MaybeNullValidationRule, OneOfInputValidationRule)
        self.dev_mode = dev_mode
        self.size = size
        self._results: OrderedDict[str, list[GraphQLError]] = OrderedDict()
        self._lock = threading.Lock()

    def validate(self, schema: GraphQLSchema, document: DocumentNode, text: str | None) -> list[GraphQLError]:
        """The validation errors of ``document`` (whose text is ``text``, the cache key)."""
        if text is not None:
            with self._lock:
                cached = self._results.get(text)
                if cached is not None:
                    self._results.move_to_end(text)
                    return cached
        errors = validate(
            schema, document, self.rules, hide_suggestions=not self.dev_mode, allow_empty_selection_sets=False
        )
        if text is not None and not errors:  # only verdicts of valid documents: errors hold their nodes
            with self._lock:
                self._results[text] = errors
                while len(self._results) > self.size:
                    self._results.popitem(last=False)
        return errors


class QueryGuard(SchemaExtension):
    """Validation: the linear analysis first, then graphql-core's rules (cached) for what passes it."""

    def __init__(self, analyser: Analyser, results: ValidationResults) -> None:
        self.analyser = analyser
        self.results = results

    def on_validate(self) -> Iterator[None]:
        """Decide the document's errors before strawberry would validate (it then skips its own step)."""
        ctx = self.execution_context
        document = ctx.graphql_document
        assert document is not None
        schema = ctx.schema._schema
        problems = self.analyser.problems(schema, document, ctx.variables, ctx.query)
        if problems:
            ctx.pre_execution_errors = [
                GraphQLError(str(p.error), nodes=list(p.nodes) or None, original_error=p.error) for p in problems
            ]
        else:
            ctx.pre_execution_errors = self.results.validate(schema, document, ctx.query)
        yield


def recode(errors: Sequence[GraphQLError], *, dev_mode: bool) -> list[GraphQLError]:
    """The errors as clients see them: a code each, unexpected messages hidden (and logged)."""
    out = []
    for error in errors:
        answer = graphql_answer(error)
        if not answer.public:
            log.error("unexpected error in a GraphQL operation", exc_info=error.original_error)
        out.append(
            GraphQLError(
                graphql_message(error, answer, suggestions=dev_mode),
                nodes=error.nodes,
                positions=error.positions,
                path=error.path,
                extensions={"code": answer.code},
            )
        )
    return out


class Schema(strawberry.Schema):
    """The strawberry schema: every answer's errors recoded by :func:`recode`; only unexpected ones logged."""

    dev_mode: bool = False

    async def execute(self, *args: Any, **kwargs: Any) -> ExecutionResult:
        """Execute, then recode the errors (from parsing, validation and resolvers alike)."""
        result = await super().execute(*args, **kwargs)
        if result.errors:
            result.errors = recode(result.errors, dev_mode=self.dev_mode)
        return result

    def process_errors(self, errors: list[GraphQLError], execution_context: Any = None) -> None:
        """Log nothing here: :func:`recode` logs what is unexpected (a FORBIDDEN is the client's business)."""
