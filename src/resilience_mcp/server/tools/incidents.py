"""Tools about what happened: similar past incidents, one incident in full, lists of
incidents and remediation tasks, and incidents that keep coming back."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.types import CallToolResult
from pydantic import Field

from resilience_mcp.graph.incidents import get_incident as find_incident_record
from resilience_mcp.graph.incidents import list_incidents as find_incidents
from resilience_mcp.graph.incidents import list_remediation_tasks as find_tasks
from resilience_mcp.models.common import PageInfo
from resilience_mcp.models.incidents import (
    IncidentList,
    IncidentRecord,
    RecurringIncidents,
    SimilarIncidents,
    TaskList,
)
from resilience_mcp.search.incidents import MAX_LIMIT
from resilience_mcp.search.incidents import find_similar_rca as find_similar
from resilience_mcp.search.recurring import find_recurring_incidents as find_recurring
from resilience_mcp.server.state import ServerConfig
from resilience_mcp.server.tooling import READ, agent_errors, answer, app_state, parse_cursor

__all__ = ["register"]

IncidentKey = Annotated[
    str,
    Field(
        min_length=1,
        max_length=200,
        description="An incident key such as INC-2031; case and separators are forgiven.",
    ),
]
Since = Annotated[
    str | None,
    Field(
        max_length=40,
        description="Only from this time on: an ISO date or time (2026-11-01, "
        "2026-11-01T09:30Z) or a span back from now (7d, 12h, 4w).",
    ),
]
Until = Annotated[
    str | None,
    Field(max_length=40, description="Only up to this time; same forms as since."),
]
Cursor = Annotated[str | None, Field(description="The next_cursor of a previous page.")]
Team = Annotated[
    str | None,
    Field(max_length=200, description="A team; its sub-teams are included."),
]


def register(server: MCPServer[Any], config: ServerConfig) -> None:
    @server.tool(title="Have we seen this before?", annotations=READ)
    @agent_errors
    async def find_similar_rca(
        ctx: Context[Any],
        text: Annotated[
            str | None,
            Field(
                max_length=100_000,
                description="What you see now: alert text, symptoms, error or log lines. Any "
                "text is fine; it is searched as plain words.",
            ),
        ] = None,
        incident: Annotated[
            str | None,
            Field(max_length=200, description="Compare with this incident, e.g. INC-2049."),
        ] = None,
        services: Annotated[
            list[str] | None,
            Field(
                max_length=20,
                description="The services in trouble; incidents on them, their dependencies "
                "and dependents rank higher.",
            ),
        ] = None,
        limit: Annotated[
            int, Field(ge=1, le=MAX_LIMIT, description="At most this many incidents.")
        ] = 5,
    ) -> Annotated[CallToolResult, SimilarIncidents]:
        """Find past incidents like the current one, with what caused them and what fixed
        them. Use it early in an incident: give the alert text or error lines, an incident
        key, or both, and the affected services if you know them.

        Returns the most similar past incidents, best first, each with a score, why it
        matched (shared words, the same or a neighbouring service, the same kind of trigger
        or failure), its root cause, what resolved it, and its remediation tasks with their
        status (overdue ones marked)."""
        state = app_state(ctx)
        graph = await state.graph()
        result = await find_similar(
            state.store,
            graph,
            state.now(),
            text=text,
            incident=incident,
            services=services or (),
            limit=limit,
            semantic=state.semantic,
        )
        return answer(result)

    @server.tool(title="Incident record", annotations=READ)
    @agent_errors
    async def get_incident(
        key: IncidentKey, ctx: Context[Any]
    ) -> Annotated[CallToolResult, IncidentRecord]:
        """The full record of one incident: severity, status, start, detection, mitigation
        and resolution times (with minutes to each), the services, environments, features,
        flags, deployments and customers it touched, its timeline, its postmortem (trigger,
        root cause, contributing factors, resolution, lessons) and its remediation tasks."""
        state = app_state(ctx)
        # The graph holds the sources' confirmations, kept current: no query for them.
        confirmations = (await state.graph()).confirmations
        return answer(
            await find_incident_record(
                state.store,
                key,
                state.now(),
                stale_after=state.config.stale_after(),
                confirmations=confirmations,
            )
        )

    @server.tool(title="List incidents", annotations=READ)
    @agent_errors
    async def list_incidents(
        ctx: Context[Any],
        status: Annotated[
            Literal[
                "open",
                "investigating",
                "identified",
                "monitoring",
                "mitigated",
                "resolved",
            ]
            | None,
            Field(description="open means any status before resolved."),
        ] = None,
        severity: Annotated[
            str | None, Field(max_length=10, description="SEV1 to SEV5 (or 1 to 5).")
        ] = None,
        service: Annotated[
            str | None, Field(max_length=200, description="Only incidents on this service.")
        ] = None,
        team: Team = None,
        since: Since = None,
        until: Until = None,
        limit: Annotated[int, Field(ge=1, le=100, description="At most this many.")] = 20,
        cursor: Cursor = None,
    ) -> Annotated[CallToolResult, IncidentList]:
        """List incidents, newest first, narrowed by status, severity, service, the team
        that owns the affected services, and time. Returns key, title, severity, status,
        start and services of each; use get_incident for one in full."""
        state = app_state(ctx)
        graph = await state.graph()
        result = await find_incidents(
            state.store,
            graph,
            state.now(),
            status=status,
            severity=severity,
            service=service,
            team=team,
            since=since,
            until=until,
            limit=limit,
            offset=parse_cursor(cursor),
        )
        return answer(result)

    @server.tool(title="Remediation tasks", annotations=READ)
    @agent_errors
    async def list_remediation_tasks(
        ctx: Context[Any],
        status: Annotated[
            Literal["unfinished", "open", "in_progress", "done", "wontfix"] | None,
            Field(description="unfinished means open or in_progress."),
        ] = None,
        team: Team = None,
        overdue: Annotated[
            bool | None,
            Field(description="true: only unfinished tasks past their due date; false: none."),
        ] = None,
        limit: Annotated[int, Field(ge=1, le=100, description="At most this many.")] = 20,
        cursor: Cursor = None,
    ) -> Annotated[CallToolResult, TaskList]:
        """List the remediation tasks postmortems promised, overdue first, then by priority
        and due date: whether the fix for last time's incident was ever done. Returns each
        task's priority, status, owner team, due date and incident, and how many are
        overdue."""
        state = app_state(ctx)
        graph = await state.graph()
        result = await find_tasks(
            state.store,
            graph,
            state.now(),
            status=status,
            team=team,
            overdue=overdue,
            limit=limit,
            offset=parse_cursor(cursor),
        )
        return answer(result)

    @server.tool(title="Recurring incidents", annotations=READ)
    @agent_errors
    async def find_recurring_incidents(
        ctx: Context[Any],
        service: Annotated[
            str | None, Field(max_length=200, description="Only incidents on this service.")
        ] = None,
        since: Since = None,
        limit: Annotated[int, Field(ge=1, le=50, description="At most this many groups.")] = 8,
        cursor: Cursor = None,
    ) -> Annotated[CallToolResult, RecurringIncidents]:
        """Find incidents that keep happening: groups that share a root cause (one names the
        other, the same root-cause commit, or closely matching causes) or a symptom (the
        same title), then services hit again and again. Defaults to the last 365 days. Use
        it for reviews and to decide which remediation to push."""
        state = app_state(ctx)
        graph = await state.graph()
        offset = parse_cursor(cursor)
        # The groups come in a fixed order; a later page is the tail of a longer first one.
        found = await state.answers.get(
            "find_recurring_incidents",
            (service, since, offset + limit),
            lambda: find_recurring(
                state.store, graph, state.now(), service=service, since=since, limit=offset + limit
            ),
        )
        groups = found.groups[offset:]
        page = PageInfo.of(found.page.total, len(groups), offset)
        return answer(found.model_copy(update={"groups": groups, "page": page}))
