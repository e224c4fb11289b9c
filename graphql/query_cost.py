"""What a GraphQL document may cost, found in time linear in the document, before anything runs.

A fragment spread ten times is still analysed once: each fragment's measure (its cost, depth,
aliases and size once expanded) is computed once, in dependency order, and added wherever it is
spread. So a document of eight fragments each spreading the next ten times (10^8 expansions) costs
a few hundred steps, not 10^8. The analysis refuses, each with a message that says why:

- **cost**: the fields a query may resolve, each counted once per item of the pages around it. A
  page (a type with ``pageInfo``: ``customers``, ``timeline``, ``orders``, ...) multiplies the fields
  of its item list (``nodes``, ``events``, ``orders``, ...) by its ``first``, once: not its
  ``pageInfo``, and not again at the item list. ``first`` counts with its value (a literal, the
  request's variable, the variable's or the schema's default; :data:`MAX_PAGE` when unknown). Other
  lists (golden fields, identifiers, line items) hold what the data holds; they count as one item.
- **depth**: levels of fields with a selection (as strawberry counted them; introspection fields
  are not counted, so GraphiQL's own query passes in dev mode);
- **aliases**, counted once per spread of the fragment that holds them;
- **size**: selections once every fragment is spread out, in the whole document, so that what
  runs after (graphql-core's rules, execution) walks a bounded tree;
- **repeats**: graphql-core compares every pair of fields with one response name in one selection
  (fragments merged in), recursively: 600 copies of ``golden { name }`` took seconds. The analysis
  adds up those comparisons (k² for k copies, then the same within their merged sub-selections) and
  refuses more than :attr:`Limits.max_repeats`;
- fragment cycles (invalid GraphQL, which must not loop here); and, from
  :mod:`~c360.graphql.query_input`, empty selections, introspection outside dev mode and long strings.

Only a document that passes goes on to graphql-core's validation. :class:`Analyser` keeps what does
not depend on the variables by document text, so a client's usual documents cost a dictionary look-up
(and, when a variable gives a page size, the cost pass again).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from c360.graph.errors import InvalidInputError
from graphql.language import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    VariableNode,
)
from graphql.type import (
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    SchemaMetaFieldDef,
    TypeMetaFieldDef,
    get_named_type,
)

from .query_input import Limits, Problem, literal_problems, variable_problems
from .service import MAX_PAGE

__all__ = ["CAP", "Analyser", "Limits", "Measure", "Problem", "analyse"]

#: no count grows past this (a bomb's 10^8 stays a small int, and so do products of pages)
CAP = 10**12


@dataclass(slots=True)
class Measure:
    """A selection's fields resolved once (``fixed``) and once per item of the page around it (``items``)."""

    fixed: int = 0
    items: int = 0
    depth: int = 0
    aliases: int = 0
    size: int = 0

    @property
    def cost(self) -> int:
        """Fields resolved, outside any page."""
        return min(CAP, self.fixed + self.items)

    def add(self, other: Measure) -> None:
        """Add a selection beside this one."""
        self.fixed = min(CAP, self.fixed + other.fixed)
        self.items = min(CAP, self.items + other.items)
        self.depth = max(self.depth, other.depth)
        self.aliases = min(CAP, self.aliases + other.aliases)
        self.size = min(CAP, self.size + other.size)


@dataclass(frozen=True, slots=True)
class _Verdict:
    """What holds for a document whatever its variables; ``by_variables``: its cost depends on them."""

    problems: list[Problem]
    by_variables: bool


class Analyser:
    """:func:`analyse` with what does not depend on the variables cached by document text.

    Only documents that pass are kept (``size`` of them, the least recently used go), by their text
    alone: a 3,000-token document parses to about 1 MB of nodes, which a cache must not keep alive.
    """

    def __init__(self, limits: Limits, size: int = 256) -> None:
        self.limits = limits
        self.size = size
        self._verdicts: OrderedDict[str, _Verdict] = OrderedDict()
        self._lock = threading.Lock()

    def problems(
        self, schema: GraphQLSchema, document: DocumentNode, variables: Mapping[str, Any] | None, text: str | None
    ) -> list[Problem]:
        """The reasons to refuse ``document`` (whose text is ``text``) with these ``variables``."""
        problems = variable_problems(variables, self.limits)
        with self._lock:
            verdict = self._verdicts.get(text) if text is not None else None
            if verdict is not None:
                self._verdicts.move_to_end(text)  # type: ignore[arg-type]
        if verdict is None:
            verdict = _verdict(schema, document, self.limits)
            if text is not None and not verdict.problems:  # a refusal's nodes would keep its tree alive
                with self._lock:
                    self._verdicts[text] = verdict
                    while len(self._verdicts) > self.size:
                        self._verdicts.popitem(last=False)
        problems += verdict.problems
        if verdict.by_variables and not problems:  # the cost with the request's page sizes
            problems += _Analysis(schema, document, variables or {}).measure(self.limits)[0]
        return problems


