"""Streamable HTTP for bots and remote agents.

One ASGI app: the MCP endpoint at `/mcp` (stateless by default), `/healthz` for load
balancers, and `POST /cards/{tool}`, which runs a read tool and answers with its compact
card for chat-ops. With tokens configured, `/mcp` and `/cards` take a bearer token with the
`read` scope. Every request has its body size limited (per route: the webhooks take larger
bodies) and must send its body within a deadline; `/mcp` and `/cards` check the Host and
Origin headers against DNS rebinding; a client address that keeps sending bad tokens, or
webhook events with bad signatures, is refused for a while.
"""

from __future__ import annotations

import logging
import math
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.server import MCPServer
from mcp.server.auth.middleware.auth_context import AuthContextMiddleware
from mcp.server.auth.middleware.bearer_auth import BearerAuthBackend, RequireAuthMiddleware
from mcp.server.transport_security import TransportSecurityMiddleware, TransportSecuritySettings
from mcp.types import CallToolResult, TextContent, Tool
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route, request_response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from resilience_mcp import __version__
from resilience_mcp.connectors.webhooks import BAD_SIGNATURE
from resilience_mcp.models.common import Answer, Card
from resilience_mcp.server.auth import TokenBook, TokenBookVerifier

__all__ = [
    "LOOPBACK_HOSTS",
    "BadTokenThrottle",
    "BodyGuard",
    "HttpSettings",
    "build_asgi_app",
    "is_loopback",
]

logger = logging.getLogger(__name__)

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
_LOOPBACK_HOST_HEADERS = [
    "127.0.0.1",
    "127.0.0.1:*",
    "localhost",
    "localhost:*",
    "[::1]",
    "[::1]:*",
]
_LOOPBACK_ORIGINS = ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"]
# The card route calls the MCP endpoint in-process; this origin never leaves the process.
_INTERNAL_URL = "http://127.0.0.1"


def is_loopback(host: str) -> bool:
    return host in LOOPBACK_HOSTS


@dataclass(frozen=True)
class HttpSettings:
    """How the HTTP transport listens and what it lets through."""

    host: str = "127.0.0.1"
    port: int = 8000
    # Host headers accepted besides loopback, e.g. "mcp.example.com" (any port when none given).
    allowed_hosts: tuple[str, ...] = ()
    # Origin headers accepted besides loopback, e.g. "https://chat.example.com".
    allowed_origins: tuple[str, ...] = ()
    max_body_bytes: int = 1024 * 1024
    stateless: bool = True
    # A client must send a request's headers within this many seconds of connecting (or of
    # the previous response), and then its body within this many more; else 408. Zero
    # turns either off. The header deadline is uvicorn's part (`server.listen`).
    header_timeout_seconds: float = 10.0
    body_timeout_seconds: float = 60.0
    # A client address that sends this many bad tokens within the window is refused (429)
    # until the oldest of them leaves the window. Zero turns the throttle off.
    bad_token_limit: int = 10
    bad_token_window_seconds: float = 60.0

    def transport_security(self) -> TransportSecuritySettings:
        hosts = list(_LOOPBACK_HOST_HEADERS)
        extra = list(self.allowed_hosts)
        if not is_loopback(self.host) and self.host not in ("0.0.0.0", "::"):
            extra.append(self.host)
        for host in extra:
            hosts.append(host)
            if ":" not in host.strip("[]") or host.startswith("["):
                hosts.append(f"{host}:*")
        return TransportSecuritySettings(
            enable_dns_rebinding_protection=True,
            allowed_hosts=list(dict.fromkeys(hosts)),
            allowed_origins=[*_LOOPBACK_ORIGINS, *self.allowed_origins],
        )


def build_asgi_app(
    server: MCPServer[Any],
    settings: HttpSettings | None = None,
    tokens: TokenBook | None = None,
    *,
    clock: Callable[[], float] = time.monotonic,
    routes: Sequence[BaseRoute] = (),
    body_limits: Mapping[str, int] | None = None,
) -> Starlette:
    """The ASGI app serving `server` over streamable HTTP; tokens, when given, are required.

    `routes` are served as they are, before `/mcp` (the webhooks, which check their own
    signatures rather than tokens). `body_limits` gives paths (and what lies under them)
    a body limit of their own instead of `settings.max_body_bytes`."""
    settings = settings or HttpSettings()
    security = settings.transport_security()
    mcp_app = server.streamable_http_app(
        stateless_http=settings.stateless,
        transport_security=security,
        max_request_body_size=settings.max_body_bytes,
        host=settings.host,
    )
    health = _Health()
    cards = _CardRoute(server, mcp_app, TransportSecurityMiddleware(security))
    protect = _protector(tokens)

    routes = [
        Route("/healthz", health.endpoint, methods=["GET"]),
        # Any method: the endpoint answers 405 itself, or the mount below would take it.
        Route("/cards/{tool}", protect(request_response(cards.endpoint))),
        *routes,
        Mount("/", app=protect(mcp_app)),
    ]
    middleware = [
        Middleware(
            BadTokenThrottle,
            limit=settings.bad_token_limit,
            window=settings.bad_token_window_seconds,
            clock=clock,
        ),
        Middleware(
            BodyGuard,
            default=settings.max_body_bytes,
            by_path=dict(body_limits or {}),
            seconds=settings.body_timeout_seconds,
        ),
    ]
    if tokens:
        middleware += [
            Middleware(
                AuthenticationMiddleware, backend=BearerAuthBackend(TokenBookVerifier(tokens))
            ),
            Middleware(AuthContextMiddleware),
        ]

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        # The MCP app is mounted, so its own lifespan does not run: enter it here, once.
        async with server.session_manager.run():
            health.ready = True
            try:
                yield
            finally:
                health.ready = False

    return Starlette(routes=routes, middleware=middleware, lifespan=lifespan)


