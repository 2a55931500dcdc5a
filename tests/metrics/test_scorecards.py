"""Scorecards: the shipped default, catalog scorecards, levels, next steps, and bad rules."""

from __future__ import annotations

from typing import Any

import pytest

from resilience_mcp.catalog.loader import parse_documents
from resilience_mcp.errors import InvalidInputError, LoadIssue, NotFoundError
from resilience_mcp.graph import build_graph
from resilience_mcp.metrics.scorecards import (
    get_scorecard,
    list_scorecard_failures,
    shipped_scorecards,
)
from resilience_mcp.models.metrics import ScorecardResult
from resilience_mcp.store import Store
from tests.metrics.sample import NOW, load_sample, sample_documents

pytestmark = pytest.mark.anyio


def task(name: str, owner: str, status: str, due: str) -> dict[str, Any]:
    spec = {"incident": "INC-1", "owner": owner, "status": status, "dueDate": due}
    return {
        "apiVersion": "resilience/v1",
        "kind": "RemediationTask",
        "metadata": {"name": name},
        "spec": spec,
    }


def scorecard(name: str, applies_to: str, *rules: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "resilience/v1",
        "kind": "Scorecard",
        "metadata": {"name": name},
        "spec": {"appliesTo": applies_to, "rules": list(rules)},
    }


TASKS = [
    task("rt-overdue", "team-a", "open", "2026-02-20T00:00:00Z"),
    task("rt-other-team", "team-b", "in_progress", "2026-02-20T00:00:00Z"),
    task("rt-done", "team-a", "done", "2026-02-20T00:00:00Z"),
    task("rt-not-due", "team-a", "open", "2026-03-20T00:00:00Z"),
]


async def score(store: Store, name: str, *extra: dict[str, Any]) -> ScorecardResult:
    await load_sample(store, *extra)
    graph = await build_graph(store)
    answer = await get_scorecard(store, graph, name, NOW)
    assert [r.scorecard for r in answer.results] == ["production-readiness"]
    return answer.results[0]


def load_problems(*extra: dict[str, Any]) -> list[LoadIssue]:
    """What the loader says about the sample catalog with `extra` documents, before writing."""
    _, problems, _ = parse_documents(sample_documents(*extra))
    return problems


def failing(result: ScorecardResult) -> list[str]:
    return [r.rule for r in result.failing]


def test_the_shipped_scorecard_has_rules_at_every_level() -> None:
    (card,) = shipped_scorecards()

    assert (card.name, card.applies_to) == ("production-readiness", "Service")
    assert {r.level for r in card.rules} == {"Basic", "Bronze", "Silver", "Gold"}
    assert all(r.hint for r in card.rules)


async def test_a_well_kept_service_stops_where_its_first_gap_is(store: Store) -> None:
    result = await score(store, "svc-a", *TASKS)

    # Owned, tiered, paged, with runbook and repository: Bronze. No SLO and an overdue
    # task of its own team hold it below Silver; no dashboard would hold it below Gold.
    assert (result.level, result.next_level) == ("Bronze", "Silver")
    assert [r.rule for r in result.next_step] == ["tier-1-slo", "no-overdue-remediation"]
    assert failing(result) == ["tier-1-slo", "no-overdue-remediation", "has-dashboards"]
    overdue = next(r for r in result.rules if r.rule == "no-overdue-remediation")
    assert "rt-overdue (P3, due 2026-02-20)" in overdue.detail
    assert "rt-other-team" not in overdue.detail
    mttr = next(r for r in result.rules if r.rule == "mttr-under-4h")
    assert (mttr.passed, mttr.detail) == (True, "MTTR 0.5 h over 1 incident(s) in 90d")
    assert next(r for r in result.rules if r.rule == "tier-1-kill-switches").passed


