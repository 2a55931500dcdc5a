"""Resources: catalog entities and incident records as Markdown an assistant can read.

Each is a URI template (listed by resources/templates/list), so a client can attach
`catalog://service/payments-api` or `incident://INC-2049` to a conversation. They draw on
the same domain functions as the tools and read like a page a person would write.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from typing import Any, ParamSpec

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError

from resilience_mcp.errors import NotFoundError, ResilienceError
from resilience_mcp.graph.cards import get_owner, get_service
from resilience_mcp.graph.catalog import CatalogGraph
from resilience_mcp.graph.incidents import get_incident
from resilience_mcp.graph.owners import find_owner
from resilience_mcp.models.catalog import DependencyEdge, OwnerAnswer, ServiceCard
from resilience_mcp.models.common import ListCut, OwnerSummary
from resilience_mcp.models.incidents import IncidentRecord, PostmortemDetail
from resilience_mcp.server.tooling import app_state

__all__ = [
    "TEMPLATES",
    "incident_markdown",
    "postmortem_markdown",
    "register_resources",
    "service_markdown",
    "team_markdown",
]

P = ParamSpec("P")

MARKDOWN = "text/markdown"
# How many items a list in a resource shows before it says how many more there are.
LIST_LIMIT = 50

TEMPLATES = (
    "catalog://service/{name}",
    "catalog://team/{name}",
    "incident://{key}",
    "postmortem://{key}",
)


def resource_errors(fn: Callable[P, Awaitable[str]]) -> Callable[P, Awaitable[str]]:
    """The package's errors as resource errors, whose message reaches the client."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> str:
        try:
            return await fn(*args, **kwargs)
        except NotFoundError as exc:
            raise ResourceNotFoundError(str(exc)) from exc
        except ResilienceError as exc:
            raise ResourceError(str(exc)) from exc

    return wrapper


def register_resources(server: MCPServer[Any]) -> None:
    """Registers the resource templates on `server`."""

    @server.resource(
        TEMPLATES[0],
        name="service",
        title="Service card",
        description="One service as Markdown: owner and on-call, tier, runbook and links, "
        "dependencies both ways, where it runs, its flags, open incidents, recent deployments.",
        mime_type=MARKDOWN,
    )
    @resource_errors
    async def service_resource(name: str, ctx: Context[Any]) -> str:
        state = app_state(ctx)
        graph = await state.graph()
        return service_markdown(await get_service(state.store, graph, name, state.now()))

    @server.resource(
        TEMPLATES[1],
        name="team",
        title="Team page",
        description="One team as Markdown: how to reach it, who is on call now, its members "
        "and the services it owns, directly or through a system or domain.",
        mime_type=MARKDOWN,
    )
    @resource_errors
    async def team_resource(name: str, ctx: Context[Any]) -> str:
        state = app_state(ctx)
        graph = await state.graph()
        owner = await get_owner(state.store, graph, f"team:{name}", state.now())
        return team_markdown(owner, services_owned_by(graph, owner.name))

    @server.resource(
        TEMPLATES[2],
        name="incident",
        title="Incident record",
        description="One incident as Markdown: severity, status and its five times, what it "
        "touched, the timeline, the postmortem's findings and the remediation tasks.",
        mime_type=MARKDOWN,
    )
    @resource_errors
    async def incident_resource(key: str, ctx: Context[Any]) -> str:
        state = app_state(ctx)
        return incident_markdown(
            await get_incident(
                state.store, key, state.now(), stale_after=state.config.stale_after()
            )
        )

    @server.resource(
        TEMPLATES[3],
        name="postmortem",
        title="Postmortem",
        description="The postmortem of an incident, by the incident's key, as Markdown: "
        "summary, trigger, root cause, contributing factors, detection, resolution, lessons "
        "and the remediation tasks with their status.",
        mime_type=MARKDOWN,
    )
    @resource_errors
    async def postmortem_resource(key: str, ctx: Context[Any]) -> str:
        state = app_state(ctx)
        record = await get_incident(
            state.store, key, state.now(), stale_after=state.config.stale_after()
        )
        if record.postmortem is None:
            raise ResourceNotFoundError(
                f"{record.key} has no postmortem yet; read incident://{record.key} for its "
                "record, or draft one with the postmortem_draft prompt."
            )
        return postmortem_markdown(record, record.postmortem)


