"""Entity references as catalog files write them: `name`, `kind:name`, `kind:namespace/name`."""

from __future__ import annotations

import re
from dataclasses import dataclass

from resilience_mcp.models.kinds import KIND_ALIASES, canonical_kind

__all__ = ["API_SUFFIX", "KIND_ALIASES", "Ref", "api_service_name", "canonical_kind", "parse_ref"]

API_SUFFIX = ".api"

_REF = re.compile(
    r"^(?:(?P<kind>[A-Za-z][A-Za-z0-9_-]*):)?(?:(?P<ns>[^/:\s]+)/)?(?P<name>[^/:\s]+)$"
)


@dataclass(frozen=True)
class Ref:
    kind: str
    name: str


def parse_ref(value: str, default_kind: str) -> Ref:
    """Parse a reference; raises ValueError with a sentence saying what was expected."""
    match = _REF.match(value.strip())
    if not match:
        raise ValueError(
            f"{value!r} is not a reference; write a name or kind:name, such as "
            f"{default_kind.lower()}:payments-api"
        )
    written = match.group("kind")
    kind = default_kind if written is None else canonical_kind(written)
    if kind is None:
        raise ValueError(f"{value!r} names an unknown kind {written!r}")
    name = match.group("name")
    if written is not None and written.lower() == "api":
        name = api_service_name(name)
    return Ref(kind, name)


def api_service_name(name: str) -> str:
    """The Service an API entity becomes: Backstage lets an API share a component's name."""
    return name if name.endswith(API_SUFFIX) else name + API_SUFFIX
