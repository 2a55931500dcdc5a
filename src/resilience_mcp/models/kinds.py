"""The catalog's kinds and every spelling of them a file or an agent may use."""

from __future__ import annotations

__all__ = ["KIND_ALIASES", "canonical_kind"]

# Every spelling of a kind a file may use, mapped to the catalog kind it becomes.
KIND_ALIASES: dict[str, str] = {
    "team": "Team",
    "group": "Team",
    "person": "Person",
    "user": "Person",
    "domain": "Domain",
    "system": "System",
    "service": "Service",
    "component": "Service",
    "resource": "Service",
    "api": "Service",
    "environment": "Environment",
    "feature": "Feature",
    "featureflag": "FeatureFlag",
    "flag": "FeatureFlag",
    "customer": "Customer",
    "oncall": "OnCall",
    "deployment": "Deployment",
    "incident": "Incident",
    "postmortem": "Postmortem",
    "remediationtask": "RemediationTask",
    "task": "RemediationTask",
    "slo": "SLO",
    "scorecard": "Scorecard",
}


def canonical_kind(kind: str) -> str | None:
    """`component`, `Group`, `feature-flag` -> the catalog kind, or None."""
    return KIND_ALIASES.get(kind.replace("-", "").replace("_", "").lower())
