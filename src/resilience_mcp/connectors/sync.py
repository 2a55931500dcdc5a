"""Running syncs: once from the command line, or in the background while serving.

`run_sync` syncs one configured source. `background_sync` keeps one task per source that
has an `interval`: it syncs at start and then every interval. A failed sync is logged and
changes nothing (every source fetches all of its pages before it loads anything, and a
load writes all or nothing), so the last good data stays; the tasks never hold anything a
query waits for.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import yaml
from pydantic import ValidationError

from resilience_mcp.catalog.kinds import parse_duration
from resilience_mcp.connectors.actions import check_action_specs
from resilience_mcp.connectors.backstage import sync_backstage, sync_backstage_files
from resilience_mcp.connectors.documents import SyncReport
from resilience_mcp.connectors.flags import sync_flagd, sync_flagd_file
from resilience_mcp.connectors.http import ApiClient, RetryPolicy, Sleep
from resilience_mcp.connectors.pagerduty import PAGERDUTY_API, pagerduty_headers, sync_pagerduty
from resilience_mcp.errors import InvalidInputError, ResilienceError
from resilience_mcp.models.connectors import ConnectorSettings, SourceConfig
from resilience_mcp.store import Store

__all__ = [
    "ENV_CONNECTORS",
    "SyncMonitor",
    "SyncStatus",
    "background_sync",
    "load_connector_settings",
    "run_sync",
    "source_client",
    "split_url",
    "sync_interval",
]

logger = logging.getLogger(__name__)

ENV_CONNECTORS = "RESILIENCE_MCP_CONNECTORS"
# The shortest interval a source may ask for, so a typo cannot hammer an API.
MIN_INTERVAL = 10.0


def load_connector_settings(path: Path | str) -> ConnectorSettings:
    """Read the connectors file; raises `InvalidInputError` naming what is wrong."""
    path = Path(path)
    try:
        body = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise InvalidInputError(f"Cannot read the connectors file {path}: {exc}.") from exc
    try:
        settings = ConnectorSettings.model_validate(body)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'file'}: {err['msg']}"
            for err in exc.errors()[:10]
        )
        raise InvalidInputError(f"The connectors file {path} is not valid: {problems}.") from exc
    for source in settings.sources:
        sync_interval(source)
    check_action_specs(settings.actions)
    return settings


def sync_interval(source: SourceConfig) -> float | None:
    """Seconds between background syncs of `source`, or None when it is synced on demand."""
    if source.interval is None:
        return None
    try:
        seconds = parse_duration(source.interval).total_seconds()
    except ValueError as exc:
        raise InvalidInputError(f"Source {source.name}: {exc}.") from exc
    if seconds < MIN_INTERVAL:
        raise InvalidInputError(
            f"Source {source.name} syncs every {source.interval}; use at least "
            f"{MIN_INTERVAL:g}s so the remote API is not flooded."
        )
    return seconds


async def run_sync(
    store: Store,
    source: SourceConfig,
    *,
    now: datetime,
    dry_run: bool = False,
    transport: httpx.AsyncBaseTransport | None = None,
    sleep: Sleep = asyncio.sleep,
) -> SyncReport:
    """Sync one source now; raises what made it fail, having changed nothing."""
    if source.type == "backstage-files":
        assert source.path is not None
        report = await sync_backstage_files(
            store,
            Path(source.path),
            name=source.name,
            label=source.label,
            include=source.include,
            prune=source.prune,
            dry_run=dry_run,
            now=now,
        )
    elif source.type == "flagd" and source.path is not None:
        assert source.environment is not None
        report = await sync_flagd_file(
            store,
            Path(source.path),
            environment=source.environment,
            now=now,
            name=source.name,
            label=source.label,
            dry_run=dry_run,
        )
    else:
        async with source_client(source, transport, sleep) as client:
            report = await _sync_remote(store, client, source, now=now, dry_run=dry_run)
    _log(report, dry_run)
    return report


async def _sync_remote(
    store: Store, client: ApiClient, source: SourceConfig, *, now: datetime, dry_run: bool
) -> SyncReport:
    if source.type == "backstage":
        return await sync_backstage(
            store,
            client,
            name=source.name,
            label=source.label,
            pagination=source.pagination,
            page_size=source.page_size,
            filters=source.filters,
            prune=source.prune,
            dry_run=dry_run,
            now=now,
        )
    if source.type == "pagerduty":
        return await sync_pagerduty(
            store,
            client,
            now=now,
            name=source.name,
            label=source.label,
            incident_days=source.incident_days,
            oncall_days=source.oncall_days,
            page_size=min(source.page_size, 100),
            prune=source.prune,
            dry_run=dry_run,
        )
    assert source.environment is not None
    assert source.url is not None
    return await sync_flagd(
        store,
        client,
        environment=source.environment,
        now=now,
        name=source.name,
        label=source.label,
        path=split_url(source.url)[1],
        dry_run=dry_run,
    )


def split_url(url: str) -> tuple[str, str]:
    """A flagd URL names one document: its origin is the client's base, the rest its path."""
    parts = urlsplit(url)
    path = parts.path or "/"
    return f"{parts.scheme}://{parts.netloc}", path + (f"?{parts.query}" if parts.query else "")


