"""SCIM filters (RFC 7644 §3.4.2.2) → SQLAlchemy conditions.

`scim2-models` parses the filter into a syntax tree (its grammar follows the RFC ABNF and
its errata); this module walks that tree and builds one SQL condition from a table of the
attributes a resource can be filtered on, so filtering always happens in the database.

Semantics:
* Strings compare case-insensitively unless the attribute is caseExact (ids, externalId).
* A comparison on an unassigned attribute is false, and `not (...)` of it is true; `ne`
  matches an unassigned attribute (RFC 7644: "does not match").
* A multi-valued attribute (`emails`, `members`, `groups`) matches when any of its values
  does; `emails[type eq "work" and value co "@acme"]` needs one value to match both.
* Anything the table does not know, and any operator an attribute's type cannot take
  (`gt` on a boolean, `co` on a date), is an `invalidFilter` error naming it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from scim2_models import InvalidFilterException, ScimFilter
from scim2_models.path import (
    AttrPath,
    CompareOperator,
    Comparison,
    FilterNode,
    FilterVisitor,
    LogicalExpr,
    LogicalOperator,
    Not,
    Present,
    ValuePath,
)
from sqlalchemy import and_, false, func, not_, or_, true
from sqlalchemy.sql.elements import ColumnElement

from services.kit import ids

MAX_FILTER_LENGTH = 4000

AttrType = Literal["string", "boolean", "datetime", "id", "constant"]
Condition = ColumnElement[bool]

_SUBSTRING = {CompareOperator.co, CompareOperator.sw, CompareOperator.ew}


@dataclass(frozen=True)
class Attr:
    """A single-valued attribute: a SQL expression and how to compare it."""

    expr: Any
    type: AttrType = "string"
    case_exact: bool = False
    id_prefix: str = ""  # for "id" attributes: the public id prefix (usr, grp)
    constant: Any = None  # for "constant" attributes: the value every row has
    # A string column that is never NULL but may be empty: "" counts as unassigned.
    empty_is_null: bool = False


@dataclass(frozen=True)
class Source:
    """Where a multi-valued attribute's values live: `exists(cond)` is true when one of the
    resource's values there satisfies `cond` (a condition written over `subs`)."""

    exists: Callable[[Condition], Condition]
    subs: Mapping[str, Attr]


@dataclass(frozen=True)
class MultiAttr:
    """A multi-valued attribute, its values kept in one or more other tables."""

    sources: tuple[Source, ...]
    default_sub: str = "value"

    def any(self, build: Callable[[Mapping[str, Attr]], Condition]) -> Condition:
        conds = [src.exists(build(src.subs)) for src in self.sources]
        return conds[0] if len(conds) == 1 else or_(*conds)


@dataclass(frozen=True)
class AttributeMap:
    schema: str  # the resource's core schema URN (a filter may qualify names with it)
    scalars: Mapping[str, Attr]  # lower-cased "name" or "name.sub"
    multis: Mapping[str, MultiAttr] = field(default_factory=dict)


def invalid(detail: str, expression: str | None = None) -> InvalidFilterException:
    return InvalidFilterException(detail=detail, filter=expression)


class UnknownAttribute(InvalidFilterException):
    """The filter names an attribute this resource type does not have."""


def parse(expression: str) -> FilterNode:
    """The syntax tree of a filter; a malformed one is an `invalidFilter` error."""
    if len(expression) > MAX_FILTER_LENGTH:
        raise invalid(f"the filter is longer than {MAX_FILTER_LENGTH} characters")
    if not expression.strip():
        raise invalid("the filter is empty")
    try:
        return ScimFilter(expression).ast
    except InvalidFilterException as exc:
        raise invalid(f"the filter is not valid: {exc.detail}", expression) from exc
    except (ValueError, TypeError, RecursionError) as exc:
        raise invalid(f"the filter is not valid: {exc}", expression) from exc


def to_condition(expression: str, attributes: AttributeMap) -> Condition:
    """Parse `expression` and translate it into a SQL condition over `attributes`."""
    return _Translator(attributes).visit(parse(expression))


def to_conditions(expression: str, maps: Sequence[AttributeMap]) -> list[Condition]:
    """One condition per resource type, for a search across several (RFC 7644 §3.4.2.1): an
    attribute one type lacks is false there; an attribute none of them has is an error."""
    node = parse(expression)
    translators = [_Translator(m, lenient=True) for m in maps]
    conditions = [t.visit(node) for t in translators]
    nowhere = set.intersection(*(set(t.unknown) for t in translators))
    if nowhere:
        raise translators[0].unknown[sorted(nowhere)[0]]
    return conditions