def _protector(tokens: TokenBook | None) -> Callable[[ASGIApp], ASGIApp]:
    """Wraps an app so that it needs a token with `read`; without tokens it lets all in."""
    if not tokens:
        return _Open
    return lambda app: RequireAuthMiddleware(app, ["read"])


class _Open:
    """An app passed through as it is. A route given a plain function takes it for a
    GET-only endpoint; given this object, it serves every method with the app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


class _Health:
    """Liveness and readiness: ready once the store is open and the catalog loaded."""

    def __init__(self) -> None:
        self.ready = False

    async def endpoint(self, _request: Request) -> Response:
        status = "ok" if self.ready else "starting"
        return JSONResponse(
            {"status": status, "version": __version__}, status_code=200 if self.ready else 503
        )


class _CardRoute:
    """`POST /cards/{tool}` with the tool's arguments as a JSON object: the answer's card."""

    def __init__(
        self, server: MCPServer[Any], mcp_app: ASGIApp, security: TransportSecurityMiddleware
    ) -> None:
        self.server = server
        self.mcp_app = mcp_app
        self.security = security

    async def endpoint(self, request: Request) -> Response:
        if request.method != "POST":
            response = _error(405, "Send the tool's arguments with POST, as a JSON object.")
            response.headers["allow"] = "POST"
            return response
        # The same checks as /mcp: a JSON content type (which a cross-site form cannot
        # send), then Host and Origin; the SDK's plain-text refusal is passed on as JSON.
        refused = await self.security.validate_request(request, is_post=True)
        if refused is not None:
            return _error(refused.status_code, bytes(refused.body).decode())
        name = request.path_params["tool"]
        tool = {t.name: t for t in await self.server.list_tools()}.get(name)
        if tool is None:
            return _error(404, f"No tool is named {name!r}; list them with tools/list on /mcp.")
        if not (tool.annotations and tool.annotations.read_only_hint):
            return _error(403, f"Cards are for read tools; call {name} over /mcp instead.")
        arguments = await _json_object(request)
        if arguments is None:
            return _error(400, "The body must be a JSON object of the tool's arguments.")

        # A card is drawn from the whole answer; the caller may still ask for a summary.
        arguments.setdefault("detail", "full")
        result = await self._call(name, arguments, request.headers.get("authorization"))
        if result.is_error:
            return _error(422, _text(result))
        return JSONResponse(card_of(tool, result).model_dump(mode="json"))

    async def _call(
        self, name: str, arguments: dict[str, Any], authorization: str | None
    ) -> CallToolResult:
        # The tool runs through the MCP endpoint itself, so validation, errors and the
        # caller's identity (already checked by the middleware) are exactly those of /mcp.
        headers = {"authorization": authorization} if authorization else {}
        transport = httpx2.ASGITransport(app=self.mcp_app)
        async with (
            httpx2.AsyncClient(
                transport=transport, base_url=_INTERNAL_URL, headers=headers
            ) as http,
            Client(
                streamable_http_client(f"{_INTERNAL_URL}/mcp", http_client=http),
                mode=MODERN_PROTOCOL_VERSIONS[-1],
                cache=None,
            ) as client,
        ):
            return await client.call_tool(name, arguments)


def card_of(tool: Tool, result: CallToolResult) -> Card:
    """The card of a tool's answer, as the answer's own model draws it."""
    model = _answer_models().get(str((tool.output_schema or {}).get("title")))
    if model is not None and result.structured_content is not None:
        return model.model_validate(result.structured_content).card()
    lines = _text(result).splitlines()
    return Card(title=lines[0] if lines else tool.name, lines=lines[1:6], links=[])


def _answer_models() -> dict[str, type[Answer]]:
    """Every answer model by class name, which is the title of a tool's output schema."""
    found: dict[str, type[Answer]] = {}
    pending: list[type[Answer]] = [Answer]
    while pending:
        for sub in pending.pop().__subclasses__():
            found.setdefault(sub.__name__, sub)
            pending.append(sub)
    return found


