"""Payloads written after each API's documented response shapes, for the fakes to replay.

PagerDuty REST API v2 objects (services, teams, escalation policies, on-calls with users
included, incidents, log entries), Backstage catalog entities as the catalog API returns
them (with uid, etag and relations), and GitHub `push` and `deployment_status` events.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from resilience_mcp.catalog import DEMO_ANCHOR

NOW = DEMO_ANCHOR
PD = "https://api.pagerduty.com"
PD_WEB = "https://acme.pagerduty.com"

# The catalog the PagerDuty and webhook tests start from: what Backstage or files declared.
CATALOG = """\
apiVersion: resilience/v1
kind: Team
metadata: {name: team-payments, title: Payments}
spec: {chatChannel: "#payments"}
---
apiVersion: resilience/v1
kind: Person
metadata: {name: dev-raman, title: Dev Raman}
spec: {email: dev.raman@acme.example, memberOf: [team-payments]}
---
apiVersion: resilience/v1
kind: Service
metadata:
  name: payments-api
  title: Payments API
  annotations: {pagerduty.com/service-id: PSVC001, github.com/project-slug: acme/payments-api}
spec: {owner: team-payments, tier: 1}
---
apiVersion: resilience/v1
kind: Service
metadata: {name: checkout, title: Checkout}
spec: {owner: team-payments, tier: 1, repository: "https://github.com/acme/checkout"}
---
apiVersion: resilience/v1
kind: Environment
metadata: {name: production}
spec: {type: production}
"""


def iso(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def ref(kind: str, ident: str, summary: str, path: str) -> dict[str, Any]:
    return {
        "id": ident,
        "type": f"{kind}_reference",
        "summary": summary,
        "self": f"{PD}/{path}/{ident}",
        "html_url": f"{PD_WEB}/{path}/{ident}",
    }


def pd_service(ident: str, name: str, policy: str, teams: list[tuple[str, str]]) -> dict[str, Any]:
    return {
        "id": ident,
        "type": "service",
        "summary": name,
        "self": f"{PD}/services/{ident}",
        "html_url": f"{PD_WEB}/service-directory/{ident}",
        "name": name,
        "description": f"{name} in production",
        "auto_resolve_timeout": 14400,
        "acknowledgement_timeout": 600,
        "created_at": "2025-03-02T10:12:00Z",
        "status": "active",
        "alert_creation": "create_alerts_and_incidents",
        "incident_urgency_rule": {"type": "constant", "urgency": "high"},
        "escalation_policy": ref(
            "escalation_policy", policy, f"{policy} policy", "escalation_policies"
        ),
        "teams": [ref("team", t, n, "teams") for t, n in teams],
        "integrations": [],
    }


def pd_team(ident: str, name: str) -> dict[str, Any]:
    return {
        "id": ident,
        "type": "team",
        "summary": name,
        "self": f"{PD}/teams/{ident}",
        "html_url": f"{PD_WEB}/teams/{ident}",
        "name": name,
        "description": f"The {name} team",
        "default_role": "manager",
        "parent": None,
    }


def pd_policy(
    ident: str, name: str, schedule: tuple[str, str], teams: list[tuple[str, str]]
) -> dict[str, Any]:
    return {
        "id": ident,
        "type": "escalation_policy",
        "summary": name,
        "self": f"{PD}/escalation_policies/{ident}",
        "html_url": f"{PD_WEB}/escalation_policies/{ident}",
        "name": name,
        "escalation_rules": [
            {
                "id": f"R{ident}",
                "escalation_delay_in_minutes": 30,
                "targets": [ref("schedule", schedule[0], schedule[1], "schedules")],
            }
        ],
        "services": [],
        "num_loops": 0,
        "teams": [ref("team", t, n, "teams") for t, n in teams],
        "on_call_handoff_notifications": "if_has_services",
    }


def pd_user(ident: str, name: str, email: str) -> dict[str, Any]:
    return {
        "id": ident,
        "type": "user",
        "summary": name,
        "self": f"{PD}/users/{ident}",
        "html_url": f"{PD_WEB}/users/{ident}",
        "name": name,
        "email": email,
        "time_zone": "Europe/Berlin",
        "color": "green",
        "role": "user",
        "job_title": "Engineer",
        "teams": [],
    }


def pd_oncall(
    user: dict[str, Any],
    policy: tuple[str, str],
    schedule: tuple[str, str] | None,
    start: datetime | None,
    end: datetime | None,
    level: int = 1,
) -> dict[str, Any]:
    return {
        "user": user,
        "schedule": ref("schedule", *schedule, "schedules") if schedule else None,
        "escalation_policy": ref("escalation_policy", *policy, "escalation_policies"),
        "escalation_level": level,
        "start": iso(start) if start else None,
        "end": iso(end) if end else None,
    }


def pd_incident(
    ident: str,
    number: int,
    title: str,
    service: tuple[str, str],
    *,
    status: str,
    created: datetime,
    urgency: str = "high",
    priority: str | None = None,
) -> dict[str, Any]:
    return {
        "id": ident,
        "type": "incident",
        "summary": f"[#{number}] {title}",
        "self": f"{PD}/incidents/{ident}",
        "html_url": f"{PD_WEB}/incidents/{ident}",
        "incident_number": number,
        "title": title,
        "description": title,
        "created_at": iso(created),
        "updated_at": iso(created + timedelta(minutes=40)),
        "status": status,
        "incident_key": f"key-{ident.lower()}",
        "service": ref("service", *service, "services"),
        "assignments": [],
        "last_status_change_at": iso(created + timedelta(minutes=40)),
        "first_trigger_log_entry": ref("log_entry", f"L{ident}1", "Triggered", "log_entries"),
        "escalation_policy": ref("escalation_policy", "PEP001", "Payments", "escalation_policies"),
        "teams": [],
        "priority": {"id": "PPRIO1", "type": "priority", "summary": priority} if priority else None,
        "urgency": urgency,
        "resolve_reason": None,
        "alert_counts": {"all": 1, "triggered": 0, "resolved": 1},
    }


def pd_log_entry(
    kind: str, incident: str, at: datetime, summary: str, agent: str | None = None
) -> dict[str, Any]:
    return {
        "id": f"L{incident}{kind[:3].upper()}{at.minute}",
        "type": f"{kind}_log_entry",
        "summary": summary,
        "self": f"{PD}/log_entries/L{incident}",
        "html_url": None,
        "created_at": iso(at),
        "agent": ref("user", "PUSR01", agent, "users") if agent else None,
        "channel": {"type": "auto" if kind == "trigger" else "web_trigger"},
        "service": ref("service", "PSVC001", "Payments API", "services"),
        "incident": ref("incident", incident, "incident", "incidents"),
        "teams": [],
        "contexts": [],
    }


def pagerduty_account() -> dict[str, tuple[str, list[Any]]]:
    """A small PagerDuty account: three services (one unknown to the catalog), two teams,
    one escalation policy with a weekly schedule, and two incidents with their logs."""
    payments = ("PTEAM01", "Payments")
    sre = ("PTEAM02", "Site Reliability")
    dev = pd_user("PUSR01", "Dev Raman", "Dev.Raman@acme.example")
    ana = pd_user("PUSR02", "Ana Lima", "ana.lima@acme.example")
    week = timedelta(days=7)
    start = NOW - timedelta(days=2)
    opened = NOW - timedelta(days=3)
    return {
        "/services": (
            "services",
            [
                pd_service("PSVC001", "Payments API (prod)", "PEP001", [payments]),
                pd_service("PSVC002", "Checkout", "PEP001", [payments]),
                pd_service("PSVC003", "Legacy Billing", "PEP002", [sre]),
            ],
        ),
        "/teams": ("teams", [pd_team(*payments), pd_team(*sre)]),
        "/escalation_policies": (
            "escalation_policies",
            [
                pd_policy("PEP001", "Payments", ("PSCH01", "Payments primary"), [payments]),
                pd_policy("PEP002", "SRE", ("PSCH02", "SRE primary"), [sre]),
            ],
        ),
        "/oncalls": (
            "oncalls",
            [
                pd_oncall(
                    dev, ("PEP001", "Payments"), ("PSCH01", "Payments primary"), start, start + week
                ),
                pd_oncall(
                    ana,
                    ("PEP001", "Payments"),
                    ("PSCH01", "Payments primary"),
                    start + week,
                    start + 2 * week,
                ),
                pd_oncall(ana, ("PEP001", "Payments"), None, None, None, level=2),
                pd_oncall(ana, ("PEP002", "SRE"), ("PSCH02", "SRE primary"), start, start + week),
            ],
        ),
        "/incidents": (
            "incidents",
            [
                pd_incident(
                    "PINC01",
                    1042,
                    "Card payments failing",
                    ("PSVC001", "Payments API (prod)"),
                    status="resolved",
                    created=opened,
                    priority="P1",
                ),
                pd_incident(
                    "PINC02",
                    1043,
                    "Billing exports slow",
                    ("PSVC003", "Legacy Billing"),
                    status="triggered",
                    created=NOW - timedelta(hours=1),
                    urgency="low",
                ),
            ],
        ),
        "/log_entries": (
            "log_entries",
            [
                pd_log_entry("trigger", "PINC01", opened, "Triggered through the API"),
                pd_log_entry(
                    "acknowledge",
                    "PINC01",
                    opened + timedelta(minutes=4),
                    "Acknowledged by Dev Raman",
                    "Dev Raman",
                ),
                pd_log_entry(
                    "annotate",
                    "PINC01",
                    opened + timedelta(minutes=9),
                    "Rolled back 2.14.0",
                    "Dev Raman",
                ),
                pd_log_entry(
                    "resolve",
                    "PINC01",
                    opened + timedelta(minutes=40),
                    "Resolved by Dev Raman",
                    "Dev Raman",
                ),
                pd_log_entry(
                    "trigger", "PINC02", NOW - timedelta(hours=1), "Triggered through the API"
                ),
            ],
        ),
    }


def backstage_entity(kind: str, name: str, spec: dict[str, Any], **metadata: Any) -> dict[str, Any]:
    """An entity as the Backstage catalog API returns it."""
    version = "backstage.io/v1alpha1"
    return {
        "apiVersion": version,
        "kind": kind,
        "metadata": {
            "namespace": "default",
            "name": name,
            "uid": f"uid-{kind.lower()}-{name}",
            "etag": f"etag-{name}",
            "annotations": {
                "backstage.io/managed-by-location": "url:https://github.com/acme/catalog/blob/main/all.yaml",
                "backstage.io/managed-by-origin-location": "url:https://github.com/acme/catalog/blob/main/all.yaml",
            },
            **metadata,
        },
        "spec": spec,
        "relations": [],
    }


def backstage_catalog() -> list[dict[str, Any]]:
    return [
        backstage_entity(
            "Group",
            "payments",
            {"type": "team", "children": [], "profile": {"displayName": "Payments"}},
        ),
        backstage_entity(
            "User",
            "dev.raman",
            {
                "profile": {"displayName": "Dev Raman", "email": "dev.raman@acme.example"},
                "memberOf": ["payments"],
            },
        ),
        backstage_entity("System", "payments-platform", {"owner": "group:default/payments"}),
        backstage_entity(
            "Component",
            "payments-api",
            {
                "type": "service",
                "lifecycle": "production",
                "owner": "group:default/payments",
                "system": "payments-platform",
                "providesApis": ["payments"],
            },
        ),
        backstage_entity(
            "Component",
            "payments-db",
            {
                "type": "database",
                "lifecycle": "production",
                "owner": "payments",
                "system": "payments-platform",
            },
        ),
        backstage_entity(
            "API",
            "payments",
            {
                "type": "openapi",
                "lifecycle": "production",
                "owner": "payments",
                "definition": "openapi: 3.0.0",
            },
        ),
        backstage_entity(
            "Template", "new-service", {"type": "service", "steps": []}, title="New service"
        ),
        backstage_entity("Location", "acme", {"targets": ["./all.yaml"]}),
    ]


def github_push(
    repo: str, commits: list[tuple[str, datetime]], *, pushed: datetime | None = None
) -> dict[str, Any]:
    """A push event; `pushed` is when it happened (default: its last commit's time)."""
    owner, name = repo.split("/")
    pushed_at = pushed or commits[-1][1]
    return {
        "ref": "refs/heads/main",
        "before": "0" * 40,
        "after": commits[-1][0],
        "repository": {
            "id": 1296269,
            "name": name,
            "full_name": repo,
            "html_url": f"https://github.com/{repo}",
            "default_branch": "main",
            "pushed_at": int(pushed_at.timestamp()),
            "owner": {"login": owner, "type": "Organization"},
        },
        "pusher": {"name": "dev-raman", "email": "dev.raman@acme.example"},
        "sender": {"login": "dev-raman", "type": "User"},
        "created": False,
        "deleted": False,
        "forced": False,
        "commits": [
            {
                "id": sha,
                "tree_id": "f" * 40,
                "distinct": True,
                "message": f"change {i}",
                "timestamp": at.isoformat(),
                "url": f"https://github.com/{repo}/commit/{sha}",
                "author": {"name": "Dev Raman", "email": "dev.raman@acme.example"},
                "added": [],
                "removed": [],
                "modified": ["app.py"],
            }
            for i, (sha, at) in enumerate(commits)
        ],
        "head_commit": {"id": commits[-1][0], "timestamp": commits[-1][1].isoformat()},
    }


def github_deployment_status(
    repo: str,
    deployment_id: int,
    sha: str,
    state: str,
    at: datetime,
    environment: str = "production",
) -> dict[str, Any]:
    owner, name = repo.split("/")
    return {
        "action": "created",
        "deployment_status": {
            "id": deployment_id * 10 + 1,
            "state": state,
            "creator": {"login": "deploy-bot[bot]", "type": "Bot"},
            "description": f"Deployment {state}",
            "environment": environment,
            "target_url": f"https://ci.acme.example/deploys/{deployment_id}",
            "log_url": f"https://ci.acme.example/deploys/{deployment_id}/log",
            "created_at": iso(at),
            "updated_at": iso(at),
            "deployment_url": f"https://api.github.com/repos/{repo}/deployments/{deployment_id}",
            "repository_url": f"https://api.github.com/repos/{repo}",
        },
        "deployment": {
            "id": deployment_id,
            "sha": sha,
            "ref": "v2.15.0",
            "task": "deploy",
            "payload": {},
            "original_environment": environment,
            "environment": environment,
            "description": None,
            "creator": {"login": "dev-raman", "type": "User"},
            "created_at": iso(at - timedelta(minutes=5)),
            "updated_at": iso(at),
            "transient_environment": False,
            "production_environment": environment == "production",
        },
        "repository": {
            "id": 1296269,
            "name": name,
            "full_name": repo,
            "html_url": f"https://github.com/{repo}",
            "owner": {"login": owner, "type": "Organization"},
        },
        "sender": {"login": "deploy-bot[bot]", "type": "Bot"},
    }
