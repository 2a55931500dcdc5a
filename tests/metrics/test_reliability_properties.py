"""Properties of MTBF and time to restore that must hold for any failures: split windows agree
with the whole."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from resilience_mcp.metrics.reliability import Failure, compute_mtbf, duration_stats

START = datetime(2026, 3, 2, tzinfo=UTC)
DAYS = 60
END = START + timedelta(days=DAYS)


@st.composite
def failures(draw: st.DrawFn) -> list[Failure]:
    found = []
    for _ in range(draw(st.integers(0, 12))):
        started = START + timedelta(minutes=draw(st.integers(0, DAYS * 24 * 60 - 1)))
        length = draw(st.one_of(st.none(), st.integers(1, 4000)))
        restored = None if length is None else started + timedelta(minutes=length)
        found.append(Failure(started_at=started, restored_at=restored))
    return found


def restore_minutes(items: list[Failure], start: datetime, end: datetime) -> list[float | None]:
    return [
        (f.restored_at - f.started_at).total_seconds() / 60 if f.restored_at else None
        for f in items
        if start <= f.started_at < end
    ]


@settings(max_examples=200, deadline=None)
@given(items=failures(), split_day=st.integers(1, DAYS - 1))
def test_failures_and_intervals_over_two_halves_add_up_to_the_whole(
    items: list[Failure], split_day: int
) -> None:
    middle = START + timedelta(days=split_day)
    whole = compute_mtbf(items, START, END)
    left, right = compute_mtbf(items, START, middle), compute_mtbf(items, middle, END)

    assert left.failures + right.failures == whole.failures
    # The one interval the split cuts is the one between the halves' last and first failure.
    bridged = 1 if left.failures and right.failures else 0
    assert left.intervals + right.intervals + bridged == whole.intervals


@settings(max_examples=200, deadline=None)
@given(items=failures(), split_day=st.integers(1, DAYS - 1))
def test_downtime_split_in_two_never_exceeds_the_whole_and_operating_time_fills_the_rest(
    items: list[Failure], split_day: int
) -> None:
    middle = START + timedelta(days=split_day)
    whole = compute_mtbf(items, START, END)
    left, right = compute_mtbf(items, START, middle), compute_mtbf(items, middle, END)

    # A failure still open at the split is counted by the half it started in, up to the split.
    assert left.downtime_hours + right.downtime_hours <= whole.downtime_hours + 1e-6
    for part, hours in (
        (whole, DAYS * 24),
        (left, split_day * 24),
        (right, (DAYS - split_day) * 24),
    ):
        assert part.operating_hours + part.downtime_hours == pytest.approx(hours)


@settings(max_examples=200, deadline=None)
@given(items=failures(), split_day=st.integers(1, DAYS - 1))
def test_restored_incidents_and_their_total_time_add_up_over_two_halves(
    items: list[Failure], split_day: int
) -> None:
    middle = START + timedelta(days=split_day)
    whole = duration_stats(restore_minutes(items, START, END))
    left = duration_stats(restore_minutes(items, START, middle))
    right = duration_stats(restore_minutes(items, middle, END))

    assert left.count + right.count == whole.count
    total = (left.mean_minutes or 0) * left.count + (right.mean_minutes or 0) * right.count
    assert total == pytest.approx((whole.mean_minutes or 0) * whole.count)
