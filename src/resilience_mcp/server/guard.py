"""Who is calling, and may they write.

Over HTTP the caller is the bearer token's client, and a write needs the token's `write`
scope. On stdio (and in memory) there is no token: the caller is the operator's own
process, recorded as "local", and may write whenever the server was started with writes
on. A refused write is audited like any other.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from mcp.server.auth.middleware.auth_context import get_access_token

from resilience_mcp.errors import PermissionDeniedError
from resilience_mcp.server.state import AppState
from resilience_mcp.writes.audit import WriteRequest, record_refusal

__all__ = ["LOCAL_ACTOR", "WRITE_SCOPE", "Caller", "current_caller", "write_request"]

logger = logging.getLogger(__name__)

LOCAL_ACTOR = "local"
WRITE_SCOPE = "write"


@dataclass(frozen=True)
class Caller:
    """The one calling a tool; `scopes` is None when no token is involved (stdio)."""

    actor: str
    scopes: frozenset[str] | None = None

    @property
    def may_write(self) -> bool:
        return self.scopes is None or WRITE_SCOPE in self.scopes


def current_caller() -> Caller:
    """The caller of the tool running now, from the HTTP request's token if there is one."""
    token = get_access_token()
    if token is None:
        return Caller(LOCAL_ACTOR)
    return Caller(token.client_id, frozenset(token.scopes))


async def write_request(
    state: AppState,
    tool: str,
    arguments: dict[str, Any],
    *,
    dry_run: bool,
    idempotency_key: str | None,
) -> WriteRequest:
    """The audited request for a write by the current caller; refuses one who may not."""
    caller = current_caller()
    request = WriteRequest(
        tool=tool,
        actor=caller.actor,
        at=state.now(),
        arguments=arguments,
        dry_run=dry_run,
        idempotency_key=idempotency_key,
    )
    refusal = _refusal(state, caller, tool)
    if refusal is None:
        return request
    logger.warning("refused %s for %s: %s", tool, caller.actor, refusal)
    await record_refusal(state.store, request, refusal)
    raise refusal


def _refusal(state: AppState, caller: Caller, tool: str) -> PermissionDeniedError | None:
    if not state.config.enable_writes:
        return PermissionDeniedError(
            f"{tool} is a write, and writes are off on this server. The operator turns them "
            "on with --enable-writes; until then use the read tools."
        )
    if not caller.may_write:
        scopes = ", ".join(sorted(caller.scopes or ())) or "none"
        return PermissionDeniedError(
            f"{tool} changes the catalog and needs a token with the 'write' scope; the token "
            f"of client {caller.actor!r} has scopes: {scopes}. Ask the operator for a write "
            "token, or use the read tools."
        )
    return None
