"""Tools about the catalog itself: owners, service cards, search."""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.types import CallToolResult
from pydantic import Field

from resilience_mcp.graph.cards import get_owner as find_owner_answer
from resilience_mcp.graph.cards import get_service as find_service_card
from resilience_mcp.models.catalog import OwnerAnswer, SearchAnswer, ServiceCard
from resilience_mcp.search.catalog import search_catalog as find_entities
from resilience_mcp.server.state import ServerConfig
from resilience_mcp.server.tooling import READ, agent_errors, answer, app_state, parse_cursor

__all__ = ["register"]

Name = Annotated[
    str,
    Field(
        min_length=1,
        max_length=200,
        description="A name as the catalog has it; case, separators and small typos are "
        "forgiven. Prefix a kind to narrow it, e.g. 'team:payments'.",
    ),
]


def register(server: MCPServer[Any], config: ServerConfig) -> None:
    @server.tool(title="Who owns this, and who is on call", annotations=READ)
    @agent_errors
    async def get_owner(name: Name, ctx: Context[Any]) -> Annotated[CallToolResult, OwnerAnswer]:
        """Find who owns any service, system, domain, feature, flag, team, person, or an
        incident, deployment, postmortem or task key, and who is on call for that team
        right now. Use it first when something breaks and you need someone to page.

        Returns the owning team (direct, or inherited through system, domain or the service
        it belongs to, with the path), its chat channel and escalation contact, its members,
        and the person on call now in each of its rotations."""
        state = app_state(ctx)
        graph = await state.graph()
        stale_after = state.config.stale_after()
        return answer(
            await find_owner_answer(state.store, graph, name, state.now(), stale_after=stale_after)
        )

    @server.tool(title="Service card", annotations=READ)
    @agent_errors
    async def get_service(name: Name, ctx: Context[Any]) -> Annotated[CallToolResult, ServiceCard]:
        """Everything an engineer looks up first about one service, in one card: owner and
        on-call, tier, lifecycle, runbook, repository and dashboards, direct dependencies and
        dependents (hard or soft), the environments it runs in with versions, the flags that
        control it (kill switches first), open incidents and the latest deployments."""
        state = app_state(ctx)
        graph = await state.graph()
        stale_after = state.config.stale_after()
        return answer(
            await find_service_card(state.store, graph, name, state.now(), stale_after=stale_after)
        )

    @server.tool(title="Search the catalog", annotations=READ)
    @agent_errors
    async def search_catalog(
        query: Annotated[
            str,
            Field(
                min_length=1,
                max_length=500,
                description="Words to find in names, titles, tags and descriptions.",
            ),
        ],
        ctx: Context[Any],
        kind: Annotated[
            str | None,
            Field(
                description="Only this kind: Service, Team, System, Domain, Feature, "
                "FeatureFlag, Person, Customer, Environment or OnCall."
            ),
        ] = None,
        limit: Annotated[int, Field(ge=1, le=50, description="At most this many results.")] = 10,
        cursor: Annotated[
            str | None, Field(description="The next_cursor of a previous page.")
        ] = None,
    ) -> Annotated[CallToolResult, SearchAnswer]:
        """Find catalog entities when you do not know the exact name: by words in their
        name, title, tags or description. Returns the best matches, ranked, with their kind
        and which fields matched; the total says how many matched in all."""
        state = app_state(ctx)
        graph = await state.graph()
        offset = parse_cursor(cursor)
        return answer(find_entities(graph, query, kind, limit=limit, offset=offset))
