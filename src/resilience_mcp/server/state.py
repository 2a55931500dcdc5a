"""The state a running server shares with its tools."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from resilience_mcp.connectors.sync import SyncMonitor
from resilience_mcp.graph.catalog import CatalogGraph, GraphCache
from resilience_mcp.graph.provenance import STALE_AFTER
from resilience_mcp.models.connectors import ConnectorSettings
from resilience_mcp.search.semantic import Embedder, SemanticIndex
from resilience_mcp.store import Store

__all__ = ["AppState", "ServerConfig"]


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class ServerConfig:
    """How the server was asked to run; the CLI fills it from flags and environment."""

    db_url: str | None = None
    demo: bool = False
    toolsets: tuple[str, ...] = ("default",)
    enable_writes: bool = False
    load_paths: tuple[str, ...] = ()
    # How old a synced fact may be before answers mark it stale; None takes the
    # connectors file's `stale_after_hours`, else a week (`graph.provenance.STALE_AFTER`).
    stale_after_hours: float | None = None
    clock: Callable[[], datetime] = _now
    # Sync sources, webhooks and outbound actions (the connectors file), when configured.
    connectors: ConnectorSettings | None = None
    # Whether sources with an interval are synced in the background while serving.
    background_sync: bool = True
    # Rank similar incidents by meaning too (needs the `semantic` extra). `embedder`
    # stands in for the packaged model, as tests do.
    semantic: bool = False
    embedder: Embedder | None = None

    def stale_after(self) -> timedelta:
        """The age past which a synced fact is marked stale in answers."""
        hours = self.stale_after_hours
        if hours is None and self.connectors is not None:
            hours = self.connectors.stale_after_hours
        return STALE_AFTER if hours is None else timedelta(hours=hours)


@dataclass
class AppState:
    store: Store
    config: ServerConfig
    graphs: GraphCache = field(init=False)
    # The background syncs' status, while they run (see connectors.sync).
    sync: SyncMonitor | None = field(default=None, init=False)
    # The incidents' embeddings, with semantic ranking on; filled by the first query.
    semantic: SemanticIndex | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.graphs = GraphCache(self.store)

    async def graph(self) -> CatalogGraph:
        return await self.graphs.get()

    def now(self) -> datetime:
        return self.config.clock()
