"""Remote APIs replayed in process (httpx.MockTransport), and a real server on loopback.

`FakeApi` serves listings the way each API pages them (PagerDuty's offset/limit/more,
Backstage's cursor and classic offset forms, flagd's one document), can be told to fail a
path a few times first, and keeps every request it saw.
"""

from __future__ import annotations

import base64
import json
import socket
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
import uvicorn
from starlette.types import ASGIApp


class Sleeps:
    """An injectable sleep that records each pause instead of waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def failure(status: int, *, retry_after: str | None = None, body: str = "") -> httpx.Response:
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    return httpx.Response(status, headers=headers, text=body)


class FakeApi:
    """One remote API: `listings` maps a path to (the JSON key of its items, the items)."""

    def __init__(
        self,
        listings: dict[str, tuple[str, list[Any]]] | None = None,
        documents: dict[str, Any] | None = None,
    ) -> None:
        self.listings = listings or {}
        self.documents = documents or {}
        self.failures: dict[str, list[httpx.Response]] = defaultdict(list)
        self.requests: list[httpx.Request] = []

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def fail(self, path: str, *responses: httpx.Response) -> None:
        """Answer the next requests for `path` with `responses`, in order."""
        self.failures[path].extend(responses)

    def paths(self) -> list[str]:
        return [r.url.path for r in self.requests]

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        if self.failures[path]:
            return self.failures[path].pop(0)
        if path in self.documents:
            return httpx.Response(200, json=self.documents[path])
        if path == "/api/catalog/entities/by-query":
            return self._cursor_page(request)
        if path == "/api/catalog/entities":
            return self._bare_page(request)
        if path in self.listings:
            return self._offset_page(request)
        return httpx.Response(404, json={"error": {"message": "Not Found", "code": 2100}})

    def _offset_page(self, request: httpx.Request) -> httpx.Response:
        """PagerDuty's classic pagination: offset, limit, more, total (null unless asked)."""
        key, items = self.listings[request.url.path]
        offset = int(request.url.params.get("offset", 0))
        limit = int(request.url.params.get("limit", 25))
        page = items[offset : offset + limit]
        body = {
            key: page,
            "limit": limit,
            "offset": offset,
            "more": offset + limit < len(items),
            "total": None,
        }
        return httpx.Response(200, json=body)

    def _cursor_page(self, request: httpx.Request) -> httpx.Response:
        """Backstage `by-query`: the cursor is opaque and carries the query; pageInfo says more."""
        _, items = self.listings["/api/catalog/entities"]
        cursor = request.url.params.get("cursor")
        if cursor:
            state = json.loads(base64.b64decode(cursor))
            offset, limit = state["firstSortFieldValues"], int(request.url.params.get("limit", 20))
        else:
            offset, limit = 0, int(request.url.params.get("limit", 20))
        page = items[offset : offset + limit]
        info: dict[str, Any] = {}
        if offset + limit < len(items):
            token = json.dumps({"firstSortFieldValues": offset + limit, "isPrevious": False})
            info["nextCursor"] = base64.b64encode(token.encode()).decode()
        if offset:
            info["prevCursor"] = base64.b64encode(b'{"isPrevious": true}').decode()
        return httpx.Response(200, json={"items": page, "totalItems": len(items), "pageInfo": info})

    def _bare_page(self, request: httpx.Request) -> httpx.Response:
        """The classic Backstage listing: a bare array, cut by offset and limit."""
        _, items = self.listings["/api/catalog/entities"]
        offset = int(request.url.params.get("offset", 0))
        limit = int(request.url.params.get("limit", len(items) or 1))
        return httpx.Response(200, json=items[offset : offset + limit])


@asynccontextmanager
async def on_loopback(app: ASGIApp) -> AsyncIterator[str]:
    """Serve `app` with uvicorn on 127.0.0.1 at a free port; yields its base URL.

    The socket is bound and listening before uvicorn starts, so readiness is only a matter
    of the app's startup, which the bounded loop below waits out by asking it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    async with anyio.create_task_group() as group:
        group.start_soon(server.serve, [sock])
        try:
            await _until_ready(server, url)
            yield url
        finally:
            server.should_exit = True
    sock.close()


async def _until_ready(server: uvicorn.Server, url: str) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        for _ in range(50):
            await client.get(f"{url}/__ready__")
            if server.started:
                return
    raise AssertionError("the loopback server did not start")
