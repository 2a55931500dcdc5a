"""A small catalog whose every metric is worked out by hand in the tests.

The window is the four calendar weeks from Monday 2 February 2026 to Monday 2 March 2026
(NOW). svc-a (tier 1, team-a) ships often; svc-b (tier 2, team-b, whose parent is team-a)
once; svc-c has no owner.

svc-a deployments to prod, with their one commit each:
  d1 02-02 10:00  commit 02-01 10:00   lead 1440 min
  d2 02-03 10:00  commit 02-03 09:00   lead 60
  d3 02-04 10:00  commit 02-04 10:00   lead 0: dropped; rolled back, fixed by d4 at 12:00
  d4 02-04 12:00  commit 02-04 11:00   lead 60
  d5 02-10 10:00  commit 02-10 08:00   lead 120; its commit is INC-1's root cause
  d6 02-17 10:00  to staging: not counted
  d7 02-18 10:00  failed: not counted
  d8 02-24 10:00  commit 02-24 12:00   lead negative: dropped; INC-2 suspects it
svc-b: d9 02-25 10:00, commit 09:30, lead 30.

Incidents:
  INC-1 svc-a, started 02-10 11:00, detected 11:10, acknowledged 11:15, mitigated 11:30,
        resolved 13:00; root cause d5's commit (deployed 10:00)
  INC-2 svc-a, started 02-24 11:00, detected 11:20, still open; its timeline says it was
        acknowledged at 11:26 (the record has no time for it)
  INC-3 svc-b, started 02-26 00:00, resolved 00:30 (no mitigation recorded)
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from resilience_mcp.catalog.files import Document
from resilience_mcp.catalog.loader import load_documents
from resilience_mcp.store import Store

__all__ = ["NOW", "SINCE", "load_sample", "sample_documents"]

NOW = datetime(2026, 3, 2, tzinfo=UTC)
SINCE = datetime(2026, 2, 2, tzinfo=UTC)


def _doc(kind: str, name: str, spec: dict[str, Any], **metadata: Any) -> dict[str, Any]:
    return {
        "apiVersion": "resilience/v1",
        "kind": kind,
        "metadata": {"name": name, **metadata},
        "spec": spec,
    }


def _deployment(
    name: str, service: str, at: str, commit_at: str, env: str = "prod", status: str = "success"
) -> dict[str, Any]:
    spec = {
        "service": service,
        "environment": env,
        "commit": f"c-{name}",
        "commitTime": commit_at,
        "deployTime": at,
        "status": status,
    }
    return _doc("Deployment", name, spec)


def _organisation() -> list[dict[str, Any]]:
    return [
        _doc("Environment", "prod", {"type": "production"}),
        _doc("Environment", "staging", {"type": "staging"}),
        _doc("Person", "ana", {}),
        _doc("Person", "bo", {}),
        _doc("Team", "team-a", {"members": ["ana"]}),
        _doc("Team", "team-b", {"parent": "team-a", "members": ["bo"]}),
        _doc(
            "OnCall",
            "oncall-a",
            {"team": "team-a", "members": ["ana"], "start": "2026-01-05T09:00:00Z"},
        ),
        _doc(
            "Service",
            "svc-a",
            {
                "tier": 1,
                "owner": "team-a",
                "runbook": "https://runbooks.example.com/svc-a",
                "repository": "https://git.example.com/svc-a",
            },
        ),
        _doc("Service", "svc-b", {"tier": 2, "owner": "team-b"}),
        _doc("Service", "svc-c", {"tier": 3}),
        _doc("Feature", "f-search", {"services": ["svc-a"]}),
        _doc("FeatureFlag", "f-search-kill", {"purpose": "kill-switch", "feature": "f-search"}),
    ]


def _deployments() -> list[dict[str, Any]]:
    return [
        _deployment("d1", "svc-a", "2026-02-02T10:00:00Z", "2026-02-01T10:00:00Z"),
        _deployment("d2", "svc-a", "2026-02-03T10:00:00Z", "2026-02-03T09:00:00Z"),
        _deployment(
            "d3", "svc-a", "2026-02-04T10:00:00Z", "2026-02-04T10:00:00Z", status="rolled_back"
        ),
        _deployment("d4", "svc-a", "2026-02-04T12:00:00Z", "2026-02-04T11:00:00Z"),
        _deployment("d5", "svc-a", "2026-02-10T10:00:00Z", "2026-02-10T08:00:00Z"),
        _deployment("d6", "svc-a", "2026-02-17T10:00:00Z", "2026-02-17T09:00:00Z", env="staging"),
        _deployment("d7", "svc-a", "2026-02-18T10:00:00Z", "2026-02-18T09:00:00Z", status="failed"),
        _deployment("d8", "svc-a", "2026-02-24T10:00:00Z", "2026-02-24T12:00:00Z"),
        _deployment("d9", "svc-b", "2026-02-25T10:00:00Z", "2026-02-25T09:30:00Z"),
    ]


def _incidents() -> list[dict[str, Any]]:
    return [
        _doc(
            "Incident",
            "INC-1",
            {
                "severity": "SEV2",
                "status": "resolved",
                "services": ["svc-a"],
                "rootCauseCommit": "c-d5",
                "startedAt": "2026-02-10T11:00:00Z",
                "detectedAt": "2026-02-10T11:10:00Z",
                "acknowledgedAt": "2026-02-10T11:15:00Z",
                "mitigatedAt": "2026-02-10T11:30:00Z",
                "resolvedAt": "2026-02-10T13:00:00Z",
            },
        ),
        _doc(
            "Incident",
            "INC-2",
            {
                "severity": "SEV1",
                "status": "investigating",
                "services": ["svc-a"],
                "suspectedDeployments": ["d8"],
                "startedAt": "2026-02-24T11:00:00Z",
                "detectedAt": "2026-02-24T11:20:00Z",
                "timeline": [
                    {"at": "2026-02-24T11:20:00Z", "kind": "detection", "text": "Pager fires."},
                    {"at": "2026-02-24T11:26:00Z", "kind": "action", "text": "Acknowledged."},
                ],
            },
        ),
        _doc(
            "Incident",
            "INC-3",
            {
                "severity": "SEV3",
                "status": "resolved",
                "services": ["svc-b"],
                "startedAt": "2026-02-26T00:00:00Z",
                "detectedAt": "2026-02-26T00:05:00Z",
                "acknowledgedAt": "2026-02-26T00:06:00Z",
                "resolvedAt": "2026-02-26T00:30:00Z",
            },
        ),
    ]


def sample_documents(*extra: dict[str, Any]) -> list[Document]:
    bodies = [*_organisation(), *_deployments(), *_incidents(), *extra]
    return [Document("sample.yaml", i, body) for i, body in enumerate(bodies, start=1)]


async def load_sample(store: Store, *extra: dict[str, Any]) -> None:
    await load_documents(store, sample_documents(*extra), source="sample")
