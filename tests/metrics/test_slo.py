"""SLO attainment, error budget and burn rate, by hand and from stored measurements."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from resilience_mcp import models as m
from resilience_mcp.errors import InvalidInputError
from resilience_mcp.graph import build_graph
from resilience_mcp.metrics.slo import SloSums, compute_slo_status, get_slo_status, window_start
from resilience_mcp.store import Store
from tests.metrics.sample import NOW, load_sample

pytestmark = pytest.mark.anyio

DAY = timedelta(days=1)


def slo(**fields: Any) -> m.SLO:
    fields.setdefault("name", "s")
    return m.SLO(**fields)


def test_occurrences_budget_is_the_share_of_events_allowed_to_fail() -> None:
    sums = {
        "window": SloSums(30, good=9950, total=10000),
        "short": SloSums(1, good=990, total=1000),
        "long": SloSums(7, good=4990, total=5000),
    }

    status = compute_slo_status(slo(objective=0.99), sums, NOW - 30 * DAY, NOW)

    assert status.attainment == pytest.approx(0.995)
    # 1 % of 10,000 events may fail; 50 did, so half the budget is left.
    assert (status.error_budget, status.budget_spent) == (pytest.approx(100), 50)
    assert status.budget_remaining == pytest.approx(0.5)
    # The last day failed at exactly the allowed 1 %; the last week at a fifth of it.
    assert status.burn_rate_short == pytest.approx(1.0)
    assert status.burn_rate_long == pytest.approx(0.2)
    assert status.status == "healthy"


def test_timeslices_budget_counts_every_slice_of_the_window_even_unmeasured_ones() -> None:
    sums = {"window": SloSums(1, good=200, total=202)}
    one_day = slo(objective=0.99, budgeting_method="timeslices", timeslice_window="5m")

    status = compute_slo_status(one_day, sums, NOW - DAY, NOW)

    # A day holds 288 five-minute slices, 1 % of them (2.88) may be bad; 2 were.
    assert status.error_budget == pytest.approx(2.88)
    assert status.budget_remaining == pytest.approx(1 - 2 / 2.88)
    assert status.attainment == pytest.approx(200 / 202)


def test_ratio_timeslices_take_the_mean_ratio_of_the_slices() -> None:
    sums = {"window": SloSums(10, good=0, total=0, ratio_mean=0.995)}

    status = compute_slo_status(
        slo(objective=0.99, budgeting_method="ratio-timeslices"), sums, NOW - DAY, NOW
    )

    assert status.attainment == pytest.approx(0.995)
    assert status.budget_remaining == pytest.approx(0.5)
    assert status.error_budget is None


@pytest.mark.parametrize(
    ("good", "long_good", "expected"),
    [
        (9990, 5000, "healthy"),
        (9920, 5000, "at_risk"),  # 20 % of the budget left
        (9990, 4900, "at_risk"),  # burning twice as fast as sustainable this week
        (9900, 5000, "exhausted"),
        (9800, 5000, "exhausted"),  # overspent: below zero
    ],
)
def test_status_follows_budget_left_and_long_burn(good: int, long_good: int, expected: str) -> None:
    sums = {"window": SloSums(30, good, 10000), "long": SloSums(7, long_good, 5000)}

    assert compute_slo_status(slo(objective=0.99), sums, NOW - 30 * DAY, NOW).status == expected


def test_an_slo_without_measurements_has_no_data() -> None:
    status = compute_slo_status(slo(), {}, NOW - 30 * DAY, NOW)

    assert status.status == "no_data"
    assert status.attainment is None
    assert "no measurements" in status.line()


@pytest.mark.parametrize(
    ("window_type", "days", "start"),
    [
        ("rolling", 28, datetime(2026, 2, 18, 15, tzinfo=UTC)),
        ("calendar", 7, datetime(2026, 3, 16, tzinfo=UTC)),
        ("calendar", 30, datetime(2026, 3, 1, tzinfo=UTC)),
        ("calendar", 90, datetime(2026, 1, 1, tzinfo=UTC)),
        ("calendar", 365, datetime(2026, 1, 1, tzinfo=UTC)),
    ],
)
def test_windows_roll_back_from_now_or_start_at_the_calendar_period(
    window_type: str, days: float, start: datetime
) -> None:
    now = datetime(2026, 3, 18, 15, tzinfo=UTC)  # a Wednesday

    assert window_start(slo(window_type=window_type, window_days=days), now) == start


def measured_slo() -> dict[str, Any]:
    """A 7-day SLO measured daily: 0.5 % errors a day, 3 % on the last day, and one bucket
    (all bad) that starts a day before the window and so is not in it."""
    days = [(f"2026-02-{d:02d}", 995) for d in range(23, 29)] + [("2026-03-01", 970)]
    measurements = [{"at": "2026-02-22T00:00:00Z", "good": 0, "total": 1000}]
    measurements += [{"at": f"{day}T00:00:00Z", "good": good, "total": 1000} for day, good in days]
    return {
        "apiVersion": "resilience/v1",
        "kind": "SLO",
        "metadata": {"name": "svc-a-availability"},
        "spec": {
            "service": "svc-a",
            "objective": 99,
            "window": "7d",
            "measurements": measurements,
        },
    }


async def test_stored_measurements_give_the_same_figures_on_every_backend(store: Store) -> None:
    await load_sample(store, measured_slo())
    graph = await build_graph(store)

    answer = await get_slo_status(store, graph, NOW, service="svc a")

    status = answer.slos[0]
    # Seven buckets in the window: 6 x 5 + 30 = 60 bad of 7,000, against 70 allowed.
    assert (status.measurements, status.good, status.total) == (7, 6940, 7000)
    assert status.budget_remaining == pytest.approx(1 - 60 / 70)
    assert status.burn_rate_short == pytest.approx(3.0)
    assert status.burn_rate_long == pytest.approx(60 / 7000 / 0.01)
    assert status.status == "at_risk"
    assert (answer.service, answer.by_status) == ("svc-a", {"at_risk": 1})


async def test_services_without_slos_answer_plainly(store: Store) -> None:
    await load_sample(store)
    graph = await build_graph(store)

    answer = await get_slo_status(store, graph, NOW, service="svc-b")

    assert answer.slos == []
    assert answer.text() == "No SLOs of svc-b in the catalog."


async def test_burn_windows_must_be_lengths_of_time(store: Store) -> None:
    await load_sample(store)
    graph = await build_graph(store)

    with pytest.raises(InvalidInputError, match="short_window 'soon'"):
        await get_slo_status(store, graph, NOW, short_window="soon")
