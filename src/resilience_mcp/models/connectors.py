"""Connectors: how sync sources, webhooks and outbound actions are configured, the
bookkeeping tables webhooks and flag syncs write, and the answers of the action tools.

The settings are read from one YAML file (see `resilience-mcp sync --help`); every secret
in it is the *name* of an environment variable, never the secret itself.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlmodel import Field as Column
from sqlmodel import SQLModel

from resilience_mcp.models.common import Answer
from resilience_mcp.models.tables import UTCDateTime, utcnow

__all__ = [
    "ActionBrief",
    "ActionList",
    "ActionSpec",
    "ConnectorSettings",
    "PushTarget",
    "PushedCommit",
    "SourceConfig",
    "SourceType",
    "SyncedFlagState",
    "WebhookDelivery",
    "WebhookSettings",
]

SourceType = Literal["backstage", "backstage-files", "pagerduty", "flagd"]

_SLUG = r"^[a-z0-9][a-z0-9._-]{0,62}$"
_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _check_header_names(owner: str, headers: dict[str, str]) -> None:
    for header, env in headers.items():
        if not re.fullmatch(_ENV_NAME, env):
            raise ValueError(
                f"{owner}: header {header} must name an environment variable, not hold a value"
            )


class PushTarget(_Settings):
    """Where a flagd source's flag changes go, so that set_feature_flag takes effect."""

    url: str = Field(description="The endpoint that takes the environment's flag definitions.")
    method: Literal["PUT", "POST", "PATCH"] = "PUT"
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="Header name -> the environment variable holding its value.",
    )
    timeout_seconds: float = Field(default=10.0, gt=0, le=60)

    @model_validator(mode="after")
    def _valid(self) -> PushTarget:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("push.url must be http(s) with a host")
        _check_header_names("push", self.headers)
        return self


class SourceConfig(_Settings):
    """One place the catalog is synced from."""

    name: str = Field(pattern=_SLUG, description="What `resilience-mcp sync NAME` calls it.")
    type: SourceType
    url: str | None = Field(
        default=None,
        description="Base URL (Backstage, PagerDuty), or the URL of flagd's flag definitions.",
    )
    path: str | None = Field(
        default=None, description="A folder (backstage-files), or a flagd flag file (flagd)."
    )
    token_env: str | None = Field(
        default=None, pattern=_ENV_NAME, description="The environment variable with the token."
    )
    source: str | None = Field(
        default=None, description="The provenance label written on synced facts."
    )
    interval: str | None = Field(
        default=None, description="How often to sync while serving (15m, 1h); none: never."
    )
    timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    retries: int = Field(default=4, ge=0, le=10)
    page_size: int = Field(default=100, ge=1, le=1000)
    # Backstage
    pagination: Literal["cursor", "offset"] = "cursor"
    filters: list[str] = Field(default_factory=list, description="Backstage `filter` values.")
    include: list[str] = Field(
        default_factory=list, description="Glob patterns of files to read in a folder."
    )
    prune: bool = Field(default=True, description="Remove what the source no longer has.")
    # PagerDuty
    incident_days: float = Field(default=30.0, gt=0, le=180)
    oncall_days: float = Field(default=7.0, gt=0, le=90)
    # flagd
    environment: str | None = Field(
        default=None, description="The catalog environment whose flag states flagd holds."
    )
    push: PushTarget | None = Field(
        default=None,
        description="flagd: where set_feature_flag sends the environment's flag definitions.",
    )

    @property
    def label(self) -> str:
        """The provenance label: `source` when given, else the type's own name."""
        if self.source:
            return self.source
        return "backstage" if self.type == "backstage-files" else self.type

    @model_validator(mode="after")
    def _where_to_read(self) -> SourceConfig:
        if self.type == "backstage-files" and not self.path:
            raise ValueError(f"source {self.name} (backstage-files) needs a path")
        if self.type == "backstage" and not self.url:
            raise ValueError(f"source {self.name} (backstage) needs a url")
        if self.type == "flagd" and bool(self.url) == bool(self.path):
            raise ValueError(
                f"source {self.name} (flagd) needs either a url or the path of a flag file"
            )
        if self.type == "flagd" and not self.environment:
            raise ValueError(f"source {self.name} (flagd) needs the environment its flags are for")
        if self.push is not None and self.type != "flagd":
            raise ValueError(f"source {self.name}: only flagd sources take push")
        return self


