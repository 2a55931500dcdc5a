"""Hypothesis strategies for a tool's arguments, drawn from its JSON input schema.

Most draws are well-typed: real catalog names (so calls reach the success paths), hostile
text (quotes, SQL and full-text syntax, control and right-to-left characters, digits that
are not ASCII), lengths and numbers at and beyond each bound. About one field in ten gets
a value of the wrong type, and about one call in ten leaves out required fields or adds
unknown ones.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import strategies as st

__all__ = ["HOSTILE_TEXT", "arguments", "json_values"]

JsonSchema = dict[str, Any]

HOSTILE_TEXT = (
    "",
    " ",
    "\t\n",
    "'",
    '"',
    "''",
    "' OR '1'='1",
    "'; DROP TABLE service; --",
    '" OR ""="',
    "payments-api' --",
    "%",
    "_",
    "%_%",
    "\\",
    "\\'",
    "*",
    "a*",
    "-payments",
    "payments AND NOT",
    "NEAR(payments checkout, 2)",
    "title:payments",
    "{payments checkout}",
    "^payments",
    '"unterminated',
    "(",
    ")",
    "payments | checkout & !x",
    ":",
    "::",
    "service:",
    ":payments-api",
    "team:payments",
    "service:payments-api",
    "kind:name:extra",
    "default/payments-api",
    "../../etc/passwd",
    "NULL",
    "null",
    "None",
    "0",
    "-1",
    "1e309",
    "9" * 5000,
    "²",
    "١٢",
    "Ⅻ",
    "\x00",
    "a\x00b",
    "\x1b[31mred",
    "\u202epayments",
    "\ufeffpayments-api",
    "ﬁ",
    "İ",
    "ß",
    "🚨🔥",
    "Zäöü 中文 عربى",
    "<script>alert(1)</script>",
    "${jndi:ldap://x}",
    "{{7*7}}",
    "INC-",
    "INC-99999999999999999999",
    "2026-13-45T99:99:99Z",
    "2026-12-01T09:35:00+14:00",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59Z",
)

# Letters of every script, digits, punctuation, symbols, spaces and control characters;
# never a lone surrogate, which no JSON encoder can carry.
_CHARACTERS = st.characters(exclude_categories=["Cs"])
_ANCHOR = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
# Kind prefixes as agents write them, to put before names of any kind.
_KIND_PREFIXES = ("service", "team", "group", "component", "feature", "flag", "incident", "user")
# Times and spans at the edges of what datetime arithmetic can hold.
_FAR_TIMES = (
    "0001-01-01T00:00:00Z",
    "0001-01-01",
    "9999-12-31T23:59:59Z",
    "9999-12-31",
    "1970-01-01T00:00:00Z",
    "99999999w",
    "999999999d",
    "0d",
    "-5d",
)
_TIME_FIELDS = ("_at", "since", "until", "due", "date", "time", "start", "end")


def arguments(schema: JsonSchema, names: Sequence[str]) -> st.SearchStrategy[dict[str, Any]]:
    """Arguments for a tool whose input schema is `schema`; `names` are real catalog names."""
    draw = _Drawer(schema, names)
    return st.integers(0, 9).flatmap(
        lambda roll: draw.broken_object(schema) if roll == 0 else draw.object(schema)
    )


def json_values(depth: int = 2) -> st.SearchStrategy[Any]:
    """Any JSON value: the wrong type for whatever field receives it."""
    leaves = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(_CHARACTERS, max_size=20),
    )
    if depth == 0:
        return leaves
    inner = json_values(depth - 1)
    return st.one_of(
        leaves,
        st.lists(inner, max_size=3),
        st.dictionaries(st.text(max_size=8), inner, max_size=3),
    )


class _Drawer:
    """Builds strategies for the parts of one schema, resolving its `$ref`s."""

    def __init__(self, root: JsonSchema, names: Sequence[str]) -> None:
        self.root = root
        self.names = list(names) or ["payments-api"]

    def value(self, schema: JsonSchema, field: str = "") -> st.SearchStrategy[Any]:
        """A well-typed value most of the time, a wrong-typed one about one time in ten."""
        typed = self.typed(schema, field)
        return st.integers(0, 9).flatmap(lambda roll: json_values() if roll == 0 else typed)

    def typed(self, schema: JsonSchema, field: str = "") -> st.SearchStrategy[Any]:
        schema = self.resolve(schema)
        if "const" in schema:
            return st.just(schema["const"])
        if "enum" in schema:
            return st.one_of(st.sampled_from(schema["enum"]), st.sampled_from(HOSTILE_TEXT))
        for key in ("anyOf", "oneOf"):
            if key in schema:
                return st.one_of([self.typed(part, field) for part in schema[key]])
        if "allOf" in schema:
            merged: JsonSchema = {}
            for part in schema["allOf"]:
                merged |= self.resolve(part)
            return self.typed(merged, field)
        kind = schema.get("type")
        if isinstance(kind, list):
            return st.one_of([self.typed(schema | {"type": k}, field) for k in kind])
        return self.of_type(kind, schema, field)

    def of_type(self, kind: Any, schema: JsonSchema, field: str) -> st.SearchStrategy[Any]:
        if kind == "string":
            return self.string(schema, field)
        if kind == "integer":
            return _integers(schema)
        if kind == "number":
            return _numbers(schema)
        if kind == "boolean":
            return st.booleans()
        if kind == "null":
            return st.none()
        if kind == "array":
            return self.array(schema, field)
        if kind == "object":
            return self.object(schema)
        return json_values()

    def string(self, schema: JsonSchema, field: str) -> st.SearchStrategy[str]:
        low = int(schema.get("minLength", 0))
        high = schema.get("maxLength")
        options = [
            st.sampled_from(self.names),
            st.sampled_from(self.names).map(_misspell),
            st.tuples(st.sampled_from(_KIND_PREFIXES), st.sampled_from(self.names)).map(":".join),
            st.sampled_from(HOSTILE_TEXT),
            st.text(_CHARACTERS, max_size=min(int(high or 80), 80)),
            st.sampled_from(_edge_lengths(low, high)),
        ]
        if pattern := schema.get("pattern"):
            options.append(_matching(pattern, low, high))
        if schema.get("format") == "date-time" or field.endswith(_TIME_FIELDS):
            options += [_times(), st.sampled_from(_FAR_TIMES)]
        return st.one_of(options)

    def array(self, schema: JsonSchema, field: str) -> st.SearchStrategy[list[Any]]:
        items = self.value(schema.get("items", {}), field)
        low = int(schema.get("minItems", 0))
        high = schema.get("maxItems")
        within = st.lists(items, min_size=low, max_size=max(low, min(int(high or 6), 6)))
        if high is None:
            return within
        # One more item than allowed: the same value repeated, which is cheap to draw.
        beyond = items.map(lambda item: [item] * (int(high) + 1))
        return st.one_of(within, beyond)

    def object(self, schema: JsonSchema) -> st.SearchStrategy[dict[str, Any]]:
        schema = self.resolve(schema)
        properties: dict[str, JsonSchema] = schema.get("properties", {})
        if not properties:
            return st.dictionaries(st.text(max_size=12), json_values(), max_size=4)
        required = set(schema.get("required", ()))
        return st.fixed_dictionaries(
            {k: self.value(v, k) for k, v in properties.items() if k in required},
            optional={k: self.value(v, k) for k, v in properties.items() if k not in required},
        )

    def broken_object(self, schema: JsonSchema) -> st.SearchStrategy[dict[str, Any]]:
        """Required fields left out, unknown fields added."""
        properties: dict[str, JsonSchema] = self.resolve(schema).get("properties", {})
        known = st.fixed_dictionaries(
            {}, optional={k: self.value(v, k) for k, v in properties.items()}
        )
        unknown = st.dictionaries(st.text(_CHARACTERS, max_size=12), json_values(), max_size=3)
        return st.tuples(known, unknown).map(lambda parts: parts[1] | parts[0])

    def resolve(self, schema: JsonSchema) -> JsonSchema:
        while "$ref" in schema:
            target: Any = self.root
            for part in str(schema["$ref"]).removeprefix("#/").split("/"):
                target = target[part]
            schema = {k: v for k, v in schema.items() if k != "$ref"} | target
        return schema


def _integers(schema: JsonSchema) -> st.SearchStrategy[int]:
    low = schema.get("minimum", schema.get("exclusiveMinimum"))
    high = schema.get("maximum", schema.get("exclusiveMaximum"))
    edges = {0, -1, 1, 2**31, 2**63, -(2**63), 10**30}
    for bound in (low, high):
        if bound is not None:
            edges |= {int(bound) - 1, int(bound), int(bound) + 1}
    inside = st.integers(
        min_value=None if low is None else math.ceil(low),
        max_value=None if high is None else math.floor(high),
    )
    return st.one_of(inside, st.sampled_from(sorted(edges)))


def _numbers(schema: JsonSchema) -> st.SearchStrategy[float | int]:
    low = schema.get("minimum", schema.get("exclusiveMinimum"))
    high = schema.get("maximum", schema.get("exclusiveMaximum"))
    edges: set[float] = {0.0, -0.0, -1.0, 1e-12, 1e308, -1e308}
    for bound in (low, high):
        if bound is not None:
            edges |= {float(bound) - 1e-9, float(bound), float(bound) + 1e-9}
    inside = st.floats(min_value=low, max_value=high, allow_nan=False, allow_infinity=False)
    return st.one_of(inside, st.sampled_from(sorted(edges)), _integers(schema))


def _edge_lengths(low: int, high: Any) -> list[str]:
    """Strings just inside and just outside the length bounds, plus a very long one."""
    lengths = {max(0, low - 1), low}
    if high is not None:
        lengths |= {int(high), int(high) + 1}
    else:
        lengths |= {10_000, 200_000}
    return [(("é" if n % 2 else "a") * n) for n in sorted(lengths)]


def _matching(pattern: str, low: int, high: Any) -> st.SearchStrategy[str]:
    """Strings that match `pattern`, padded or cut to fit the length bounds."""
    top = int(high) if high is not None else 200

    def fit(text: str) -> str:
        if not text:
            return text
        return (text * (low // len(text) + 1))[: max(low, min(len(text), top))]

    return st.from_regex(pattern, fullmatch=True).map(fit)


def _times() -> st.SearchStrategy[str]:
    """ISO 8601 times near the demo catalog's anchor, in several spellings."""
    offsets = st.integers(min_value=-400 * 86400, max_value=30 * 86400)
    moments = offsets.map(lambda s: _ANCHOR + timedelta(seconds=s))
    return st.one_of(
        moments.map(lambda t: t.strftime("%Y-%m-%dT%H:%M:%SZ")),
        moments.map(lambda t: t.isoformat()),
        moments.map(lambda t: t.replace(tzinfo=None).isoformat()),
        moments.map(lambda t: t.date().isoformat()),
    )


def _misspell(name: str) -> str:
    """A name as people type it: other case, other separators, a letter dropped."""
    variant = name.upper().replace("-", "_")
    return variant[:-1] if len(variant) > 4 else variant
