"""Answers about the catalog itself: owners, service cards, search."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from resilience_mcp.models.common import (
    Answer,
    Link,
    ListCut,
    OwnerSummary,
    PageInfo,
    PersonSummary,
)

__all__ = [
    "DependencyEdge",
    "DeploymentBrief",
    "FlagBrief",
    "IncidentBrief",
    "OwnerAnswer",
    "Provenance",
    "RunningIn",
    "SearchAnswer",
    "SearchHit",
    "ServiceCard",
]


class Provenance(BaseModel):
    source: str
    synced_at: datetime
    stale: bool = False
    external_id: str | None = Field(
        default=None,
        description="Its id in the system it was synced from (a Backstage uid), when that "
        "system gives one.",
    )


class OwnerAnswer(Answer):
    name: str
    kind: str
    corrected_from: str | None = Field(
        default=None, description="What was asked, when it was taken as a near miss for `name`."
    )
    owner: OwnerSummary
    parent_team: str | None = None
    members: list[PersonSummary] = Field(default_factory=list)
    members_page: ListCut
    links: list[Link] = Field(
        default_factory=list,
        description="Where to look next: a service's runbook, repository and dashboards, or "
        "the links the catalog gives the entity.",
    )

    def text(self) -> str:
        asked = f" (taken for {self.corrected_from!r})" if self.corrected_from else ""
        lines = [f"{self.kind} {self.name}{asked}: owned by {self.owner.line()}"]
        if self.owner.escalation:
            lines.append(f"escalation: {self.owner.escalation}")
        if self.members:
            names = ", ".join(p.title or p.name for p in self.members)
            lines.append(f"members: {names}{self.members_page.note('members')}")
        return "\n".join(lines)

    def card_links(self) -> list[str]:
        return [link.url for link in self.links] + [self.owner.chat_channel or ""]


class DependencyEdge(BaseModel):
    service: str
    kind: str
    hard: bool
    tier: int | None = None
    type: str | None = None


class RunningIn(BaseModel):
    environment: str
    version: str | None = None
    replicas: int | None = None


class FlagBrief(BaseModel):
    name: str
    key: str
    purpose: str
    feature: str | None = None
    states: dict[str, str] = Field(
        default_factory=dict, description="Environment -> on, off, a rollout % or a variant."
    )


class IncidentBrief(BaseModel):
    key: str
    title: str | None
    severity: str
    status: str
    started_at: datetime
    resolved_at: datetime | None = None


class DeploymentBrief(BaseModel):
    name: str
    service: str
    environment: str | None
    version: str | None
    status: str
    deploy_time: datetime
    author: str | None = None
    commit: str | None = None


class ServiceCard(Answer):
    name: str
    corrected_from: str | None = None
    title: str | None = None
    description: str | None = None
    type: str
    tier: int | None = None
    lifecycle: str | None = None
    system: str | None = None
    domain: str | None = None
    owner: OwnerSummary
    repository: str | None = None
    runbook: str | None = None
    dashboards: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    depends_on: list[DependencyEdge] = Field(default_factory=list)
    depends_on_page: ListCut
    dependents: list[DependencyEdge] = Field(default_factory=list)
    dependents_page: ListCut
    environments: list[RunningIn] = Field(default_factory=list)
    environments_page: ListCut
    features: list[str] = Field(default_factory=list)
    features_page: ListCut
    flags: list[FlagBrief] = Field(default_factory=list)
    flags_page: ListCut
    open_incidents: list[IncidentBrief] = Field(default_factory=list)
    open_incidents_page: ListCut
    recent_deployments: list[DeploymentBrief] = Field(default_factory=list)
    provenance: Provenance

    def text(self) -> str:
        tier = f"tier {self.tier} " if self.tier else ""
        head = f"{self.name}: {tier}{self.type}"
        if self.system:
            head += f" in {self.system}"
        lines = [head, f"owner: {self.owner.line()}"]
        if self.runbook:
            lines.append(f"runbook: {self.runbook}")
        if self.depends_on:
            deps = ", ".join(d.service + ("" if d.hard else " (soft)") for d in self.depends_on)
            rest = "get_dependencies lists them all"
            lines.append(f"depends on: {deps}{self.depends_on_page.note('dependencies', rest)}")
        if self.dependents:
            deps = ", ".join(d.service for d in self.dependents)
            rest = "get_dependencies with direction up lists them all"
            lines.append(f"used by: {deps}{self.dependents_page.note('dependents', rest)}")
        if self.environments:
            envs = ", ".join(f"{e.environment} {e.version or '?'}" for e in self.environments)
            lines.append(f"runs in: {envs}{self.environments_page.note('environments')}")
        kill = [f.key for f in self.flags if f.purpose == "kill-switch"]
        if kill:
            lines.append(f"kill switches: {', '.join(kill)}")
        for inc in self.open_incidents:
            lines.append(f"OPEN {inc.key} {inc.severity} {inc.status}: {inc.title}")
        if self.open_incidents_page.truncated:
            lines.append(
                f"... {self.open_incidents_page.total} open incidents in all; list_incidents "
                "with status open lists them"
            )
        return "\n".join(lines)

    def card_links(self) -> list[str]:
        links = [self.runbook or "", self.repository or "", *self.dashboards]
        return [*links, self.owner.chat_channel or ""]


class SearchHit(BaseModel):
    kind: str
    name: str
    title: str | None = None
    description: str | None = None
    score: float
    matched: list[str] = Field(default_factory=list, description="Which fields matched.")


class SearchAnswer(Answer):
    query: str
    kind: str | None = None
    results: list[SearchHit]
    page: PageInfo

    def text(self) -> str:
        if not self.results:
            return f"Nothing in the catalog matches {self.query!r}."
        lines = [f"{self.page.total} match(es) for {self.query!r}{self.page.note('matches')}:"]
        lines += [
            f"- {h.kind} {h.name}" + (f": {h.title}" if h.title else "") for h in self.results
        ]
        return "\n".join(lines)
