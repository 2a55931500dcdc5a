"""PagerDuty (REST API v2): teams, escalation policies, who is on call, incidents.

Every listing is read whole (`offset`/`limit` pages until `more` is false) before anything
is loaded. PagerDuty services are matched to catalog services by the
`pagerduty.com/service-id` annotation Backstage uses, else by name or title; the rest are
reported, not created. What PagerDuty adds:

- a Team for each PagerDuty team the catalog does not have (a catalog team of the same
  name, or with a `pagerduty.com/team-id` annotation, is used as it is);
- a Person for each person on call the catalog does not know (matched by email, then name);
- an OnCall rotation per escalation policy and schedule, primary level only: its shifts
  in the synced window are recorded exactly (as overrides), after it the rotation repeats;
- an Incident per PagerDuty incident of the window (`PD-<number>`), linked to the matched
  service, with its timeline from the log entries.

Teams, people and rotations that PagerDuty no longer has are pruned; incidents are history
and stay.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ValidationError

from resilience_mcp.catalog.files import Document
from resilience_mcp.connectors.documents import (
    NonEmpty,
    ReadFields,
    SyncReport,
    catalog_document,
    load_synced,
    shape_problem,
    slugify,
)
from resilience_mcp.connectors.http import ApiClient, collect_offset_pages
from resilience_mcp.graph import CatalogGraph, build_graph, normalise_name
from resilience_mcp.store import Store

__all__ = [
    "PAGERDUTY_API",
    "SERVICE_ANNOTATION",
    "PagerDutyData",
    "fetch_pagerduty",
    "pagerduty_documents",
    "pagerduty_headers",
    "sync_pagerduty",
]

logger = logging.getLogger(__name__)

PAGERDUTY_API = "https://api.pagerduty.com"
SERVICE_ANNOTATION = "pagerduty.com/service-id"
TEAM_ANNOTATION = "pagerduty.com/team-id"
PRUNED_KINDS = ("Team", "Person", "OnCall")
# A person on call with no end (named directly in a policy) is on call from here on.
ALWAYS = "2000-01-01T00:00:00Z"
_STATUS = {"triggered": "investigating", "acknowledged": "identified", "resolved": "resolved"}


def pagerduty_headers(token: str) -> dict[str, str]:
    return {
        "Authorization": f"Token token={token}",
        "Accept": "application/vnd.pagerduty+json;version=2",
    }


@dataclass
class PagerDutyData:
    """Everything one sync reads, fetched before anything is converted."""

    services: list[Any] = field(default_factory=list)
    teams: list[Any] = field(default_factory=list)
    escalation_policies: list[Any] = field(default_factory=list)
    oncalls: list[Any] = field(default_factory=list)
    incidents: list[Any] = field(default_factory=list)
    log_entries: list[Any] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {name: len(items) for name, items in vars(self).items()}


async def fetch_pagerduty(
    client: ApiClient,
    *,
    now: datetime,
    incident_days: float = 30.0,
    oncall_days: float = 7.0,
    page_size: int = 100,
) -> PagerDutyData:
    """Read every listing the sync needs; any failed page fails the whole fetch."""
    since = _iso(now - timedelta(days=incident_days))
    window = {"since": since, "until": _iso(now), "time_zone": "UTC"}
    ahead = {"since": _iso(now), "until": _iso(now + timedelta(days=oncall_days))}

    async def listing(path: str, key: str, params: dict[str, Any] | None = None) -> list[Any]:
        return await collect_offset_pages(client, path, key, params=params, limit=page_size)

    return PagerDutyData(
        services=await listing("/services", "services"),
        teams=await listing("/teams", "teams"),
        escalation_policies=await listing("/escalation_policies", "escalation_policies"),
        oncalls=await listing(
            "/oncalls", "oncalls", {**ahead, "time_zone": "UTC", "include[]": ["users"]}
        ),
        incidents=await listing("/incidents", "incidents", window),
        log_entries=await listing("/log_entries", "log_entries", {**window, "is_overview": "true"}),
    )


async def sync_pagerduty(
    store: Store,
    client: ApiClient,
    *,
    now: datetime,
    name: str = "pagerduty",
    label: str = "pagerduty",
    incident_days: float = 30.0,
    oncall_days: float = 7.0,
    page_size: int = 100,
    prune: bool = True,
    dry_run: bool = False,
) -> SyncReport:
    """Fetch everything, match it against the catalog, and load it as one set."""
    data = await fetch_pagerduty(
        client,
        now=now,
        incident_days=incident_days,
        oncall_days=oncall_days,
        page_size=page_size,
    )
    report = SyncReport(source=name, label=label, fetched=data.counts())
    graph = await build_graph(store)
    # Matching and converting a large account is CPU work: keep it off the event loop.
    documents = await asyncio.to_thread(pagerduty_documents, data, graph, report)
    await load_synced(
        store,
        documents,
        report,
        prune=prune,
        prune_kinds=PRUNED_KINDS,
        dry_run=dry_run,
        now=now,
    )
    return report


def pagerduty_documents(
    data: PagerDutyData, graph: CatalogGraph, report: SyncReport
) -> list[Document]:
    """Catalog documents for what PagerDuty holds; malformed and unmatched go to `report`."""
    build = _Conversion(graph, report)
    data = build.well_formed(data)
    build.match_services(data.services)
    build.add_teams(data.teams, data.escalation_policies)
    build.add_rotations(data.oncalls, data.escalation_policies)
    build.add_incidents(data.incidents, data.log_entries)
    for reason in report.skipped:
        logger.warning("skipped a record: %s", reason)
    return build.documents()


class _Conversion:
    """The state of one conversion: what matched, and the documents so far."""

    def __init__(self, graph: CatalogGraph, report: SyncReport) -> None:
        self.graph = graph
        self.report = report
        self.services: dict[str, str] = {}  # PagerDuty service id -> catalog service
        self.service_policy: dict[str, str] = {}  # catalog service -> escalation policy id
        self.teams: dict[str, str] = {}  # PagerDuty team id -> catalog team
        self.team_docs: dict[str, dict[str, Any]] = {}
        self.people: dict[str, str] = {}  # PagerDuty user id -> catalog person
        self.person_docs: dict[str, dict[str, Any]] = {}
        self.rotation_docs: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
        self.incident_docs: list[tuple[str, dict[str, Any], dict[str, Any]]] = []

    def ours(self, entity: Any) -> bool:
        """Whether a catalog entity was written by this source (and so is written again)."""
        return getattr(entity, "source", None) == self.report.label

    def skip(self, what: str, record: Any, problem: str) -> None:
        ident = record.get("id") if isinstance(record, dict) else None
        named = ident if isinstance(ident, str) and ident else "(no id)"
        self.report.skipped.append(f"PagerDuty {what} {named}: {problem}")

    def well_formed(self, data: PagerDutyData) -> PagerDutyData:
        """The records of the shape the conversion reads; every other one is skipped."""
        kept = {
            listing: [r for r in getattr(data, listing) if self._fits(what, shape, r)]
            for listing, (what, shape) in _SHAPES.items()
        }
        return PagerDutyData(**kept)

    def _fits(self, what: str, shape: type[BaseModel], record: Any) -> bool:
        try:
            shape.model_validate(record)
        except ValidationError as exc:
            self.skip(what, record, shape_problem(exc, record))
            return False
        return True

    # Services

    def match_services(self, services: Iterable[Any]) -> None:
        by_annotation = {
            svc.annotations.get(SERVICE_ANNOTATION): svc.name
            for svc in self.graph.services.values()
            if svc.annotations.get(SERVICE_ANNOTATION)
        }
        by_name: dict[str, str] = {}
        for svc in self.graph.services.values():
            for text in (svc.name, svc.title):
                if text:
                    by_name.setdefault(normalise_name(text), svc.name)
        for record in services:
            found = by_annotation.get(record["id"]) or by_name.get(normalise_name(record["name"]))
            if found is None:
                self.report.unmatched.append(
                    f"PagerDuty service {record['name']!r} ({record['id']})"
                )
                continue
            self.services[record["id"]] = found
            if policy := _ref_id(record.get("escalation_policy")):
                self.service_policy[found] = policy

    # Teams

    def add_teams(self, teams: Iterable[Any], policies: list[Any]) -> None:
        known = self._team_keys()
        escalation = _policy_urls(policies)
        for record in teams:
            key = normalise_name(record["name"])
            existing = (
                known.get(record["id"]) or known.get(key) or known.get(key.removeprefix("team-"))
            )
            if existing is not None and not self.ours(self.graph.teams[existing]):
                self.teams[record["id"]] = existing
                continue
            name = existing or self._free_name(slugify(record["name"]), self.team_docs)
            self.teams[record["id"]] = name
            self.team_docs[name] = {
                "record": record,
                "spec": {"escalation": escalation.get(record["id"]), "members": []},
            }

    def _team_keys(self) -> dict[str, str]:
        keys: dict[str, str] = {}
        for team in self.graph.teams.values():
            if team_id := team.annotations.get(TEAM_ANNOTATION):
                keys[team_id] = team.name
            for text in (team.name, team.title):
                if text:
                    key = normalise_name(text)
                    keys.setdefault(key, team.name)
                    keys.setdefault(key.removeprefix("team-"), team.name)
        return keys

    @staticmethod
    def _free_name(name: str, taken: dict[str, Any]) -> str:
        candidate, n = name, 2
        while candidate in taken:
            candidate, n = f"{name}-{n}", n + 1
        return candidate

    # On call

    def add_rotations(self, oncalls: Iterable[Any], policies: list[Any]) -> None:
        policy_by_id = {p["id"]: p for p in policies}
        groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        for record in oncalls:
            # Only the first level is who gets paged: the catalog's "on call".
            if record.get("escalation_level", 1) != 1:
                continue
            entry = self._oncall_entry(record)
            if entry is None:
                continue
            # A person named directly in a policy is a rotation of one, on call always.
            key = entry["schedule"]["id"] if entry["schedule"] else f"user:{entry['person']}"
            groups[(entry["policy"]["id"], key)].append(entry)
        for (policy_id, _), entries in sorted(groups.items()):
            self._add_rotation(policy_by_id.get(policy_id, entries[0]["policy"]), entries)

    def _oncall_entry(self, record: dict[str, Any]) -> dict[str, Any] | None:
        try:
            start = _time(record.get("start"))
            end = _time(record.get("end"))
        except ValueError as exc:
            self.skip("on-call entry", record, str(exc))
            return None
        return {
            "person": self._person(record["user"]),
            "policy": record["escalation_policy"],
            "schedule": record.get("schedule") if _has(record.get("schedule"), "id") else None,
            "start": start,
            "end": end,
        }

    def _person(self, user: dict[str, Any]) -> str:
        if (known := self.people.get(user["id"])) is not None:
            return known
        email = str(user.get("email") or "").lower()
        display = str(user.get("name") or user.get("summary") or user["id"])
        existing = self._existing_person(email, display)
        if existing is not None and not self.ours(self.graph.people[existing]):
            name = existing
        else:
            base = slugify(email.split("@", 1)[0] if email else display)
            name = existing or self._free_name(base, {**self.person_docs, **self.graph.people})
            self.person_docs[name] = {"record": user, "title": display, "email": email or None}
        self.people[user["id"]] = name
        return name

    def _existing_person(self, email: str, display: str) -> str | None:
        for person in self.graph.people.values():
            if email and (person.email or "").lower() == email:
                return str(person.name)
        key = normalise_name(display)
        for person in self.graph.people.values():
            if key in (normalise_name(person.name), normalise_name(person.title or "")):
                return str(person.name)
        return None

    def _add_rotation(self, policy: dict[str, Any], entries: list[dict[str, Any]]) -> None:
        team = self._policy_team(policy)
        schedule = entries[0]["schedule"]
        names = (_summary(policy), _summary(schedule))
        label = " / ".join(n for n in names if n)
        if team is None:
            self.report.unmatched.append(
                f"PagerDuty escalation policy {label!r}: no team in PagerDuty or the catalog, "
                "so its on-call is not recorded"
            )
            return
        entries.sort(key=lambda e: e["start"] or datetime.min.replace(tzinfo=UTC))
        members = list(dict.fromkeys(e["person"] for e in entries))
        spec = _rotation_spec(team, members, entries)
        for person in members:
            self._join(team, person)
        base = slugify(f"pagerduty-{label}" if schedule else f"pagerduty-{label}-{members[0]}")
        taken = {n: 1 for n, _, _ in self.rotation_docs}
        taken |= {n: 1 for n, row in self.graph.rotations.items() if not self.ours(row)}
        name = self._free_name(base, taken)
        meta = {
            "title": label,
            "external_id": schedule["id"] if schedule else policy["id"],
            "links": [{"url": policy["html_url"], "title": "PagerDuty"}]
            if policy.get("html_url")
            else None,
        }
        self.rotation_docs.append((name, meta, spec))

    def _policy_team(self, policy: dict[str, Any]) -> str | None:
        for ref in policy.get("teams") or []:
            if (team := self.teams.get(_ref_id(ref) or "")) is not None:
                return team
        # A policy without a team speaks for the catalog services that page through it.
        for service, policy_id in sorted(self.service_policy.items()):
            owner = self.graph.services[service].owner
            if policy_id == policy.get("id") and owner:
                return str(owner)
        return None

    def _join(self, team: str, person: str) -> None:
        if team in self.team_docs:
            self.team_docs[team]["spec"]["members"].append(person)
        if person in self.person_docs:
            self.person_docs[person].setdefault("teams", []).append(team)

    # Incidents

    def add_incidents(self, incidents: Iterable[Any], log_entries: Iterable[Any]) -> None:
        timeline = self._timelines(log_entries)
        for record in incidents:
            try:
                name, meta, spec = self._incident(record, timeline.get(record["id"], []))
            except (TypeError, ValueError, KeyError) as exc:
                self.skip("incident", record, f"it could not be read ({exc})")
                continue
            self.incident_docs.append((name, meta, spec))

    def _timelines(self, log_entries: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
        by_incident: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for entry in log_entries:
            try:
                at = _time(entry["created_at"]) or _fail("created_at is empty")
            except ValueError as exc:
                self.skip("log entry", entry, str(exc))
                continue
            kind = str(entry.get("type") or "").removesuffix("_log_entry") or "note"
            author = _summary(entry.get("agent"))
            text = entry.get("summary") or kind
            item = {"at": at, "kind": kind, "text": text, "author": author}
            by_incident[entry["incident"]["id"]].append(item)
        for entries in by_incident.values():
            entries.sort(key=lambda e: e["at"])
        return by_incident

    def _incident(
        self, record: dict[str, Any], entries: list[dict[str, Any]]
    ) -> tuple[str, dict[str, Any], dict[str, Any]]:
        started = _time(record["created_at"]) or _fail("created_at is empty")
        acked = _first(entries, "acknowledge", started)
        resolved = _last(entries, "resolve") or _time(record.get("resolved_at"))
        status = _STATUS.get(str(record.get("status")), "investigating")
        if status == "resolved" and resolved is None:
            resolved = _time(record.get("last_status_change_at")) or started
        if resolved is not None and acked is not None and acked > resolved:
            acked = None
        service = self.services.get(_ref_id(record.get("service")) or "")
        if service is None and _ref_id(record.get("service")):
            self.report.unmatched.append(
                f"PagerDuty incident {record['id']}: its service "
                f"{_summary(record.get('service'))!r} is not in the catalog"
            )
        description = record.get("description")
        spec = {
            "severity": _severity(record),
            "status": status,
            "summary": description if description != record.get("title") else None,
            "startedAt": _iso(started),
            "acknowledgedAt": _iso(acked) if acked else None,
            "resolvedAt": _iso(resolved) if status == "resolved" and resolved else None,
            "services": [service] if service else [],
            "timeline": [_timeline_item(e) for e in entries],
        }
        number = record.get("incident_number")
        name = f"PD-{number}" if isinstance(number, int) else f"PD-{slugify(str(record['id']))}"
        meta = {
            "title": record.get("title") or record.get("summary"),
            "external_id": record["id"],
            "links": [{"url": record["html_url"], "title": "PagerDuty"}]
            if record.get("html_url")
            else None,
        }
        return name, meta, spec

    # Output

    def documents(self) -> list[Document]:
        documents: list[Document] = []

        def add(kind: str, name: str, spec: dict[str, Any], **meta: Any) -> None:
            origin = f"PagerDuty {kind} {meta.get('external_id') or name}"
            documents.append(catalog_document(origin, len(documents) + 1, kind, name, spec, **meta))

        for name, team in sorted(self.team_docs.items()):
            record = team["record"]
            spec = {**team["spec"], "members": sorted(set(team["spec"]["members"]))}
            add(
                "Team",
                name,
                spec,
                title=record["name"],
                description=record.get("description"),
                external_id=record["id"],
                annotations={TEAM_ANNOTATION: record["id"]},
            )
        for name, person in sorted(self.person_docs.items()):
            spec = {"email": person["email"], "memberOf": sorted(set(person.get("teams", [])))}
            add("Person", name, spec, title=person["title"], external_id=person["record"]["id"])
        for name, meta, spec in self.rotation_docs:
            add("OnCall", name, spec, **meta)
        for name, meta, spec in self.incident_docs:
            add("Incident", name, spec, **meta)
        return documents


def _rotation_spec(team: str, members: list[str], entries: list[dict[str, Any]]) -> dict[str, Any]:
    timed = [e for e in entries if e["start"] and e["end"]]
    if not timed:
        return {"team": team, "members": members, "start": ALWAYS}
    first = timed[0]
    hours = (first["end"] - first["start"]).total_seconds() / 3600
    overrides = [
        {"person": e["person"], "start": _iso(e["start"]), "end": _iso(e["end"])} for e in timed
    ]
    return {
        "team": team,
        "members": members,
        "start": _iso(first["start"]),
        "shiftHours": max(hours, 1.0),
        "overrides": overrides,
    }


def _timeline_item(entry: dict[str, Any]) -> dict[str, Any]:
    return {
        "at": _iso(entry["at"]),
        "kind": entry["kind"],
        "text": str(entry["text"]),
        "author": entry["author"],
    }


def _first(entries: list[dict[str, Any]], kind: str, after: datetime) -> datetime | None:
    return next((e["at"] for e in entries if e["kind"] == kind and e["at"] >= after), None)


def _last(entries: list[dict[str, Any]], kind: str) -> datetime | None:
    times = [e["at"] for e in entries if e["kind"] == kind]
    return times[-1] if times else None


def _severity(record: dict[str, Any]) -> str:
    priority = _summary(record.get("priority"))
    if priority and priority.upper().startswith("P") and priority[1:].isdigit():
        return f"SEV{min(int(priority[1:]), 5)}"
    return "SEV2" if record.get("urgency") == "high" else "SEV3"


def _policy_urls(policies: Iterable[Any]) -> dict[str, str]:
    """Each team's escalation contact: the first of its policies, as a link."""
    urls: dict[str, str] = {}
    for policy in policies:
        contact = policy.get("html_url") or policy.get("name")
        for ref in policy.get("teams") or []:
            if (team := _ref_id(ref)) and contact:
                urls.setdefault(team, f"PagerDuty {contact}")
    return urls


