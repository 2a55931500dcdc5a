"""Answers about features, feature flags and what changed."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from resilience_mcp.models.catalog import IncidentBrief
from resilience_mcp.models.common import Answer, FactSource, ListCut, OwnerSummary, PageInfo

__all__ = [
    "ChangeEntry",
    "ChangeTimeline",
    "CustomerBrief",
    "Entitlements",
    "FeatureCard",
    "FlagChangeView",
    "FlagHistory",
    "FlagListAnswer",
    "FlagStateView",
    "FlagSummary",
    "ServiceBrief",
]


def _stamp(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M")


class FlagStateView(BaseModel):
    """A flag's state in one environment or tenant cell."""

    environment: str
    tenant: str | None = None
    state: str = Field(description="on, off, 'on 25%' (a rollout) or 'on (variant)'.")
    enabled: bool
    rollout: float | None = Field(default=None, description="Percent of traffic, when partial.")
    variant: str | None = None
    targeting: str | None = Field(default=None, description="Who gets it, in words.")
    inherited_from: str | None = Field(
        default=None,
        description="The environment this state was read from, when the one asked about has "
        "no state of its own (a tenant cell follows its parent).",
    )
    source: FactSource | None = Field(
        default=None,
        description="Where this state came from when a flag system (flagd) keeps it current: "
        "the source, when it last confirmed the state, and whether that is stale.",
    )

    def line(self) -> str:
        where = self.environment + (f" (tenant {self.tenant})" if self.tenant else "")
        text = f"{where}: {self.state}"
        if self.inherited_from:
            text += f" (from {self.inherited_from})"
        if self.targeting:
            text += f" [{self.targeting}]"
        if self.source is not None and (note := self.source.note("state")):
            text += f" ({note})"
        return text


class FlagChangeView(BaseModel):
    """One change of a flag in one environment: who, when, from what to what, and why."""

    flag: str
    key: str
    environment: str | None = Field(description="Null when the change applied everywhere.")
    at: datetime
    by: str | None = None
    from_state: str | None = None
    to_state: str | None = None
    reason: str | None = None

    def line(self) -> str:
        where = self.environment or "all environments"
        who = f" by {self.by}" if self.by else ""
        why = f": {self.reason}" if self.reason else ""
        change = f"{self.from_state or '?'} -> {self.to_state or '?'}"
        return f"{_stamp(self.at)} {where} {change}{who}{why}"


class FlagSummary(BaseModel):
    name: str
    key: str
    title: str | None = None
    purpose: str
    feature: str | None = None
    services: list[str] = Field(default_factory=list, description="The services that read it.")
    owner: str | None = None
    owner_inherited: bool = False
    states: list[FlagStateView] = Field(default_factory=list)
    changed_recently: bool = False
    last_change: FlagChangeView | None = Field(
        default=None, description="The newest change within the recent window, if any."
    )

    def line(self) -> str:
        mark = " CHANGED RECENTLY" if self.changed_recently else ""
        kind = "KILL SWITCH " if self.purpose == "kill-switch" else f"{self.purpose} "
        states = "; ".join(s.line() for s in self.states) or "no state recorded"
        return f"{kind}{self.key}{mark}: {states}"


class FlagListAnswer(Answer):
    service: str | None = None
    feature: str | None = None
    environment: str | None = None
    purpose: str | None = None
    state: str | None = None
    notes: list[str] = Field(
        default_factory=list, description="Names taken as near misses for what was asked."
    )
    recent_hours: float = Field(description="A change within this many hours counts as recent.")
    flags: list[FlagSummary]
    page: PageInfo

    def text(self) -> str:
        scope = [
            f"{label} {value}"
            for label, value in (
                ("service", self.service),
                ("feature", self.feature),
                ("environment", self.environment),
                ("purpose", self.purpose),
                ("state", self.state),
            )
            if value
        ]
        where = f" ({', '.join(scope)})" if scope else ""
        if not self.flags:
            return f"No feature flags match{where}."
        lines = [*self.notes, f"{self.page.total} flag(s){where}{self.page.note('flags')}:"]
        lines += [f"- {f.line()}" for f in self.flags]
        return "\n".join(lines)


class ServiceBrief(BaseModel):
    name: str
    title: str | None = None
    tier: int | None = None
    type: str | None = None


class CustomerBrief(BaseModel):
    name: str
    title: str | None = None
    plan: str | None = None
    weight: float = 0.0
    environments: list[str] = Field(default_factory=list)


class Entitlements(BaseModel):
    """The customers entitled to a feature: how many, by plan, and the heaviest first."""

    total: int
    total_weight: float
    by_plan: dict[str, int] = Field(default_factory=dict)
    top: list[CustomerBrief] = Field(default_factory=list)