def resolve_sort(path: str, attributes: AttributeMap) -> Any:
    """The SQL expression to order by for a `sortBy` attribute path."""
    key = _key_of(path.strip(), attributes.schema)
    attr = attributes.scalars.get(key)
    if attr is None or attr.type == "constant":
        raise invalid(f"cannot sort by {path!r}")
    if attr.type == "string" and not attr.case_exact:
        return func.lower(attr.expr)
    return attr.expr


def _key_of(path: str, schema: str) -> str:
    text = path
    if text.lower().startswith(schema.lower() + ":"):
        text = text[len(schema) + 1 :]
    return text.lower()


class _Translator(FilterVisitor[Condition]):
    def __init__(self, attributes: AttributeMap, *, lenient: bool = False) -> None:
        self.attributes = attributes
        self.lenient = lenient  # an unknown attribute makes its comparison false...
        self.unknown: dict[str, UnknownAttribute] = {}  # ...and is noted here

    def visit(self, node: FilterNode) -> Condition:
        try:
            return super().visit(node)
        except UnknownAttribute as exc:
            if self.lenient and isinstance(node, Comparison | Present | ValuePath):
                self.unknown[str(node)] = exc
                return false()
            raise

    # ---- names ---------------------------------------------------------------------------

    def _key(self, path: AttrPath) -> tuple[str, str | None]:
        if path.uri is not None and path.uri.lower() != self.attributes.schema.lower():
            raise UnknownAttribute(detail=f"unknown schema {path.uri!r} in the filter")
        return path.attr.lower(), path.sub_attr.lower() if path.sub_attr else None

    def _scalar(self, name: str, sub: str | None, shown: AttrPath) -> Attr:
        attr = self.attributes.scalars.get(f"{name}.{sub}" if sub else name)
        if attr is None:
            raise UnknownAttribute(detail=f"cannot filter on {str(shown)!r}: no such attribute")
        return attr

    # ---- nodes ---------------------------------------------------------------------------

    def visit_logical_expr(self, node: LogicalExpr) -> Condition:
        terms = [self.visit(t) for t in node.terms]
        return and_(*terms) if node.op == LogicalOperator.and_ else or_(*terms)

    def visit_not(self, node: Not) -> Condition:
        return not_(self.visit(node.expr))

    def visit_comparison(self, node: Comparison) -> Condition:
        name, sub = self._key(node.attr_path)
        multi = self.attributes.multis.get(name)
        if multi is not None:
            name_sub = sub or multi.default_sub
            return multi.any(
                lambda subs: compare(
                    _sub_attr(subs, name_sub, node.attr_path), node.op, node.value, str(node)
                )
            )
        return compare(self._scalar(name, sub, node.attr_path), node.op, node.value, str(node))

    def visit_present(self, node: Present) -> Condition:
        name, sub = self._key(node.attr_path)
        multi = self.attributes.multis.get(name)
        if multi is not None:
            if sub is None:
                return multi.any(lambda subs: true())
            return multi.any(lambda subs: present(_sub_attr(subs, sub, node.attr_path)))
        scalar = self.attributes.scalars.get(f"{name}.{sub}" if sub else name)
        if scalar is not None:
            return present(scalar)
        # A complex attribute (name) is present when one of its sub-attributes is.
        parts = [a for k, a in self.attributes.scalars.items() if k.startswith(name + ".")]
        if not parts or sub is not None:
            raise UnknownAttribute(
                detail=f"cannot filter on {str(node.attr_path)!r}: no such attribute"
            )
        return or_(*[present(a) for a in parts])

    def visit_value_path(self, node: ValuePath) -> Condition:
        name, sub = self._key(node.attr_path)
        if sub is not None:
            raise invalid(f"{node.attr_path} cannot carry a sub-attribute before '['")
        multi = self.attributes.multis.get(name)
        if multi is not None:
            schema = self.attributes.schema
            return multi.any(
                lambda subs: _Translator(AttributeMap(schema=schema, scalars=subs)).visit(
                    node.val_filter
                )
            )
        prefix = name + "."
        subs = {
            k[len(prefix) :]: a for k, a in self.attributes.scalars.items() if k.startswith(prefix)
        }
        if not subs:
            raise UnknownAttribute(detail=f"cannot filter on {name!r}: no such complex attribute")
        inner = AttributeMap(schema=self.attributes.schema, scalars=subs)
        return _Translator(inner).visit(node.val_filter)


def _sub_attr(subs: Mapping[str, Attr], sub: str, shown: AttrPath) -> Attr:
    attr = subs.get(sub)
    if attr is None:
        raise UnknownAttribute(detail=f"cannot filter on {str(shown)!r}: no such sub-attribute")
    return attr


# ---- comparisons -------------------------------------------------------------------------


