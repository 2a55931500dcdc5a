"""The graph cache: rebuilt when what the graph is built from changes, and only then.

History (deployments, incidents, flag changes) moves the catalog version but not the graph
version, so writing it rebuilds nothing; the answers that show it read it from the store.
Flag states move the flag version alone: the cache reloads just them into its graph.
"""

from __future__ import annotations

import gc
import re
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import event, text

from resilience_mcp import models as m
from resilience_mcp.graph import GraphCache, build_graph
from resilience_mcp.graph.changes import list_recent_changes
from resilience_mcp.graph.features import list_feature_flags
from resilience_mcp.graph.impact import compute_impact
from resilience_mcp.store import FLAG_TABLES, GRAPH_TABLES, Store
from resilience_mcp.writes import FlagSetting, set_feature_flag
from resilience_mcp.writes.audit import WriteRequest
from tests.support import load_yaml

pytestmark = pytest.mark.anyio

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)

SHOP = """
apiVersion: resilience/v1
kind: Environment
metadata: {name: prod}
---
apiVersion: resilience/v1
kind: Service
metadata: {name: web}
spec: {dependsOn: [api]}
---
apiVersion: resilience/v1
kind: Service
metadata: {name: api}
---
apiVersion: resilience/v1
kind: Service
metadata: {name: db}
"""

DEPLOYMENT = """
apiVersion: resilience/v1
kind: Deployment
metadata: {name: dep-api-7}
spec: {service: api, environment: prod, version: "7.0", deployTime: "2026-12-01T11:00:00Z"}
"""

INCIDENT = """
apiVersion: resilience/v1
kind: Incident
metadata: {name: INC-1, title: API errors}
spec: {startedAt: "2026-12-01T11:05:00Z", services: [api]}
"""

NEW_DEPENDENCY = """
apiVersion: resilience/v1
kind: Service
metadata: {name: api}
spec: {dependsOn: [db]}
"""


def api_switch(enabled: bool) -> str:
    """A kill switch on api, in the given state in prod."""
    return f"""
apiVersion: resilience/v1
kind: FeatureFlag
metadata: {{name: api-kill-switch}}
spec:
  purpose: kill-switch
  services: [api]
  states: [{{environment: prod, enabled: {str(enabled).lower()}}}]
"""


@contextmanager
def tables_read(store: Store) -> Iterator[set[str]]:
    """The names of the tables the statements run on `store` read from, while inside."""
    found: set[str] = set()

    def seen(*args: Any) -> None:
        found.update(re.findall(r'\bFROM\s+"?(\w+)"?', args[2], flags=re.IGNORECASE))

    engine = store.engine.sync_engine
    event.listen(engine, "before_cursor_execute", seen)
    try:
        yield found
    finally:
        event.remove(engine, "before_cursor_execute", seen)


async def test_the_graph_is_built_from_exactly_the_tables_whose_writes_rebuild_it(
    store: Store,
) -> None:
    await load_yaml(store, SHOP)

    with tables_read(store) as read:
        await build_graph(store)

    # What the syncs confirmed is read too; it has a version of its own (confirm_version).
    assert read - {"catalog_state", "source_confirmation"} == GRAPH_TABLES | FLAG_TABLES


@pytest.mark.parametrize(
    ("documents", "rebuilt"),
    [
        pytest.param(DEPLOYMENT, False, id="deployment"),
        pytest.param(INCIDENT, False, id="incident"),
        pytest.param(NEW_DEPENDENCY, True, id="dependency"),
    ],
)
async def test_a_history_load_keeps_the_graph_and_a_catalog_change_rebuilds_it(
    store: Store, documents: str, rebuilt: bool
) -> None:
    await load_yaml(store, SHOP)
    cache = GraphCache(store)
    before = await cache.get()
    catalog_version = await store.catalog_version()

    await load_yaml(store, documents, source="webhook")

    assert (await cache.get() is not before) is rebuilt
    assert await store.catalog_version() == catalog_version + 1


async def test_a_dependency_change_shows_in_the_rebuilt_graph(store: Store) -> None:
    await load_yaml(store, SHOP)
    cache = GraphCache(store)
    await cache.get()

    await load_yaml(store, NEW_DEPENDENCY)

    assert list((await cache.get()).dependencies.successors("api")) == ["db"]


async def test_answers_show_history_written_after_the_graph_was_built(store: Store) -> None:
    await load_yaml(store, SHOP)
    cache = GraphCache(store)
    graph = await cache.get()

    await load_yaml(store, DEPLOYMENT + "---" + INCIDENT, source="webhook")

    assert await cache.get() is graph
    changes = await list_recent_changes(store, graph, NOW, services=["web"])
    impact = await compute_impact(store, graph, NOW, incident="INC-1")
    assert [c.name for c in changes.changes] == ["dep-api-7"]
    assert impact.failing == ["api"]
    assert [d.name for d in impact.deployments] == ["dep-api-7"]


@pytest.fixture
def unfrozen() -> Iterator[None]:
    """Whatever a test keeps out of garbage collection is let back after it."""
    try:
        yield
    finally:
        gc.unfreeze()


