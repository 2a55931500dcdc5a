"""Entity references: as catalog files write them (`name`, `kind:name`,
`kind:namespace/name`), and where the store keeps them (`REFERENCES`)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlmodel import SQLModel

from resilience_mcp import models as m
from resilience_mcp.models.kinds import KIND_ALIASES, canonical_kind

__all__ = [
    "API_SUFFIX",
    "DEFAULT_NAMESPACE",
    "KIND_ALIASES",
    "REFERENCES",
    "UNRESOLVED_ANNOTATION",
    "Ref",
    "Reference",
    "api_service_name",
    "canonical_kind",
    "parse_ref",
    "qualified_name",
    "unresolved_names",
]

API_SUFFIX = ".api"
DEFAULT_NAMESPACE = "default"
# Lists, as `Kind:name, ...`, the references of an entity that named nothing in the
# catalog when it loaded and were kept as written (Backstage documents may do that).
UNRESOLVED_ANNOTATION = "resilience/unresolved-refs"

_REF = re.compile(
    r"^(?:(?P<kind>[A-Za-z][A-Za-z0-9_-]*):)?(?:(?P<ns>[^/:\s]+)/)?(?P<name>[^/:\s]+)$"
)


@dataclass(frozen=True)
class Ref:
    kind: str
    name: str


def parse_ref(value: str, default_kind: str, namespace: str | None = None) -> Ref:
    """Parse a reference; raises ValueError with a sentence saying what was expected.

    A reference without a namespace is in `namespace` (None: the default one)."""
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
    name = qualified_name(match.group("ns") or namespace, match.group("name"))
    if written is not None and written.lower() == "api":
        name = api_service_name(name)
    return Ref(kind, name)


def qualified_name(namespace: str | None, name: str) -> str:
    """The catalog name of `name` in a Backstage namespace: the name itself in the default
    namespace, else `namespace/name`, so equal names in two namespaces stay two entities."""
    if namespace is None or namespace.lower() == DEFAULT_NAMESPACE:
        return name
    return f"{namespace}/{name}"


def api_service_name(name: str) -> str:
    """The Service an API entity becomes: Backstage lets an API share a component's name."""
    return name if name.endswith(API_SUFFIX) else name + API_SUFFIX


def unresolved_names(annotations: dict[str, str]) -> set[str]:
    """The names an entity's `UNRESOLVED_ANNOTATION` lists (without their kinds)."""
    listed = annotations.get(UNRESOLVED_ANNOTATION) or ""
    return {item.partition(":")[2] or item for item in map(str.strip, listed.split(",")) if item}


# Where the store keeps references


@dataclass(frozen=True)
class Reference:
    """A column whose values name entities of `kinds`; `many` when it holds a JSON list.

    `when` narrows the rows to those whose column (first) holds the value (second), for
    tables such as incident links that say in a column what kind the target is."""

    table: type[SQLModel]
    column: str
    kinds: tuple[str, ...]
    many: bool = False
    when: tuple[str, str] | None = None

    @property
    def label(self) -> str:
        where = f" ({self.when[0]} {self.when[1]})" if self.when else ""
        return f"{self.table.__tablename__!s}.{self.column}{where}"


_OWNER = ("Team", "Person")
_LINK_KINDS = {
    "service": "Service",
    "environment": "Environment",
    "feature": "Feature",
    "customer": "Customer",
    "flag": "FeatureFlag",
    "deployment": "Deployment",
}

# Every column that names another entity, and what it may name.
REFERENCES: tuple[Reference, ...] = (
    Reference(m.Team, "parent", ("Team",)),
    Reference(m.TeamMember, "team", ("Team",)),
    Reference(m.TeamMember, "person", ("Person",)),
    Reference(m.Domain, "owner", _OWNER),
    Reference(m.System, "owner", _OWNER),
    Reference(m.System, "domain", ("Domain",)),
    Reference(m.Service, "owner", _OWNER),
    Reference(m.Service, "system", ("System",)),
    Reference(m.Dependency, "source", ("Service",)),
    Reference(m.Dependency, "target", ("Service",)),
    Reference(m.Environment, "parent", ("Environment",)),
    Reference(m.ServiceInstance, "service", ("Service",)),
    Reference(m.ServiceInstance, "environment", ("Environment",)),
    Reference(m.Feature, "owner", _OWNER),
    Reference(m.FeatureService, "feature", ("Feature",)),
    Reference(m.FeatureService, "service", ("Service",)),
    Reference(m.FeatureFlag, "feature", ("Feature",)),
    Reference(m.FeatureFlag, "owner", _OWNER),
    Reference(m.FeatureFlag, "services", ("Service",), many=True),
    Reference(m.FlagState, "flag", ("FeatureFlag",)),
    Reference(m.FlagState, "environment", ("Environment",)),
    Reference(m.FlagChange, "flag", ("FeatureFlag",)),
    Reference(m.FlagChange, "environment", ("Environment",)),
    Reference(m.CustomerFeature, "customer", ("Customer",)),
    Reference(m.CustomerFeature, "feature", ("Feature",)),
    Reference(m.CustomerEnvironment, "customer", ("Customer",)),
    Reference(m.CustomerEnvironment, "environment", ("Environment",)),
    Reference(m.OnCallRotation, "team", ("Team",)),
    Reference(m.OnCallRotation, "members", ("Person",), many=True),
    Reference(m.OnCallOverride, "rotation", ("OnCall",)),
    Reference(m.OnCallOverride, "person", ("Person",)),
    Reference(m.Deployment, "service", ("Service",)),
    Reference(m.Deployment, "environment", ("Environment",)),
    Reference(m.Incident, "commander", ("Person",)),
    *(
        Reference(m.IncidentLink, "target", (kind,), when=("kind", link))
        for link, kind in _LINK_KINDS.items()
    ),
    Reference(m.IncidentLink, "incident", ("Incident",)),
    Reference(m.TimelineEntry, "incident", ("Incident",)),
    Reference(m.Postmortem, "incident", ("Incident",)),
    Reference(m.RemediationTask, "postmortem", ("Postmortem",)),
    Reference(m.RemediationTask, "incident", ("Incident",)),
    Reference(m.RemediationTask, "owner", _OWNER),
    Reference(m.SLO, "service", ("Service",)),
    Reference(m.SLOMeasurement, "slo", ("SLO",)),
)
