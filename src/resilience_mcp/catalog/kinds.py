"""Each catalog kind: how a document's `spec` becomes rows, and how rows become a spec again.

A kind is a `KindCodec`: a pydantic model of its spec (which validates and names bad
fields), `parse` (spec -> the entity row, the rows it declares, the references it makes)
and `dump` (rows -> spec, for export). Loading then exporting gives the same catalog.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    model_validator,
)
from pydantic.alias_generators import to_camel
from sqlmodel import SQLModel

from resilience_mcp import models as m
from resilience_mcp.catalog.refs import Ref, parse_ref
from resilience_mcp.models.metrics import ScorecardRule, check_rules_fit

__all__ = ["CHILD_TABLES", "CODECS", "KindCodec", "Parsed", "parse_duration"]


def _as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


Time = Annotated[datetime, AfterValidator(_as_utc)]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(w|d|h|m|s)\s*$", re.IGNORECASE)
_ISO_DURATION = re.compile(
    r"^P(?:(?P<d>\d+(?:\.\d+)?)D)?(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?"
    r"(?:(?P<s>\d+(?:\.\d+)?)S)?)?$",
    re.IGNORECASE,
)
_UNITS = {"w": 604800.0, "d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}


def parse_duration(value: str | float | int) -> timedelta:
    """`30d`, `12h`, `5m`, `PT30M` or a number of seconds."""
    if isinstance(value, int | float):
        return timedelta(seconds=float(value))
    if match := _DURATION.match(value):
        return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2).lower()])
    if (iso := _ISO_DURATION.match(value.strip())) and any(iso.groupdict().values()):
        parts = {k: float(v) for k, v in iso.groupdict().items() if v}
        return timedelta(
            days=parts.get("d", 0),
            hours=parts.get("h", 0),
            minutes=parts.get("m", 0),
            seconds=parts.get("s", 0),
        )
    raise ValueError(f"{value!r} is not a duration; write 30d, 12h, 5m or PT30M")


def _lower(value: Any) -> Any:
    return value.strip().lower().replace("_", "-") if isinstance(value, str) else value


def _objective(value: Any) -> Any:
    # 99.9 and 0.999 both mean three nines.
    if isinstance(value, int | float) and value > 1:
        return float(value) / 100.0
    return value


Lower = Annotated[str, BeforeValidator(_lower)]


class Spec(BaseModel):
    """Base of every spec: camelCase in files, unknown fields ignored (Backstage has many)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class Profile(Spec):
    display_name: str | None = None
    email: str | None = None


class Link(Spec):
    url: str
    title: str | None = None