@pytest.mark.usefixtures("unfrozen")
async def test_a_large_graph_is_kept_out_of_collections_and_freed_once_replaced(
    store: Store,
) -> None:
    await load_yaml(store, SHOP)
    cache = GraphCache(store, freeze_from=2)
    built = await cache.get()
    # A networkx graph's views refer back to it: only the collector frees it.
    assert built.dependencies.nodes
    first = weakref.ref(built.dependencies)
    del built
    frozen = gc.get_freeze_count()

    await load_yaml(store, NEW_DEPENDENCY)
    second = await cache.get()

    assert frozen > 0
    assert first() is None
    assert second.services.keys() >= {"web", "api", "db"}


@pytest.mark.usefixtures("unfrozen")
async def test_a_small_graph_is_left_to_the_collector(store: Store) -> None:
    await load_yaml(store, SHOP)
    frozen = gc.get_freeze_count()

    await GraphCache(store).get()

    assert gc.get_freeze_count() == frozen


def timeline_entry() -> Any:
    return m.TimelineEntry(owner_ref="Incident:INC-1", incident="INC-1", text="paged")


def flag_state() -> Any:
    return m.FlagState(owner_ref="FeatureFlag:f", flag="f", environment="prod", enabled=True)


@pytest.mark.parametrize(
    ("row", "rebuilt"),
    [
        pytest.param(timeline_entry, False, id="incident-timeline"),
        pytest.param(flag_state, False, id="flag-state"),
    ],
)
async def test_a_write_moves_the_graph_version_only_when_it_writes_what_the_graph_reads(
    store: Store, row: Callable[[], Any], rebuilt: bool
) -> None:
    await load_yaml(store, SHOP + "---" + INCIDENT)
    graph_version = await store.graph_version()

    async with store.transaction() as session:
        session.add(row())

    assert (await store.graph_version() > graph_version) is rebuilt


@pytest.mark.parametrize(
    ("row", "moved"),
    [
        pytest.param(timeline_entry, False, id="incident-timeline"),
        pytest.param(flag_state, True, id="flag-state"),
    ],
)
async def test_a_write_moves_the_flag_version_only_when_it_writes_flag_states(
    store: Store, row: Callable[[], Any], moved: bool
) -> None:
    await load_yaml(store, SHOP + "---" + INCIDENT)
    flag_version = await store.flag_version()

    async with store.transaction() as session:
        session.add(row())

    assert (await store.flag_version() > flag_version) is moved


async def switch_state(store: Store, graph: Any) -> bool:
    """Whether api's kill switch is on in prod, as `list_feature_flags` answers it."""
    answer = await list_feature_flags(store, graph, NOW, environment="prod")
    [flag] = answer.flags
    [state] = flag.states
    return state.enabled


async def flip_with_load(store: Store) -> None:
    await load_yaml(store, SHOP + "---" + api_switch(True))


async def flip_with_write(store: Store) -> None:
    graph = await build_graph(store)
    setting = FlagSetting(flag="api-kill-switch", environment="prod", enabled=True, reason="r")
    call = WriteRequest(tool="set_feature_flag", actor="t", at=NOW, arguments={})
    await set_feature_flag(store, graph, call, setting)


@pytest.mark.parametrize(
    "flip",
    [pytest.param(flip_with_load, id="load"), pytest.param(flip_with_write, id="write")],
)
async def test_a_flag_state_change_reloads_only_the_flag_states_and_shows_in_answers(
    store: Store, flip: Callable[[Store], Any]
) -> None:
    await load_yaml(store, SHOP + "---" + api_switch(False))
    cache = GraphCache(store)
    before = await cache.get()
    graph_version = await store.graph_version()
    assert not await switch_state(store, before)

    await flip(store)
    with tables_read(store) as read:
        after = await cache.get()

    assert await store.graph_version() == graph_version
    assert read == {"catalog_state"} | FLAG_TABLES
    assert after.dependencies is before.dependencies
    assert await switch_state(store, after)
    assert not await switch_state(store, before)
    assert await cache.get() is after


async def test_a_load_changing_flag_states_and_a_dependency_rebuilds_the_graph(
    store: Store,
) -> None:
    await load_yaml(store, SHOP + "---" + api_switch(False))
    cache = GraphCache(store)
    before = await cache.get()

    await load_yaml(store, api_switch(True) + "---" + NEW_DEPENDENCY)
    after = await cache.get()

    assert after.dependencies is not before.dependencies
    assert list(after.dependencies.successors("api")) == ["db"]
    assert await switch_state(store, after)


async def test_a_write_in_raw_sql_is_taken_to_change_the_graph(store: Store) -> None:
    await load_yaml(store, SHOP)
    graph_version = await store.graph_version()

    async with store.transaction() as session:
        await session.execute(text("UPDATE service SET tier = 1 WHERE name = 'api'"))

    assert await store.graph_version() == graph_version + 1


async def test_a_reload_that_changes_nothing_moves_no_version(store: Store) -> None:
    await load_yaml(store, SHOP + "---" + DEPLOYMENT)
    versions = (await store.catalog_version(), await store.graph_version())

    await load_yaml(store, SHOP + "---" + DEPLOYMENT)

    assert (await store.catalog_version(), await store.graph_version()) == versions
