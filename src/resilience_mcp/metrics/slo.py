"""SLO attainment, error budget and burn rate, from the measurements in the store.

A measurement row is a bucket: `good` and `total` counted from `at` on. A bucket belongs to
a window when it starts inside it. Rolling windows end now and reach back `window_days`;
calendar windows start at the current UTC week (up to 7 days), month (up to 31), quarter
(up to 92) or year.

Budgeting, as in OpenSLO:
- occurrences: attainment is good over total events; the budget is the share of events
  the objective allows to be bad, `(1 - objective) * total`.
- timeslices: `good` and `total` count time slices; the budget is the share of all the
  window's slices (`window / timesliceWindow`) that may be bad, so a window half measured
  still has the whole window's budget.
- ratio-timeslices: each bucket is a slice whose ratio is good over total; attainment is
  the mean ratio and the budget is what is left of `1 - objective`.

Burn rate is the error rate over a trailing window divided by the rate the objective
allows; at 1 the budget runs out exactly at the end of the window. Sums are taken in SQL,
one grouped query per distinct window, so a catalog of thousands of SLOs is a few queries.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any, Literal

from sqlalchemy import and_, case, func, select
from sqlmodel import col

from resilience_mcp import models as m
from resilience_mcp.catalog.kinds import parse_duration
from resilience_mcp.graph.cards import resolve_entity
from resilience_mcp.graph.catalog import CatalogGraph
from resilience_mcp.metrics.scope import parse_length
from resilience_mcp.models.common import PageInfo
from resilience_mcp.models.metrics import SLOStatus, SLOStatusAnswer
from resilience_mcp.store import Store

__all__ = [
    "DEFAULT_LONG",
    "DEFAULT_SHORT",
    "SloSums",
    "compute_slo_status",
    "compute_slo_statuses",
    "get_slo_status",
    "load_slos",
    "window_start",
]

DEFAULT_SHORT = timedelta(days=1)
DEFAULT_LONG = timedelta(days=7)
CHUNK = 500
# Below this share of budget left, or burning faster than sustainable, an SLO is at risk.
AT_RISK_REMAINING = 0.25
# Budgets are floats: (1 - 0.99) * 10,000 is a hair above 100, so "spent" allows for that.
SPENT = 1e-9
SloState = Literal["healthy", "at_risk", "exhausted", "no_data"]
_ORDER = {"exhausted": 0, "at_risk": 1, "healthy": 2, "no_data": 3}


@dataclass(frozen=True)
class SloSums:
    """What the buckets of one window add up to."""

    measurements: int = 0
    good: float = 0.0
    total: float = 0.0
    ratio_mean: float | None = None


def window_start(slo: m.SLO, now: datetime) -> datetime:
    """Where the SLO's current window begins."""
    if slo.window_type != "calendar":
        return now - timedelta(days=slo.window_days)
    today = datetime.combine(now.date(), time(), tzinfo=UTC)
    if slo.window_days <= 7:
        return today - timedelta(days=now.weekday())
    if slo.window_days <= 31:
        return today.replace(day=1)
    if slo.window_days <= 92:
        return today.replace(month=3 * ((now.month - 1) // 3) + 1, day=1)
    return today.replace(month=1, day=1)


def _error_rate(slo: m.SLO, sums: SloSums) -> float | None:
    if slo.budgeting_method == "ratio-timeslices":
        return None if sums.ratio_mean is None else 1.0 - sums.ratio_mean
    return (sums.total - sums.good) / sums.total if sums.total > 0 else None


def _burn(slo: m.SLO, sums: SloSums) -> float | None:
    rate = _error_rate(slo, sums)
    return None if rate is None else rate / (1.0 - slo.objective)


def _budget(slo: m.SLO, sums: SloSums, start: datetime, end: datetime) -> float | None:
    """Bad events (or slices) the objective allows in the whole window."""
    if slo.budgeting_method == "ratio-timeslices":
        return None
    total = sums.total
    if slo.budgeting_method == "timeslices" and slo.timeslice_window:
        total = (end - start) / parse_duration(slo.timeslice_window)
    return (1.0 - slo.objective) * total


def compute_slo_status(
    slo: m.SLO,
    sums: dict[str, SloSums],
    start: datetime,
    now: datetime,
    short: timedelta = DEFAULT_SHORT,
    long: timedelta = DEFAULT_LONG,
) -> SLOStatus:
    """The status of one SLO from the sums of its `window`, `short` and `long` buckets."""
    whole = sums.get("window", SloSums())
    rate = _error_rate(slo, whole)
    attainment = None if rate is None else 1.0 - rate
    budget = _budget(slo, whole, start, now) if whole.measurements else None
    spent = None if budget is None else whole.total - whole.good
    if budget is not None and spent is not None:
        remaining = 1.0 - spent / budget if budget > 0 else (1.0 if spent == 0 else -1.0)
    elif rate is not None:
        remaining = 1.0 - rate / (1.0 - slo.objective)
    else:
        remaining = None
    burn_long = _burn(slo, sums.get("long", SloSums()))

    status: SloState = "healthy"
    if attainment is None:
        status = "no_data"
    elif remaining is not None and remaining <= SPENT:
        status = "exhausted"
    elif (remaining is not None and remaining < AT_RISK_REMAINING) or (burn_long or 0) > 1:
        status = "at_risk"
    return SLOStatus(
        name=slo.name,
        title=slo.title,
        service=slo.service,
        objective=slo.objective,
        window_days=slo.window_days,
        window_type=slo.window_type,
        budgeting_method=slo.budgeting_method,
        window_start=start,
        window_end=now,
        measurements=whole.measurements,
        good=whole.good,
        total=whole.total,
        attainment=attainment,
        error_budget=budget,
        budget_spent=spent,
        budget_remaining=remaining,
        burn_rate_short=_burn(slo, sums.get("short", SloSums())),
        burn_rate_long=burn_long,
        short_window_hours=short.total_seconds() / 3600,
        long_window_hours=long.total_seconds() / 3600,
        status=status,
    )


def _sums_columns(since: datetime) -> list[Any]:
    """Conditional sums over the buckets from `since` on, all in one grouped query."""
    at, good, total = (
        col(m.SLOMeasurement.at),
        col(m.SLOMeasurement.good),
        col(m.SLOMeasurement.total),
    )
    inside = at >= since
    return [
        func.count(case((inside, 1))),
        func.sum(case((inside, good), else_=0.0)),
        func.sum(case((inside, total), else_=0.0)),
        func.avg(case((and_(inside, total > 0), good / total))),
    ]


def _sums(row: Sequence[Any], offset: int) -> SloSums:
    count, good, total, ratio = row[offset : offset + 4]
    return SloSums(
        measurements=int(count or 0),
        good=float(good or 0.0),
        total=float(total or 0.0),
        ratio_mean=None if ratio is None else float(ratio),
    )


async def compute_slo_statuses(
    store: Store,
    slos: Sequence[m.SLO],
    now: datetime,
    short: timedelta = DEFAULT_SHORT,
    long: timedelta = DEFAULT_LONG,
) -> list[SLOStatus]:
    """The status of each SLO, its sums taken in SQL, one query per distinct window."""
    by_start: dict[datetime, list[m.SLO]] = defaultdict(list)
    for slo in slos:
        by_start[window_start(slo, now)].append(slo)

    sums: dict[str, dict[str, SloSums]] = {}
    ms = m.SLOMeasurement
    async with store.session() as session:
        for start, group in by_start.items():
            lower = min(start, now - short, now - long)
            names = sorted(s.name for s in group)
            for first in range(0, len(names), CHUNK):
                stmt = (
                    select(
                        col(ms.slo),
                        *_sums_columns(start),
                        *_sums_columns(now - short),
                        *_sums_columns(now - long),
                    )
                    .where(
                        col(ms.slo).in_(names[first : first + CHUNK]),
                        col(ms.at) >= lower,
                        col(ms.at) <= now,
                    )
                    .group_by(col(ms.slo))
                )
                for row in await session.execute(stmt):
                    sums[row[0]] = {
                        "window": _sums(row, 1),
                        "short": _sums(row, 5),
                        "long": _sums(row, 9),
                    }
    return [
        compute_slo_status(slo, sums.get(slo.name, {}), window_start(slo, now), now, short, long)
        for slo in slos
    ]


async def load_slos(store: Store, services: frozenset[str] | None = None) -> list[m.SLO]:
    """The SLOs of `services`, or every SLO."""
    async with store.session() as session:
        if services is None:
            return list((await session.execute(select(m.SLO))).scalars().all())
        names = sorted(services)
        found: list[m.SLO] = []
        for first in range(0, len(names), CHUNK):
            stmt = select(m.SLO).where(col(m.SLO.service).in_(names[first : first + CHUNK]))
            found.extend((await session.execute(stmt)).scalars().all())
        return found


async def get_slo_status(
    store: Store,
    graph: CatalogGraph,
    now: datetime,
    *,
    service: str | None = None,
    short_window: str = "1d",
    long_window: str = "7d",
    limit: int = 20,
    offset: int = 0,
) -> SLOStatusAnswer:
    """Every SLO (of one service), the worst first: exhausted, at risk, healthy, no data."""
    short = parse_length(short_window, field="short_window")
    long = parse_length(long_window, field="long_window")
    resolved = resolve_entity(graph, service, ("Service",)) if service else None
    slos = await load_slos(store, frozenset([resolved.name]) if resolved else None)
    statuses = await compute_slo_statuses(store, slos, now, short, long)
    statuses.sort(key=lambda s: (_ORDER[s.status], s.budget_remaining or 0.0, s.name))
    shown = statuses[offset : offset + limit]
    return SLOStatusAnswer(
        service=resolved.name if resolved else None,
        corrected_from=resolved.corrected_from if resolved else None,
        at=now,
        slos=shown,
        page=PageInfo.of(len(statuses), len(shown), offset),
        by_status=dict(Counter(s.status for s in statuses)),
    )