class Metadata(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
    namespace: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
    title: str | None = None
    description: str | None = None
    tags: list[str] = Field(default_factory=list)
    links: list[Link] = Field(default_factory=list)
    annotations: dict[str, str] = Field(default_factory=dict)


class ChildRow:
    """A row an entity declares in another table, kept as plain values: building table
    objects for the tens of thousands of rows of a large catalog costs more than the load."""

    __slots__ = ("table", "values")

    def __init__(self, table: type[m.Owned], **values: Any) -> None:
        self.table = table
        self.values = _row_defaults(table) | values


def _row_defaults(table: type[m.Owned]) -> dict[str, Any]:
    defaults: dict[str, Any] = {}
    for name, info in table.model_fields.items():
        if name == "id":
            continue
        factory = info.default_factory
        defaults[name] = factory() if factory is not None else info.default  # type: ignore[call-arg]
    return defaults


@dataclass
class Parsed:
    """What one document declares."""

    kind: str
    name: str
    columns: dict[str, Any]
    children: list[ChildRow] = field(default_factory=list)
    refs: list[tuple[str, Ref]] = field(default_factory=list)
    # Backstage `children` on a Group: these teams get this one as parent.
    child_teams: list[str] = field(default_factory=list)
    # The namespace of references that name none (a Backstage entity's own); None: default.
    namespace: str | None = None

    def ref(self, path: str, value: str | None, kind: str) -> str | None:
        """Record a reference to check and return the bare name to store."""
        if value is None:
            return None
        parsed = parse_ref(value, kind, self.namespace)
        if kind == "Team" and parsed.kind == "Person":
            pass  # an owner may be a person, as Backstage allows
        elif parsed.kind != kind:
            raise ValueError(f"{path} must name a {kind}, not a {parsed.kind} ({value!r})")
        self.refs.append((path, parsed))
        return parsed.name

    def refs_of(self, path: str, values: Sequence[str], kind: str) -> list[str]:
        names = [self.ref(f"{path}[{i}]", v, kind) for i, v in enumerate(values)]
        return [n for n in names if n is not None]


@dataclass
class KindCodec:
    kind: str
    table: type[m.Entity]
    spec: type[Spec]
    parse: Callable[[Parsed, Any], None]
    dump: Callable[[Any, dict[type[SQLModel], list[Any]]], dict[str, Any]]
    children: tuple[type[m.Owned], ...] = ()


CODECS: dict[str, KindCodec] = {}


def _codec(
    kind: str, table: type[m.Entity], spec: type[Spec], *children: type[m.Owned]
) -> Callable[[Callable[[Parsed, Any], None]], Callable[[Parsed, Any], None]]:
    def register(parse: Callable[[Parsed, Any], None]) -> Callable[[Parsed, Any], None]:
        CODECS[kind] = KindCodec(kind, table, spec, parse, _no_dump, children)
        return parse

    return register


def _dumper(
    kind: str,
) -> Callable[
    [Callable[[Any, dict[type[SQLModel], list[Any]]], dict[str, Any]]],
    Callable[[Any, dict[type[SQLModel], list[Any]]], dict[str, Any]],
]:
    def register(
        dump: Callable[[Any, dict[type[SQLModel], list[Any]]], dict[str, Any]],
    ) -> Callable[[Any, dict[type[SQLModel], list[Any]]], dict[str, Any]]:
        CODECS[kind].dump = dump
        return dump

    return register


def _no_dump(_row: Any, _children: dict[type[SQLModel], list[Any]]) -> dict[str, Any]:
    return {}


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return _as_utc(value).strftime("%Y-%m-%dT%H:%M:%SZ")


def _clean(values: dict[str, Any]) -> dict[str, Any]:
    """Drop empty values so exported files stay as short as hand-written ones."""
    return {k: v for k, v in values.items() if v not in (None, [], {}, "")}


# Organisation


class TeamSpec(Spec):
    parent: str | None = None
    children: list[str] = Field(default_factory=list)
    members: list[str] = Field(default_factory=list)
    chat_channel: str | None = None
    escalation: str | None = None
    email: str | None = None
    profile: Profile | None = None


@_codec("Team", m.Team, TeamSpec, m.TeamMember)
def _parse_team(p: Parsed, s: TeamSpec) -> None:
    p.columns.update(
        parent=p.ref("spec.parent", s.parent, "Team"),
        chat_channel=s.chat_channel,
        escalation=s.escalation,
        email=s.email or (s.profile.email if s.profile else None),
    )
    if s.profile and s.profile.display_name and not p.columns.get("title"):
        p.columns["title"] = s.profile.display_name
    p.child_teams = p.refs_of("spec.children", s.children, "Team")
    for person in p.refs_of("spec.members", s.members, "Person"):
        p.children.append(ChildRow(m.TeamMember, team=p.name, person=person))


@_dumper("Team")
def _dump_team(row: m.Team, children: dict[type[SQLModel], list[Any]]) -> dict[str, Any]:
    members = sorted({r.person for r in children.get(m.TeamMember, [])})
    return _clean(
        {
            "parent": row.parent,
            "members": members,
            "chatChannel": row.chat_channel,
            "escalation": row.escalation,
            "email": row.email,
        }
    )


class PersonSpec(Spec):
    email: str | None = None
    handle: str | None = None
    member_of: list[str] = Field(default_factory=list)
    profile: Profile | None = None


@_codec("Person", m.Person, PersonSpec, m.TeamMember)
def _parse_person(p: Parsed, s: PersonSpec) -> None:
    p.columns.update(email=s.email or (s.profile.email if s.profile else None), handle=s.handle)
    if s.profile and s.profile.display_name and not p.columns.get("title"):
        p.columns["title"] = s.profile.display_name
    for team in p.refs_of("spec.memberOf", s.member_of, "Team"):
        p.children.append(ChildRow(m.TeamMember, team=team, person=p.name))


@_dumper("Person")
def _dump_person(row: m.Person, children: dict[type[SQLModel], list[Any]]) -> dict[str, Any]:
    teams = sorted({r.team for r in children.get(m.TeamMember, [])})
    return _clean({"email": row.email, "handle": row.handle, "memberOf": teams})


class DomainSpec(Spec):
    owner: str | None = None


@_codec("Domain", m.Domain, DomainSpec)
def _parse_domain(p: Parsed, s: DomainSpec) -> None:
    p.columns["owner"] = p.ref("spec.owner", s.owner, "Team")


@_dumper("Domain")
def _dump_domain(row: m.Domain, _c: dict[type[SQLModel], list[Any]]) -> dict[str, Any]:
    return _clean({"owner": row.owner})


class SystemSpec(Spec):
    owner: str | None = None
    domain: str | None = None


@_codec("System", m.System, SystemSpec)
def _parse_system(p: Parsed, s: SystemSpec) -> None:
    p.columns["owner"] = p.ref("spec.owner", s.owner, "Team")
    p.columns["domain"] = p.ref("spec.domain", s.domain, "Domain")


@_dumper("System")
def _dump_system(row: m.System, _c: dict[type[SQLModel], list[Any]]) -> dict[str, Any]:
    return _clean({"owner": row.owner, "domain": row.domain})


# Services


class DependencySpec(Spec):
    target: str
    kind: Annotated[str, BeforeValidator(_lower)] = Field(
        default="sync", pattern="^(sync|async|data|build)$"
    )
    hard: bool = True
    description: str | None = None


class RunsIn(Spec):
    environment: str
    version: str | None = None
    replicas: int | None = Field(default=None, ge=0)


def _tier(value: Any) -> Any:
    # Accept `tier-1`, `Tier 1`, `1`.
    if isinstance(value, str):
        digits = re.sub(r"[^0-9]", "", value)
        return int(digits) if digits else value
    return value


class ServiceSpec(Spec):
    type: Lower | None = None
    tier: Annotated[int | None, BeforeValidator(_tier)] = Field(default=None, ge=1, le=4)
    lifecycle: Lower | None = None
    owner: str | None = None
    system: str | None = None
    repository: str | None = None
    runbook: str | None = None
    dashboards: list[str] = Field(default_factory=list)
    depends_on: list[str] = Field(default_factory=list)
    dependencies: list[DependencySpec] = Field(default_factory=list)
    environments: list[RunsIn] = Field(default_factory=list)
    provides_apis: list[str] = Field(default_factory=list)
    consumes_apis: list[str] = Field(default_factory=list)


def _as_api(values: list[str]) -> list[str]:
    return [v if ":" in v else f"api:{v}" for v in values]


@_codec("Service", m.Service, ServiceSpec, m.Dependency, m.ServiceInstance)
def _parse_service(p: Parsed, s: ServiceSpec) -> None:
    p.columns.update(
        type=s.type or "service",
        tier=s.tier,
        lifecycle=s.lifecycle,
        owner=p.ref("spec.owner", s.owner, "Team"),
        system=p.ref("spec.system", s.system, "System"),
        repository=s.repository,
        runbook=s.runbook,
        dashboards=s.dashboards,
    )
    for target in p.refs_of("spec.dependsOn", s.depends_on, "Service"):
        p.children.append(ChildRow(m.Dependency, source=p.name, target=target))
    for i, dep in enumerate(s.dependencies):
        declared = p.ref(f"spec.dependencies[{i}].target", dep.target, "Service")
        assert declared is not None
        p.children.append(
            ChildRow(
                m.Dependency,
                source=p.name,
                target=declared,
                kind=dep.kind,
                hard=dep.hard,
                description=dep.description,
            )
        )
    for api in p.refs_of("spec.consumesApis", _as_api(s.consumes_apis), "Service"):
        p.children.append(ChildRow(m.Dependency, source=p.name, target=api))
    # The API fails when the component that provides it fails.
    for api in p.refs_of("spec.providesApis", _as_api(s.provides_apis), "Service"):
        p.children.append(ChildRow(m.Dependency, source=api, target=p.name))
    for i, run in enumerate(s.environments):
        env = p.ref(f"spec.environments[{i}].environment", run.environment, "Environment")
        assert env is not None
        p.children.append(
            ChildRow(
                m.ServiceInstance,
                service=p.name,
                environment=env,
                version=run.version,
                replicas=run.replicas,
            )
        )


@_dumper("Service")
def _dump_service(row: m.Service, children: dict[type[SQLModel], list[Any]]) -> dict[str, Any]:
    deps = [
        _clean(
            {
                "target": d.target,
                "kind": d.kind,
                "hard": d.hard,
                "description": d.description,
            }
        )
        | {"hard": d.hard}
        for d in sorted(children.get(m.Dependency, []), key=lambda d: (d.source, d.target))
        if d.source == row.name
    ]
    # Edges this service declared into an API it provides are written back as providesApis.
    provides = sorted(d.source for d in children.get(m.Dependency, []) if d.target == row.name)
    runs = [
        _clean({"environment": r.environment, "version": r.version, "replicas": r.replicas})
        for r in sorted(children.get(m.ServiceInstance, []), key=lambda r: r.environment)
    ]
    return _clean(
        {
            "type": row.type,
            "tier": row.tier,
            "lifecycle": row.lifecycle,
            "owner": row.owner,
            "system": row.system,
            "repository": row.repository,
            "runbook": row.runbook,
            "dashboards": row.dashboards,
            "dependencies": deps,
            "providesApis": provides,
            "environments": runs,
        }
    )


class EnvironmentSpec(Spec):
    type: Annotated[str, BeforeValidator(_lower)] = Field(
        default="production", pattern="^(production|staging|development|preview)$"
    )
    region: str | None = None
    cloud: str | None = None
    tenant: str | None = None
    parent: str | None = None


@_codec("Environment", m.Environment, EnvironmentSpec)
def _parse_environment(p: Parsed, s: EnvironmentSpec) -> None:
    p.columns.update(
        type=s.type,
        region=s.region,
        cloud=s.cloud,
        tenant=s.tenant,
        parent=p.ref("spec.parent", s.parent, "Environment"),
    )


@_dumper("Environment")
def _dump_environment(row: m.Environment, _c: dict[type[SQLModel], list[Any]]) -> dict[str, Any]:
    return _clean(
        {
            "type": row.type,
            "region": row.region,
            "cloud": row.cloud,
            "tenant": row.tenant,
            "parent": row.parent,
        }
    )


# Features, flags, customers


class FeatureSpec(Spec):
    owner: str | None = None
    services: list[str] = Field(default_factory=list)


@_codec("Feature", m.Feature, FeatureSpec, m.FeatureService)
def _parse_feature(p: Parsed, s: FeatureSpec) -> None:
    p.columns["owner"] = p.ref("spec.owner", s.owner, "Team")
    for service in p.refs_of("spec.services", s.services, "Service"):
        p.children.append(ChildRow(m.FeatureService, feature=p.name, service=service))


@_dumper("Feature")
def _dump_feature(row: m.Feature, children: dict[type[SQLModel], list[Any]]) -> dict[str, Any]:
    services = sorted({r.service for r in children.get(m.FeatureService, [])})
    return _clean({"owner": row.owner, "services": services})


class FlagStateSpec(Spec):
    environment: str
    enabled: bool = False
    rollout: float | None = Field(default=None, ge=0, le=100)
    variant: str | None = None
    targeting: str | None = None
    updated_at: Time | None = None
    updated_by: str | None = None


def _state_text(value: Any) -> Any:
    if isinstance(value, bool):
        return "on" if value else "off"
    return None if value is None else str(value)


class FlagChangeSpec(Spec):
    at: Time
    environment: str | None = None
    by: str | None = None
    from_: Annotated[str | None, BeforeValidator(_state_text)] = Field(default=None, alias="from")
    to: Annotated[str | None, BeforeValidator(_state_text)] = None
    reason: str | None = None


class FlagSpec(Spec):
    key: str | None = None
    purpose: Annotated[str, BeforeValidator(_lower)] = Field(
        default="release", pattern="^(release|kill-switch|experiment|permission|ops)$"
    )
    feature: str | None = None
    services: list[str] = Field(default_factory=list)
    owner: str | None = None
    flag_type: Lower = "boolean"
    variants: dict[str, Any] = Field(default_factory=dict)
    default_variant: str | None = None
    states: list[FlagStateSpec] = Field(default_factory=list)
    history: list[FlagChangeSpec] = Field(default_factory=list)


@_codec("FeatureFlag", m.FeatureFlag, FlagSpec, m.FlagState, m.FlagChange)
def _parse_flag(p: Parsed, s: FlagSpec) -> None:
    p.columns.update(
        key=s.key or p.name,
        purpose=s.purpose,
        feature=p.ref("spec.feature", s.feature, "Feature"),
        services=p.refs_of("spec.services", s.services, "Service"),
        owner=p.ref("spec.owner", s.owner, "Team"),
        flag_type=s.flag_type,
        variants=s.variants,
        default_variant=s.default_variant,
    )
    for i, st in enumerate(s.states):
        env = p.ref(f"spec.states[{i}].environment", st.environment, "Environment")
        assert env is not None
        p.children.append(
            ChildRow(
                m.FlagState,
                flag=p.name,
                environment=env,
                enabled=st.enabled,
                rollout=st.rollout,
                variant=st.variant,
                targeting=st.targeting,
                updated_at=st.updated_at,
                updated_by=st.updated_by,
            )
        )
    for i, ch in enumerate(s.history):
        env = p.ref(f"spec.history[{i}].environment", ch.environment, "Environment")
        p.children.append(
            ChildRow(
                m.FlagChange,
                flag=p.name,
                environment=env,
                at=ch.at,
                by=ch.by,
                from_state=ch.from_,
                to_state=ch.to,
                reason=ch.reason,
            )
        )


@_dumper("FeatureFlag")
def _dump_flag(row: m.FeatureFlag, children: dict[type[SQLModel], list[Any]]) -> dict[str, Any]:
    states = [
        _clean(
            {
                "environment": st.environment,
                "rollout": st.rollout,
                "variant": st.variant,
                "targeting": st.targeting,
                "updatedAt": _iso(st.updated_at),
                "updatedBy": st.updated_by,
            }
        )
        | {"enabled": st.enabled}
        for st in sorted(children.get(m.FlagState, []), key=lambda st: st.environment)
    ]
    history = [
        _clean(
            {
                "at": _iso(ch.at),
                "environment": ch.environment,
                "by": ch.by,
                "from": ch.from_state,
                "to": ch.to_state,
                "reason": ch.reason,
            }
        )
        for ch in sorted(
            children.get(m.FlagChange, []), key=lambda ch: (ch.at, ch.environment or "")
        )
    ]
    return _clean(
        {
            "key": row.key if row.key != row.name else None,
            "purpose": row.purpose,
            "feature": row.feature,
            "services": row.services,
            "owner": row.owner,
            "flagType": row.flag_type,
            "variants": row.variants,
            "defaultVariant": row.default_variant,
            "states": states,
            "history": history,
        }
    )


class Contact(Spec):
    name: str | None = None
    email: str | None = None
    role: str | None = None


class CustomerSpec(Spec):
    plan: Lower | None = None
    weight: float = Field(default=0.0, ge=0)
    contacts: list[Contact] = Field(default_factory=list)
    features: list[str] = Field(default_factory=list)
    environments: list[str] = Field(default_factory=list)


@_codec("Customer", m.Customer, CustomerSpec, m.CustomerFeature, m.CustomerEnvironment)
def _parse_customer(p: Parsed, s: CustomerSpec) -> None:
    p.columns.update(
        plan=s.plan,
        weight=s.weight,
        contacts=[c.model_dump(exclude_none=True) for c in s.contacts],
    )
    for feature in p.refs_of("spec.features", s.features, "Feature"):
        p.children.append(ChildRow(m.CustomerFeature, customer=p.name, feature=feature))
    for env in p.refs_of("spec.environments", s.environments, "Environment"):
        p.children.append(ChildRow(m.CustomerEnvironment, customer=p.name, environment=env))


@_dumper("Customer")
def _dump_customer(row: m.Customer, children: dict[type[SQLModel], list[Any]]) -> dict[str, Any]:
    return _clean(
        {
            "plan": row.plan,
            "weight": row.weight,
            "contacts": row.contacts,
            "features": sorted({r.feature for r in children.get(m.CustomerFeature, [])}),
            "environments": sorted(
                {r.environment for r in children.get(m.CustomerEnvironment, [])}
            ),
        }
    )


# On call


class OverrideSpec(Spec):
    person: str
    start: Time
    end: Time


class OnCallSpec(Spec):
    team: str
    members: list[str] = Field(min_length=1)
    shift_hours: float = Field(default=168.0, gt=0)
    start: Time
    overrides: list[OverrideSpec] = Field(default_factory=list)


@_codec("OnCall", m.OnCallRotation, OnCallSpec, m.OnCallOverride)
def _parse_oncall(p: Parsed, s: OnCallSpec) -> None:
    p.columns.update(
        team=p.ref("spec.team", s.team, "Team"),
        members=p.refs_of("spec.members", s.members, "Person"),
        shift_hours=s.shift_hours,
        start=s.start,
    )
    for i, o in enumerate(s.overrides):
        if o.end <= o.start:
            raise ValueError(f"spec.overrides[{i}] ends before it starts")
        person = p.ref(f"spec.overrides[{i}].person", o.person, "Person")
        assert person is not None
        p.children.append(
            ChildRow(m.OnCallOverride, rotation=p.name, person=person, start=o.start, end=o.end)
        )


@_dumper("OnCall")
def _dump_oncall(
    row: m.OnCallRotation, children: dict[type[SQLModel], list[Any]]
) -> dict[str, Any]:
    overrides = [
        {"person": o.person, "start": _iso(o.start), "end": _iso(o.end)}
        for o in sorted(children.get(m.OnCallOverride, []), key=lambda o: o.start)
    ]
    return _clean(
        {
            "team": row.team,
            "members": row.members,
            "shiftHours": row.shift_hours,
            "start": _iso(row.start),
            "overrides": overrides,
        }
    )


# What happened


class CommitSpec(Spec):
    sha: str
    time: Time | None = None


class DeploymentSpec(Spec):
    service: str
    environment: str | None = None
    version: str | None = None
    commit: str | None = None
    commit_time: Time | None = None
    deploy_time: Time
    status: Annotated[str, BeforeValidator(_lower)] = Field(
        default="success", pattern="^(success|failed|rolled-back|rolled_back|in-progress)$"
    )
    author: str | None = None
    url: str | None = None
    commits: list[CommitSpec] = Field(default_factory=list)


@_codec("Deployment", m.Deployment, DeploymentSpec)
def _parse_deployment(p: Parsed, s: DeploymentSpec) -> None:
    p.columns.update(
        service=p.ref("spec.service", s.service, "Service"),
        environment=p.ref("spec.environment", s.environment, "Environment"),
        version=s.version,
        commit=s.commit,
        commit_time=s.commit_time,
        deploy_time=s.deploy_time,
        status=s.status.replace("-", "_"),
        author=s.author,
        url=s.url,
        commits=[{"sha": c.sha, "time": _iso(c.time) or ""} for c in s.commits],
    )


@_dumper("Deployment")
def _dump_deployment(row: m.Deployment, _c: dict[type[SQLModel], list[Any]]) -> dict[str, Any]:
    return _clean(
        {
            "service": row.service,
            "environment": row.environment,
            "version": row.version,
            "commit": row.commit,
            "commitTime": _iso(row.commit_time),
            "deployTime": _iso(row.deploy_time),
            "status": row.status,
            "author": row.author,
            "url": row.url,
            "commits": [_clean(c) for c in row.commits],
        }
    )


def _severity(value: Any) -> Any:
    # SEV1, sev-1, 1, P1 and critical all mean the same to people.
    words = {"critical": 1, "major": 2, "high": 2, "minor": 3, "medium": 3, "low": 4}
    if isinstance(value, int):
        return f"SEV{value}"
    if isinstance(value, str):
        text = value.strip().lower()
        if text in words:
            return f"SEV{words[text]}"
        digits = re.sub(r"[^0-9]", "", text)
        if digits:
            return f"SEV{int(digits)}"
    return value


Severity = Annotated[str, BeforeValidator(_severity), Field(pattern="^SEV[1-5]$")]


class TimelineSpec(Spec):
    at: Time
    text: str
    kind: str = "note"
    author: str | None = None


class IncidentSpec(Spec):
    severity: Severity = "SEV3"
    status: Annotated[str, BeforeValidator(_lower)] = Field(
        default="investigating",
        pattern="^(investigating|identified|monitoring|mitigated|resolved|closed)$",
    )
    summary: str | None = None
    commander: str | None = None
    trigger: str | None = None
    root_cause_commit: str | None = None
    started_at: Time
    detected_at: Time | None = None
    acknowledged_at: Time | None = None
    mitigated_at: Time | None = None
    resolved_at: Time | None = None
    services: list[str] = Field(default_factory=list)
    environments: list[str] = Field(default_factory=list)
    features: list[str] = Field(default_factory=list)
    customers: list[str] = Field(default_factory=list)
    flags: list[str] = Field(default_factory=list)
    suspected_deployments: list[str] = Field(default_factory=list)
    timeline: list[TimelineSpec] = Field(default_factory=list)


# The incident fields that name other entities, and the link kind each becomes.
INCIDENT_LINKS = {
    "services": ("service", "Service"),
    "environments": ("environment", "Environment"),
    "features": ("feature", "Feature"),
    "customers": ("customer", "Customer"),
    "flags": ("flag", "FeatureFlag"),
    "suspectedDeployments": ("deployment", "Deployment"),
}


@_codec("Incident", m.Incident, IncidentSpec, m.IncidentLink, m.TimelineEntry)
def _parse_incident(p: Parsed, s: IncidentSpec) -> None:
    order = [s.started_at, s.detected_at, s.acknowledged_at, s.resolved_at]
    known = [t for t in order if t is not None]
    if known != sorted(known):
        raise ValueError(
            "times must not go backwards: startedAt <= detectedAt <= acknowledgedAt <= resolvedAt"
        )
    status = "resolved" if s.status == "closed" else s.status
    p.columns.update(
        severity=s.severity,
        status=status,
        summary=s.summary,
        commander=p.ref("spec.commander", s.commander, "Person"),
        trigger=s.trigger,
        root_cause_commit=s.root_cause_commit,
        started_at=s.started_at,
        detected_at=s.detected_at,
        acknowledged_at=s.acknowledged_at,
        mitigated_at=s.mitigated_at,
        resolved_at=s.resolved_at,
    )
    data = s.model_dump(by_alias=True)
    for field_name, (link_kind, kind) in INCIDENT_LINKS.items():
        for target in p.refs_of(f"spec.{field_name}", data[field_name], kind):
            p.children.append(
                ChildRow(m.IncidentLink, incident=p.name, kind=link_kind, target=target)
            )
    for entry in s.timeline:
        p.children.append(
            ChildRow(
                m.TimelineEntry,
                incident=p.name,
                at=entry.at,
                kind=entry.kind,
                text=entry.text,
                author=entry.author,
            )
        )


@_dumper("Incident")
def _dump_incident(row: m.Incident, children: dict[type[SQLModel], list[Any]]) -> dict[str, Any]:
    links = children.get(m.IncidentLink, [])
    spec: dict[str, Any] = {
        "severity": row.severity,
        "status": row.status,
        "summary": row.summary,
        "commander": row.commander,
        "trigger": row.trigger,
        "rootCauseCommit": row.root_cause_commit,
        "startedAt": _iso(row.started_at),
        "detectedAt": _iso(row.detected_at),
        "acknowledgedAt": _iso(row.acknowledged_at),
        "mitigatedAt": _iso(row.mitigated_at),
        "resolvedAt": _iso(row.resolved_at),
    }
    for field_name, (link_kind, _kind) in INCIDENT_LINKS.items():
        spec[field_name] = sorted({lk.target for lk in links if lk.kind == link_kind})
    spec["timeline"] = [
        _clean({"at": _iso(t.at), "text": t.text, "kind": t.kind, "author": t.author})
        for t in sorted(children.get(m.TimelineEntry, []), key=lambda t: (t.at, t.text))
    ]
    return _clean(spec)


def _text_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


TextList = Annotated[list[str], BeforeValidator(_text_list)]


class PostmortemSpec(Spec):
    incident: str | None = None
    summary: str | None = None
    trigger: str | None = None
    root_cause: str | None = None
    contributing_factors: TextList = Field(default_factory=list)
    detection: str | None = None
    resolution: str | None = None
    lessons: TextList = Field(default_factory=list)
    author: str | None = None
    published_at: Time | None = None


@_codec("Postmortem", m.Postmortem, PostmortemSpec)
def _parse_postmortem(p: Parsed, s: PostmortemSpec) -> None:
    p.columns.update(
        incident=p.ref("spec.incident", s.incident, "Incident"),
        summary=s.summary,
        trigger=s.trigger,
        root_cause=s.root_cause,
        contributing_factors=s.contributing_factors,
        detection=s.detection,
        resolution=s.resolution,
        lessons=s.lessons,
        author=s.author,
        published_at=s.published_at,
    )


@_dumper("Postmortem")
def _dump_postmortem(row: m.Postmortem, _c: dict[type[SQLModel], list[Any]]) -> dict[str, Any]:
    return _clean(
        {
            "incident": row.incident,
            "summary": row.summary,
            "trigger": row.trigger,
            "rootCause": row.root_cause,
            "contributingFactors": row.contributing_factors,
            "detection": row.detection,
            "resolution": row.resolution,
            "lessons": row.lessons,
            "author": row.author,
            "publishedAt": _iso(row.published_at),
        }
    )


def _priority(value: Any) -> Any:
    if isinstance(value, int):
        return f"P{value}"
    if isinstance(value, str):
        digits = re.sub(r"[^0-9]", "", value)
        return f"P{int(digits)}" if digits else value
    return value


class TaskSpec(Spec):
    postmortem: str | None = None
    incident: str | None = None
    owner: str | None = None
    priority: Annotated[str, BeforeValidator(_priority), Field(pattern="^P[1-5]$")] = "P3"
    status: Annotated[str, BeforeValidator(_lower)] = Field(
        default="open", pattern="^(open|in-progress|in_progress|done|wontfix|won-t-fix)$"
    )
    due_date: Time | None = None
    completed_at: Time | None = None


@_codec("RemediationTask", m.RemediationTask, TaskSpec)
def _parse_task(p: Parsed, s: TaskSpec) -> None:
    status = {"in-progress": "in_progress", "won-t-fix": "wontfix"}.get(s.status, s.status)
    p.columns.update(
        postmortem=p.ref("spec.postmortem", s.postmortem, "Postmortem"),
        incident=p.ref("spec.incident", s.incident, "Incident"),
        owner=p.ref("spec.owner", s.owner, "Team"),
        priority=s.priority,
        status=status,
        due_date=s.due_date,
        completed_at=s.completed_at,
    )


@_dumper("RemediationTask")
def _dump_task(row: m.RemediationTask, _c: dict[type[SQLModel], list[Any]]) -> dict[str, Any]:
    return _clean(
        {
            "postmortem": row.postmortem,
            "incident": row.incident,
            "owner": row.owner,
            "priority": row.priority,
            "status": row.status,
            "dueDate": _iso(row.due_date),
            "completedAt": _iso(row.completed_at),
        }
    )


class MeasurementSpec(Spec):
    at: Time
    good: float = Field(ge=0)
    total: float = Field(ge=0)


class SLOSpec(Spec):
    service: str | None = None
    indicator: str | None = None
    objective: Annotated[float, BeforeValidator(_objective)] = Field(default=0.999, gt=0, lt=1)
    window: str = "30d"
    window_type: Lower = "rolling"
    budgeting_method: Annotated[str, BeforeValidator(_lower)] = Field(
        default="occurrences", pattern="^(occurrences|timeslices|ratio-timeslices)$"
    )
    timeslice_target: Annotated[float | None, BeforeValidator(_objective)] = None
    timeslice_window: str | None = None
    measurements: list[MeasurementSpec] = Field(default_factory=list)


@_codec("SLO", m.SLO, SLOSpec, m.SLOMeasurement)
def _parse_slo(p: Parsed, s: SLOSpec) -> None:
    if s.timeslice_window is not None:
        parse_duration(s.timeslice_window)
    p.columns.update(
        service=p.ref("spec.service", s.service, "Service"),
        indicator=s.indicator,
        objective=s.objective,
        window_days=parse_duration(s.window).total_seconds() / 86400.0,
        window_type=s.window_type,
        budgeting_method=s.budgeting_method,
        timeslice_target=s.timeslice_target,
        timeslice_window=s.timeslice_window,
    )
    for i, ms in enumerate(s.measurements):
        if ms.good > ms.total:
            raise ValueError(f"spec.measurements[{i}] has more good events than total")
        p.children.append(
            ChildRow(m.SLOMeasurement, slo=p.name, at=ms.at, good=ms.good, total=ms.total)
        )


@_dumper("SLO")
def _dump_slo(row: m.SLO, children: dict[type[SQLModel], list[Any]]) -> dict[str, Any]:
    days = row.window_days
    window = f"{int(days)}d" if days == int(days) else f"{round(days * 24)}h"
    measurements = [
        {"at": _iso(ms.at), "good": ms.good, "total": ms.total}
        for ms in sorted(children.get(m.SLOMeasurement, []), key=lambda ms: ms.at)
    ]
    return _clean(
        {
            "service": row.service,
            "indicator": row.indicator,
            "objective": row.objective,
            "window": window,
            "windowType": row.window_type,
            "budgetingMethod": row.budgeting_method,
            "timesliceTarget": row.timeslice_target,
            "timesliceWindow": row.timeslice_window,
            "measurements": measurements,
        }
    )


class ScorecardSpec(Spec):
    applies_to: str = "Service"
    rules: list[ScorecardRule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _rules_fit_kind(self) -> ScorecardSpec:
        # Each check names the kinds it can read; the kind is stored canonical.
        self.applies_to = check_rules_fit(self.applies_to, self.rules)
        return self


@_codec("Scorecard", m.Scorecard, ScorecardSpec)
def _parse_scorecard(p: Parsed, s: ScorecardSpec) -> None:
    rules = [r.model_dump(exclude_defaults=True) for r in s.rules]
    p.columns.update(applies_to=s.applies_to, rules=rules)


@_dumper("Scorecard")
def _dump_scorecard(row: m.Scorecard, _c: dict[type[SQLModel], list[Any]]) -> dict[str, Any]:
    return _clean({"appliesTo": row.applies_to, "rules": row.rules})


# Which child tables each kind declares rows in; a reload replaces them by owner_ref.
CHILD_TABLES: dict[str, tuple[type[m.Owned], ...]] = {k: c.children for k, c in CODECS.items()}
