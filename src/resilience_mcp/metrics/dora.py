"""DORA's four keys over a scope and a window, with the DORA performance band of each.

The definitions follow Google's Four Keys, with the differences docs/metrics.md states:
production deployments only (status success or rolled back), change failures include
rolled-back deployments, restoration is mitigation when the incident records one, and every
duration is in minutes rather than whole hours.

The history comes from `metrics.history`; everything here is arithmetic over its sorted
arrays, so each week or month of a trend costs a few binary searches.
"""

from __future__ import annotations

import logging
from bisect import bisect_left
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal

from resilience_mcp.graph.catalog import CatalogGraph
from resilience_mcp.metrics.history import DoraHistory, load_history
from resilience_mcp.metrics.scope import (
    calendar_months,
    calendar_weeks,
    get_scope,
    median,
    resolve_window,
)
from resilience_mcp.models.common import ListCut
from resilience_mcp.models.metrics import (
    Band,
    ChangeFailureRate,
    DeploymentFrequency,
    DoraAnswer,
    DoraPeriod,
    FailedDeploymentRecovery,
    GroupBy,
    LeadTime,
    ScopeKind,
    TimeToRestore,
)
from resilience_mcp.store import Store

__all__ = [
    "DoraSummary",
    "compute_dora",
    "failure_rate_band",
    "get_dora_metrics",
    "lead_time_band",
    "restore_band",
]

logger = logging.getLogger(__name__)

DAY = 24 * 60.0
_EPOCH_DAY = date(1970, 1, 1)

_BUCKET_BANDS: dict[str, Band] = {
    "daily": "elite",
    "weekly": "high",
    "monthly": "medium",
    "yearly": "low",
}


def lead_time_band(minutes: float | None) -> Band | None:
    """Elite under a day, high under a week, medium under a month, else low."""
    if minutes is None:
        return None
    if minutes < DAY:
        return "elite"
    if minutes < 7 * DAY:
        return "high"
    return "medium" if minutes < 30 * DAY else "low"


def restore_band(minutes: float | None) -> Band | None:
    """Elite under an hour, high under a day, medium under a week, else low."""
    if minutes is None:
        return None
    if minutes < 60:
        return "elite"
    if minutes < DAY:
        return "high"
    return "medium" if minutes < 7 * DAY else "low"


def failure_rate_band(rate: float | None) -> Band | None:
    """Elite up to 5 %, high up to 10 %, medium up to 15 %, else low."""
    if rate is None:
        return None
    if rate <= 0.05:
        return "elite"
    if rate <= 0.10:
        return "high"
    return "medium" if rate <= 0.15 else "low"


@dataclass(frozen=True)
class DoraSummary:
    deployment_frequency: DeploymentFrequency
    lead_time: LeadTime
    change_failure_rate: ChangeFailureRate
    time_to_restore: TimeToRestore
    failed_deployment_recovery: FailedDeploymentRecovery
    incidents: int


