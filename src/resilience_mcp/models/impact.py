"""Answers about impact and structure: what breaks, who feels it, what depends on what."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from resilience_mcp.models.catalog import DeploymentBrief, IncidentBrief
from resilience_mcp.models.common import Answer, Link, ListCut, OwnerSummary, PageInfo
from resilience_mcp.models.flags import FlagChangeView

__all__ = [
    "NAMED",
    "AffectedCustomer",
    "CustomerImpactAnswer",
    "DependenciesAnswer",
    "DependencyLink",
    "DependencyNode",
    "ExplanationAnswer",
    "FlagLever",
    "ImpactAnswer",
    "ImpactedFeature",
    "ImpactedService",
    "OwnerToCall",
    "PastIncident",
    "RecentDeployment",
    "RiskAnswer",
    "RiskItem",
    "path_text",
]

ServiceStatus = Literal["failing", "down", "degraded"]
# How a flag's `why` starts when the incident names the flag.
NAMED = "named by the incident"
PATH_DESCRIPTION = "From a failing service to this one: each service depends on the one before it."


def path_text(path: list[str], soft: list[bool] | None = None) -> str:
    """`a -> b ~> c`: `~>` marks a soft link."""
    if not path:
        return ""
    text = path[0]
    for i, name in enumerate(path[1:]):
        text += (" ~> " if soft and soft[i] else " -> ") + name
    return text


class ImpactedService(BaseModel):
    name: str
    status: ServiceStatus = Field(
        description="failing: named as broken; down: needs a failing service through hard "
        "dependencies only; degraded: reached through at least one soft dependency."
    )
    depth: int = Field(description="Hops from the nearest failing service.")
    path: list[str] = Field(description=PATH_DESCRIPTION)
    tier: int | None = None
    owner: str | None = None


class ImpactedFeature(BaseModel):
    name: str
    title: str | None = None
    status: Literal["down", "degraded"] = Field(
        description="down when a service implementing it is failing or down."
    )
    depth: int = Field(description="Hops from a failing service to its nearest affected one.")
    services: list[str] = Field(description="Its implementing services that are affected.")
    reported: bool = Field(
        default=False, description="Named as broken, by the incident or in the question."
    )


class FlagLever(BaseModel):
    """A flag on an affected feature or service: a kill switch is a possible mitigation."""

    name: str
    key: str
    purpose: str
    kill_switch: bool
    feature: str | None = None
    services: list[str] = Field(default_factory=list, description="Affected services reading it.")
    states: dict[str, str] = Field(
        default_factory=dict, description="Environment -> on, off, a rollout % or a variant."
    )
    why: str = Field(description="How the flag relates to the impact.")
    changed_at: datetime | None = Field(
        default=None,
        description="Its last change where the impact is, in the window of `flag_changes`; "
        "null when it did not change then.",
    )


class AffectedCustomer(BaseModel):
    name: str
    title: str | None = None
    plan: str | None = None
    weight: float = 0.0
    status: Literal["down", "degraded"]
    features: list[str] = Field(description="Affected features the customer is entitled to.")
    environments: list[str] = Field(
        default_factory=list, description="Where the customer is served, among those affected."
    )


class OwnerToCall(BaseModel):
    owner: OwnerSummary
    services: list[str] = Field(description="Affected services this owner answers for.")
    services_total: int
    owns_failing: bool = Field(description="Owns a service that is failing, not only affected.")


class RecentDeployment(DeploymentBrief):
    suspected: bool = Field(default=False, description="The incident names it as a suspect.")


class PastIncident(BaseModel):
    key: str
    title: str | None = None
    severity: str
    status: str
    started_at: datetime
    resolved_at: datetime | None = None
    services: list[str] = Field(description="The services it shares with this impact.")


class ImpactAnswer(Answer):
    incident: IncidentBrief | None = None
    failing: list[str] = Field(description="The services the impact starts from.")
    environment: str | None = Field(
        default=None, description="The environment or tenant cell the impact is narrowed to."
    )
    environments: list[str] = Field(
        default_factory=list, description="Every environment counted as affected."
    )
    notes: list[str] = Field(default_factory=list)
    runbooks: list[Link] = Field(
        default_factory=list, description="The failing services' runbooks, titled by service."
    )
    services: list[ImpactedService]
    services_page: ListCut
    down: int = Field(description="How many services go down with the failing ones.")
    degraded: int = Field(description="How many are degraded through a soft dependency.")
    features: list[ImpactedFeature]
    features_page: ListCut
    flags: list[FlagLever]
    flags_page: ListCut
    customers: list[AffectedCustomer]
    customers_page: ListCut
    customers_by_plan: dict[str, int] = Field(default_factory=dict)
    customers_weight: float = Field(default=0.0, description="Sum of affected customers' weight.")
    owners: list[OwnerToCall]
    owners_page: ListCut
    deployments: list[RecentDeployment]
    deployments_page: ListCut
    deployments_since: datetime
    flag_changes: list[FlagChangeView] = Field(
        default_factory=list,
        description="Changes of the flags above (and any other on an affected feature or "
        "service) where the impact is, since `deployments_since`, newest first: a flag flip "
        "is a likely culprit like a deployment.",
    )
    flag_changes_page: ListCut = Field(default_factory=lambda: ListCut.of(0, 0))
    past_incidents: list[PastIncident]
    past_incidents_page: ListCut
    diagram: str | None = Field(default=None, description="A Mermaid flowchart, when asked for.")

    def text(self) -> str:
        head = f"Impact of {self.incident.key}" if self.incident else "Impact"
        where = f" in {self.environment}" if self.environment else ""
        lines = [f"{head}{where}: failing {', '.join(self.failing) or 'nothing known'}"]
        lines += self.notes
        lines.append(f"{self.down} service(s) down, {self.degraded} degraded")
        for svc in self.services:
            if svc.status != "failing":
                lines.append(f"- {svc.status} {svc.name}: {' -> '.join(svc.path)}")
        if self.features:
            names = ", ".join(f"{f.name} ({f.status})" for f in self.features)
            lines.append(f"features: {names}{self.features_page.note('features')}")
        kills = [f for f in self.flags if f.kill_switch]
        if kills:
            lines.append("kill switches: " + "; ".join(_lever(f) for f in kills))
        named = [f for f in self.flags if not f.kill_switch and f.why.startswith(NAMED)]
        if named:
            lines.append("flags the incident names: " + "; ".join(_lever(f) for f in named))
        if self.customers_page.total:
            plans = ", ".join(f"{n} {p}" for p, n in self.customers_by_plan.items())
            top = ", ".join(c.title or c.name for c in self.customers[:5])
            lines.append(f"customers: {self.customers_page.total} ({plans}); first: {top}")
        lines += [f"call: {o.owner.line()}" for o in self.owners]
        lines += [
            f"deployed: {d.service} {d.version or '?'} to {d.environment or 'every environment'}"
            f" at {d.deploy_time:%Y-%m-%d %H:%M}Z" + (" (suspected)" if d.suspected else "")
            for d in self.deployments
        ]
        lines += [f"flag changed: {_flag_change(c)}" for c in self.flag_changes]
        if self.past_incidents:
            keys = ", ".join(f"{i.key} {i.title or ''}".strip() for i in self.past_incidents[:3])
            lines.append(f"seen before: {keys}")
        if self.runbooks:
            lines.append("runbooks: " + ", ".join(f"{r.title} {r.url}" for r in self.runbooks))
        if any(page.truncated for page in self._pages()):
            lines.append(
                "lists are cut to `limit`: ask again with a higher one (up to 50), or page "
                "through the customers with get_customer_impact"
            )
        if self.diagram:
            lines.append(f"```mermaid\n{self.diagram}\n```")
        return "\n".join(lines)

    def card_links(self) -> list[str]:
        return [runbook.url for runbook in self.runbooks]

    def _pages(self) -> list[ListCut]:
        return [
            self.services_page,
            self.features_page,
            self.flags_page,
            self.customers_page,
            self.owners_page,
            self.deployments_page,
            self.flag_changes_page,
            self.past_incidents_page,
        ]


def _lever(flag: FlagLever) -> str:
    states = ", ".join(f"{env} {state}" for env, state in flag.states.items())
    if flag.changed_at is not None:
        states += ("; " if states else "") + f"changed {flag.changed_at:%Y-%m-%d %H:%M}Z"
    return f"{flag.key} ({states})" if states else flag.key


def _flag_change(change: FlagChangeView) -> str:
    where = change.environment or "every environment"
    who = f" by {change.by}" if change.by else ""
    states = f"{change.from_state or '?'} -> {change.to_state or '?'}"
    return f"{change.key} in {where} {states} at {change.at:%Y-%m-%d %H:%M}Z{who}"


class DependencyNode(BaseModel):
    name: str
    depth: int
    hard: bool = Field(description="Reached through hard dependencies only.")
    path: list[str] = Field(description="From the service asked about to this one.")
    kind: str = Field(description="The kind of the last link: sync, async, data or build.")
    tier: int | None = None
    type: str | None = None


class DependenciesAnswer(Answer):
    service: str
    corrected_from: str | None = None
    direction: Literal["down", "up"]
    depth: int | None = Field(description="How many hops were walked; null for all.")
    include_soft: bool
    nodes: list[DependencyNode]
    page: PageInfo
    hard: int = Field(description="Nodes reached through hard links only.")
    soft: int = Field(description="Nodes reached only through a soft link.")
    cycles: list[list[str]] = Field(
        default_factory=list, description="Dependency cycles this service is part of."
    )
    diagram: str | None = None

    def text(self) -> str:
        what = "depends on" if self.direction == "down" else "is needed by"
        asked = f" (taken for {self.corrected_from!r})" if self.corrected_from else ""
        lines = [
            f"{self.service}{asked} {what} {self.page.total} service(s): "
            f"{self.hard} hard, {self.soft} soft only{self.page.note('services')}"
        ]
        for node in self.nodes:
            soft = "" if node.hard else " (soft)"
            lines.append(f"- {node.name}{soft}, depth {node.depth}: {' -> '.join(node.path)}")
        lines += [f"cycle: {' -> '.join(c)}" for c in self.cycles]
        if self.diagram:
            lines.append(f"```mermaid\n{self.diagram}\n```")
        return "\n".join(lines)


class CustomerImpactAnswer(Answer):
    started_from: str = Field(description="What the impact was computed from.")
    failing: list[str] = Field(description="The services taken as failing.")
    environment: str | None = None
    environments: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    features: list[ImpactedFeature]
    features_page: ListCut
    customers: list[AffectedCustomer]
    page: PageInfo
    by_plan: dict[str, int] = Field(default_factory=dict)
    total_weight: float = 0.0

    def text(self) -> str:
        where = f" in {self.environment}" if self.environment else ""
        lines = [f"Customers affected by {self.started_from}{where}: {self.page.total}"]
        lines += self.notes
        if self.by_plan:
            lines.append("by plan: " + ", ".join(f"{n} {p}" for p, n in self.by_plan.items()))
        if self.features:
            names = ", ".join(f"{f.name} ({f.status})" for f in self.features)
            lines.append(f"features: {names}{self.features_page.note('features')}")
        for c in self.customers:
            plan = c.plan or "no plan"
            lines.append(
                f"- {c.title or c.name} ({plan}, {c.weight:,.0f}): {', '.join(c.features)}"
            )
        if self.page.truncated:
            lines.append(self.page.note("customers").strip())
        return "\n".join(lines)


class DependencyLink(BaseModel):
    source: str = Field(description="The dependent service.")
    target: str = Field(description="The service it depends on.")
    kind: str
    hard: bool
    description: str | None = None


class ExplanationAnswer(Answer):
    source: str
    target: str
    depends: bool = Field(description="Whether source depends on target, directly or not.")
    hard: bool = Field(description="Whether a path of hard links alone connects them.")
    links: list[DependencyLink] = Field(
        default_factory=list, description="The chain from source to target, one link a step."
    )
    reverse: bool = Field(
        default=False, description="When source does not depend on target: target on source."
    )
    notes: list[str] = Field(default_factory=list)

    def text(self) -> str:
        if not self.depends:
            if self.reverse:
                chain = _chain(self.links)
                return f"{self.source} does not depend on {self.target}; the reverse: {chain}"
            return f"{self.source} does not depend on {self.target}, directly or indirectly."
        strength = "hard" if self.hard else "soft (a soft link on every path)"
        lines = [f"{self.source} depends on {self.target} ({strength}): {_chain(self.links)}"]
        lines += self.notes
        lines += [
            f"- {lk.source} -> {lk.target}: {lk.kind}, {'hard' if lk.hard else 'soft'}"
            + (f"; {lk.description}" if lk.description else "")
            for lk in self.links
        ]
        return "\n".join(lines)


def _chain(links: list[DependencyLink]) -> str:
    if not links:
        return ""
    return path_text([links[0].source, *(lk.target for lk in links)], [not lk.hard for lk in links])


class RiskItem(BaseModel):
    services: list[str] = Field(description="The service, or the services of a cycle.")
    tier: int | None = None
    owner: str | None = None
    hard_dependents: int | None = Field(
        default=None, description="Services that go down with it (hard links only)."
    )
    dependents: int | None = Field(default=None, description="Every service that needs it.")
    features: int | None = Field(default=None, description="Features that go down with it.")
    customers: int | None = Field(default=None, description="Customers entitled to those.")
    cycle: list[str] = Field(default_factory=list, description="One cycle, start repeated.")
    hard_cycle: bool | None = Field(default=None, description="The cycle is hard all round.")
    detail: str


class RiskAnswer(Answer):
    kind: str
    items: list[RiskItem]
    page: PageInfo

    def text(self) -> str:
        if not self.items:
            return f"No {self.kind.replace('_', ' ')} found."
        lines = [f"{self.kind.replace('_', ' ')}: {self.page.total}{self.page.note('items')}"]
        lines += [f"- {item.detail}" for item in self.items]
        return "\n".join(lines)
