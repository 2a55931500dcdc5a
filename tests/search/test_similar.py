"""find_similar_rca on the demo catalog: what ranks first, why, and what comes with it."""

from __future__ import annotations

import pytest

from resilience_mcp.catalog import DEMO_ANCHOR
from resilience_mcp.errors import NotFoundError
from resilience_mcp.graph import build_graph
from resilience_mcp.search.incidents import find_similar_rca
from resilience_mcp.store import Store

pytestmark = pytest.mark.anyio

CONNECTIONS = (
    "payments-api 503s; pods log 'HikariPool-1 - Connection is not available, request timed "
    "out after 3000ms'; payments-db says remaining connection slots are reserved"
)


async def similar(
    store: Store,
    text: str | None = None,
    incident: str | None = None,
    services: tuple[str, ...] = (),
    limit: int = 5,
) -> list[str]:
    graph = await build_graph(store)
    answer = await find_similar_rca(
        store, graph, DEMO_ANCHOR, text=text, incident=incident, services=services, limit=limit
    )
    return [hit.key for hit in answer.results]


async def test_error_lines_find_both_connection_exhaustion_incidents_first(
    demo_store: Store,
) -> None:
    assert set((await similar(demo_store, text=CONNECTIONS))[:2]) == {"INC-2031", "INC-2046"}


async def test_each_result_says_why_and_carries_cause_fix_and_tasks(demo_store: Store) -> None:
    graph = await build_graph(demo_store)
    answer = await find_similar_rca(demo_store, graph, DEMO_ANCHOR, text=CONNECTIONS)
    first = next(hit for hit in answer.results if hit.key == "INC-2031")

    assert "connection" in first.why.matched_terms
    assert len(first.why.matched_terms) <= 10
    assert {"payments-api", "payments-db"} <= set(first.why.shared_services)
    assert "database" in first.why.shared_failure_modes
    assert first.root_cause is not None
    assert "maximum-pool-size" in first.root_cause
    assert first.resolution is not None
    assert "Rolled prod-us back" in first.resolution
    tasks = {t.name: t for t in first.tasks}
    assert tasks["rt-2031-pgbouncer"].overdue
    assert tasks["rt-2031-pgbouncer"].status == "in_progress"
    assert not tasks["rt-2031-connection-alert"].overdue
    assert answer.services == ["payments-api", "payments-db"]


async def test_an_incident_key_finds_its_earlier_occurrence_and_never_itself(
    demo_store: Store,
) -> None:
    found = await similar(demo_store, incident="inc 2046")

    assert found[0] == "INC-2031"
    assert "INC-2046" not in found


async def test_naming_a_service_lifts_incidents_on_it_and_its_neighbours(
    demo_store: Store,
) -> None:
    graph = await build_graph(demo_store)
    answer = await find_similar_rca(
        demo_store, graph, DEMO_ANCHOR, text="disk full, consumers lagging", services=["event-bus"]
    )
    first = answer.results[0]

    assert first.key == "INC-2033"
    assert "event-bus" in first.why.shared_services


async def test_a_mistyped_service_is_taken_for_the_one_meant(demo_store: Store) -> None:
    graph = await build_graph(demo_store)
    answer = await find_similar_rca(
        demo_store, graph, DEMO_ANCHOR, text="connection slots", services=["payment-db"]
    )

    assert "payments-db" in answer.services


async def test_the_limit_bounds_the_answer(demo_store: Store) -> None:
    assert len(await similar(demo_store, text="payments failing", limit=2)) == 2


async def test_an_unknown_incident_key_is_refused_with_near_keys(demo_store: Store) -> None:
    with pytest.raises(NotFoundError) as caught:
        await similar(demo_store, incident="INC-2030")

    assert "INC-2031" in caught.value.suggestions or "INC-2033" in caught.value.suggestions


async def test_an_unknown_service_is_refused(demo_store: Store) -> None:
    with pytest.raises(NotFoundError, match="zz-unheard-of"):
        await similar(demo_store, text="slow", services=("zz-unheard-of",))