def source_client(
    source: SourceConfig,
    transport: httpx.AsyncBaseTransport | None = None,
    sleep: Sleep = asyncio.sleep,
) -> ApiClient:
    """The client that reads a remote source, with its token; the caller closes it."""
    token = _token(source)
    headers: dict[str, str] = {}
    if source.type == "pagerduty":
        headers = pagerduty_headers(token) if token else {}
    elif token:
        headers = {"Authorization": f"Bearer {token}"}
    base = source.url or PAGERDUTY_API
    if source.type == "flagd":
        base = split_url(base)[0]
    return ApiClient(
        source.name,
        base,
        headers=headers,
        secrets=[token] if token else [],
        timeout=source.timeout_seconds,
        retry=RetryPolicy(retries=source.retries),
        transport=transport,
        sleep=sleep,
    )


def _token(source: SourceConfig) -> str | None:
    if source.token_env is None:
        if source.type == "pagerduty":
            raise InvalidInputError(
                f"Source {source.name} needs a PagerDuty API key: set token_env to the name "
                "of the environment variable that holds it."
            )
        return None
    token = os.environ.get(source.token_env)
    if not token:
        raise InvalidInputError(
            f"Source {source.name} reads its token from ${source.token_env}, which is not "
            "set; export it before syncing."
        )
    return token


def _log(report: SyncReport, dry_run: bool) -> None:
    load = report.load
    changed = (sum(load.created.values()) + sum(load.updated.values())) if load else 0
    logger.info(
        "%s %s: fetched %s; %d created or updated, %d skipped, %d unmatched",
        "dry-ran sync" if dry_run else "synced",
        report.source,
        ", ".join(f"{n} {what}" for what, n in report.fetched.items()) or "nothing",
        changed,
        len(report.skipped),
        len(report.unmatched),
    )


@dataclass
class SyncStatus:
    """How the background syncs of one source have gone."""

    source: str
    runs: int = 0
    failures: int = 0
    last_success: datetime | None = None
    last_error: str | None = None
    last_report: SyncReport | None = None


@dataclass
class SyncMonitor:
    """The status of every background sync, and a way to wait for the next run."""

    statuses: dict[str, SyncStatus] = field(default_factory=dict)
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def record(self, status: SyncStatus) -> None:
        async with self._changed:
            status.runs += 1
            self._changed.notify_all()

    async def wait_for(self, source: str, runs: int) -> SyncStatus:
        """Wait until `source` has been synced (or failed) `runs` times."""
        async with self._changed:
            await self._changed.wait_for(lambda: self.statuses[source].runs >= runs)
        return self.statuses[source]


@asynccontextmanager
async def background_sync(
    store: Store,
    settings: ConnectorSettings | None,
    clock: Callable[[], datetime],
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    sleep: Sleep = asyncio.sleep,
) -> AsyncIterator[SyncMonitor]:
    """Sync every source that has an interval, now and then every interval, until exit."""
    monitor = SyncMonitor()
    tasks: list[asyncio.Task[None]] = []
    for source in settings.sources if settings else []:
        interval = sync_interval(source)
        if interval is None:
            continue
        monitor.statuses[source.name] = SyncStatus(source.name)
        options: dict[str, Any] = {"transport": transport, "sleep": sleep}
        loop = _sync_forever(store, source, interval, clock, monitor, options)
        tasks.append(asyncio.create_task(loop, name=f"sync {source.name}"))
    if tasks:
        logger.info("background sync of %s", ", ".join(monitor.statuses))
    try:
        yield monitor
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _sync_forever(
    store: Store,
    source: SourceConfig,
    interval: float,
    clock: Callable[[], datetime],
    monitor: SyncMonitor,
    options: dict[str, Any],
) -> None:
    status = monitor.statuses[source.name]
    while True:
        await _sync_once(store, source, clock, status, options)
        await monitor.record(status)
        await options["sleep"](interval)


async def _sync_once(
    store: Store,
    source: SourceConfig,
    clock: Callable[[], datetime],
    status: SyncStatus,
    options: dict[str, Any],
) -> None:
    try:
        status.last_report = await run_sync(store, source, now=clock(), **options)
    except ResilienceError as exc:
        status.failures += 1
        status.last_error = str(exc)
        logger.warning("sync %s failed; the last good data stays: %s", source.name, exc)
    except Exception as exc:
        status.failures += 1
        status.last_error = exc.__class__.__name__
        logger.exception("sync %s failed unexpectedly; the last good data stays", source.name)
    else:
        status.last_success = clock()
        status.last_error = None