def analyse(
    schema: GraphQLSchema, document: DocumentNode, variables: Mapping[str, Any] | None, limits: Limits
) -> list[Problem]:
    """The reasons to refuse ``document`` with these ``variables``; empty when it may be validated and run."""
    return Analyser(limits, size=0).problems(schema, document, variables, None)


def _verdict(schema: GraphQLSchema, document: DocumentNode, limits: Limits) -> _Verdict:
    """Everything but the strings of the variables, with page sizes given by variables taken as unknown."""
    problems = literal_problems(document, limits)
    analysis = _Analysis(schema, document, {})
    if analysis.cycle is not None:
        name, spread = analysis.cycle
        problems.append(Problem(InvalidInputError(f"Cannot spread fragment '{name}' within itself."), (spread,)))
        return _Verdict(problems, False)
    try:
        cost, others = analysis.measure(limits)
        problems += ([] if analysis.by_variables else cost) + others
        if not others:
            problems += analysis.repeats(limits)
    except RecursionError:
        problems.append(Problem(InvalidInputError("the document nests too deeply")))
        return _Verdict(problems, False)
    return _Verdict(problems, analysis.by_variables)


def _spreads(selection_set: SelectionSetNode | None) -> Iterable[FragmentSpreadNode]:
    """The fragment spreads anywhere inside a selection set (fragments not expanded)."""
    stack = [selection_set] if selection_set else []
    while stack:
        for node in stack.pop().selections:
            if isinstance(node, FragmentSpreadNode):
                yield node
            elif node.selection_set:  # type: ignore[attr-defined]
                stack.append(node.selection_set)  # type: ignore[attr-defined]


