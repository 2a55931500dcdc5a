"""Feature flags from flagd: its flag file, or an HTTP endpoint serving the same JSON.

flagd reads its flag definitions from a file or from a URL that serves the same JSON
(`{"flags": {...}}`); this connector reads either and converts it with the flagd file
converter (`catalog.flagd`), so a flag's state in the source's environment is read exactly
as by `load`, and a state that changed is recorded in the flag's history.

Nothing is pruned: a flag that leaves flagd keeps its last known state, since the catalog
may declare it (and its states elsewhere) from other sources. Each state read is marked
confirmed by the source at the sync's time (`SyncedFlagState`), changed or not, in the
load's own transaction, so answers say how fresh it is and a failed sync confirms nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from resilience_mcp.catalog.files import Document, read_documents
from resilience_mcp.catalog.flagd import flagd_documents, is_flagd
from resilience_mcp.connectors.documents import SyncReport, load_synced
from resilience_mcp.connectors.http import ApiClient
from resilience_mcp.errors import UpstreamError
from resilience_mcp.models.connectors import SyncedFlagState
from resilience_mcp.store import Store

__all__ = ["confirm_states", "fetch_flagd", "read_flagd_file", "sync_flagd", "sync_flagd_file"]

logger = logging.getLogger(__name__)


async def fetch_flagd(client: ApiClient, path: str = "") -> dict[str, object]:
    """The flag definitions the endpoint serves; refuses anything that is not a flag set."""
    body = await client.get_json(path)
    if not is_flagd(body):
        raise UpstreamError(
            f"{client.name} did not answer with flagd flag definitions (an object with "
            "'flags'); point the source's url at the JSON flagd reads."
        )
    assert isinstance(body, dict)
    return body


async def sync_flagd(
    store: Store,
    client: ApiClient,
    *,
    environment: str,
    now: datetime,
    name: str = "flagd",
    label: str = "flagd",
    path: str = "",
    dry_run: bool = False,
) -> SyncReport:
    """Read the endpoint's flags as the state of `environment`, and load them."""
    body = await fetch_flagd(client, path)
    report = SyncReport(source=name, label=label)
    await _load_flags(store, body, client.name, report, environment, now, dry_run)
    return report


def read_flagd_file(path: Path, source: str) -> dict[str, Any]:
    """The flag definitions in a flagd flag file (JSON or YAML), as flagd reads them."""
    if path.is_dir():
        raise UpstreamError(
            f"The path {path} of source {source} is a folder; point it at the flag file "
            "flagd reads."
        )
    documents, issues = read_documents([path])
    if issues:
        raise UpstreamError(f"Source {source} cannot read its flag file: {issues[0]}.")
    bodies = [doc.body for doc in documents]
    if len(bodies) != 1 or not is_flagd(bodies[0]):
        raise UpstreamError(
            f"The file {path} of source {source} is not flagd flag definitions (one object "
            "with 'flags'); point path at the file flagd reads."
        )
    body: dict[str, Any] = bodies[0]
    return body


async def sync_flagd_file(
    store: Store,
    path: Path,
    *,
    environment: str,
    now: datetime,
    name: str = "flagd",
    label: str = "flagd",
    dry_run: bool = False,
) -> SyncReport:
    """Read a flag file's flags as the state of `environment`, and load them."""
    # A large flag file is disk and parsing work: keep it off the event loop.
    body = await anyio.to_thread.run_sync(read_flagd_file, path, name)
    report = SyncReport(source=name, label=label)
    await _load_flags(store, body, str(path), report, environment, now, dry_run)
    return report


async def _load_flags(
    store: Store,
    body: dict[str, Any],
    origin: str,
    report: SyncReport,
    environment: str,
    now: datetime,
    dry_run: bool,
) -> None:
    """Load one flag set as the state of `environment`, each flag on its own."""
    flags = body.get("flags")
    report.fetched["flags"] = len(flags) if isinstance(flags, dict) else 0
    source_doc = Document(f"{origin} flags", 1, body)
    documents, issues = await flagd_documents(
        store, [source_doc], environment=environment, by=f"flagd ({report.source})", now=now
    )
    for issue in issues:
        logger.warning("skipped a record: %s", issue)
        report.skipped.append(str(issue))

    async def confirm(loaded: Sequence[Document], session: AsyncSession) -> None:
        names = [str(doc.body["metadata"]["name"]) for doc in loaded]
        await confirm_states(session, names, environment, report.label, now)

    await load_synced(
        store,
        _one_per_flag(documents, origin),
        report,
        prune=False,
        dry_run=dry_run,
        now=now,
        confirm=confirm,
    )


async def confirm_states(
    session: AsyncSession, flags: Sequence[str], environment: str, source: str, at: datetime
) -> None:
    """Record, in `session`'s transaction, that `source` confirmed the state of `flags` in
    `environment` at `at`."""
    if not flags:
        return
    table = SyncedFlagState
    await session.execute(
        delete(table).where(col(table.environment) == environment, col(table.flag).in_(list(flags)))
    )
    session.add_all(
        table(flag=flag, environment=environment, source=source, synced_at=at)
        for flag in sorted(set(flags))
    )
    await session.flush()


def _one_per_flag(documents: list[Document], origin: str) -> list[Document]:
    """Give each flag its own place, so that a refused flag is skipped alone."""
    return [
        Document(f"{origin} flag {doc.body['spec'].get('key', '?')}", index, doc.body)
        for index, doc in enumerate(documents, start=1)
    ]
