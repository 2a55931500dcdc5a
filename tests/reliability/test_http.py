"""Hostile HTTP: malformed JSON-RPC, wrong content types, oversized and endless bodies, slow
clients, Host and Origin tricks, floods of bad tokens. Every one gets a 4xx answer (never a
5xx or a traceback), the server keeps answering good requests, and no token reaches a log
or an answer.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import httpx2
import pytest
import uvicorn
from starlette.applications import Starlette

from resilience_mcp.errors import StoreError
from resilience_mcp.server.app import build_http_app
from resilience_mcp.server.auth import TokenBook, token_line
from resilience_mcp.server.http import HttpSettings
from resilience_mcp.store import Store
from tests.support import demo_config

pytestmark = pytest.mark.anyio

BASE_URL = "http://127.0.0.1:8000"
LIMIT = 60.0
MAX_BODY = 64 * 1024
GOOD_TOKEN = "rmcp_reliability-good-token-7c1e"
TOKENS = TokenBook.parse(token_line("probe-bot", "read", GOOD_TOKEN), "tests")
HEADERS = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
LIST_TOOLS = b'{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}'


@pytest.fixture
async def app(demo_db: str) -> AsyncIterator[Starlette]:
    """The HTTP app over the demo catalog, with its lifespan running."""
    built = build_http_app(
        demo_config(demo_db, toolsets=("all",)), HttpSettings(max_body_bytes=MAX_BODY)
    )
    async with built.router.lifespan_context(built):
        yield built


@asynccontextmanager
async def client(
    app: Starlette, address: str = "127.0.0.1", token: str | None = None
) -> AsyncIterator[httpx2.AsyncClient]:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    transport = httpx2.ASGITransport(app=app, client=(address, 4321))
    async with httpx2.AsyncClient(transport=transport, base_url=BASE_URL, headers=headers) as http:
        yield http


async def still_answers(http: httpx2.AsyncClient) -> None:
    response = await http.post("/mcp", content=LIST_TOOLS, headers=HEADERS)
    assert response.status_code == 200
    assert '"tools"' in response.text


def assert_refused(response: httpx2.Response, *statuses: int) -> None:
    assert response.status_code in statuses, (response.status_code, response.text[:500])
    assert "Traceback" not in response.text


NESTED = b"[" * 20_000 + b"]" * 20_000
MALFORMED = {
    "not JSON": b"{not json",
    "not UTF-8": b'{"jsonrpc": "2.0", "id": 1, "method": "\xff\xfe"}',
    "empty": b"",
    "a JSON string": b'"tools/list"',
    "a number": b"42",
    "null": b"null",
    "an empty batch": b"[]",
    "a batch": b'[{"jsonrpc":"2.0","id":1,"method":"tools/list"}]',
    "the wrong version": b'{"jsonrpc":"1.0","id":1,"method":"tools/list"}',
    "no version": b'{"id":1,"method":"tools/list"}',
    "no method": b'{"jsonrpc":"2.0","id":1}',
    "an object for an id": b'{"jsonrpc":"2.0","id":{"a":1},"method":"tools/list"}',
    "params that are text": b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":"x"}',
    "a tool name that is a number": (
        b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":5}}'
    ),
    "arguments that are a list": (
        b'{"jsonrpc":"2.0","id":1,"method":"tools/call",'
        b'"params":{"name":"get_owner","arguments":[1]}}'
    ),
    "params nested without end": (
        b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":' + NESTED + b"}"
    ),
}


@pytest.mark.parametrize("body", MALFORMED.values(), ids=MALFORMED.keys())
async def test_malformed_json_rpc_gets_a_client_error_and_the_server_answers_on(
    app: Starlette, body: bytes
) -> None:
    async with client(app) as http:
        response = await http.post("/mcp", content=body, headers=HEADERS)
        # A JSON-RPC error may come back in a 200 (as the SDK does for a request it parsed);
        # a message it cannot tell from a notification is accepted (202) and ignored.
        assert_refused(response, 200, 202, 400, 404, 405, 406, 415, 422)
        if response.status_code == 200:
            assert '"error"' in response.text
        await still_answers(http)


@pytest.mark.parametrize("method", ["unknown/method", "tools/call", "resources/read"])
async def test_unknown_methods_and_missing_params_are_json_rpc_errors(
    app: Starlette, method: str
) -> None:
    body = b'{"jsonrpc":"2.0","id":7,"method":"%s"}' % method.encode()
    async with client(app) as http:
        response = await http.post("/mcp", content=body, headers=HEADERS)
        assert_refused(response, 200, 400)
        assert '"error"' in response.text
        await still_answers(http)


@pytest.mark.parametrize(
    ("content_type", "accept"),
    [
        (None, HEADERS["accept"]),
        ("text/plain", HEADERS["accept"]),
        ("application/x-www-form-urlencoded", HEADERS["accept"]),
        ("multipart/form-data; boundary=x", HEADERS["accept"]),
        ("application/xml", HEADERS["accept"]),
        ("application/json", "text/html"),
    ],
)
async def test_wrong_content_types_are_refused(
    app: Starlette, content_type: str | None, accept: str | None
) -> None:
    headers = {k: v for k, v in {"content-type": content_type, "accept": accept}.items() if v}
    async with client(app) as http:
        for path in ("/mcp", "/cards/get_owner"):
            response = await http.post(path, content=LIST_TOOLS, headers=headers)
            if path == "/cards/get_owner" and content_type == "application/json":
                continue  # a card answers JSON whatever the client accepts
            assert_refused(response, 400, 406, 415)
        await still_answers(http)


async def endless_body(chunks: int) -> AsyncIterator[bytes]:
    """A body sent in chunks with no length given up front."""
    for _ in range(chunks):
        yield b" " * 16384


@pytest.mark.parametrize("path", ["/mcp", "/cards/get_owner"])
async def test_a_body_over_the_limit_without_a_length_is_cut_off_with_413(
    app: Starlette, path: str
) -> None:
    async with client(app) as http:
        response = await http.post(path, content=endless_body(64), headers=HEADERS)
        assert_refused(response, 413)
        await still_answers(http)


HOSTS = ["evil.com", "evil.com:8000", "127.0.0.1.evil.com", "localhost.evil.com:8000", "0.0.0.0"]
ORIGINS = [
    "http://evil.com",
    "null",
    "http://127.0.0.1.evil.com:8000",
    "http://localhost.evil.com",
    "https://evil.com:443",
    "file://",
]


@pytest.mark.parametrize("path", ["/mcp", "/cards/get_owner"])
async def test_host_and_origin_tricks_are_refused(app: Starlette, path: str) -> None:
    async with client(app) as http:
        for host in HOSTS:
            response = await http.post(path, content=LIST_TOOLS, headers=HEADERS | {"host": host})
            assert_refused(response, 421)
        for origin in ORIGINS:
            response = await http.post(
                path, content=LIST_TOOLS, headers=HEADERS | {"origin": origin}
            )
            assert_refused(response, 403)
        allowed = HEADERS | {"origin": "http://localhost:3000", "host": "localhost:8000"}
        assert (await http.post("/mcp", content=LIST_TOOLS, headers=allowed)).status_code == 200


@pytest.fixture
async def guarded(demo_db: str) -> AsyncIterator[Starlette]:
    """The HTTP app with a bearer token required."""
    settings = HttpSettings(bad_token_limit=5, bad_token_window_seconds=3600)
    built = build_http_app(demo_config(demo_db, toolsets=("all",)), settings, TOKENS)
    async with built.router.lifespan_context(built):
        yield built


async def test_a_flood_of_bad_tokens_is_throttled_per_address_and_no_token_is_logged(
    guarded: Starlette, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    # The driver's own chatter is only noise here, and slow.
    caplog.set_level(logging.INFO, logger="aiosqlite")
    bad = [f"rmcp_bad-{i:04d}-secret" for i in range(12)]
    answers: list[httpx2.Response] = []
    for token in bad:
        async with client(guarded, "10.1.1.1", token) as http:
            answers.append(await http.post("/mcp", content=LIST_TOOLS, headers=HEADERS))
    async with client(guarded, "10.1.1.1", GOOD_TOKEN) as http:
        throttled_good = await http.post("/mcp", content=LIST_TOOLS, headers=HEADERS)
    async with client(guarded, "10.2.2.2", GOOD_TOKEN) as http:
        elsewhere = await http.post("/mcp", content=LIST_TOOLS, headers=HEADERS)

    assert [a.status_code for a in answers] == [401] * 5 + [429] * 7
    assert answers[-1].headers["retry-after"].isdigit()
    assert throttled_good.status_code == 429
    assert elsewhere.status_code == 200
    said = caplog.text + "".join(a.text + str(a.headers) for a in answers)
    for token in [*bad, GOOD_TOKEN]:
        assert token not in said


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@asynccontextmanager
async def served(app: Starlette) -> AsyncIterator[int]:
    """A real uvicorn on a free loopback port, in this event loop; yields the port."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None))
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(server.serve)
        for _ in range(int(LIMIT / 0.02)):
            if server.started:
                break
            await anyio.sleep(0.02)
        assert server.started, "uvicorn did not start"
        try:
            yield port
        finally:
            server.should_exit = True