def _has(record: Any, *keys: str) -> bool:
    return isinstance(record, dict) and all(record.get(k) not in (None, "") for k in keys)


def _ref_id(ref: Any) -> str | None:
    return str(ref["id"]) if isinstance(ref, dict) and ref.get("id") else None


def _summary(ref: Any) -> str | None:
    if not isinstance(ref, dict):
        return None
    text = ref.get("summary") or ref.get("name")
    return str(text) if text else None


def _time(value: Any) -> datetime | None:
    """An ISO 8601 time from the API as aware UTC; None stays None."""
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a time")
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _fail(problem: str) -> datetime:
    raise ValueError(problem)


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# The shape of each record, as far as the conversion reads it: a record that does not fit
# is skipped (and counted) rather than failing the sync.


class _Ref(ReadFields):
    id: NonEmpty
    summary: str | None = None
    html_url: str | None = None


class _Service(ReadFields):
    id: NonEmpty
    name: NonEmpty
    escalation_policy: _Ref | None = None


class _Team(ReadFields):
    id: NonEmpty
    name: NonEmpty
    description: str | None = None


class _Policy(ReadFields):
    id: NonEmpty
    name: str | None = None
    summary: str | None = None
    html_url: str | None = None
    teams: list[_Ref] | None = None


class _User(ReadFields):
    id: NonEmpty
    name: str | None = None
    summary: str | None = None
    email: str | None = None


class _OnCall(ReadFields):
    user: _User
    escalation_policy: _Ref
    schedule: _Ref | None = None
    escalation_level: int = 1
    start: str | None = None
    end: str | None = None


class _Incident(ReadFields):
    id: NonEmpty
    created_at: NonEmpty
    incident_number: int | None = None
    title: str | None = None
    summary: str | None = None
    description: str | None = None
    status: str | None = None
    urgency: str | None = None
    html_url: str | None = None
    service: _Ref | None = None
    priority: dict[str, Any] | None = None
    resolved_at: str | None = None
    last_status_change_at: str | None = None


class _LogEntry(ReadFields):
    incident: _Ref
    created_at: NonEmpty
    type: str | None = None
    summary: str | None = None
    agent: dict[str, Any] | None = None


_SHAPES: dict[str, tuple[str, type[BaseModel]]] = {
    "services": ("service", _Service),
    "teams": ("team", _Team),
    "escalation_policies": ("escalation policy", _Policy),
    "oncalls": ("on-call entry", _OnCall),
    "incidents": ("incident", _Incident),
    "log_entries": ("log entry", _LogEntry),
}