def services_owned_by(graph: CatalogGraph, team: str) -> list[tuple[str, bool]]:
    """The services `team` owns, each with whether the ownership is inherited."""
    owned = []
    for name in sorted(graph.services):
        found = find_owner(graph, "Service", name)
        if found.owner == team:
            owned.append((name, found.inherited))
    return owned


def service_markdown(card: ServiceCard) -> str:
    heading = f"# {card.name}" + (f": {card.title}" if card.title else "")
    facts = [
        ("type", _joined([card.type, f"tier {card.tier}" if card.tier else None, card.lifecycle])),
        ("system", _joined([card.system, f"domain {card.domain}" if card.domain else None])),
        *_owner_facts(card.owner),
        ("runbook", card.runbook),
        ("repository", card.repository),
        ("dashboards", ", ".join(card.dashboards) or None),
        ("tags", ", ".join(card.tags) or None),
    ]
    parts = [heading, card.description or "", _table(facts)]
    parts += _section(
        "Depends on", [_edge(e) for e in card.depends_on], card.depends_on_page, "dependencies"
    )
    parts += _section("Used by", [_edge(e) for e in card.dependents], card.dependents_page)
    parts += _section(
        "Runs in",
        [
            f"{e.environment}: version {e.version or 'unknown'}"
            + (f", {e.replicas} replicas" if e.replicas is not None else "")
            for e in card.environments
        ],
    )
    parts += _section("Features", card.features)
    parts += _section(
        "Flags",
        [
            f"`{f.key}` ({f.purpose}{', ' + f.feature if f.feature else ''}): "
            + (", ".join(f"{env} {state}" for env, state in f.states.items()) or "no state")
            for f in card.flags
        ],
        card.flags_page,
    )
    parts += _section(
        "Open incidents",
        [
            f"{i.key} {i.severity} {i.status} since {_when(i.started_at)}: {i.title or ''}"
            for i in card.open_incidents
        ],
    )
    parts += _section(
        "Recent deployments",
        [
            f"{_when(d.deploy_time)} {d.environment or 'unknown environment'} "
            f"{d.version or ''} {d.status}" + (f" by {d.author}" if d.author else "")
            for d in card.recent_deployments
        ],
    )
    stale = " (stale)" if card.provenance.stale else ""
    parts.append(
        f"_Source: {card.provenance.source}, synced {_when(card.provenance.synced_at)}{stale}._"
    )
    return _document(parts)


def team_markdown(owner: OwnerAnswer, services: list[tuple[str, bool]]) -> str:
    summary = owner.owner
    heading = f"# {owner.name}" + (f": {summary.title}" if summary.title else "")
    facts = [
        ("parent team", owner.parent_team),
        ("chat", summary.chat_channel),
        ("escalation", summary.escalation),
        ("on call now", _on_call(summary)),
    ]
    members = [p.title or p.name for p in owner.members]
    parts = [heading, _table(facts)]
    parts += _section("Members", members, owner.members_page, "members")
    shown = services[:LIST_LIMIT]
    parts += _section(
        "Services",
        [f"{name}" + (" (inherited)" if inherited else "") for name, inherited in shown],
        ListCut.of(len(services), len(shown)),
        "services",
    )
    if not services:
        parts.append("It owns no service, directly or through a system or domain.")
    return _document(parts)


def incident_markdown(record: IncidentRecord) -> str:
    heading = f"# {record.key}" + (f": {record.title}" if record.title else "")
    facts = [
        ("severity", record.severity),
        ("status", record.status),
        ("version", str(record.version)),
        ("commander", record.commander),
        ("started", _when(record.started_at)),
        ("detected", _after(record.detected_at, record.minutes_to_detect)),
        ("acknowledged", _when(record.acknowledged_at) if record.acknowledged_at else None),
        ("mitigated", _after(record.mitigated_at, record.minutes_to_mitigate)),
        ("resolved", _after(record.resolved_at, record.minutes_to_resolve)),
        ("trigger", record.trigger),
        ("root-cause commit", record.root_cause_commit),
        ("services", ", ".join(record.services) or None),
        ("environments", ", ".join(record.environments) or None),
        ("features", ", ".join(record.features) or None),
        ("flags", ", ".join(record.flags) or None),
        ("suspected deployments", ", ".join(record.deployments) or None),
    ]
    parts = [heading, record.summary or "", _table(facts)]
    parts += _section("Customers affected", record.customers, record.customers_page, "customers")
    parts += _section(
        "Timeline",
        [
            f"{_when(t.at)} {t.kind}: {t.text}" + (f" ({t.author})" if t.author else "")
            for t in record.timeline
        ],
        record.timeline_page,
        "entries",
    )
    if record.postmortem is not None:
        pm = record.postmortem
        findings = [("root cause", pm.root_cause), ("resolution", pm.resolution)]
        parts += ["## Postmortem", _table(findings), f"Full text: postmortem://{record.key}"]
    parts += _section(
        "Remediation tasks", [t.line() for t in record.tasks], record.tasks_page, "tasks"
    )
    return _document(parts)


