"""What every tool shares: reaching the app state, shaping answers, turning errors into
messages the model can act on, and honest annotations."""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, TextContent, ToolAnnotations

from resilience_mcp.errors import InvalidInputError, ResilienceError
from resilience_mcp.models.common import Answer
from resilience_mcp.server.state import AppState

__all__ = [
    "READ",
    "WRITE",
    "agent_errors",
    "answer",
    "app_state",
    "parse_cursor",
]

logger = logging.getLogger(__name__)

P = ParamSpec("P")

# Reads look only at the catalog: nothing changes, asking twice gives the same answer.
READ = ToolAnnotations(
    read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False
)
# Writes change the catalog; each carries an idempotency key, so a retry acts once.
WRITE = ToolAnnotations(
    read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=False
)


def app_state(ctx: Context[Any]) -> AppState:
    state = ctx.request_context.lifespan_context
    assert isinstance(state, AppState)
    return state


def answer(result: Answer) -> CallToolResult:
    """Structured content for programs and a short text for the model or a chat."""
    return CallToolResult(
        content=[TextContent(type="text", text=result.text())],
        structured_content=result.model_dump(mode="json"),
    )


def agent_errors(
    fn: Callable[P, Awaitable[CallToolResult]],
) -> Callable[P, Awaitable[CallToolResult]]:
    """Raise the package's own errors as `ToolError`, the one way a message reaches the model."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> CallToolResult:
        try:
            return await fn(*args, **kwargs)
        except ResilienceError as exc:
            raise ToolError(str(exc)) from exc
        except ToolError:
            raise
        except OverflowError as exc:
            # A date, duration or number far out of range (year 1, year 9999, a million
            # weeks) overflows the arithmetic of whatever reads it: the caller's to fix.
            raise ToolError(
                f"A date, duration or number in the arguments is too far out of range ({exc}); "
                "use dates between 1970 and 2100 and durations under a hundred years."
            ) from exc
        except Exception as exc:
            logger.exception("tool %s failed", fn.__name__)
            raise ToolError(
                f"The tool failed unexpectedly ({exc.__class__.__name__}); the server log has "
                "the details. Retry once; if it fails again, report it."
            ) from exc

    # The docstring is the tool's description: without its indentation, the model reads
    # fewer tokens for the same words.
    wrapper.__doc__ = inspect.cleandoc(fn.__doc__ or "")
    return wrapper


def parse_cursor(cursor: str | None) -> int:
    """The offset a `next_cursor` stands for."""
    if cursor is None or cursor == "":
        return 0
    # Only ASCII digits ('²' is a digit to str.isdigit) and no more than an offset needs.
    if not (cursor.isascii() and cursor.isdigit()) or len(cursor) > 9:
        raise InvalidInputError(
            f"The cursor {cursor[:40]!r} is not one this server gave; omit it to start from "
            "the top."
        )
    return int(cursor)