async def test_a_service_answers_for_the_overdue_tasks_of_its_incidents_and_their_reviews(
    store: Store,
) -> None:
    review = {
        "apiVersion": "resilience/v1",
        "kind": "Postmortem",
        "metadata": {"name": "PM-1"},
        "spec": {"incident": "INC-1", "summary": "Review of INC-1."},
    }
    via_review = task("rt-via-review", "team-a", "open", "2026-02-21T00:00:00Z")
    via_review["spec"] = {**via_review["spec"], "incident": None, "postmortem": "PM-1"}
    elsewhere = task("rt-svc-b", "team-a", "open", "2026-02-21T00:00:00Z")
    elsewhere["spec"] = {**elsewhere["spec"], "incident": "INC-3"}

    result = await score(store, "svc-a", review, via_review, elsewhere)
    graph = await build_graph(store)
    listed = await list_scorecard_failures(store, graph, NOW, rule="no-overdue-remediation")

    overdue = next(r for r in result.rules if r.rule == "no-overdue-remediation")
    assert "rt-via-review" in overdue.detail
    assert "rt-svc-b" not in overdue.detail
    # Scored one at a time or all together, a service answers for the same tasks.
    (in_list,) = [f for f in listed.failures if f.entity == "svc-a"]
    assert in_list.detail == overdue.detail


async def test_a_team_without_its_own_rotation_is_not_covered_by_its_parent(store: Store) -> None:
    result = await score(store, "svc-b")

    assert (result.level, result.next_level) == ("Basic", "Bronze")
    assert [r.rule for r in result.next_step] == ["owner-on-call", "has-repository"]
    # Tier-1 rules do not apply to a tier-2 service and count as passed.
    assert result.not_applicable == 3


async def test_a_service_without_an_owner_reaches_no_level(store: Store) -> None:
    result = await score(store, "svc-c")

    assert (result.level, result.next_level) == (None, "Basic")
    assert [r.rule for r in result.next_step] == ["has-owner"]
    assert result.next_step[0].hint


async def test_a_catalog_scorecard_of_the_same_name_replaces_the_default(store: Store) -> None:
    lenient = scorecard(
        "production-readiness",
        "Service",
        {"id": "owned", "level": "basic", "check": "has_owner"},
        {
            "id": "paged",
            "level": "Bronze",
            "check": "owner_has_on_call",
            "params": {"parents": True},
        },
    )

    result = await score(store, "svc-b", lenient)

    # team-b's parent team-a has a rotation, which this rule accepts; Bronze is the top.
    assert (result.level, result.next_level, result.failed) == ("Bronze", None, 0)


async def test_a_scorecard_loaded_later_moves_the_graph_that_scores_with_it(
    store: Store,
) -> None:
    await load_sample(store)
    before, _, _ = await store.graph_versions()
    only_owned = scorecard(
        "production-readiness", "Service", {"id": "owned", "level": "basic", "check": "has_owner"}
    )

    await load_sample(store, only_owned)

    after, _, _ = await store.graph_versions()
    assert after > before
    answer = await get_scorecard(store, await build_graph(store), "svc-b", NOW)
    assert [r.rule for r in answer.results[0].rules] == ["owned"]


async def test_scorecards_apply_to_teams_too(store: Store) -> None:
    teams = scorecard(
        "team-readiness",
        "team",
        {"id": "paged", "level": "Basic", "check": "owner_has_on_call"},
        {"id": "no-overdue", "level": "Bronze", "check": "no_overdue_remediation"},
    )
    await load_sample(store, teams, *TASKS)
    graph = await build_graph(store)

    answer = await get_scorecard(store, graph, "team:team-b", NOW)

    (result,) = answer.results
    assert (answer.kind, result.level) == ("Team", None)
    assert failing(result) == ["paged", "no-overdue"]
    assert "rt-other-team" in result.failing[1].detail