class WebhookSettings(_Settings):
    """Events pushed to us: each channel is on only when its secret is set."""

    github_secret_env: str | None = Field(default=None, pattern=_ENV_NAME)
    generic_secret_env: str | None = Field(default=None, pattern=_ENV_NAME)
    tolerance_seconds: float = Field(
        default=300.0, gt=0, description="How far a signed timestamp may be from now."
    )
    retention_days: float = Field(
        default=7.0, gt=0, description="How long delivery ids are kept to refuse replays."
    )
    max_body_bytes: int = Field(default=5 * 1024 * 1024, gt=0)


class ActionSpec(_Settings):
    """An outbound webhook an agent may run with `run_action`."""

    name: str = Field(pattern=_SLUG)
    description: str = Field(min_length=1, max_length=1000)
    url: str
    method: Literal["POST", "PUT", "PATCH"] = "POST"
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="Header name -> the environment variable holding its value.",
    )
    input_schema: dict[str, Any] = Field(
        default_factory=lambda: {"type": "object", "properties": {}},
        description="JSON Schema of the inputs the agent passes.",
    )
    timeout_seconds: float = Field(default=10.0, gt=0, le=120)

    @model_validator(mode="after")
    def _header_names(self) -> ActionSpec:
        _check_header_names(f"action {self.name}", self.headers)
        return self


class ConnectorSettings(_Settings):
    """The whole connectors file."""

    sources: list[SourceConfig] = Field(default_factory=list)
    webhooks: WebhookSettings | None = None
    actions: list[ActionSpec] = Field(default_factory=list)
    stale_after_hours: float | None = Field(
        default=None,
        gt=0,
        description="How old a synced fact may be before answers mark it stale (default "
        "168); --stale-after-hours and $RESILIENCE_MCP_STALE_AFTER_HOURS take precedence.",
    )

    @model_validator(mode="after")
    def _unique_names(self) -> ConnectorSettings:
        for what, names in (
            ("source", [s.name for s in self.sources]),
            ("action", [a.name for a in self.actions]),
        ):
            twice = sorted({n for n in names if names.count(n) > 1})
            if twice:
                raise ValueError(f"{what} names must be unique: {', '.join(twice)}")
        return self

    def source(self, name: str) -> SourceConfig | None:
        return next((s for s in self.sources if s.name == name), None)

    @model_validator(mode="after")
    def _one_push_per_environment(self) -> ConnectorSettings:
        pushed = [s.environment for s in self.sources if s.push is not None]
        twice = sorted({str(e) for e in pushed if pushed.count(e) > 1})
        if twice:
            raise ValueError(
                f"only one flagd source may push to an environment: {', '.join(twice)}"
            )
        return self


# Bookkeeping tables


class WebhookDelivery(SQLModel, table=True):
    """A delivery already processed, so that sending it again is refused."""

    __tablename__ = "webhook_delivery"

    id: str = Column(primary_key=True, description="channel:delivery id")
    event: str
    received_at: datetime = Column(default_factory=utcnow, sa_type=UTCDateTime, index=True)


class PushedCommit(SQLModel, table=True):
    """A commit seen in a push event: its time gives deployments their lead time."""

    __tablename__ = "pushed_commit"

    repository: str = Column(primary_key=True)
    sha: str = Column(primary_key=True)
    ref: str | None = None
    time: datetime = Column(sa_type=UTCDateTime, index=True)
    pushed_at: datetime = Column(default_factory=utcnow, sa_type=UTCDateTime)


class SyncedFlagState(SQLModel, table=True):
    """When a flag system last confirmed a flag's state in one environment.

    A flag's document carries its states in every environment, so the flag's own
    provenance cannot say which of them a flagd source keeps current; this row does, for
    the state in the source's environment, each time a sync reads it or a change is pushed."""

    __tablename__ = "synced_flag_state"

    flag: str = Column(primary_key=True)
    environment: str = Column(primary_key=True)
    source: str
    synced_at: datetime = Column(sa_type=UTCDateTime)


# Answers


class ActionBrief(BaseModel):
    name: str
    description: str
    method: str
    host: str = Field(description="Where the action sends its request (the host only).")
    input_schema: dict[str, Any] = Field(description="JSON Schema of the inputs it takes.")


class ActionList(Answer):
    actions: list[ActionBrief]
    writes_enabled: bool = Field(description="Whether run_action may be called on this server.")

    def text(self) -> str:
        if not self.actions:
            return "No actions are configured on this server."
        head = f"{len(self.actions)} action(s)"
        if not self.writes_enabled:
            head += " (writes are disabled here: run_action is not available)"
        lines = [head + ":"]
        lines += [f"- {a.name}: {a.description} ({a.method} {a.host})" for a in self.actions]
        return "\n".join(lines)