def present(attr: Attr) -> Condition:
    if attr.type == "constant":
        return true() if attr.constant is not None else false()
    cond = attr.expr.is_not(None)
    if attr.type == "string":
        cond = and_(cond, attr.expr != "")
    return cond


def compare(attr: Attr, op: CompareOperator, value: Any, shown: str) -> Condition:
    if value is None:  # `x eq null`: unassigned; `x ne null`: assigned
        if op == CompareOperator.eq:
            return not_(present(attr))
        if op == CompareOperator.ne:
            return present(attr)
        raise invalid(f"{shown}: null can only be compared with eq or ne")
    if attr.type == "constant":
        return _compare_constant(attr, op, value, shown)
    if attr.type == "boolean":
        if not isinstance(value, bool) or op not in (CompareOperator.eq, CompareOperator.ne):
            raise invalid(f"{shown}: a boolean takes eq or ne with true or false")
        return _null_safe(attr.expr, attr.expr == value, op)
    if attr.type == "id":
        return _compare_id(attr, op, value, shown)
    if attr.type == "datetime":
        return _compare_datetime(attr, op, value, shown)
    if not isinstance(value, str):
        raise invalid(f"{shown}: this attribute compares with a string")
    return _compare_string(attr, op, value)


def _null_safe(expr: Any, cond: Condition, op: CompareOperator) -> Condition:
    """Make an unassigned value false for every operator except `ne`, where it matches."""
    if op == CompareOperator.ne:
        return or_(expr.is_(None), not_(cond))
    return and_(expr.is_not(None), cond)


def _compare_string(attr: Attr, op: CompareOperator, value: str) -> Condition:
    column = attr.expr if attr.case_exact else func.lower(attr.expr)
    operand = value if attr.case_exact else value.lower()
    ops: dict[CompareOperator, Callable[[], Condition]] = {
        CompareOperator.eq: lambda: column == operand,
        CompareOperator.ne: lambda: column == operand,  # negated by _null_safe
        CompareOperator.co: lambda: column.contains(operand, autoescape=True),
        CompareOperator.sw: lambda: column.startswith(operand, autoescape=True),
        CompareOperator.ew: lambda: column.endswith(operand, autoescape=True),
        CompareOperator.gt: lambda: column > operand,
        CompareOperator.ge: lambda: column >= operand,
        CompareOperator.lt: lambda: column < operand,
        CompareOperator.le: lambda: column <= operand,
    }
    cond = ops[op]()
    if attr.empty_is_null:
        assigned = attr.expr != ""
        if op == CompareOperator.ne:
            return or_(not_(assigned), not_(cond))
        return and_(assigned, cond)
    return _null_safe(attr.expr, cond, op)


def _compare_id(attr: Attr, op: CompareOperator, value: Any, shown: str) -> Condition:
    if op not in (CompareOperator.eq, CompareOperator.ne):
        raise invalid(f"{shown}: ids compare with eq or ne only")
    decoded: uuid.UUID | None = (
        ids.decode(attr.id_prefix, value) if isinstance(value, str) else None
    )
    if decoded is None:  # no row has an id that is not one of ours
        return false() if op == CompareOperator.eq else true()
    cond = attr.expr == decoded
    return cond if op == CompareOperator.eq else not_(cond)


def parse_datetime(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _compare_datetime(attr: Attr, op: CompareOperator, value: Any, shown: str) -> Condition:
    if op in _SUBSTRING:
        raise invalid(f"{shown}: a dateTime takes eq, ne, gt, ge, lt or le")
    when = parse_datetime(value)
    if when is None:
        raise invalid(f"{shown}: {value!r} is not an RFC 3339 dateTime")
    col = attr.expr
    ops: dict[CompareOperator, Condition] = {
        CompareOperator.eq: col == when,
        CompareOperator.ne: col == when,
        CompareOperator.gt: col > when,
        CompareOperator.ge: col >= when,
        CompareOperator.lt: col < when,
        CompareOperator.le: col <= when,
    }
    return _null_safe(col, ops[op], op)


def _compare_constant(attr: Attr, op: CompareOperator, value: Any, shown: str) -> Condition:
    actual = attr.constant
    if not isinstance(value, str) or not isinstance(actual, str):
        raise invalid(f"{shown}: this attribute compares with a string")
    a, v = actual.lower(), value.lower()
    result = {
        CompareOperator.eq: a == v,
        CompareOperator.ne: a != v,
        CompareOperator.co: v in a,
        CompareOperator.sw: a.startswith(v),
        CompareOperator.ew: a.endswith(v),
        CompareOperator.gt: a > v,
        CompareOperator.ge: a >= v,
        CompareOperator.lt: a < v,
        CompareOperator.le: a <= v,
    }[op]
    return true() if result else false()