async def test_failures_across_the_catalog_are_listed_most_basic_first(store: Store) -> None:
    await load_sample(store, *TASKS)
    graph = await build_graph(store)

    answer = await list_scorecard_failures(store, graph, NOW)

    assert answer.entities == 3
    assert answer.levels == {"none": 1, "Basic": 1, "Bronze": 1}
    first = answer.failures[0]
    assert (first.entity, first.rule, first.level) == ("svc-c", "has-owner", "Basic")
    assert answer.by_rule["owner-on-call"] == 2
    levels = [f.level for f in answer.failures]
    assert levels == sorted(levels, key=["Basic", "Bronze", "Silver", "Gold"].index)


async def test_failures_narrow_by_rule_level_and_team_and_page(store: Store) -> None:
    await load_sample(store)
    graph = await build_graph(store)

    by_rule = await list_scorecard_failures(store, graph, NOW, rule="owner-on-call", limit=1)
    rest = await list_scorecard_failures(store, graph, NOW, rule="owner-on-call", limit=1, offset=1)
    by_team = await list_scorecard_failures(store, graph, NOW, team="team-b", level="Bronze")

    assert [f.entity for f in by_rule.failures + rest.failures] == ["svc-b", "svc-c"]
    assert (by_rule.page.next_cursor, rest.page.next_cursor) == ("1", None)
    assert {f.entity for f in by_team.failures} == {"svc-b"}
    assert {f.rule for f in by_team.failures} == {"owner-on-call", "has-repository"}


async def test_unknown_rules_and_scorecards_are_refused_with_the_known_ones(store: Store) -> None:
    await load_sample(store)
    graph = await build_graph(store)

    with pytest.raises(InvalidInputError, match="owner-on-call"):
        await list_scorecard_failures(store, graph, NOW, rule="on-call")
    with pytest.raises(NotFoundError, match="production-readiness"):
        await get_scorecard(store, graph, "svc-a", NOW, scorecard="deploy-safety")


@pytest.mark.parametrize(
    ("rule", "words"),
    [
        ({"id": "r", "level": "Basic", "check": "has_pager"}, "has_pager"),
        ({"id": "r", "level": "Platinum", "check": "has_owner"}, "Platinum"),
        (
            {"id": "r", "level": "Gold", "check": "mttr_under", "params": {"minutes": 5}},
            "takes no parameter minutes",
        ),
        ({"id": "r", "level": "Gold", "check": "mttr_under"}, "needs params.hours"),
        (
            {"id": "r", "level": "Gold", "check": "has_slo", "params": {"min": "two"}},
            "wrong type",
        ),
        (
            {"id": "r", "level": "Basic", "check": "has_field", "params": {"field": "runbok"}},
            "no field 'runbok'",
        ),
        ({"id": "r", "level": "Basic", "check": "has_owner", "when": {"tyre": [1]}}, "tyre"),
        ({"id": "r", "level": "Basic", "check": "has_owner", "unless": {}}, "unless"),
    ],
)
def test_bad_rules_are_refused_when_the_catalog_loads(rule: dict[str, Any], words: str) -> None:
    problems = load_problems(scorecard("broken", "Service", rule))

    assert [p.kind for p in problems] == ["Scorecard"]
    assert words in str(problems[0])


@pytest.mark.parametrize(
    ("card", "words"),
    [
        (
            scorecard("t", "Team", {"id": "r", "level": "Basic", "check": "has_slo"}),
            "works on Service, not on Team",
        ),
        (
            scorecard(
                "t",
                "Service",
                {"id": "r", "level": "Basic", "check": "has_owner"},
                {"id": "r", "level": "Gold", "check": "has_owner"},
            ),
            "used twice",
        ),
        (scorecard("t", "Gadget", {"id": "r", "level": "Basic", "check": "has_owner"}), "Gadget"),
    ],
)
def test_scorecards_whose_rules_cannot_apply_are_refused(card: dict[str, Any], words: str) -> None:
    problems = load_problems(card)

    assert len(problems) == 1
    assert words in str(problems[0])
