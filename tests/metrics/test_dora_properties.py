"""Properties of the four keys that must hold for any history: split windows add up."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from resilience_mcp.metrics.dora import (
    DoraSummary,
    compute_dora,
    failure_rate_band,
    lead_time_band,
    restore_band,
)
from resilience_mcp.metrics.history import DeploymentFact, IncidentFact, build_history

START = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday
DAYS = 56


@st.composite
def deployments(draw: st.DrawFn) -> list[DeploymentFact]:
    count = draw(st.integers(min_value=0, max_value=40))
    facts = []
    for index in range(count):
        at = START + timedelta(minutes=draw(st.integers(0, DAYS * 24 * 60 - 1)))
        lead = draw(st.integers(-600, 5000))
        facts.append(
            DeploymentFact(
                name=f"d{index}",
                service=draw(st.sampled_from(["a", "b"])),
                environment="prod",
                deploy_time=at,
                status=draw(st.sampled_from(["success", "success", "rolled_back"])),
                commits=((f"c{index}", at - timedelta(minutes=lead)),),
            )
        )
    return facts


@st.composite
def incidents(draw: st.DrawFn, count: int) -> list[IncidentFact]:
    facts = []
    for index in range(draw(st.integers(0, 8))):
        start = START + timedelta(minutes=draw(st.integers(0, DAYS * 24 * 60 - 1)))
        length = draw(st.one_of(st.none(), st.integers(1, 3000)))
        facts.append(
            IncidentFact(
                name=f"i{index}",
                started_at=start,
                restored_at=None if length is None else start + timedelta(minutes=length),
                root_cause_commit=f"c{draw(st.integers(0, max(count, 1)))}",
                suspects=(f"d{draw(st.integers(0, max(count, 1)))}",),
            )
        )
    return facts


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[DeploymentFact], list[IncidentFact]]:
    deps = draw(deployments())
    return deps, draw(incidents(len(deps)))


@settings(max_examples=150, deadline=None)
@given(history=histories(), split_day=st.integers(1, DAYS - 1))
def test_counts_over_two_halves_add_up_to_the_whole(
    history: tuple[list[DeploymentFact], list[IncidentFact]], split_day: int
) -> None:
    deps, incs = history
    built = build_history(deps, incs, incs)
    end, middle = START + timedelta(days=DAYS), START + timedelta(days=split_day)
    whole, left, right = (
        compute_dora(built, START, end),
        compute_dora(built, START, middle),
        compute_dora(built, middle, end),
    )

    def counts(summary: DoraSummary) -> tuple[int, ...]:
        df, lt, cfr = summary.deployment_frequency, summary.lead_time, summary.change_failure_rate
        ttr, fdr = summary.time_to_restore, summary.failed_deployment_recovery
        return (
            df.deployments,
            df.deploy_days,  # the split is at midnight, so no day is in both halves
            lt.pairs,
            lt.dropped,
            cfr.failures,
            cfr.linked_to_incidents,
            cfr.rolled_back,
            ttr.restored,
            ttr.open,
            fdr.recovered,
            fdr.unrecovered,
        )

    assert counts(whole) == tuple(a + b for a, b in zip(counts(left), counts(right), strict=True))


@settings(max_examples=100, deadline=None)
@given(history=histories())
def test_rates_and_medians_stay_in_range(
    history: tuple[list[DeploymentFact], list[IncidentFact]],
) -> None:
    deps, incs = history
    summary = compute_dora(build_history(deps, incs, incs), START, START + timedelta(days=DAYS))

    rate = summary.change_failure_rate.rate
    assert rate is None or 0.0 <= rate <= 1.0
    assert summary.lead_time.median_minutes is None or summary.lead_time.median_minutes > 0
    assert summary.deployment_frequency.deploy_days <= summary.deployment_frequency.deployments
    assert (summary.deployment_frequency.bucket is None) == (not deps)


@given(st.permutations(list(range(12))))
def test_the_order_deployments_arrive_in_does_not_matter(order: list[int]) -> None:
    facts = [
        DeploymentFact(
            f"d{i}",
            "a",
            "prod",
            START + timedelta(hours=7 * i),
            "success",
            (("c", START + timedelta(hours=7 * i - i - 1)),),
        )
        for i in range(12)
    ]
    shuffled = [facts[i] for i in order]
    end = START + timedelta(days=7)

    assert compute_dora(build_history(shuffled, [], []), START, end) == compute_dora(
        build_history(facts, [], []), START, end
    )


def test_bands_follow_the_stated_thresholds() -> None:
    assert [lead_time_band(m) for m in (59, 1439, 1440, 10079, 10080, 43199, 43200)] == [
        "elite",
        "elite",
        "high",
        "high",
        "medium",
        "medium",
        "low",
    ]
    assert [restore_band(m) for m in (59, 60, 1439, 1440, 10079, 10080)] == [
        "elite",
        "high",
        "high",
        "medium",
        "medium",
        "low",
    ]
    assert [failure_rate_band(r) for r in (0.0, 0.05, 0.051, 0.10, 0.15, 0.151)] == [
        "elite",
        "elite",
        "high",
        "high",
        "medium",
        "low",
    ]
    assert lead_time_band(None) is None
