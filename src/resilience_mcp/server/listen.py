"""The HTTP app on a socket: uvicorn, with a deadline for each request's headers.

uvicorn waits for a client's request headers as long as the client likes, so a client
that opens connections and sends a few bytes now and then (slowloris) holds them all.
Here the headers of every request must be complete within `header_timeout_seconds` of
the connection opening or of the previous response; a client that is still sending them
then gets 408 and is closed, and an idle connection is closed without a word. The body
has its own deadline, set in the app (`server.http`), since only the app sees it arrive.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from resilience_mcp.server.http import HttpSettings

__all__ = ["header_deadline_protocol", "uvicorn_config"]

logger = logging.getLogger(__name__)

_TIMEOUT_BODY = b'{"error": "The request headers did not arrive in time; send them at once."}'
_TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\n"
    b"content-type: application/json\r\n"
    b"connection: close\r\n"
    b"content-length: " + str(len(_TIMEOUT_BODY)).encode() + b"\r\n\r\n" + _TIMEOUT_BODY
)


# How long an idle connection is kept open (the header deadline, when on, closes it
# sooner). uvicorn's default, 5 s, is also the idle expiry of httpx's pool: a client then
# sends its next request on a connection at the moment the server closes it, and reads
# nothing back. Longer than the clients' own expiry, they close first.
KEEP_ALIVE_SECONDS = 30


def uvicorn_config(app: Any, settings: HttpSettings) -> uvicorn.Config:
    """How uvicorn serves `app` by `settings`; logs go through the handlers configured."""
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        http=header_deadline_protocol(settings.header_timeout_seconds),
        log_config=None,
        server_header=False,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
    )


def header_deadline_protocol(seconds: float) -> type[H11Protocol]:
    """uvicorn's HTTP/1.1 protocol with a deadline for request headers; 0 turns it off."""
    return type("HeaderDeadlineProtocol", (_HeaderDeadline,), {"header_timeout": seconds})


class _HeaderDeadline(H11Protocol):
    """A timer runs while the connection waits for a request's headers: from the moment it
    opens, and again from the end of each response, until the next request's headers are
    complete (a new request cycle starts)."""

    header_timeout = 0.0
    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        waiting = self.cycle
        super().data_received(data)
        if self.cycle is not waiting:
            self._disarm()

    def on_response_complete(self) -> None:
        answered = self.cycle
        super().on_response_complete()
        # Unless a pipelined request already started, the next one's headers are awaited.
        if self.cycle is answered and not self.transport.is_closing():
            self._arm()

    def handle_websocket_upgrade(self, event: h11.Request) -> None:
        self._disarm()
        super().handle_websocket_upgrade(event)

    def _arm(self) -> None:
        self._disarm()
        if self.header_timeout > 0:
            self._deadline = self.loop.call_later(self.header_timeout, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        started, _closed = self.conn.trailing_data
        if self.conn.their_state is h11.IDLE and started:
            self.transport.write(_TIMEOUT_RESPONSE)
        logger.debug(
            "closed a connection from %s: no complete request headers within %gs",
            self.client[0] if self.client else "unknown",
            self.header_timeout,
        )
        self.transport.close()
