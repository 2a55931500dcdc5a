"""How well things run: DORA's four keys, MTTR and MTBF, SLO error budgets, scorecards."""

from resilience_mcp.metrics.dora import compute_dora, get_dora_metrics
from resilience_mcp.metrics.reliability import compute_mtbf, find_milestones, get_reliability
from resilience_mcp.metrics.scorecards import (
    get_scorecard,
    list_scorecard_failures,
    list_scorecards,
)
from resilience_mcp.metrics.slo import compute_slo_status, get_slo_status

__all__ = [
    "compute_dora",
    "compute_mtbf",
    "compute_slo_status",
    "find_milestones",
    "get_dora_metrics",
    "get_reliability",
    "get_scorecard",
    "get_slo_status",
    "list_scorecard_failures",
    "list_scorecards",
]
