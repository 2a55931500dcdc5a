"""Which tools a server offers: toolsets, the writes switch, and a toolset name that is wrong."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from resilience_mcp.cli import main
from resilience_mcp.errors import InvalidInputError
from resilience_mcp.server import ServerConfig, build_server

# The questions of an incident: the default toolset.
INCIDENT_QUESTIONS = {
    "get_owner",
    "get_service",
    "search_catalog",
    "impact_of_incident",
    "get_dependencies",
    "get_customer_impact",
    "explain_dependency",
    "find_risks",
    "list_feature_flags",
    "get_feature",
    "list_recent_changes",
    "get_flag_history",
    "find_similar_rca",
    "get_incident",
    "list_incidents",
    "list_remediation_tasks",
    "find_recurring_incidents",
}
METRICS = {
    "get_dora_metrics",
    "get_reliability",
    "get_slo_status",
    "get_scorecard",
    "list_scorecard_failures",
}
# The writes toolset without writes on: the audit log and the list of actions.
WRITES_READ_SIDE = {"get_audit_log", "list_actions"}
WRITES = {
    "declare_incident",
    "update_incident",
    "record_postmortem",
    "create_remediation_task",
    "update_remediation_task",
    "set_feature_flag",
    "run_action",
}


def offered(**options: Any) -> set[str]:
    # Listing tools opens nothing: no store, no client.
    return {tool.name for tool in asyncio.run(build_server(ServerConfig(**options)).list_tools())}


def test_the_default_toolset_is_exactly_the_questions_of_an_incident() -> None:
    assert offered() == INCIDENT_QUESTIONS
    assert offered(toolsets=("default",)) == INCIDENT_QUESTIONS


@pytest.mark.parametrize(
    ("toolsets", "expected"),
    [
        (("metrics",), METRICS),
        (("default", "metrics"), INCIDENT_QUESTIONS | METRICS),
        (("all",), INCIDENT_QUESTIONS | METRICS | WRITES_READ_SIDE),
    ],
    ids=["metrics", "default,metrics", "all"],
)
def test_the_metrics_toolset_adds_the_metric_tools(
    toolsets: tuple[str, ...], expected: set[str]
) -> None:
    assert offered(toolsets=toolsets) == expected


@pytest.mark.parametrize("toolsets", [("default",), ("all",)])
def test_the_write_tools_are_offered_only_with_writes_on(toolsets: tuple[str, ...]) -> None:
    off = offered(toolsets=toolsets)
    on = offered(toolsets=toolsets, enable_writes=True)

    assert off & WRITES == set()
    # Turning writes on needs no toolset named as well.
    assert on - off == WRITES | (WRITES_READ_SIDE - off)


def test_an_unknown_toolset_is_refused_naming_the_ones_there_are() -> None:
    with pytest.raises(InvalidInputError) as caught:
        build_server(ServerConfig(toolsets=("default", "metrcs")))

    assert str(caught.value) == (
        "Unknown toolset(s) metrcs; choose from default, metrics, writes or all."
    )


def test_serve_with_an_unknown_toolset_exits_with_the_same_message(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status = main(["serve", "--toolsets", "default,metrcs"])

    assert status == 1
    assert "Unknown toolset(s) metrcs; choose from default, metrics" in capsys.readouterr().err
