"""Hostile HTTP: malformed JSON-RPC, wrong content types, oversized and endless bodies, slow
clients, Host and Origin tricks, floods of bad tokens. Every one gets a 4xx answer (never a
5xx or a traceback), the server keeps answering good requests, and no token reaches a log
or an answer.
"""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import anyio.abc
import httpx2
import pytest
import uvicorn
from starlette.applications import Starlette

from resilience_mcp.catalog import DEMO_ANCHOR
from resilience_mcp.connectors.webhooks import EVENTS_PATH, sign
from resilience_mcp.errors import StoreError
from resilience_mcp.models.connectors import ConnectorSettings, WebhookSettings
from resilience_mcp.server.app import build_http_app
from resilience_mcp.server.auth import TokenBook, token_line
from resilience_mcp.server.http import HttpSettings
from resilience_mcp.server.listen import uvicorn_config
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


EVENTS_SECRET = "reliability-events-secret-51c"
HOOK_LIMIT = 4 * MAX_BODY


@pytest.fixture
async def hooked(demo_db: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Starlette]:
    """The HTTP app with the generic webhook on, whose body limit is above the app's."""
    monkeypatch.setenv("RELIABILITY_EVENTS_SECRET", EVENTS_SECRET)
    hooks = WebhookSettings(
        generic_secret_env="RELIABILITY_EVENTS_SECRET", max_body_bytes=HOOK_LIMIT
    )
    config = demo_config(
        demo_db, connectors=ConnectorSettings(webhooks=hooks), background_sync=False
    )
    settings = HttpSettings(max_body_bytes=MAX_BODY, bad_token_limit=5)
    built = build_http_app(config, settings)
    async with built.router.lifespan_context(built):
        yield built


def deployment_event(name: str, size: int) -> bytes:
    """A Deployment event whose JSON is about `size` bytes long."""
    document = {
        "kind": "Deployment",
        "metadata": {"name": name, "description": ""},
        "spec": {
            "service": "checkout",
            "version": "9.9.9",
            "deployTime": "2026-12-01T11:00:00Z",
            "status": "success",
        },
    }
    padding = max(0, size - len(json.dumps(document)))
    document["metadata"]["description"] = "x" * padding
    return json.dumps(document).encode()


async def send_event(
    http: httpx2.AsyncClient, body: bytes, delivery: str, *, secret: str = EVENTS_SECRET
) -> httpx2.Response:
    timestamp = str(int(DEMO_ANCHOR.timestamp()))
    headers = {
        "content-type": "application/json",
        "x-resilience-delivery": delivery,
        "x-resilience-timestamp": timestamp,
        "x-resilience-signature-256": sign(secret, body, timestamp),
    }
    return await http.post(EVENTS_PATH, content=body, headers=headers)


