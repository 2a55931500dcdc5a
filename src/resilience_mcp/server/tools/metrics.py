"""Tools about how well things run: DORA, MTTR and MTBF, SLO budgets, scorecards."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.types import CallToolResult
from pydantic import Field

from resilience_mcp.metrics.dora import get_dora_metrics as compute_dora_answer
from resilience_mcp.metrics.reliability import get_reliability as compute_reliability
from resilience_mcp.metrics.scorecards import get_scorecard as evaluate_scorecards
from resilience_mcp.metrics.scorecards import list_scorecard_failures as find_failures
from resilience_mcp.metrics.slo import get_slo_status as compute_slo_answer
from resilience_mcp.models.metrics import (
    DoraAnswer,
    ReliabilityAnswer,
    ScorecardAnswer,
    ScorecardFailuresAnswer,
    SLOStatusAnswer,
)
from resilience_mcp.server.state import ServerConfig
from resilience_mcp.server.tooling import READ, agent_errors, answer, app_state, parse_cursor

__all__ = ["register"]

Since = Annotated[
    str | None,
    Field(
        max_length=40,
        description="Start of the window: a date or time (2026-09-01, 2026-09-01T08:00Z, UTC "
        "when no zone) or a length back from now (30d, 12w). Default: 90 days before the end.",
    ),
]
Until = Annotated[
    str | None,
    Field(max_length=40, description="End of the window, written like since. Default: now."),
]
Cursor = Annotated[str | None, Field(description="The next_cursor of a previous page.")]
Level = Literal["Basic", "Bronze", "Silver", "Gold"]


def register(server: MCPServer[Any], config: ServerConfig) -> None:
    @server.tool(title="DORA metrics", annotations=READ)
    @agent_errors
    async def get_dora_metrics(
        ctx: Context[Any],
        scope: Annotated[
            Literal["service", "team", "system", "domain", "organisation"],
            Field(description="What to measure; a team includes the services of its sub-teams."),
        ] = "organisation",
        name: Annotated[
            str | None,
            Field(
                max_length=200,
                description="The service, team, system or domain; not for organisation.",
            ),
        ] = None,
        since: Since = None,
        until: Until = None,
        group_by: Annotated[
            Literal["week", "month"] | None,
            Field(description="Also give each calendar week or month of the window, for trends."),
        ] = None,
        limit: Annotated[
            int, Field(ge=1, le=104, description="At most this many periods, the newest.")
        ] = 26,
    ) -> Annotated[CallToolResult, DoraAnswer]:
        """DORA's four keys for a service, team, system, domain or the whole organisation
        over a window (the last 90 days by default), each with its DORA performance band
        (elite, high, medium, low): deployment frequency, lead time for changes, change
        failure rate, time to restore service, and failed-deployment recovery time.

        Follows Google's Four Keys definitions, over production deployments that shipped
        (success or rolled back), with these differences on purpose: durations are minutes,
        not whole hours; a change failure is a deployment an incident names (as suspect or
        by root-cause commit) or one that was rolled back; restoration is the incident's
        mitigation when recorded, else its resolution. With group_by, each week or month
        gets its own figures, for trends."""
        state = app_state(ctx)
        graph = await state.graph()
        return answer(
            await state.answers.get(
                "get_dora_metrics",
                (scope, name, since, until, group_by, limit),
                lambda: compute_dora_answer(
                    state.store,
                    graph,
                    state.now(),
                    scope=scope,
                    name=name,
                    since=since,
                    until=until,
                    group_by=group_by,
                    limit=limit,
                ),
            )
        )

    @server.tool(title="MTTR, MTBF and reliability", annotations=READ)
    @agent_errors
    async def get_reliability(
        name: Annotated[
            str,
            Field(
                min_length=1,
                max_length=200,
                description="A service, team, system or domain (forgiving), or 'organisation'.",
            ),
        ],
        ctx: Context[Any],
        since: Since = None,
        limit: Annotated[
            int, Field(ge=1, le=50, description="At most this many flakiest services.")
        ] = 10,
    ) -> Annotated[CallToolResult, ReliabilityAnswer]:
        """How reliable a service, team, system or the whole organisation has been since a
        date (90 days by default): incidents by severity and how many are open; mean and
        median time to restore, to detect, to acknowledge and to resolve; MTBF (mean
        operating time between the starts of consecutive failures; the censored first and
        last intervals are left out, so with fewer than two failures only a lower bound is
        given); the flakiest services ranked by failures, then MTBF; the worst SLOs; and the
        latest incidents. Use it to find what fails most and how fast it comes back."""
        state = app_state(ctx)
        graph = await state.graph()
        return answer(
            await compute_reliability(
                state.store, graph, name, state.now(), since=since, limit=limit
            )
        )

    @server.tool(title="SLO status and error budgets", annotations=READ)
    @agent_errors
    async def get_slo_status(
        ctx: Context[Any],
        service: Annotated[
            str | None, Field(max_length=200, description="Only this service's SLOs.")
        ] = None,
        short_window: Annotated[
            str, Field(max_length=20, description="Trailing window of the short burn rate.")
        ] = "1d",
        long_window: Annotated[
            str, Field(max_length=20, description="Trailing window of the long burn rate.")
        ] = "7d",
        limit: Annotated[int, Field(ge=1, le=100, description="At most this many SLOs.")] = 20,
        cursor: Cursor = None,
    ) -> Annotated[CallToolResult, SLOStatusAnswer]:
        """The state of the SLOs (of one service, or all), worst first: attainment against
        the objective over the SLO's window, the share of error budget left (below zero
        when overspent), and the burn rate over a short and a long trailing window (1 means
        the budget lasts exactly to the end of the window). Budgeting follows OpenSLO:
        occurrences count events, timeslices count good time slices of the whole window.
        Each SLO is healthy, at_risk (under 25% left or burning faster than 1 over the long
        window), exhausted, or no_data."""
        state = app_state(ctx)
        graph = await state.graph()
        return answer(
            await compute_slo_answer(
                state.store,
                graph,
                state.now(),
                service=service,
                short_window=short_window,
                long_window=long_window,
                limit=limit,
                offset=parse_cursor(cursor),
            )
        )

    @server.tool(title="Production-readiness scorecard", annotations=READ)
    @agent_errors
    async def get_scorecard(
        name: Annotated[
            str,
            Field(
                min_length=1,
                max_length=200,
                description="A service (or other catalog entity); forgiving, 'kind:name' "
                "narrows it.",
            ),
        ],
        ctx: Context[Any],
        scorecard: Annotated[
            str | None,
            Field(max_length=200, description="Only this scorecard (default: all that apply)."),
        ] = None,
    ) -> Annotated[CallToolResult, ScorecardAnswer]:
        """How production-ready one service is: for each scorecard that applies, the level it
        reaches (Basic, Bronze, Silver, Gold: every rule of a level and of those below
        passes), every rule with why it passed or failed, and the next step: the failing
        rules that stand before the next level, with a hint on how to fix each."""
        state = app_state(ctx)
        graph = await state.graph()
        return answer(
            await evaluate_scorecards(state.store, graph, name, state.now(), scorecard=scorecard)
        )

    @server.tool(title="Scorecard failures across the catalog", annotations=READ)
    @agent_errors
    async def list_scorecard_failures(
        ctx: Context[Any],
        rule: Annotated[
            str | None,
            Field(max_length=100, description="Only this rule id, e.g. 'owner-on-call'."),
        ] = None,
        level: Annotated[Level | None, Field(description="Only rules of this level.")] = None,
        team: Annotated[
            str | None,
            Field(max_length=200, description="Only what this team (or a sub-team) owns."),
        ] = None,
        scorecard: Annotated[
            str | None, Field(max_length=200, description="Only this scorecard.")
        ] = None,
        limit: Annotated[int, Field(ge=1, le=100, description="At most this many failures.")] = 25,
        cursor: Cursor = None,
    ) -> Annotated[CallToolResult, ScorecardFailuresAnswer]:
        """Every failing scorecard rule across the catalog, most basic first (a missing owner
        before a missing dashboard), then by tier: which entity, its owner, the rule, its
        level and why it fails. Narrow by rule, level or owning team. Also counts the
        entities at each level and the failures per rule: use it to plan readiness work or
        to chase a team's gaps."""
        state = app_state(ctx)
        graph = await state.graph()
        offset = parse_cursor(cursor)
        return answer(
            await state.answers.get(
                "list_scorecard_failures",
                (rule, level, team, scorecard, limit, offset),
                lambda: find_failures(
                    state.store,
                    graph,
                    state.now(),
                    rule=rule,
                    level=level,
                    team=team,
                    scorecard=scorecard,
                    limit=limit,
                    offset=offset,
                ),
            )
        )