@pytest.mark.slow
async def test_slow_clients_do_not_hold_up_the_others(demo_db: str) -> None:
    app = build_http_app(demo_config(demo_db, toolsets=("all",)))
    async with served(app) as port:
        host = f"127.0.0.1:{port}".encode()
        stalled_headers = await anyio.connect_tcp("127.0.0.1", port)
        stalled_body = await anyio.connect_tcp("127.0.0.1", port)
        async with stalled_headers, stalled_body:
            await stalled_headers.send(b"POST /mcp HTTP/1.1\r\nHost: " + host + b"\r\nContent-")
            await stalled_body.send(
                b"POST /mcp HTTP/1.1\r\nHost: " + host + b"\r\nContent-Type: application/json"
                b"\r\nAccept: application/json, text/event-stream\r\nContent-Length: 100000"
                b'\r\n\r\n{"jsonrpc": "2.0", "id": 1, "meth'
            )
            with anyio.fail_after(LIMIT):
                async with httpx2.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
                    for _ in range(3):
                        await still_answers(http)


async def test_a_database_password_never_reaches_an_error_or_the_log(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    caplog.set_level(logging.DEBUG)
    # The driver's own chatter is only noise here, and slow.
    caplog.set_level(logging.INFO, logger="aiosqlite")
    password = "pw-4f2a9-never-shown"
    url = f"postgresql+asyncpg://someone:{password}@127.0.0.1:1/catalog"

    with pytest.raises(StoreError, match="Cannot open the database") as caught:
        await Store.open(url)

    assert password not in str(caught.value)
    assert password not in caplog.text
