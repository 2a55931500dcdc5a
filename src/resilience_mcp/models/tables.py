"""The catalog's tables.

Every catalog entity is keyed by its `name` (a slug) within its kind. Rows that belong to
an entity but live in their own table (a service's dependencies, a flag's per-environment
state) carry `owner_ref`, the `kind:name` of the entity whose document declared them, so a
reload can replace exactly what that document said.

Times are stored as naive UTC and handed back timezone-aware (see `UTCDateTime`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Index, text
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

__all__ = [
    "KIND_TABLES",
    "SLO",
    "AuditRecord",
    "CatalogChange",
    "CatalogMeta",
    "CatalogState",
    "Customer",
    "CustomerEnvironment",
    "CustomerFeature",
    "Dependency",
    "Deployment",
    "Domain",
    "Entity",
    "Environment",
    "Feature",
    "FeatureFlag",
    "FeatureService",
    "FlagChange",
    "FlagState",
    "Incident",
    "IncidentLink",
    "OnCallOverride",
    "OnCallRotation",
    "Owned",
    "Person",
    "Postmortem",
    "RemediationTask",
    "SLOMeasurement",
    "Scorecard",
    "Service",
    "ServiceInstance",
    "SourceConfirmation",
    "System",
    "Team",
    "TeamMember",
    "TimelineEntry",
    "UTCDateTime",
    "WriteClaim",
    "utcnow",
]


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Stores naive UTC, returns aware UTC, so SQLite and PostgreSQL agree."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


def _time(*, index: bool = False, default_now: bool = False) -> Any:
    if default_now:
        return Field(default_factory=utcnow, sa_type=UTCDateTime, index=index)
    return Field(default=None, sa_type=UTCDateTime, index=index)


def _json_list() -> Any:
    return Field(default_factory=list, sa_type=JSON)


def _json_dict() -> Any:
    return Field(default_factory=dict, sa_type=JSON)


class Provenance(SQLModel):
    """Where a fact came from and when it was last confirmed there."""

    source: str = Field(default="local", index=True)
    external_id: str | None = None
    synced_at: datetime = _time(default_now=True)


class Entity(Provenance):
    """Fields every named catalog entity shares."""

    name: str = Field(primary_key=True)
    title: str | None = None
    description: str | None = None
    tags: list[str] = _json_list()
    links: list[dict[str, str]] = _json_list()
    annotations: dict[str, str] = _json_dict()


class Owned(SQLModel):
    """A row declared by another entity's document.

    Rows have a surrogate key: the same link may be declared from both ends (a team's
    `members` and a person's `memberOf`), and readers take the distinct values.
    """

    id: int | None = Field(default=None, primary_key=True)
    owner_ref: str = Field(index=True)


# Organisation


class Team(Entity, table=True):
    __tablename__ = "team"

    parent: str | None = Field(default=None, index=True)
    chat_channel: str | None = None
    escalation: str | None = None
    email: str | None = None


class Person(Entity, table=True):
    __tablename__ = "person"

    email: str | None = None
    handle: str | None = None


class TeamMember(Owned, table=True):
    __tablename__ = "team_member"

    team: str = Field(index=True)
    person: str = Field(index=True)
    role: str | None = None


class Domain(Entity, table=True):
    __tablename__ = "domain"

    owner: str | None = Field(default=None, index=True)


class System(Entity, table=True):
    __tablename__ = "system"

    owner: str | None = Field(default=None, index=True)
    domain: str | None = Field(default=None, index=True)


# What runs


class Service(Entity, table=True):
    __tablename__ = "service"

    type: str = "service"
    tier: int | None = None
    lifecycle: str | None = None
    owner: str | None = Field(default=None, index=True)
    system: str | None = Field(default=None, index=True)
    repository: str | None = None
    runbook: str | None = None
    dashboards: list[str] = _json_list()


class Dependency(Owned, table=True):
    """`source` needs `target`: if the target fails, the source is affected."""

    __tablename__ = "dependency"

    source: str = Field(index=True)
    target: str = Field(index=True)
    kind: str = "sync"
    hard: bool = True
    description: str | None = None


class Environment(Entity, table=True):
    __tablename__ = "environment"

    type: str = "production"
    region: str | None = None
    cloud: str | None = None
    tenant: str | None = Field(default=None, index=True)
    parent: str | None = Field(default=None, index=True)


class ServiceInstance(Owned, table=True):
    """A service running in an environment, at a version."""

    __tablename__ = "service_instance"

    service: str = Field(index=True)
    environment: str = Field(index=True)
    version: str | None = None
    replicas: int | None = None


# Features, flags, customers


class Feature(Entity, table=True):
    __tablename__ = "feature"

    owner: str | None = Field(default=None, index=True)


class FeatureService(Owned, table=True):
    __tablename__ = "feature_service"

    feature: str = Field(index=True)
    service: str = Field(index=True)


class FeatureFlag(Entity, table=True):
    __tablename__ = "feature_flag"

    key: str = Field(index=True, unique=True)
    purpose: str = "release"
    feature: str | None = Field(default=None, index=True)
    services: list[str] = _json_list()
    owner: str | None = Field(default=None, index=True)
    flag_type: str = "boolean"
    variants: dict[str, Any] = _json_dict()
    default_variant: str | None = None


class FlagState(Owned, table=True):
    __tablename__ = "flag_state"

    flag: str = Field(index=True)
    environment: str = Field(index=True)
    enabled: bool = False
    rollout: float | None = None
    variant: str | None = None
    targeting: str | None = None
    updated_at: datetime | None = _time()
    updated_by: str | None = None


class FlagChange(Owned, table=True):
    """One change of a flag's state in one environment."""

    __tablename__ = "flag_change"
    __table_args__ = (Index("ix_flag_change_flag_at", "flag", "at"),)

    flag: str
    environment: str | None = Field(default=None, index=True)
    at: datetime = _time(index=True, default_now=True)
    by: str | None = None
    from_state: str | None = None
    to_state: str | None = None
    reason: str | None = None


class Customer(Entity, table=True):
    __tablename__ = "customer"

    plan: str | None = Field(default=None, index=True)
    weight: float = 0.0
    contacts: list[dict[str, str]] = _json_list()


class CustomerFeature(Owned, table=True):
    __tablename__ = "customer_feature"

    customer: str = Field(index=True)
    feature: str = Field(index=True)


class CustomerEnvironment(Owned, table=True):
    __tablename__ = "customer_environment"

    customer: str = Field(index=True)
    environment: str = Field(index=True)


# On call


class OnCallRotation(Entity, table=True):
    __tablename__ = "oncall_rotation"

    team: str = Field(index=True)
    members: list[str] = _json_list()
    shift_hours: float = 168.0
    start: datetime = _time(default_now=True)


class OnCallOverride(Owned, table=True):
    __tablename__ = "oncall_override"

    rotation: str = Field(index=True)
    person: str
    start: datetime = _time(default_now=True)
    end: datetime = _time(default_now=True)


# What happened


class Deployment(Entity, table=True):
    __tablename__ = "deployment"
    __table_args__ = (Index("ix_deployment_service_time", "service", "deploy_time"),)

    service: str
    environment: str | None = Field(default=None, index=True)
    version: str | None = None
    commit: str | None = Field(default=None, index=True)
    commit_time: datetime | None = _time()
    deploy_time: datetime = _time(index=True, default_now=True)
    status: str = "success"
    author: str | None = None
    url: str | None = None
    commits: list[dict[str, str]] = _json_list()


class Incident(Entity, table=True):
    """`name` is the incident key, such as INC-2041."""

    __tablename__ = "incident"

    severity: str = Field(default="SEV3", index=True)
    status: str = Field(default="investigating", index=True)
    summary: str | None = None
    commander: str | None = None
    trigger: str | None = None
    root_cause_commit: str | None = Field(default=None, index=True)
    started_at: datetime = _time(index=True, default_now=True)
    detected_at: datetime | None = _time()
    acknowledged_at: datetime | None = _time()
    mitigated_at: datetime | None = _time()
    resolved_at: datetime | None = _time()
    version: int = 1


LINK_INDEX = "ix_incident_link_kind_target_incident"


class IncidentLink(Owned, table=True):
    """What an incident touched: a service, environment, feature, customer, flag or deployment."""

    __tablename__ = "incident_link"
    # Covering: a service's incidents are found in the index alone, not row by row.
    __table_args__ = (Index(LINK_INDEX, "kind", "target", "incident"),)

    incident: str = Field(index=True)
    kind: str = Field(index=True)
    target: str = Field(index=True)


class TimelineEntry(Owned, table=True):
    __tablename__ = "timeline_entry"

    incident: str = Field(index=True)
    at: datetime = _time(default_now=True)
    kind: str = "note"
    text: str = ""
    author: str | None = None


class Postmortem(Entity, table=True):
    __tablename__ = "postmortem"

    incident: str | None = Field(default=None, index=True)
    summary: str | None = None
    trigger: str | None = None
    root_cause: str | None = None
    contributing_factors: list[str] = _json_list()
    detection: str | None = None
    resolution: str | None = None
    lessons: list[str] = _json_list()
    author: str | None = None
    published_at: datetime | None = _time()


class RemediationTask(Entity, table=True):
    __tablename__ = "remediation_task"

    postmortem: str | None = Field(default=None, index=True)
    incident: str | None = Field(default=None, index=True)
    owner: str | None = Field(default=None, index=True)
    priority: str = "P3"
    status: str = Field(default="open", index=True)
    due_date: datetime | None = _time()
    completed_at: datetime | None = _time()
    version: int = 1


class SLO(Entity, table=True):
    __tablename__ = "slo"

    service: str | None = Field(default=None, index=True)
    indicator: str | None = None
    objective: float = 0.999
    window_days: float = 30.0
    window_type: str = "rolling"
    budgeting_method: str = "occurrences"
    timeslice_target: float | None = None
    timeslice_window: str | None = None


class SLOMeasurement(Owned, table=True):
    __tablename__ = "slo_measurement"
    __table_args__ = (Index("ix_slo_measurement_slo_at", "slo", "at"),)

    slo: str
    at: datetime = _time(default_now=True)
    good: float = 0.0
    total: float = 0.0


class Scorecard(Entity, table=True):
    """Rules grouped into levels; `rules` is the scorecard's own data."""

    __tablename__ = "scorecard"

    applies_to: str = "Service"
    rules: list[dict[str, Any]] = _json_list()


# Bookkeeping


class CatalogChange(SQLModel, table=True):
    """One change a load or sync made to a field that matters during an incident (a
    service's owner, tier, lifecycle or dependencies), kept for the change timeline."""

    __tablename__ = "catalog_change"
    __table_args__ = (Index("ix_catalog_change_name_at", "name", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    kind: str = "Service"
    name: str
    field: str
    at: datetime = _time(index=True, default_now=True)
    source: str | None = None
    from_value: str | None = None
    to_value: str | None = None


class CatalogState(SQLModel, table=True):
    """One row: the catalog version, bumped by every write, so replicas notice changes;
    the graph version, bumped only by writes to the tables the graph is built from; the
    flag version, bumped by writes to the flag states the graph holds; and the confirm
    version, bumped when a sync confirms what its source holds (`SourceConfirmation`)."""

    __tablename__ = "catalog_state"

    id: int = Field(default=1, primary_key=True)
    version: int = 0
    graph_version: int = 0
    flag_version: int = 0
    confirm_version: int = 0
    changed_at: datetime = _time(default_now=True)


class SourceConfirmation(SQLModel, table=True):
    """When a sync last confirmed the entities of one kind that one source holds.

    A sync that finds nothing changed moves `confirmed_at` here rather than every entity's
    `synced_at`: writing those rows would move the graph version, and rebuild the graph of
    every replica, on each run. The source holds the entities of `kind` with its label as
    `source` and a `synced_at` no earlier than `held_since`; a sync that sees another set
    than that touches the ones it saw and moves `held_since` to its own time, so the ones
    it no longer sees keep their own age (see `catalog.confirmations`)."""

    __tablename__ = "source_confirmation"

    source: str = Field(primary_key=True)
    kind: str = Field(primary_key=True)
    held_since: datetime = _time(default_now=True)
    confirmed_at: datetime = _time(default_now=True)


class CatalogMeta(SQLModel, table=True):
    __tablename__ = "catalog_meta"

    key: str = Field(primary_key=True)
    value: str


class AuditRecord(SQLModel, table=True):
    __tablename__ = "audit_record"
    # At most one call acts per tool and idempotency key: a concurrent retry cannot insert
    # its record, so its transaction rolls back and it answers with the first call's result.
    __table_args__ = (
        Index(
            "ux_audit_record_tool_key",
            "tool",
            "idempotency_key",
            unique=True,
            sqlite_where=text("outcome = 'ok' AND NOT dry_run"),
            postgresql_where=text("outcome = 'ok' AND NOT dry_run"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = _time(index=True, default_now=True)
    actor: str = "local"
    tool: str = Field(index=True)
    arguments: dict[str, Any] = _json_dict()
    result: dict[str, Any] = _json_dict()
    dry_run: bool = False
    idempotency_key: str | None = Field(default=None, index=True)
    outcome: str = "ok"


class WriteClaim(SQLModel, table=True):
    """An idempotency key held by a write that acts outside the store, while it runs.

    A request sent to another system cannot be rolled back, so the key is claimed before
    sending and released once the audit record is written: of two concurrent calls with
    one key, only one sends. A claim left by a process that died expires."""

    __tablename__ = "write_claim"

    tool: str = Field(primary_key=True)
    idempotency_key: str = Field(primary_key=True)
    claimed_at: datetime = _time(default_now=True)
    expires_at: datetime = _time()


# The entity tables by catalog kind, in the order a load writes them.
KIND_TABLES: dict[str, type[Entity]] = {
    "Team": Team,
    "Person": Person,
    "Domain": Domain,
    "System": System,
    "Service": Service,
    "Environment": Environment,
    "Feature": Feature,
    "FeatureFlag": FeatureFlag,
    "Customer": Customer,
    "OnCall": OnCallRotation,
    "Deployment": Deployment,
    "Incident": Incident,
    "Postmortem": Postmortem,
    "RemediationTask": RemediationTask,
    "SLO": SLO,
    "Scorecard": Scorecard,
}
