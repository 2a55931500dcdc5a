"""What every tool shares: reaching the app state, shaping answers, turning errors into
messages the model can act on, and honest annotations."""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Annotated, Any, ParamSpec, TypeVar

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import ErrorDetails, InitErrorDetails, PydanticCustomError

from resilience_mcp.errors import InvalidInputError, ResilienceError
from resilience_mcp.models.common import Answer
from resilience_mcp.server.detail import DETAIL_DESCRIPTION, Detail, shape
from resilience_mcp.server.schemas import simplify_schema
from resilience_mcp.server.state import AppState

__all__ = [
    "READ",
    "WRITE",
    "ArgumentError",
    "agent_errors",
    "answer",
    "app_state",
    "harden_tools",
    "parse_cursor",
]

logger = logging.getLogger(__name__)

P = ParamSpec("P")
M = TypeVar("M", bound=BaseModel)

# Reads look only at the catalog: nothing changes, asking twice gives the same answer.
READ = ToolAnnotations(
    read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False
)
# Writes change the catalog. With the same idempotency key a retry acts once; the write
# tools narrow these hints for what a retry without a key does.
WRITE = ToolAnnotations(
    read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=False
)


def app_state(ctx: Context[Any]) -> AppState:
    state = ctx.request_context.lifespan_context
    assert isinstance(state, AppState)
    return state


# The `detail` of the tool call being answered; `agent_errors` sets it around each call.
_DETAIL: ContextVar[Detail] = ContextVar("detail", default="summary")


def answer(result: Answer) -> CallToolResult:
    """Structured content for programs and a short text for the model or a chat, shaped by
    server/detail.py (a summary, the default `detail`, leaves out more); the text is the
    same."""
    return CallToolResult(
        content=[TextContent(type="text", text=result.text())],
        structured_content=shape(result, _DETAIL.get()),
    )


def agent_errors(
    fn: Callable[P, Awaitable[CallToolResult]],
) -> Callable[P, Awaitable[CallToolResult]]:
    """Raise the package's own errors as `ToolError`, the one way a message reaches the model,
    and give the tool its `detail` argument (unless it declares one itself)."""
    own_detail = "detail" in inspect.signature(fn).parameters

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> CallToolResult:
        detail = kwargs.get("detail", "summary") if own_detail else kwargs.pop("detail", "summary")
        token = _DETAIL.set("full" if detail == "full" else "summary")
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
        finally:
            _DETAIL.reset(token)

    # The docstring is the tool's description: without its indentation, the model reads
    # fewer tokens for the same words.
    wrapper.__doc__ = inspect.cleandoc(fn.__doc__ or "")
    if not own_detail:
        signature = inspect.signature(fn, eval_str=True)
        detail = inspect.Parameter(
            "detail",
            inspect.Parameter.KEYWORD_ONLY,
            default="summary",
            annotation=Annotated[Detail, Field(description=DETAIL_DESCRIPTION)],
        )
        parameters = [*signature.parameters.values(), detail]
        setattr(wrapper, "__signature__", signature.replace(parameters=parameters))  # noqa: B010
    return wrapper


class ArgumentError(ValidationError):
    """Arguments a tool cannot take, told in sentences: what was wrong with each and what
    the tool accepts. The SDK passes a `ValidationError`'s text to the model as it is."""

    message: str = ""

    def __str__(self) -> str:
        return self.message

    @classmethod
    def of(cls, tool: str, exc: ValidationError, accepted: list[str]) -> ArgumentError:
        problems = [_problem(error, accepted) for error in exc.errors(include_url=False)]
        message = f"The arguments of {tool} are not right: {'; '.join(problems)}."
        error = cls.from_exception_data(
            tool,
            [InitErrorDetails(type=PydanticCustomError("arguments", message), loc=(), input=None)],
        )
        error.message = message
        return error


def _problem(error: ErrorDetails, accepted: list[str]) -> str:
    where = ".".join(str(part) for part in error["loc"]) or "the arguments"
    if error["type"] == "extra_forbidden":
        return f"{where!r} is not one of its arguments (it takes {', '.join(accepted)})"
    if error["type"] == "missing":
        return f"{where!r} is required"
    shown = repr(error["input"])
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    said = error["msg"][:1].lower() + error["msg"][1:]
    return f"{where!r}: {said} (it was {shown})"


def harden_tools(server: MCPServer[Any]) -> None:
    """Make every tool refuse arguments it does not take, and publish plain output schemas.

    The SDK drops unknown arguments, so a misspelt `limt` would be ignored without a word;
    here each tool's argument model forbids extra keys (and its input schema says so), and
    any refusal is an ArgumentError. Output schemas are rewritten by `simplify_schema`,
    which clients validate far faster. The SDK has no public accessor for its registered
    tools, hence the tool manager."""
    for tool in server._tool_manager.list_tools():
        base = tool.fn_metadata.arg_model
        accepted = [f.alias or name for name, f in base.model_fields.items()]
        tool.fn_metadata.arg_model = _strict_model(tool.name, base, accepted)
        tool.parameters["additionalProperties"] = False
        if tool.fn_metadata.output_schema is not None:
            tool.fn_metadata.output_schema = simplify_schema(tool.fn_metadata.output_schema)
            # Tool.output_schema caches what it read; read the new one.
            tool.__dict__.pop("output_schema", None)


def _strict_model(tool: str, base: type[M], accepted: list[str]) -> type[M]:
    def model_validate(cls: type[M], /, obj: Any, **options: Any) -> M:
        try:
            return base.model_validate.__func__(cls, obj, **options)  # type: ignore[attr-defined, no-any-return]
        except ValidationError as exc:
            raise ArgumentError.of(tool, exc, accepted) from None

    config = ConfigDict(**{**base.model_config, "extra": "forbid"})
    namespace = {"model_config": config, "model_validate": classmethod(model_validate)}
    strict: type[M] = type(base.__name__, (base,), namespace)
    return strict


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
