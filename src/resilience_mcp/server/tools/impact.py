"""Tools about impact and structure: what breaks, who feels it, what depends on what."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.types import CallToolResult
from pydantic import Field

from resilience_mcp.graph.impact import compute_customer_impact, compute_impact
from resilience_mcp.graph.risk import find_risks as find_catalog_risks
from resilience_mcp.graph.walk import explain_dependency as find_dependency_chain
from resilience_mcp.graph.walk import get_dependencies as find_dependencies
from resilience_mcp.models.impact import (
    CustomerImpactAnswer,
    DependenciesAnswer,
    ExplanationAnswer,
    ImpactAnswer,
    RiskAnswer,
)
from resilience_mcp.server.state import ServerConfig
from resilience_mcp.server.tooling import READ, agent_errors, answer, app_state, parse_cursor

__all__ = ["register"]

ServiceName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=200,
        description="A service's name; case, separators and small typos are forgiven.",
    ),
]
Services = Annotated[
    list[str] | None,
    Field(
        max_length=50,
        description="Names of the services that are failing, e.g. ['payments-api'].",
    ),
]
Environment = Annotated[
    str | None,
    Field(
        max_length=200,
        description="Narrow to an environment (e.g. 'prod-eu'), a tenant cell, or a tenant's "
        "name. Cells below it count unless they run their own copy of the failing services.",
    ),
]
Cursor = Annotated[str | None, Field(description="The next_cursor of a previous page.")]
Diagram = Annotated[
    bool, Field(description="Add a Mermaid flowchart of the services (at most 30).")
]


def register(server: MCPServer[Any], config: ServerConfig) -> None:
    @server.tool(title="Impact of an incident or failing services", annotations=READ)
    @agent_errors
    async def impact_of_incident(
        ctx: Context[Any],
        incident: Annotated[
            str | None,
            Field(
                max_length=100,
                description="An incident key, e.g. 'INC-2049'; its services, environments, "
                "features, flags and suspected deployments are the starting point.",
            ),
        ] = None,
        services: Services = None,
        environment: Environment = None,
        limit: Annotated[
            int, Field(ge=1, le=50, description="At most this many items in each list.")
        ] = 8,
        diagram: Diagram = False,
    ) -> Annotated[CallToolResult, ImpactAnswer]:
        """Answer, in one call, what an incident or a failing service breaks. Give an
        incident key, failing services, or both; optionally an environment or tenant.

        Returns the services that go down with it (hard dependencies) or are degraded (soft
        ones), each with the path that explains it; the features affected; the flags on
        them with their state there, kill switches first (a kill switch is a mitigation);
        the customers entitled to those features and served there, ranked by plan and
        weight, with counts per plan; the owners to call and who is on call now; recent
        deployments to the failing services and changes of those flags, where the failure
        is (likely culprits); and earlier incidents on the same services. Every list is
        cut to `limit` and says its total."""
        state = app_state(ctx)
        graph = await state.graph()
        return answer(
            await compute_impact(
                state.store,
                graph,
                state.now(),
                incident=incident,
                services=services or (),
                environment=environment,
                limit=limit,
                diagram=diagram,
            )
        )

    @server.tool(title="Dependencies of a service, to any depth", annotations=READ)
    @agent_errors
    async def get_dependencies(
        name: ServiceName,
        ctx: Context[Any],
        direction: Annotated[
            Literal["down", "up"],
            Field(description="down: what it depends on; up: what depends on it."),
        ] = "down",
        depth: Annotated[
            int | None,
            Field(ge=1, le=50, description="How many hops to walk; omit for all of them."),
        ] = None,
        include_soft: Annotated[
            bool, Field(description="Follow soft dependencies too (marked soft).")
        ] = True,
        limit: Annotated[int, Field(ge=1, le=200, description="At most this many.")] = 25,
        cursor: Cursor = None,
        diagram: Diagram = False,
    ) -> Annotated[CallToolResult, DependenciesAnswer]:
        """Walk a service's dependencies (direction 'down') or dependents ('up') to any
        depth, instead of asking one hop at a time. Each service comes with its depth,
        whether it is reached through hard links only or needs a soft one, the kind of its
        last link, and the path from the service asked about. Nearest first; also lists any
        dependency cycle the service is part of."""
        state = app_state(ctx)
        graph = await state.graph()
        return answer(
            find_dependencies(
                graph,
                name,
                direction,
                depth=depth,
                include_soft=include_soft,
                limit=limit,
                offset=parse_cursor(cursor),
                diagram=diagram,
            )
        )

    @server.tool(title="Customers affected", annotations=READ)
    @agent_errors
    async def get_customer_impact(
        ctx: Context[Any],
        services: Services = None,
        feature: Annotated[
            str | None, Field(max_length=200, description="A feature that is broken.")
        ] = None,
        flag: Annotated[
            str | None,
            Field(
                max_length=200,
                description="A flag (key or name) whose change broke something: its feature "
                "and the services that read it are the starting point.",
            ),
        ] = None,
        environment: Environment = None,
        limit: Annotated[int, Field(ge=1, le=100, description="At most this many.")] = 20,
        cursor: Cursor = None,
    ) -> Annotated[CallToolResult, CustomerImpactAnswer]:
        """Find which customers feel a failure: give failing services, a broken feature, or
        a flag, and optionally where. Returns the affected features and the customers
        entitled to them and served there, enterprise first and then by weight, with counts
        per plan and the total weight; the list pages with `cursor`."""
        state = app_state(ctx)
        graph = await state.graph()
        return answer(
            compute_customer_impact(
                graph,
                services=services or (),
                feature=feature,
                flag=flag,
                environment=environment,
                limit=limit,
                offset=parse_cursor(cursor),
            )
        )

    @server.tool(title="Why one service depends on another", annotations=READ)
    @agent_errors
    async def explain_dependency(
        source: Annotated[str, Field(min_length=1, max_length=200, description="The dependent.")],
        target: Annotated[
            str, Field(min_length=1, max_length=200, description="What it may depend on.")
        ],
        ctx: Context[Any],
    ) -> Annotated[CallToolResult, ExplanationAnswer]:
        """Explain whether and how `source` depends on `target`, directly or through other
        services: the chain of links with the kind of each (sync, async, data, build) and
        whether it is hard or soft. A chain of hard links is preferred, since that is the
        one by which a failure of target takes source down. When source does not depend on
        target, says whether target depends on source instead."""
        state = app_state(ctx)
        graph = await state.graph()
        return answer(find_dependency_chain(graph, source, target))

    @server.tool(title="Structural risks in the catalog", annotations=READ)
    @agent_errors
    async def find_risks(
        ctx: Context[Any],
        kind: Annotated[
            Literal["single_points_of_failure", "most_dependents", "cycles", "unowned"],
            Field(
                description="single_points_of_failure: services whose loss takes down the "
                "most; most_dependents: services the most others need; cycles: services "
                "that depend on each other in a loop; unowned: services with no owner."
            ),
        ] = "single_points_of_failure",
        limit: Annotated[int, Field(ge=1, le=50, description="At most this many.")] = 10,
        cursor: Cursor = None,
    ) -> Annotated[CallToolResult, RiskAnswer]:
        """List the catalog's structural risks of one kind, worst first: for a single point
        of failure, how many services, features and customers go down with it; for a
        cycle, its members and one loop; for an unowned service, its tier and dependents.
        Use it to prepare, not during an incident."""
        state = app_state(ctx)
        graph = await state.graph()
        return answer(find_catalog_risks(graph, kind, limit=limit, offset=parse_cursor(cursor)))