async def test_the_webhooks_take_bodies_up_to_their_own_limit_and_mcp_up_to_its_own(
    hooked: Starlette,
) -> None:
    between = 2 * MAX_BODY
    async with client(hooked) as http:
        accepted = await send_event(http, deployment_event("checkout-deploy-big", between), "d1")
        too_large = await send_event(
            http, deployment_event("checkout-deploy-huge", HOOK_LIMIT + 1), "d2"
        )
        streamed = await http.post(
            EVENTS_PATH, content=endless_body(HOOK_LIMIT // 16384 + 1), headers=HEADERS
        )
        mcp = await http.post("/mcp", content=b" " * between, headers=HEADERS)

    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["name"] == "checkout-deploy-big"
    assert_refused(too_large, 413)
    assert_refused(streamed, 413)
    assert_refused(mcp, 413)


async def test_bad_webhook_signatures_are_throttled_per_address_like_bad_tokens(
    hooked: Starlette,
) -> None:
    body = deployment_event("checkout-deploy-signed", 500)
    async with client(hooked, "10.3.3.3") as http:
        forged = [await send_event(http, body, f"f{i}", secret="not-the-secret") for i in range(7)]
        signed_there = await send_event(http, body, "s1")
    async with client(hooked, "10.4.4.4") as http:
        signed_elsewhere = await send_event(http, body, "s2")

    assert [r.status_code for r in forged] == [401] * 5 + [429] * 2
    assert forged[-1].headers["retry-after"].isdigit()
    assert signed_there.status_code == 429
    assert signed_elsewhere.status_code == 200, signed_elsewhere.text


@asynccontextmanager
async def served(app: Starlette, settings: HttpSettings) -> AsyncIterator[int]:
    """A real uvicorn, configured as `serve --http` configures it, on a free loopback port
    in this event loop; yields the port once the app has started."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    port: int = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn_config(app, settings))
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(server.serve, [sock])
        try:
            # The socket listens already: the first answer from /healthz means started.
            with anyio.fail_after(LIMIT):
                async with httpx2.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
                    while (await http.get("/healthz")).status_code != 200:
                        pass
            yield port
        finally:
            server.should_exit = True
    sock.close()


async def answer_of(stream: anyio.abc.ByteStream) -> bytes:
    """Everything the server sends until it closes the connection."""
    said = b""
    with anyio.fail_after(LIMIT):
        try:
            while chunk := await stream.receive():
                said += chunk
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            pass
    return said


def request_head(port: int, length: int) -> bytes:
    return (
        b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
        b"Accept: application/json, text/event-stream\r\nContent-Length: %d\r\n\r\n"
        % (port, length)
    )


SLOW = HttpSettings(port=0, header_timeout_seconds=0.5, body_timeout_seconds=0.5)


async def trickle(stream: anyio.abc.ByteStream, port: int, into: list[tuple[int, bytes]]) -> None:
    """Send a body one byte at a time, the next whenever the server has not answered for a
    moment, until it answers; keeps how many bytes went, and the answer."""
    await stream.send(request_head(port, 100_000))
    sent = 0
    with anyio.fail_after(LIMIT):
        while True:
            await stream.send(b" ")
            sent += 1
            with anyio.move_on_after(0.05):
                first = await stream.receive()
                into.append((sent, first + await answer_of(stream)))
                return


@pytest.mark.slow
async def test_clients_that_stall_or_trickle_get_408_while_the_others_are_served(
    demo_db: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = build_http_app(demo_config(demo_db, toolsets=("all",)), SLOW)
    trickled: list[tuple[int, bytes]] = []
    async with served(app, SLOW) as port:
        stalled_headers = await anyio.connect_tcp("127.0.0.1", port)
        stalled_body = await anyio.connect_tcp("127.0.0.1", port)
        trickled_body = await anyio.connect_tcp("127.0.0.1", port)
        silent = await anyio.connect_tcp("127.0.0.1", port)
        async with stalled_headers, stalled_body, trickled_body, silent:
            await stalled_headers.send(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-")
            await stalled_body.send(request_head(port, 100_000) + b'{"jsonrpc": "2.0", "id')
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(trickle, trickled_body, port, trickled)
                with anyio.fail_after(LIMIT):
                    async with httpx2.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
                        for _ in range(3):
                            await still_answers(http)
            headers_answer = await answer_of(stalled_headers)
            body_answer = await answer_of(stalled_body)
            silent_answer = await answer_of(silent)

    assert headers_answer.startswith(b"HTTP/1.1 408 ")
    assert b"headers did not arrive in time" in headers_answer
    ((sent, trickle_answer),) = trickled
    for answer in (body_answer, trickle_answer):
        assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
        assert b"request body did not arrive within 0.5 s" in answer
        assert b"connection: close" in answer.lower()
    # The trickle kept the connection busy, and was cut off all the same.
    assert 1 < sent < 100_000
    # A connection that never sent a byte is closed without an answer.
    assert silent_answer == b""
    # Cut off before the app saw them: nothing failed in it.
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


@pytest.mark.slow
async def test_a_client_on_a_kept_alive_connection_has_the_same_deadline_for_its_next_request(
    demo_db: str,
) -> None:
    app = build_http_app(demo_config(demo_db, toolsets=("all",)), SLOW)
    async with served(app, SLOW) as port:
        stream = await anyio.connect_tcp("127.0.0.1", port)
        async with stream:
            await stream.send(request_head(port, len(LIST_TOOLS)) + LIST_TOOLS)
            first = b""
            with anyio.fail_after(LIMIT):
                while b'"tools"' not in first:
                    first += await stream.receive()
            await stream.send(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            rest = await answer_of(stream)

    assert first.startswith(b"HTTP/1.1 200 ")
    assert b"HTTP/1.1 408 " in rest


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
