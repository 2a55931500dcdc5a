"""The metrics toolset on the demo catalog, through an in-process MCP client."""

from __future__ import annotations

from typing import Any

import pytest
from mcp import Client

pytestmark = pytest.mark.anyio


async def call(client: Client, tool: str, **arguments: Any) -> tuple[dict[str, Any], str]:
    result = await client.call_tool(tool, arguments)
    text = " ".join(getattr(block, "text", "") for block in result.content)
    assert not result.is_error, text
    assert result.structured_content is not None
    return result.structured_content, text


async def error_text(client: Client, tool: str, **arguments: Any) -> str:
    result = await client.call_tool(tool, arguments)
    assert result.is_error
    return " ".join(getattr(block, "text", "") for block in result.content)


async def test_the_organisation_ships_daily_and_every_key_has_a_band(demo_client: Client) -> None:
    dora, text = await call(demo_client, "get_dora_metrics")

    frequency = dora["deployment_frequency"]
    assert frequency["deployments"] > 500
    assert (frequency["bucket"], frequency["band"]) == ("daily", "elite")
    for key in ("lead_time", "change_failure_rate", "time_to_restore"):
        assert dora[key]["band"] in ("elite", "high", "medium", "low")
    # The open incident (INC-2049) names a payments deployment: counted, not yet restored.
    assert dora["time_to_restore"]["open"] >= 1
    assert dora["change_failure_rate"]["linked_to_incidents"] >= 5
    assert text.startswith("DORA for the organisation")


async def test_a_team_trend_by_week_keeps_the_newest_weeks(demo_client: Client) -> None:
    dora, _ = await call(
        demo_client, "get_dora_metrics", scope="team", name="payments", group_by="week", limit=4
    )

    assert (dora["name"], dora["corrected_from"]) == ("team-payments", "payments")
    assert len(dora["periods"]) == 4
    assert dora["periods_page"]["truncated"] is True
    starts = [p["start"] for p in dora["periods"]]
    assert starts == sorted(starts)
    weekly = sum(p["deployments"] for p in dora["periods"])
    assert 0 < weekly <= dora["deployment_frequency"]["deployments"]


async def test_payments_api_reliability_shows_its_open_incident_mtbf_and_burnt_budget(
    demo_client: Client,
) -> None:
    answer, text = await call(demo_client, "get_reliability", name="payments-api")

    assert answer["kind"] == "Service"
    assert answer["open_incidents"] == 1
    assert answer["recent_incidents"][0]["key"] == "INC-2049"
    assert answer["mtbf"]["mtbf_hours"] is not None
    assert answer["mtbf"]["intervals"] == answer["mtbf"]["failures"] - 1
    restore = answer["time_to_restore"]
    assert restore["count"] == answer["incidents"] - 1
    assert restore["median_minutes"] <= restore["mean_minutes"]
    slos = {s["name"]: s["status"] for s in answer["slos"]}
    assert slos["payments-api-availability"] == "exhausted"
    assert "MTBF" in text


async def test_the_organisation_ranks_checkout_and_payments_as_flakiest(
    demo_client: Client,
) -> None:
    answer, _ = await call(demo_client, "get_reliability", name="organisation", limit=3)

    flakiest = [f["service"] for f in answer["flakiest"]]
    assert flakiest[:2] == ["checkout", "payments-api"]
    assert answer["flakiest_page"]["truncated"] is True
    failures = [f["failures"] for f in answer["flakiest"]]
    assert failures == sorted(failures, reverse=True)


async def test_slo_status_puts_exhausted_budgets_first(demo_client: Client) -> None:
    answer, text = await call(demo_client, "get_slo_status")

    assert answer["page"]["total"] == 13
    statuses = [s["status"] for s in answer["slos"]]
    assert statuses[0] == "exhausted"
    assert answer["by_status"]["exhausted"] >= 1
    assert all(s["measurements"] > 0 for s in answer["slos"])
    timeslices = [s for s in answer["slos"] if s["budgeting_method"] == "timeslices"]
    assert timeslices
    assert all(s["error_budget"] > 0 for s in timeslices)
    assert "budget left" in text


async def test_payments_api_is_bronze_and_its_next_step_names_the_overdue_task(
    demo_client: Client,
) -> None:
    answer, text = await call(demo_client, "get_scorecard", name="payments-api")

    (result,) = answer["results"]
    assert (result["level"], result["next_level"]) == ("Bronze", "Silver")
    next_rules = {r["rule"] for r in result["next_step"]}
    assert "no-overdue-remediation" in next_rules
    assert "rt-2031-pgbouncer" in text


async def test_the_feature_store_fails_on_call_because_its_team_has_no_rotation(
    demo_client: Client,
) -> None:
    answer, _ = await call(demo_client, "get_scorecard", name="ml-feature-store")

    (result,) = answer["results"]
    assert result["level"] == "Basic"
    assert [r["rule"] for r in result["next_step"]] == ["owner-on-call"]


async def test_scorecard_failures_by_rule_find_the_unpaged_services(demo_client: Client) -> None:
    answer, _ = await call(demo_client, "list_scorecard_failures", rule="owner-on-call")

    assert {f["entity"] for f in answer["failures"]} == {
        "ml-feature-store",
        "data-warehouse",
        "reviews-service",
    }
    assert answer["entities"] == 40
    # reviews-service has no owner; the data team's two services have nobody on call.
    assert (answer["levels"]["none"], answer["levels"]["Basic"]) == (1, 2)
    assert sum(answer["levels"].values()) == 40


async def test_scorecard_failures_for_a_team_page_with_a_cursor(demo_client: Client) -> None:
    first, _ = await call(demo_client, "list_scorecard_failures", team="team-payments", limit=2)
    second, _ = await call(
        demo_client,
        "list_scorecard_failures",
        team="team-payments",
        limit=2,
        cursor=first["page"]["next_cursor"],
    )

    assert first["page"]["truncated"] is True
    assert {f["owner"] for f in first["failures"] + second["failures"]} == {"team-payments"}
    assert first["failures"] != second["failures"]


@pytest.mark.parametrize(
    ("tool", "arguments", "words"),
    [
        ("get_dora_metrics", {"scope": "service"}, "needs a name"),
        ("get_dora_metrics", {"since": "last week"}, "neither a date"),
        ("get_reliability", {"name": "paymnets-zzz"}, "No "),
        ("get_slo_status", {"long_window": "forever"}, "not a length of time"),
        ("list_scorecard_failures", {"rule": "has-pager"}, "the rules are"),
        ("get_scorecard", {"name": "payments-api", "scorecard": "deploy-safety"}, "production"),
    ],
)
async def test_mistakes_come_back_as_sentences_the_agent_can_act_on(
    demo_client: Client, tool: str, arguments: dict[str, Any], words: str
) -> None:
    assert words in await error_text(demo_client, tool, **arguments)