@dataclass
class _Analysis:
    schema: GraphQLSchema
    document: DocumentNode
    variables: Mapping[str, Any]
    fragments: dict[str, FragmentDefinitionNode] = field(default_factory=dict)
    operations: list[OperationDefinitionNode] = field(default_factory=list)
    memo: dict[str, Measure] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    cycle: tuple[str, FragmentSpreadNode] | None = None
    defaults: dict[str, int] = field(default_factory=dict)
    pages: dict[str, bool] = field(default_factory=dict)
    by_variables: bool = False  # a page size was given by a variable

    def __post_init__(self) -> None:
        for d in self.document.definitions:
            if isinstance(d, FragmentDefinitionNode):
                self.fragments.setdefault(d.name.value, d)
            elif isinstance(d, OperationDefinitionNode):
                self.operations.append(d)
                for v in d.variable_definitions or ():
                    if isinstance(v.default_value, IntValueNode):
                        value = int(v.default_value.value)
                        self.defaults[v.variable.name.value] = max(value, self.defaults.get(v.variable.name.value, 1))
        self._sort()

    def _sort(self) -> None:
        """Fragments in dependency order (what a fragment spreads comes first); the first cycle found."""
        deps = {name: list(_spreads(f.selection_set)) for name, f in self.fragments.items()}
        state: dict[str, int] = {}  # 1: on the path, 2: done
        for root in self.fragments:
            if root in state:
                continue
            state[root] = 1
            stack = [(root, iter(deps[root]))]
            while stack:
                name, todo = stack[-1]
                spread = next(todo, None)
                if spread is None:
                    stack.pop()
                    state[name] = 2
                    self.order.append(name)
                    continue
                target = spread.name.value
                if target not in self.fragments:
                    continue
                if state.get(target) == 1:
                    self.cycle = self.cycle or (target, spread)
                elif target not in state:
                    state[target] = 1
                    stack.append((target, iter(deps[target])))

    # -- cost, depth, aliases, size: each fragment once ---------------------------------------------

    def measure(self, limits: Limits) -> tuple[list[Problem], list[Problem]]:
        """Measure every fragment once, then every operation; what exceeds the limits (cost, the others)."""
        total = 0
        for name in self.order:
            fragment = self.fragments[name]
            condition = self._type(fragment.type_condition.name.value)
            self.memo[name] = m = self._selections(fragment.selection_set, condition)
            total = min(CAP, total + m.size)
        costly, problems = [], []
        for op in self.operations:
            m = self._selections(op.selection_set, self._root(op.operation))
            total = min(CAP, total + m.size)
            name = op.name.value if op.name else "anonymous"
            if m.cost > limits.max_cost:
                message = f"the query may resolve {m.cost} fields, more than {limits.max_cost}; ask for smaller pages"
                costly.append(Problem(InvalidInputError(message), (op,)))
            if m.depth > limits.max_depth:
                message = f"'{name}' exceeds maximum operation depth of {limits.max_depth} (it is {m.depth} deep)"
                problems.append(Problem(InvalidInputError(message), (op,)))
            if m.aliases > limits.max_aliases:
                message = f"{m.aliases} aliases found, more than the {limits.max_aliases} allowed"
                problems.append(Problem(InvalidInputError(message), (op,)))
        if total > limits.max_selections:
            message = f"the document expands to {total} selections, more than {limits.max_selections}"
            problems.append(Problem(InvalidInputError(message)))
        return costly, problems

    def _selections(self, selection_set: SelectionSetNode | None, parent: GraphQLNamedType | None) -> Measure:
        out = Measure()
        for node in selection_set.selections if selection_set else ():
            if isinstance(node, FieldNode):
                out.add(self._field(node, parent))
            elif isinstance(node, InlineFragmentNode):
                inner = self._type(node.type_condition.name.value) if node.type_condition else parent
                out.add(self._selections(node.selection_set, inner))
                out.size += 1
            elif isinstance(node, FragmentSpreadNode):
                out.add(self.memo.get(node.name.value, Measure()))  # unknown: graphql-core says so
                out.size += 1
        return out

    def _field(self, node: FieldNode, parent: GraphQLNamedType | None) -> Measure:
        name = node.name.value
        definition = self._field_def(parent, name)
        of_type = definition.type if definition else None
        while isinstance(of_type, GraphQLNonNull):
            of_type = of_type.of_type
        named = get_named_type(of_type) if of_type is not None else None
        sub = self._selections(node.selection_set, named) if node.selection_set else Measure()
        out = Measure(aliases=min(CAP, sub.aliases + (1 if node.alias else 0)), size=min(CAP, sub.size + 1))
        if node.selection_set is not None and not name.startswith("__"):
            out.depth = sub.depth + 1
        if named is not None and self._is_page(named):  # a page: its item list counts per item
            out.fixed = min(CAP, 1 + sub.fixed + self._first(node, definition) * sub.items)
        elif parent is not None and self._is_page(parent) and isinstance(of_type, GraphQLList):
            out.fixed, out.items = 1, sub.cost  # the page's item list
        else:
            out.fixed = min(CAP, 1 + sub.cost)
        return out

    def _first(self, node: FieldNode, definition: GraphQLField | None) -> int:
        """The page size a page field asks for."""
        arg = next((a for a in node.arguments or () if a.name.value == "first"), None)
        value: Any = None
        if arg is None:
            default = definition.args["first"].default_value if definition and "first" in definition.args else None
            value = default if isinstance(default, int) else MAX_PAGE
        elif isinstance(arg.value, IntValueNode):
            value = int(arg.value.value)
        elif isinstance(arg.value, VariableNode):
            self.by_variables = True
            name = arg.value.name.value
            value = self.variables.get(name, self.defaults.get(name, MAX_PAGE))
        if isinstance(value, bool) or not isinstance(value, int):
            value = MAX_PAGE
        return min(CAP, max(1, int(value)))

    # -- the overlap comparisons graphql-core will make ---------------------------------------------

    def repeats(self, limits: Limits) -> list[Problem]:
        """Refuse a document whose same-named fields graphql-core would compare too many times.

        Walks every definition with its fragments spread out (bounded: :meth:`measure` passed), in
        merged selections: the fields of one response name in one selection, with their sub-selections
        merged in turn.
        """
        work, worst, worst_count = 0, "", 0
        for d in self.document.definitions:
            if not isinstance(d, OperationDefinitionNode | FragmentDefinitionNode):
                continue
            stack = [[d.selection_set]]
            while stack:
                groups: dict[str, list[SelectionSetNode | None]] = {}
                pending = stack.pop()
                while pending:
                    for node in pending.pop().selections:
                        if isinstance(node, FieldNode):
                            groups.setdefault((node.alias or node.name).value, []).append(node.selection_set)
                        elif isinstance(node, InlineFragmentNode):
                            pending.append(node.selection_set)
                        elif isinstance(node, FragmentSpreadNode) and node.name.value in self.fragments:
                            pending.append(self.fragments[node.name.value].selection_set)
                for key, subs in groups.items():
                    work += len(subs) * len(subs)
                    if len(subs) > worst_count:
                        worst, worst_count = key, len(subs)
                    children = [s for s in subs if s is not None]
                    if children:
                        stack.append(children)
                if work > limits.max_repeats:
                    message = (
                        f"the query repeats fields too often ({work} comparisons, more than {limits.max_repeats}): "
                        f"'{worst}' is asked for {worst_count} times in one selection; ask for each field once"
                    )
                    return [Problem(InvalidInputError(message))]
        return []

    # -- the schema ---------------------------------------------------------------------------------

    def _root(self, operation: OperationType) -> GraphQLObjectType | None:
        if operation == OperationType.QUERY:
            return self.schema.query_type
        if operation == OperationType.MUTATION:
            return self.schema.mutation_type
        return self.schema.subscription_type

    def _type(self, name: str) -> GraphQLNamedType | None:
        return self.schema.get_type(name)

    def _field_def(self, parent: GraphQLNamedType | None, name: str) -> GraphQLField | None:
        if parent is not None and parent is self.schema.query_type:
            if name == "__schema":
                return SchemaMetaFieldDef
            if name == "__type":
                return TypeMetaFieldDef
        if isinstance(parent, GraphQLObjectType | GraphQLInterfaceType):
            found: GraphQLField | None = parent.fields.get(name)
            return found
        return None

    def _is_page(self, t: GraphQLNamedType) -> bool:
        if t.name not in self.pages:
            self.pages[t.name] = isinstance(t, GraphQLObjectType) and "pageInfo" in t.fields
        return self.pages[t.name]