def postmortem_markdown(record: IncidentRecord, pm: PostmortemDetail) -> str:
    # Postmortem titles often repeat the word the heading already has.
    title = (pm.title or "").removeprefix("Postmortem:").strip() or record.title
    heading = f"# Postmortem of {record.key}" + (f": {title}" if title else "")
    byline = _joined(
        [
            f"by {pm.author}" if pm.author else None,
            f"published {_when(pm.published_at)}" if pm.published_at else None,
            f"incident {record.severity}, {record.status}",
        ]
    )
    parts = [heading, f"_{byline}. Record: incident://{record.key}_"]
    for title, text in (
        ("Summary", pm.summary),
        ("Trigger", pm.trigger),
        ("Root cause", pm.root_cause),
        ("Detection", pm.detection),
        ("Resolution", pm.resolution),
    ):
        if text:
            parts += [f"## {title}", text.strip()]
    parts += _section("Contributing factors", pm.contributing_factors)
    parts += _section("Lessons", pm.lessons)
    parts += _section(
        "Remediation tasks", [t.line() for t in record.tasks], record.tasks_page, "tasks"
    )
    return _document(parts)


def _after(at: datetime | None, minutes: float | None) -> str | None:
    if at is None:
        return None
    return _when(at) + (f" ({minutes:g} min after the start)" if minutes is not None else "")


def _owner_facts(owner: OwnerSummary) -> list[tuple[str, str | None]]:
    if owner.owner is None:
        return [("owner", "none: neither its own nor inherited")]
    how = f" (inherited from {owner.inherited_from})" if owner.inherited else ""
    return [
        ("owner", f"{owner.owner}{how}"),
        ("chat", owner.chat_channel),
        ("escalation", owner.escalation),
        ("on call now", _on_call(owner)),
    ]


def _on_call(owner: OwnerSummary) -> str | None:
    if not owner.on_call:
        return "nobody" if owner.owner else None
    shifts = [
        f"{c.person.title or c.person.name} ({c.rotation}, until {_when(c.shift_end)})"
        for c in owner.on_call
    ]
    via = f" via {owner.on_call_from}" if owner.on_call_from else ""
    return ", ".join(shifts) + via


def _edge(edge: DependencyEdge) -> str:
    detail = _joined(
        [edge.type, f"tier {edge.tier}" if edge.tier else None, edge.kind, _hardness(edge)]
    )
    return f"{edge.service} ({detail})"


def _hardness(edge: DependencyEdge) -> str:
    return "hard" if edge.hard else "soft"


def _section(
    title: str, items: Iterable[str], page: ListCut | None = None, noun: str = "items"
) -> list[str]:
    lines = [f"- {item}" for item in items]
    if not lines:
        return []
    if page is not None and page.truncated:
        lines.append(f"- ... {page.total - page.returned} more {noun}")
    return [f"## {title}", "\n".join(lines)]


def _table(facts: Iterable[tuple[str, str | None]]) -> str:
    rows = [f"| {label} | {_cell(value)} |" for label, value in facts if value]
    return "\n".join(["| | |", "| --- | --- |", *rows]) if rows else ""


def _cell(value: str) -> str:
    return value.replace("|", "\\|").replace("\n", " ")


def _joined(parts: Iterable[str | None]) -> str | None:
    present = [p for p in parts if p]
    return ", ".join(present) or None


def _when(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%MZ")


def _document(parts: Iterable[str]) -> str:
    return "\n\n".join(p for p in parts if p) + "\n"
