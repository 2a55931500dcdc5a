"""One HTTP client for every remote API: timeouts, retries with backoff, pagination, and
secrets kept out of logs and error messages.

A request that gets 429 or a 5xx, or cannot connect, is tried again after a delay: the
server's `Retry-After` when it sends one, else an exponential backoff. A read that timed
out or lost its connection is tried again too; a request that acts (see
`RetryPolicy.for_actions`) never is once it may have reached the receiver, since sending it
twice could act twice. The sleep is a parameter, so tests run the retries without waiting.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any

import httpx

from resilience_mcp.errors import UpstreamError

__all__ = [
    "MAX_PAGES",
    "ApiClient",
    "Redactor",
    "RetryPolicy",
    "Sleep",
    "collect_cursor_pages",
    "collect_offset_pages",
]

logger = logging.getLogger(__name__)
_HTTPX_LOGGER = logging.getLogger("httpx")

Sleep = Callable[[float], Awaitable[None]]

# A paged listing longer than this is refused rather than fetched forever.
MAX_PAGES = 1000

# Failures before any of the request left this host: sending it again cannot act twice.
_UNSENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# Methods that only read, so a request that may have arrived can be sent again.
_READS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to try a request again."""

    retries: int = 4
    base_delay: float = 0.5
    max_delay: float = 30.0
    # A server that asks for a longer pause than this is treated as down.
    max_retry_after: float = 120.0
    statuses: frozenset[int] = frozenset({429, 500, 502, 503, 504})
    # Whether a read that may have reached the server (it timed out waiting for the
    # answer, or the connection dropped) is sent again. Only reads ever are.
    resend_reads: bool = True
    # Whether a retryable status is retried only when the server says when (Retry-After).
    retry_after_required: bool = False

    @classmethod
    def for_actions(cls, retries: int = 2) -> RetryPolicy:
        """For requests that act: sent again only when they cannot have arrived (no
        connection), or on a 429 whose Retry-After says when."""
        return cls(
            retries=retries,
            statuses=frozenset({429}),
            resend_reads=False,
            retry_after_required=True,
        )

    def backoff(self, attempt: int) -> float:
        """The pause before try `attempt + 1` when the server does not say."""
        return float(min(self.max_delay, self.base_delay * 2**attempt))


class Redactor:
    """Replaces every known secret in a text with a marker.

    A secret is also removed in parts: a header value such as `Bearer TOKEN` or
    `Token token=TOKEN` leaks as much when a receiver echoes the token alone. Parts that
    read as words (`Bearer`, `username`) or are too short to be secret are left in place."""

    MARK = "[redacted]"
    # A part shorter than this is not taken out of every text it occurs in.
    MIN_PART = 6
    _SEPARATORS = re.compile(r"""[\s=,;"']+""")

    def __init__(self, secrets: Iterable[str]) -> None:
        found = {s for s in secrets if s}
        found |= {part for s in found for part in self._parts(s)}
        # Longest first, so a secret that contains another is removed whole.
        self._secrets = sorted(found, key=len, reverse=True)

    @classmethod
    def _parts(cls, secret: str) -> list[str]:
        return [
            part
            for part in cls._SEPARATORS.split(secret)
            if len(part) >= cls.MIN_PART and not _word(part)
        ]

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, self.MARK)
        return text

    def excerpt(self, text: str, limit: int) -> str:
        """The first `limit` characters of `text`, with no secret in them.

        The secrets are taken out of the whole text before it is cut, so none is cut in
        two and half kept (a marker the cut falls in is kept whole); then the beginning of
        a secret at the very end, cut off by whoever sent the text, is taken out too."""
        text = self(text)
        cut = text[:limit]
        mark = cut.rfind(self.MARK[0])
        if mark != -1 and mark + len(self.MARK) > limit and text.startswith(self.MARK, mark):
            cut = cut[:mark] + self.MARK
        return self._without_secret_tail(cut)

    def _without_secret_tail(self, text: str) -> str:
        for secret in self._secrets:
            for size in range(min(len(secret) - 1, len(text)), self.MIN_PART - 1, -1):
                start = secret[:size]
                if text.endswith(start) and not _word(start.strip()):
                    return text[:-size] + self.MARK
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        """As a logging filter: the record's message with the secrets taken out."""
        if self._secrets:
            message = record.getMessage()
            cleaned = self(message)
            if cleaned != message:
                record.msg, record.args = cleaned, None
        return True


