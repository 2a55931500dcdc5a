"""The state a running server shares with its tools."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar, cast

from resilience_mcp.connectors.sync import SyncMonitor
from resilience_mcp.graph.catalog import CatalogGraph, GraphCache
from resilience_mcp.graph.provenance import STALE_AFTER
from resilience_mcp.models.connectors import ConnectorSettings
from resilience_mcp.search.semantic import Embedder, SemanticIndex
from resilience_mcp.store import Store, VersionWatch

__all__ = ["KEPT_ANSWERS", "AnswerCache", "AppState", "ServerConfig"]

# The tools whose answers `AnswerCache` keeps.
KEPT_ANSWERS = frozenset(
    {"find_recurring_incidents", "get_dora_metrics", "list_scorecard_failures"}
)

T = TypeVar("T")


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
    # How long a catalog-wide answer (recurring incidents, scorecard failures, DORA) may be
    # served again while the store is unchanged; 0 computes every one afresh.
    answer_ttl_seconds: float = 60.0
    # How long the server answers from the store's versions as last read before reading
    # them again: the longest a write made elsewhere (another replica, `resilience-mcp
    # load`) goes unseen. Writes through this server are seen at once; 0 reads every call.
    version_max_age_seconds: float = 0.25

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

    answers: AnswerCache = field(init=False)

    def __post_init__(self) -> None:
        watch = VersionWatch(self.store, self.config.version_max_age_seconds)
        self.graphs = GraphCache(self.store, watch)
        self.answers = AnswerCache(
            watch, timedelta(seconds=self.config.answer_ttl_seconds), self.config.clock
        )

    async def graph(self) -> CatalogGraph:
        return await self.graphs.get()

    def now(self) -> datetime:
        return self.config.clock()


@dataclass(frozen=True)
class _Kept:
    version: int
    at: datetime
    value: Any


class AnswerCache:
    """Catalog-wide answers kept while the store is unchanged.

    Recurring incidents, scorecard failures across the catalog and the organisation's DORA
    metrics each take a pass over thousands of rows, and an incident brings many agents to
    ask the same question. An answer is kept against the store's catalog version, which
    every write moves (through any replica), and for at most `ttl`: each answer is computed
    up to a moment, and time moves windows and due dates on. Callers asking for an answer
    that is being computed wait for it rather than computing it again.
    """

    def __init__(
        self,
        watch: VersionWatch,
        ttl: timedelta,
        clock: Callable[[], datetime] = _now,
        size: int = 256,
    ) -> None:
        self.watch = watch
        self.ttl = ttl
        self.clock = clock
        self.size = size
        self._kept: OrderedDict[Hashable, _Kept] = OrderedDict()
        self._computing: dict[Hashable, asyncio.Lock] = {}

    async def get(
        self, tool: str, arguments: tuple[Hashable, ...], compute: Callable[[], Awaitable[T]]
    ) -> T:
        """The answer `tool` gave for `arguments` if it is kept, else `compute()`'s, kept.
        Only the tools of `KEPT_ANSWERS` keep answers, so that the list stays true."""
        if tool not in KEPT_ANSWERS:
            raise ValueError(f"{tool} does not keep its answers; add it to KEPT_ANSWERS")
        key = (tool, *arguments)
        if self.ttl <= timedelta(0):
            return await compute()
        version = (await self.watch.current()).catalog
        found = self._fresh(key, version)
        if found is not None:
            return cast(T, found.value)
        lock = self._computing.setdefault(key, asyncio.Lock())
        async with lock:
            found = self._fresh(key, version)
            if found is not None:
                return cast(T, found.value)
            # The version was read before computing: a write landing meanwhile leaves a
            # newer one in the store, and the next call computes again.
            started = self.clock()
            value = await compute()
            self._kept[key] = _Kept(version, started, value)
            self._kept.move_to_end(key)
            while len(self._kept) > self.size:
                self._kept.popitem(last=False)
        if not lock.locked():
            self._computing.pop(key, None)
        return value

    def _fresh(self, key: Hashable, version: int) -> _Kept | None:
        found = self._kept.get(key)
        if found is None or found.version != version or self.clock() - found.at >= self.ttl:
            return None
        self._kept.move_to_end(key)
        return found
