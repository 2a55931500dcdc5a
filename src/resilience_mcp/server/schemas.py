"""Output schemas in the plainest form JSON Schema allows.

Pydantic writes a nested model as a `$ref` into `$defs`, an optional field as
`anyOf: [X, {type: null}]`, and a title on every property. Each costs a client that
validates answers (the Python SDK's client does, on every call): a reference is resolved,
both branches of an `anyOf` are tried. The same constraints read plainly are one object
per model, written where it is used, `type: [X, "null"]`, and no generated titles. The
root keeps its title, which names the answer model.
"""

from __future__ import annotations

from typing import Any

__all__ = ["simplify_schema"]

_DEFS = "#/$defs/"


def simplify_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` with its references written in place and its optional fields flattened."""
    definitions: dict[str, Any] = schema.get("$defs", {})
    plain: dict[str, Any] = _simplify(schema, definitions, ())
    plain.pop("$defs", None)
    if "title" in schema:
        plain["title"] = schema["title"]
    return plain


def _simplify(node: Any, definitions: dict[str, Any], seen: tuple[str, ...]) -> Any:
    if isinstance(node, list):
        return [_simplify(item, definitions, seen) for item in node]
    if not isinstance(node, dict):
        return node

    reference = node.get("$ref")
    if isinstance(reference, str) and reference.startswith(_DEFS):
        name = reference.removeprefix(_DEFS)
        if name in seen or name not in definitions:
            # A model that contains itself keeps its reference.
            return node
        inlined = {**definitions[name], **{k: v for k, v in node.items() if k != "$ref"}}
        return _simplify(inlined, definitions, (*seen, name))

    plain: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("$defs", "title"):
            continue
        if key == "properties" and isinstance(value, dict):
            plain[key] = {name: _simplify(v, definitions, seen) for name, v in value.items()}
        else:
            plain[key] = _simplify(value, definitions, seen)
    return _flatten_optional(plain)


def _flatten_optional(node: dict[str, Any]) -> dict[str, Any]:
    """`anyOf: [X, {type: null}]` as X that also takes null, where X has a plain type."""
    branches = node.get("anyOf")
    if not isinstance(branches, list) or len(branches) != 2 or {"type": "null"} not in branches:
        return node
    (other,) = [b for b in branches if b != {"type": "null"}]
    kind = other.get("type") if isinstance(other, dict) else None
    if not isinstance(kind, str) or "anyOf" in other:
        return node
    merged = {k: v for k, v in node.items() if k != "anyOf"}
    merged.update(other)
    merged["type"] = [kind, "null"]
    if "const" in merged:
        merged["enum"] = [merged.pop("const")]
    if "enum" in merged:
        merged["enum"] = [*merged["enum"], None]
    return merged