def compute_dora(history: DoraHistory, start: datetime, end: datetime) -> DoraSummary:
    """The four keys over `[start, end)` of a history."""
    low, high = start.timestamp(), end.timestamp()

    def window(times: list[float]) -> slice:
        return slice(bisect_left(times, low), bisect_left(times, high))

    shipped = history.deployed[window(history.deployed)]
    days = {_EPOCH_DAY + timedelta(days=n) for n in {int(t // 86400) for t in shipped}}
    leads = history.lead_minutes[window(history.lead_at)]
    lead = median(leads)

    failed = window(history.failure_at)
    kinds = Counter(history.failure_kind[failed])
    rate = len(history.failure_kind[failed]) / len(shipped) if shipped else None
    recoveries = history.failure_recovery[failed]
    recovered = [v for v in recoveries if v is not None]
    recovery = median(recovered)

    restores = history.restore_minutes[window(history.incident_at)]
    restored = [v for v in restores if v is not None]
    restore = median(restored)

    return DoraSummary(
        deployment_frequency=_frequency(days, len(shipped), start, end),
        lead_time=LeadTime(
            median_minutes=lead,
            pairs=len(leads),
            dropped=len(history.dropped_at[window(history.dropped_at)]),
            band=lead_time_band(lead),
        ),
        change_failure_rate=ChangeFailureRate(
            deployments=len(shipped),
            failures=kinds["linked"] + kinds["rolled_back"],
            linked_to_incidents=kinds["linked"],
            rolled_back=kinds["rolled_back"],
            rate=rate,
            band=failure_rate_band(rate),
        ),
        time_to_restore=TimeToRestore(
            median_minutes=restore,
            restored=len(restored),
            open=len(restores) - len(restored),
            band=restore_band(restore),
        ),
        failed_deployment_recovery=FailedDeploymentRecovery(
            median_minutes=recovery,
            recovered=len(recovered),
            unrecovered=len(recoveries) - len(recovered),
            band=restore_band(recovery),
        ),
        incidents=len(restores),
    )


def _frequency(days: set[date], count: int, start: datetime, end: datetime) -> DeploymentFrequency:
    """Four Keys' bucket, taken over the calendar weeks and months the window touches."""
    weeks = calendar_weeks(start, end)
    per_week = Counter(d - timedelta(days=d.weekday()) for d in days)
    week_days = [per_week.get(w.date(), 0) for w, _ in weeks]
    bucket: Literal["daily", "weekly", "monthly", "yearly"] | None = None
    if count:
        if (median(week_days) or 0) >= 3:
            bucket = "daily"
        elif 2 * sum(1 for n in week_days if n) > len(week_days):
            bucket = "weekly"
        else:
            months = calendar_months(start, end)
            active = {d.replace(day=1) for d in days}
            with_deploys = sum(1 for month, _ in months if month.date() in active)
            bucket = "monthly" if 2 * with_deploys > len(months) else "yearly"
    span_weeks = (end - start).total_seconds() / (7 * 86400)
    return DeploymentFrequency(
        deployments=count,
        deploy_days=len(days),
        weeks=len(weeks),
        per_week=count / span_weeks,
        bucket=bucket,
        band=_BUCKET_BANDS[bucket] if bucket else None,
    )


async def get_dora_metrics(
    store: Store,
    graph: CatalogGraph,
    now: datetime,
    *,
    scope: ScopeKind = "organisation",
    name: str | None = None,
    since: str | None = None,
    until: str | None = None,
    group_by: GroupBy | None = None,
    limit: int = 26,
) -> DoraAnswer:
    """The four keys of a scope over a window (90 days to now by default), with trends."""
    target = get_scope(graph, scope, name)
    start, end = resolve_window(since, until, now)
    history = await load_history(store, graph, target, start, end)
    whole = compute_dora(history, start, end)

    periods: list[DoraPeriod] = []
    page: ListCut | None = None
    if group_by in ("week", "month"):
        spans = calendar_weeks(start, end) if group_by == "week" else calendar_months(start, end)
        periods = [_period(history, max(a, start), min(b, end)) for a, b in spans]
        page = ListCut(
            total=len(periods), returned=min(limit, len(periods)), truncated=len(periods) > limit
        )
        periods = periods[-limit:]

    return DoraAnswer(
        scope=target.kind,
        name=target.name,
        corrected_from=target.corrected_from,
        services=target.size(graph),
        since=start,
        until=end,
        deployment_frequency=whole.deployment_frequency,
        lead_time=whole.lead_time,
        change_failure_rate=whole.change_failure_rate,
        time_to_restore=whole.time_to_restore,
        failed_deployment_recovery=whole.failed_deployment_recovery,
        group_by=group_by,
        periods=periods,
        periods_page=page,
    )


def _period(history: DoraHistory, start: datetime, end: datetime) -> DoraPeriod:
    summary = compute_dora(history, start, end)
    return DoraPeriod(
        start=start,
        end=end,
        deployments=summary.deployment_frequency.deployments,
        deploy_days=summary.deployment_frequency.deploy_days,
        lead_time_median_minutes=summary.lead_time.median_minutes,
        change_failure_rate=summary.change_failure_rate.rate,
        time_to_restore_median_minutes=summary.time_to_restore.median_minutes,
        incidents=summary.incidents,
    )
