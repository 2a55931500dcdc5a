"""Tools about features, feature flags and what changed."""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.types import CallToolResult
from pydantic import Field

from resilience_mcp.graph.changes import list_recent_changes as find_recent_changes
from resilience_mcp.graph.changes import parse_moment
from resilience_mcp.graph.features import get_feature as find_feature_card
from resilience_mcp.graph.features import get_flag_history as find_flag_history
from resilience_mcp.graph.features import list_feature_flags as find_feature_flags
from resilience_mcp.models.flags import ChangeTimeline, FeatureCard, FlagHistory, FlagListAnswer
from resilience_mcp.server.state import ServerConfig
from resilience_mcp.server.tooling import READ, agent_errors, answer, app_state, parse_cursor

__all__ = ["register"]

Environment = Annotated[
    str | None,
    Field(
        max_length=200,
        description="An environment (e.g. 'prod-eu'), a tenant cell, or a tenant's name; the "
        "tenant cells below an environment are included.",
    ),
]
Cursor = Annotated[str | None, Field(description="The next_cursor of a previous page.")]


def register(server: MCPServer[Any], config: ServerConfig) -> None:
    @server.tool(title="Feature flags for a service or feature", annotations=READ)
    @agent_errors
    async def list_feature_flags(
        ctx: Context[Any],
        service: Annotated[
            str | None,
            Field(
                max_length=200,
                description="Only flags this service reads, or that control a feature it "
                "implements.",
            ),
        ] = None,
        feature: Annotated[
            str | None, Field(max_length=200, description="Only flags controlling this feature.")
        ] = None,
        environment: Environment = None,
        purpose: Annotated[
            str | None,
            Field(
                max_length=40,
                description="kill-switch, release, experiment, permission or ops.",
            ),
        ] = None,
        state: Annotated[
            str | None,
            Field(
                max_length=20,
                description="'on': on in some environment shown; 'off': off in all of them.",
            ),
        ] = None,
        limit: Annotated[int, Field(ge=1, le=100, description="At most this many flags.")] = 10,
        cursor: Cursor = None,
    ) -> Annotated[CallToolResult, FlagListAnswer]:
        """Find the feature flags that can turn something off or change its behaviour:
        those a service reads or that control a feature, with their state in each
        environment and tenant cell (on/off, rollout %, variant, targeting). Use it in an
        incident to find the kill switch for a broken feature, or to see which flags flipped.

        Kill switches come first; flags changed in the last 24 hours are marked with their
        latest change (who, when, from what to what)."""
        state_ = app_state(ctx)
        graph = await state_.graph()
        return answer(
            await find_feature_flags(
                state_.store,
                graph,
                state_.now(),
                service=service,
                feature=feature,
                environment=environment,
                purpose=purpose,
                state=state,
                limit=limit,
                offset=parse_cursor(cursor),
                stale_after=state_.config.stale_after(),
            )
        )

    @server.tool(title="Feature card", annotations=READ)
    @agent_errors
    async def get_feature(
        name: Annotated[
            str,
            Field(
                min_length=1,
                max_length=200,
                description="The feature's name; case, separators and small typos are forgiven.",
            ),
        ],
        ctx: Context[Any],
    ) -> Annotated[CallToolResult, FeatureCard]:
        """Everything about one product feature (something a user can do) in one card: the
        services that implement it, the flags that control it with their state per
        environment (kill switches first), the customers entitled to it (counts by plan,
        the largest by weight), its owner (direct or inherited) and who is on call, and the
        open incidents that name it or its flags."""
        state = app_state(ctx)
        graph = await state.graph()
        return answer(await find_feature_card(state.store, graph, name, state.now()))

    @server.tool(title="What changed recently", annotations=READ)
    @agent_errors
    async def list_recent_changes(
        ctx: Context[Any],
        services: Annotated[
            list[str] | None,
            Field(
                max_length=20,
                description="Only changes to these services and to everything they depend "
                "on, at any depth.",
            ),
        ] = None,
        environment: Environment = None,
        since: Annotated[
            str | None,
            Field(
                max_length=40,
                description="Start of the window: an ISO 8601 time, or a duration back from "
                "now such as 6h or 7d. Default: 24 hours before `until`.",
            ),
        ] = None,
        until: Annotated[
            str | None,
            Field(
                max_length=40, description="End of the window, written like `since`; default now."
            ),
        ] = None,
        limit: Annotated[int, Field(ge=1, le=100, description="At most this many changes.")] = 20,
        cursor: Cursor = None,
    ) -> Annotated[CallToolResult, ChangeTimeline]:
        """Answer "what changed?": deployments, feature-flag changes and catalog edits (a
        service's owner, tier, lifecycle or dependencies) on one timeline, newest first,
        each with who made it, why, and a link. Given services, it also
        lists the changes to everything they depend on, each marked with the dependency
        path (checkout -> payments-api -> payments-db), so a change two hops away is not
        missed. Use it at the start of an incident, with the failing services."""
        state = app_state(ctx)
        graph = await state.graph()
        now = state.now()
        return answer(
            await find_recent_changes(
                state.store,
                graph,
                now,
                services=services or [],
                environment=environment,
                since=parse_moment(since, now, field="since"),
                until=parse_moment(until, now, field="until"),
                limit=limit,
                offset=parse_cursor(cursor),
            )
        )

    @server.tool(title="A flag's change history", annotations=READ)
    @agent_errors
    async def get_flag_history(
        key: Annotated[
            str,
            Field(
                min_length=1,
                max_length=200,
                description="The flag's key or name; case, separators and small typos are "
                "forgiven.",
            ),
        ],
        ctx: Context[Any],
        environment: Environment = None,
        limit: Annotated[int, Field(ge=1, le=100, description="At most this many changes.")] = 20,
        cursor: Cursor = None,
    ) -> Annotated[CallToolResult, FlagHistory]:
        """Every recorded change of one feature flag, newest first: when, in which
        environment, who or what changed it, from what state to what, and why; with its
        state now. Use it to see whether a flag flip lines up with an incident."""
        state = app_state(ctx)
        graph = await state.graph()
        return answer(
            await find_flag_history(
                state.store,
                graph,
                key,
                environment=environment,
                limit=limit,
                offset=parse_cursor(cursor),
            )
        )
