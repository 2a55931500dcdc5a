"""The operator's outbound actions: `list_actions` (always, in the writes toolset) and
`run_action` (only when writes are on), a guarded, audited write like the others."""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.types import CallToolResult, ToolAnnotations
from pydantic import Field
from sqlalchemy.ext.asyncio import AsyncSession

from resilience_mcp.connectors.actions import (
    check_inputs,
    find_action,
    prepare_call,
    send_call,
)
from resilience_mcp.connectors.actions import (
    list_actions as describe_actions,
)
from resilience_mcp.models.connectors import ActionList, ActionSpec
from resilience_mcp.models.writes import FieldChange, WriteAnswer
from resilience_mcp.server.guard import write_request
from resilience_mcp.server.state import AppState, ServerConfig
from resilience_mcp.server.tooling import READ, agent_errors, answer, app_state
from resilience_mcp.writes.audit import WriteRequest, perform_write

__all__ = ["register"]

# An action reaches outside the catalog and may do anything its receiver does.
RUN = ToolAnnotations(
    read_only_hint=False, destructive_hint=True, idempotent_hint=False, open_world_hint=True
)


def _actions(state: AppState) -> list[ActionSpec]:
    settings = state.config.connectors
    return list(settings.actions) if settings else []


def register(server: MCPServer[Any], config: ServerConfig) -> None:
    """`list_actions` always; `run_action` only when the operator enabled writes."""

    @server.tool(title="List the actions you can run", annotations=READ)
    @agent_errors
    async def list_actions(ctx: Context[Any]) -> Annotated[CallToolResult, ActionList]:
        """List the actions the operator configured for agents (restart a service, open a
        ticket, page a team, ...): each with its name, what it does, where it sends its
        request, and the JSON Schema of the inputs run_action needs for it."""
        state = app_state(ctx)
        writes = state.config.enable_writes
        return answer(describe_actions(_actions(state), writes_enabled=writes))

    if config.enable_writes:
        _register_run_action(server)


def _register_run_action(server: MCPServer[Any]) -> None:
    @server.tool(title="Run a configured action", annotations=RUN)
    @agent_errors
    async def run_action(
        name: Annotated[
            str, Field(min_length=1, max_length=64, description="The action, from list_actions.")
        ],
        ctx: Context[Any],
        inputs: Annotated[
            dict[str, Any] | None,
            Field(description="The action's inputs, as its input_schema in list_actions says."),
        ] = None,
        dry_run: Annotated[
            bool,
            Field(description="True to see the request that would be sent, without sending it."),
        ] = False,
        idempotency_key: Annotated[
            str | None,
            Field(
                min_length=8,
                max_length=200,
                pattern=r"^[A-Za-z0-9._:-]+$",
                description="Recommended: a unique string (a UUID) for this one run. A retry "
                "with the same key and inputs returns the first result and sends nothing.",
            ),
        ] = None,
    ) -> Annotated[CallToolResult, WriteAnswer]:
        """Run one of the operator's actions (see list_actions): this sends a request to
        another system, which may change production. Use dry_run first when unsure.

        The inputs are checked against the action's schema; the call is audited with who
        ran it; the answer says what the receiving system replied."""
        state = app_state(ctx)
        action = find_action(_actions(state), name)
        check_inputs(action, inputs or {})
        request = await write_request(
            state,
            "run_action",
            {"name": action.name, "inputs": inputs or {}},
            dry_run=dry_run,
            idempotency_key=idempotency_key,
        )

        async def act(_session: AsyncSession, apply: bool) -> WriteAnswer:
            return await _run(request, action, inputs or {}, apply)

        return answer(await perform_write(state.store, request, act, external=True))


async def _run(
    request: WriteRequest, action: ActionSpec, inputs: dict[str, Any], apply: bool
) -> WriteAnswer:
    call = prepare_call(
        action, inputs, idempotency_key=request.idempotency_key, actor=request.actor
    )
    if not apply:
        return request.answer(
            "Action",
            action.name,
            f"Would run {action.name}: {action.method} to {call.host}.",
            changes=[FieldChange(field="request", after=call.preview())],
        )
    response = await send_call(call)
    return request.answer(
        "Action",
        action.name,
        f"Ran {action.name}: {call.host} answered {response.status} {response.reason}.",
        changes=[
            FieldChange(field="request", after=call.preview()),
            FieldChange(field="response", after=response.excerpt or "(empty)"),
        ],
    )