async def _json_object(request: Request) -> dict[str, Any] | None:
    body = await request.body()
    if not body.strip():
        return {}
    try:
        value = await request.json()
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _text(result: CallToolResult) -> str:
    return "\n".join(block.text for block in result.content if isinstance(block, TextContent))


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


class BadTokenThrottle:
    """Refuses a client address for a while after repeated bad tokens.

    A request counts as a bad token when it was answered 401 and either carried an
    Authorization header or was a webhook event whose signature did not match (the webhook
    marks it in the request's state). Addresses are kept in a bounded table, oldest
    dropped first.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        limit: int,
        window: float,
        clock: Callable[[], float] = time.monotonic,
        max_addresses: int = 10_000,
    ) -> None:
        self.app = app
        self.limit = limit
        self.window = window
        self.clock = clock
        self.max_addresses = max_addresses
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.limit <= 0:
            await self.app(scope, receive, send)
            return
        address = (scope.get("client") or ("unknown", 0))[0]
        now = self.clock()
        recent = self._recent(address, now)
        if len(recent) >= self.limit:
            retry = max(1, math.ceil(recent[0] + self.window - now))
            await _too_many(retry)(scope, receive, send)
            return
        token = any(key == b"authorization" for key, _ in scope["headers"])
        state = scope.setdefault("state", {})
        status = 0

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        await self.app(scope, receive, watch)
        if status == 401 and (token or state.get(BAD_SIGNATURE)):
            self._record(address, now)

    def _recent(self, address: str, now: float) -> deque[float]:
        times = self._failures.get(address, deque())
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            self._failures.pop(address, None)
        return times

    def _record(self, address: str, now: float) -> None:
        times = self._failures.setdefault(address, deque())
        times.append(now)
        self._failures.move_to_end(address)
        if len(times) == self.limit:
            logger.warning(
                "refusing %s for up to %gs: %d bad tokens or signatures",
                address,
                self.window,
                self.limit,
            )
        while len(self._failures) > self.max_addresses:
            self._failures.popitem(last=False)


class BodyGuard:
    """Reads each request's body before the app sees it, and refuses a body that is too
    large (413) or that is not all there within `seconds` of the headers, however slowly
    it trickles in (408); either answer closes the connection, and the app is not called.

    The size limit is `default`, or that of the longest path in `by_path` that is the
    request's path or a folder of it. Zero `seconds` sets no deadline."""

    def __init__(
        self, app: ASGIApp, *, default: int, by_path: Mapping[str, int], seconds: float
    ) -> None:
        self.app = app
        self.default = default
        self.by_path = sorted(
            ((path.rstrip("/"), limit) for path, limit in by_path.items()),
            key=lambda item: -len(item[0]),
        )
        self.seconds = seconds

    def limit(self, path: str) -> int:
        for prefix, limit in self.by_path:
            if path == prefix or path.startswith(prefix + "/"):
                return limit
        return self.default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit(str(scope["path"]))
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            await _too_large(limit)(scope, receive, send)
            return
        deadline = anyio.current_time() + self.seconds if self.seconds > 0 else math.inf

        body = bytearray()
        more = True
        while more:
            with anyio.CancelScope(deadline=deadline) as waiting:
                message = await receive()
            if waiting.cancelled_caught:
                logger.debug("request body not complete within %gs: 408", self.seconds)
                await _too_slow(self.seconds)(scope, receive, send)
                return
            if message["type"] != "http.request":
                return  # the client went away: there is no one to answer
            body += message.get("body", b"")
            if len(body) > limit:
                await _too_large(limit)(scope, receive, send)
                return
            more = bool(message.get("more_body"))

        pending: deque[Message] = deque([{"type": "http.request", "body": bytes(body)}])

        async def replay() -> Message:
            # The body once, then the client's own messages (a stream waits for its
            # disconnect there).
            return pending.popleft() if pending else await receive()

        await self.app(scope, replay, send)


def _too_large(limit: int) -> Response:
    return JSONResponse(
        {"error": f"The request body is larger than {limit} bytes; send a smaller one."},
        status_code=413,
        headers={"connection": "close"},
    )


def _too_slow(seconds: float) -> Response:
    return JSONResponse(
        {
            "error": f"The request body did not arrive within {seconds:g} s; send it at "
            "once, or a smaller one."
        },
        status_code=408,
        headers={"connection": "close"},
    )


def _too_many(retry_after: int) -> Response:
    return JSONResponse(
        {
            "error": f"Too many bad tokens or signatures from this address; retry in "
            f"{retry_after} s."
        },
        status_code=429,
        headers={"retry-after": str(retry_after)},
    )
