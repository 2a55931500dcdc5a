"""Flag changes sent to flagd: the `FlagPublisher` that set_feature_flag uses.

A flagd source may say where changes go (`push`: a URL, a method, headers read from
environment variables). A change in that source's environment is planned against what
the source serves now: its flag definitions are read from the source's `url` (or its flag
file), the one flag is changed to the state asked for (`catalog.flagd.with_state`), and
the whole set is sent, in flagd's own JSON, to `push.url`. Reading first keeps every other
flag, its targeting and the `$evaluators` exactly as flagd has them.

The request acts: it is sent again only when it never left (a connection failure), or on
a 429 that says when, never after a timeout waiting for the answer.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx

from resilience_mcp import __version__
from resilience_mcp.catalog.flagd import read_flagd, with_state
from resilience_mcp.connectors.flags import fetch_flagd, read_flagd_file
from resilience_mcp.connectors.http import ApiClient, Redactor, RetryPolicy, Sleep
from resilience_mcp.connectors.sync import source_client, split_url
from resilience_mcp.errors import InvalidInputError, UpstreamError
from resilience_mcp.models.connectors import ConnectorSettings, PushTarget, SourceConfig
from resilience_mcp.writes.flags import FlagPush

__all__ = ["FlagdPublisher", "flag_publisher"]

# How much of the body a preview shows; the definition of the changed flag is shown whole.
PREVIEW_BODY = 2000
# How much of the receiver's reason phrase an answer shows.
REASON = 200


def flag_publisher(
    settings: ConnectorSettings | None,
    *,
    environ: Mapping[str, str] | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    sleep: Sleep = asyncio.sleep,
) -> FlagdPublisher | None:
    """The publisher for the flagd sources that push, or None when no source does."""
    sources = [s for s in (settings.sources if settings else []) if s.push is not None]
    if not sources:
        return None
    return FlagdPublisher(sources, environ=environ, transport=transport, sleep=sleep)


class FlagdPublisher:
    """Sends flag changes to the flagd sources that say where changes go."""

    def __init__(
        self,
        sources: Sequence[SourceConfig],
        *,
        environ: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._sources = {s.environment: s for s in sources if s.push is not None and s.environment}
        self._environ = os.environ if environ is None else environ
        self._transport = transport
        self._sleep = sleep

    def covers(self, environment: str) -> bool:
        return environment in self._sources

    async def plan(
        self,
        key: str,
        environment: str,
        *,
        enabled: bool,
        rollout: float | None,
        variant: str | None,
    ) -> FlagPush:
        source = self._sources[environment]
        target = _target(source)
        headers = self._headers(source.name, target)
        current = await self._current(source)
        flags = current["flags"]
        if key not in flags:
            raise InvalidInputError(
                f"Flag {key} is not among the flags {source.name} serves for {environment}, so "
                "a change to it there cannot take effect; add it to flagd first. Nothing was "
                "changed."
            )
        try:
            changed = with_state(flags[key], enabled=enabled, rollout=rollout, variant=variant)
        except ValueError as exc:
            raise InvalidInputError(
                f"Flag {key} cannot be set that way in {source.name}: {exc}. Nothing was changed."
            ) from exc

        body = {**current, "flags": {**flags, key: changed}}
        evaluators = current.get("$evaluators") or {}
        [read], _ = read_flagd({"flags": {key: changed}, "$evaluators": evaluators})
        return FlagPush(
            target=source.name,
            label=source.label,
            method=target.method,
            url=target.url,
            request=_preview(target, headers, body, Redactor(_secrets(headers))),
            before=_json(flags[key]),
            after=_json(changed),
            enabled=read.enabled,
            rollout=read.rollout,
            variant=read.variant,
            targeting=read.targeting,
            default_variant=changed.get("defaultVariant"),
            body=body,
            headers=headers,
        )

    async def send(self, push: FlagPush) -> str:
        base, path = split_url(push.url)
        client = ApiClient(
            f"{push.target} push",
            base,
            secrets=_secrets(push.headers),
            timeout=_target(self._source(push.target)).timeout_seconds,
            retry=RetryPolicy.for_actions(),
            transport=self._transport,
            sleep=self._sleep,
        )
        async with client:
            response = await client.request(push.method, path, json=push.body, headers=push.headers)
        reason = client.redact.excerpt(response.reason_phrase, REASON)
        return f"{response.status_code} {reason}".rstrip()

    def _source(self, name: str) -> SourceConfig:
        return next(s for s in self._sources.values() if s.name == name)

    def _headers(self, source: str, target: PushTarget) -> dict[str, str]:
        headers = dict(_FIXED_HEADERS)
        for header, variable in target.headers.items():
            value = self._environ.get(variable)
            if not value:
                raise InvalidInputError(
                    f"Source {source} needs ${variable} for the {header} header of its push, "
                    "and it is not set on the server; ask the operator to set it. Nothing was "
                    "changed."
                )
            headers[header] = value
        return headers

    async def _current(self, source: SourceConfig) -> dict[str, Any]:
        """The flag definitions the source serves now, read as a sync reads them."""
        try:
            if source.path is not None:
                return await anyio.to_thread.run_sync(
                    read_flagd_file, Path(source.path), source.name
                )
            assert source.url is not None
            async with source_client(source, self._transport, self._sleep) as client:
                return dict(await fetch_flagd(client, split_url(source.url)[1]))
        except UpstreamError as exc:
            raise UpstreamError(
                f"The flag definitions {source.name} serves could not be read, so no change "
                f"was sent and nothing was changed: {exc}"
            ) from exc


_FIXED_HEADERS = {
    "Content-Type": "application/json",
    "User-Agent": f"resilience-mcp/{__version__}",
}


def _secrets(headers: Mapping[str, str]) -> list[str]:
    return [v for k, v in headers.items() if k not in _FIXED_HEADERS]


def _target(source: SourceConfig) -> PushTarget:
    assert source.push is not None
    return source.push


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _preview(
    target: PushTarget, headers: Mapping[str, str], body: dict[str, Any], redact: Redactor
) -> str:
    """The request as an answer shows it: no header values, the URL without its query, and
    no secret in the body (taken out before the body is cut)."""
    parts = urlsplit(target.url)
    text = json.dumps(body, sort_keys=True)
    if len(text) > PREVIEW_BODY:
        text = f"{redact.excerpt(text, PREVIEW_BODY)}... ({len(text)} characters in all)"
    else:
        text = redact(text)
    names = ", ".join(sorted(headers))
    return f"{target.method} {parts.hostname}{parts.path or '/'} (headers: {names}) {text}"