def _word(text: str) -> bool:
    """Whether a part of a secret reads as a plain word rather than as a token."""
    return text.isalpha() and (text.islower() or text.isupper() or text.istitle())


class ApiClient:
    """An async client for one remote API, named in every log line and error."""

    def __init__(
        self,
        name: str,
        base_url: str,
        *,
        headers: Mapping[str, str] | None = None,
        secrets: Iterable[str] = (),
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.name = name
        self.retry = retry or RetryPolicy()
        self.redact = Redactor(secrets)
        self._sleep = sleep
        # httpx logs each request's URL at INFO; keep this client's secrets out of it.
        _HTTPX_LOGGER.addFilter(self.redact)
        self._http = httpx.AsyncClient(
            base_url=base_url,
            headers=dict(headers or {}),
            timeout=httpx.Timeout(timeout),
            transport=transport,
            follow_redirects=False,
        )

    async def __aenter__(self) -> ApiClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        _HTTPX_LOGGER.removeFilter(self.redact)
        await self._http.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Any = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Send a request, trying again on 429, 5xx and connection failures.

        Raises `UpstreamError` when it fails for good or answers with another 4xx."""
        attempt = 0
        while True:
            response, failure = await self._send(method, path, params, json, headers)
            if response is not None and response.is_success:
                return response
            if attempt >= self.retry.retries or not self._retryable(method, response, failure):
                raise self._error(method, path, response, failure, attempt + 1)
            delay = self._delay(response, attempt)
            if delay is None:
                raise self._error(method, path, response, failure, attempt + 1)
            logger.warning(
                "%s: %s %s %s; trying again in %.1fs",
                self.name,
                method,
                self._where(path),
                self._what(response, failure),
                delay,
            )
            await self._sleep(delay)
            attempt += 1

    async def get_json(self, path: str, *, params: Any = None) -> Any:
        """GET a JSON document; raises `UpstreamError` when the body is not JSON."""
        response = await self.request("GET", path, params=params)
        try:
            return response.json()
        except ValueError as exc:
            raise UpstreamError(
                f"{self.name} answered {self._where(path)} with something that is not JSON; "
                "check the source's url points at its API."
            ) from exc

    async def _send(
        self,
        method: str,
        path: str,
        params: Any,
        json: Any,
        headers: Mapping[str, str] | None,
    ) -> tuple[httpx.Response | None, Exception | None]:
        try:
            response = await self._http.request(
                method, path, params=params, json=json, headers=headers
            )
        except httpx.TransportError as exc:
            return None, exc
        return response, None

    def _retryable(
        self, method: str, response: httpx.Response | None, failure: Exception | None
    ) -> bool:
        if response is not None:
            return response.status_code in self.retry.statuses
        return self._may_resend(method, failure)

    def _may_resend(self, method: str, failure: Exception | None) -> bool:
        """Whether a request that got no answer may go again: not if it could have acted."""
        if isinstance(failure, _UNSENT):
            return True
        return self.retry.resend_reads and method.upper() in _READS

    def _delay(self, response: httpx.Response | None, attempt: int) -> float | None:
        """The pause before the next try, or None when the server asks for too long a one
        (or, when the policy needs it, does not say how long)."""
        asked = _retry_after(response.headers.get("retry-after")) if response else None
        if asked is None:
            if response is not None and self.retry.retry_after_required:
                return None
            return self.retry.backoff(attempt)
        if asked > self.retry.max_retry_after:
            return None
        return max(0.0, asked)

    def _error(
        self,
        method: str,
        path: str,
        response: httpx.Response | None,
        failure: Exception | None,
        tries: int,
    ) -> UpstreamError:
        what = self._what(response, failure)
        advice = self._advice(method, response, failure)
        message = (
            f"{self.name}: {method} {self._where(path)} {what} after {tries} attempt(s); {advice}."
        )
        return UpstreamError(self.redact(message))

    def _advice(
        self, method: str, response: httpx.Response | None, failure: Exception | None
    ) -> str:
        if response is None and not self._may_resend(method, failure):
            return (
                "the request may have reached the receiver, so it was not sent again; check "
                "there whether it acted before sending it again"
            )
        if response is None or response.status_code in self.retry.statuses:
            return "try again later"
        if response.status_code in (401, 403):
            return "check the token and the url"
        if response.status_code == 404:
            return "check the url"
        return "check the source's settings"

    def _where(self, path: str) -> str:
        # The path only: query strings and hosts may carry credentials.
        return self.redact(path.split("?", 1)[0])

    @staticmethod
    def _what(response: httpx.Response | None, failure: Exception | None) -> str:
        if response is not None:
            return f"answered {response.status_code} {response.reason_phrase}".rstrip()
        return f"{_failure_text(failure)} ({failure.__class__.__name__})"


def _failure_text(failure: Exception | None) -> str:
    """What went wrong with a request that got no answer, in words."""
    if isinstance(failure, httpx.ConnectTimeout):
        return "timed out connecting"
    if isinstance(failure, _UNSENT):
        return "failed to connect"
    if isinstance(failure, httpx.ReadTimeout):
        return "was sent but no answer came within the timeout"
    if isinstance(failure, httpx.WriteTimeout):
        return "timed out while being sent"
    return "lost its connection before an answer came"


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header: a number, or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return (when - datetime.now(UTC)).total_seconds()


async def collect_offset_pages(
    client: ApiClient,
    path: str,
    key: str,
    *,
    params: Mapping[str, Any] | None = None,
    limit: int = 100,
) -> list[Any]:
    """Every item of an `offset`/`limit` listing whose pages say `more` (PagerDuty style).

    A page without `more` ends the listing when it comes back short."""
    items: list[Any] = []
    offset = 0
    previous: list[Any] | None = None
    for _ in range(MAX_PAGES):
        body = await client.get_json(
            path, params={**(params or {}), "offset": offset, "limit": limit}
        )
        page = body.get(key) if isinstance(body, dict) else None
        if not isinstance(page, list):
            raise UpstreamError(
                f"{client.name} answered {path} without a list of {key}; check the url."
            )
        if page and page == previous:
            raise UpstreamError(
                f"{client.name} answered {path} at offset {offset} with the page before it "
                "again: it ignores `offset`; check the url."
            )
        items.extend(page)
        more = body.get("more")
        if not page or more is False or (more is None and len(page) < limit):
            return items
        previous = page
        offset += len(page)
    raise UpstreamError(f"{client.name}: {path} has more than {MAX_PAGES} pages; narrow it.")


async def collect_cursor_pages(
    client: ApiClient,
    path: str,
    *,
    params: Mapping[str, Any] | None = None,
    items_key: str = "items",
    next_cursor: Callable[[dict[str, Any]], str | None],
    cursor_param: str = "cursor",
) -> list[Any]:
    """Every item of a cursor-paged listing; `next_cursor` reads the next cursor off a page.

    The first request carries `params`; later ones carry only the cursor, which holds the
    query (as Backstage's `by-query` expects), and the page size if one was given."""
    items: list[Any] = []
    query: dict[str, Any] = dict(params or {})
    keep = {k: v for k, v in query.items() if k == "limit"}
    seen: set[str] = set()
    for _ in range(MAX_PAGES):
        body = await client.get_json(path, params=query)
        page = body.get(items_key) if isinstance(body, dict) else None
        if not isinstance(page, list):
            raise UpstreamError(
                f"{client.name} answered {path} without a list of {items_key}; check the url."
            )
        items.extend(page)
        cursor = next_cursor(body)
        if not cursor or not page:
            return items
        if cursor in seen:
            raise UpstreamError(
                f"{client.name} answered {path} with a next cursor it gave before: the "
                "listing goes round in a loop; check the source's settings."
            )
        seen.add(cursor)
        query = {**keep, cursor_param: cursor}
    raise UpstreamError(f"{client.name}: {path} has more than {MAX_PAGES} pages; narrow it.")