class FeatureCard(Answer):
    name: str
    corrected_from: str | None = None
    title: str | None = None
    description: str | None = None
    owner: OwnerSummary
    services: list[ServiceBrief] = Field(default_factory=list)
    services_page: ListCut
    flags: list[FlagSummary] = Field(default_factory=list)
    flags_page: ListCut
    customers: Entitlements
    open_incidents: list[IncidentBrief] = Field(default_factory=list)

    def text(self) -> str:
        asked = f" (taken for {self.corrected_from!r})" if self.corrected_from else ""
        head = f"feature {self.name}{asked}" + (f": {self.title}" if self.title else "")
        lines = [head, f"owner: {self.owner.line()}"]
        if self.services:
            names = ", ".join(s.name for s in self.services)
            lines.append(f"services: {names}{self.services_page.note('services')}")
        lines += [f"- {f.line()}" for f in self.flags]
        if self.flags_page.truncated:
            rest = "list_feature_flags with feature lists them all"
            lines.append(self.flags_page.note("flags", rest).strip())
        plans = ", ".join(f"{n} {plan}" for plan, n in self.customers.by_plan.items())
        top = ", ".join(c.title or c.name for c in self.customers.top)
        lines.append(f"customers entitled: {self.customers.total} ({plans or 'none'})")
        if top:
            lines.append(f"largest: {top}")
        for inc in self.open_incidents:
            lines.append(f"OPEN {inc.key} {inc.severity} {inc.status}: {inc.title}")
        return "\n".join(lines)


class ChangeEntry(BaseModel):
    """A deployment, a flag change or a catalog edit, and how it bears on the services
    asked about."""

    kind: Literal["deployment", "flag", "catalog"] = Field(
        description="catalog: a load or sync changed a service's owner, tier, lifecycle or "
        "dependencies."
    )
    at: datetime
    name: str = Field(description="The deployment's name, the flag's name, or the service edited.")
    key: str | None = Field(default=None, description="The flag's key, for a flag change.")
    field: str | None = Field(
        default=None, description="The field a catalog edit changed, such as owner."
    )
    service: str | None = Field(
        default=None,
        description="The service deployed or edited, or the service reading the flag that "
        "lies on the path from what was asked (null when nothing was asked and the flag names "
        "no service).",
    )
    environment: str | None = Field(
        default=None, description="Null when the change holds for every environment."
    )
    tenant: str | None = None
    summary: str
    by: str | None = Field(
        default=None, description="Who or what made the change; the source, for a catalog edit."
    )
    link: str | None = None
    reason: str | None = None
    status: str | None = Field(default=None, description="A deployment's outcome.")
    before: str | None = Field(
        default=None, description="A flag's state, or a catalog field's value, before."
    )
    after: str | None = Field(default=None, description="The same, after the change.")
    path: list[str] = Field(
        default_factory=list,
        description="From a service asked about, along its dependencies, to `service`; one "
        "name when the change is to that service itself; empty when no services were asked.",
    )

    def line(self) -> str:
        who = f" by {self.by}" if self.by else ""
        via = f" (via {' -> '.join(self.path)})" if len(self.path) > 1 else ""
        return f"{_stamp(self.at)} {self.summary}{who}{via}"


class ChangeTimeline(Answer):
    services: list[str] = Field(default_factory=list)
    environment: str | None = None
    since: datetime
    until: datetime
    dependencies_included: int = Field(
        default=0, description="How many services the asked ones depend on, at any depth."
    )
    notes: list[str] = Field(default_factory=list)
    changes: list[ChangeEntry]
    page: PageInfo

    def text(self) -> str:
        scope = ", ".join(self.services) if self.services else "everything"
        if self.dependencies_included:
            scope += f" and {self.dependencies_included} dependencies"
        if self.environment:
            scope += f" in {self.environment}"
        window = f"{_stamp(self.since)} to {_stamp(self.until)} UTC"
        if not self.changes:
            return "\n".join([*self.notes, f"No changes to {scope} from {window}."])
        head = f"{self.page.total} change(s) to {scope}, {window}{self.page.note('changes')}:"
        return "\n".join([*self.notes, head, *(f"- {c.line()}" for c in self.changes)])


class FlagHistory(Answer):
    name: str
    key: str
    corrected_from: str | None = None
    title: str | None = None
    purpose: str
    environment: str | None = None
    states: list[FlagStateView] = Field(default_factory=list)
    changes: list[FlagChangeView]
    page: PageInfo

    def text(self) -> str:
        asked = f" (taken for {self.corrected_from!r})" if self.corrected_from else ""
        where = f" in {self.environment}" if self.environment else ""
        lines = [f"flag {self.key}{asked} ({self.purpose}){where}"]
        if self.states:
            lines.append("now: " + "; ".join(s.line() for s in self.states))
        if not self.changes:
            lines.append("no recorded changes")
            return "\n".join(lines)
        lines.append(f"{self.page.total} change(s), newest first{self.page.note('changes')}:")
        lines += [f"- {c.line()}" for c in self.changes]
        return "\n".join(lines)
