"""Answers about incidents: the full record, lists, remediation work, similar and recurring."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from resilience_mcp.models.common import Answer, FactSource, Link, ListCut, PageInfo

__all__ = [
    "IncidentList",
    "IncidentRecord",
    "IncidentSummary",
    "MatchReasons",
    "PostmortemDetail",
    "RecurrenceGroup",
    "RecurringIncidents",
    "SimilarIncident",
    "SimilarIncidents",
    "TaskBrief",
    "TaskList",
    "TaskStatus",
    "TimelineItem",
]


def _day(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%d") if at else "?"


def _clip(text: str | None, size: int) -> str:
    if not text:
        return ""
    flat = " ".join(text.split())
    return flat if len(flat) <= size else flat[: size - 3].rstrip() + "..."


class TaskStatus(BaseModel):
    """A remediation task and whether it is late."""

    name: str
    title: str | None = None
    status: str
    priority: str
    owner: str | None = None
    due_date: datetime | None = None
    overdue: bool = Field(description="Not done or dropped, and past its due date.")

    def line(self) -> str:
        late = " OVERDUE" if self.overdue else ""
        due = f" due {_day(self.due_date)}" if self.due_date and self.status != "done" else ""
        owner = f" ({self.owner})" if self.owner else ""
        return f"{self.priority} {self.status}{late}{due}{owner}: {self.title or self.name}"


class TaskBrief(TaskStatus):
    """A remediation task with when it was done and what it came from."""

    version: int = Field(
        description="Pass as expected_version to update_remediation_task, so that a change "
        "made since you read it is noticed."
    )
    completed_at: datetime | None = None
    incident: str | None = None
    postmortem: str | None = None


class IncidentSummary(BaseModel):
    key: str
    title: str | None = None
    severity: str
    status: str
    started_at: datetime
    resolved_at: datetime | None = None
    services: list[str] = Field(default_factory=list)

    def line(self) -> str:
        where = f" [{', '.join(self.services[:4])}]" if self.services else ""
        return (
            f"{self.key} {self.severity} {self.status} {_day(self.started_at)}{where}: "
            f"{self.title or ''}"
        ).rstrip(": ")


class TimelineItem(BaseModel):
    at: datetime
    kind: str
    text: str
    author: str | None = None


class PostmortemDetail(BaseModel):
    name: str
    title: str | None = None
    summary: str | None = None
    trigger: str | None = None
    root_cause: str | None = None
    contributing_factors: list[str] = Field(default_factory=list)
    detection: str | None = None
    resolution: str | None = None
    lessons: list[str] = Field(default_factory=list)
    author: str | None = None
    published_at: datetime | None = None


class IncidentRecord(Answer):
    """One incident in full: what happened, when, to what, why, and what was promised."""

    key: str
    version: int = Field(
        description="Pass as expected_version to update_incident, so that a change made "
        "since you read it is noticed."
    )
    title: str | None = None
    summary: str | None = None
    severity: str
    status: str
    commander: str | None = None
    trigger: str | None = None
    root_cause_commit: str | None = None
    started_at: datetime
    detected_at: datetime | None = None
    acknowledged_at: datetime | None = None
    mitigated_at: datetime | None = None
    resolved_at: datetime | None = None
    minutes_to_detect: float | None = None
    minutes_to_mitigate: float | None = None
    minutes_to_resolve: float | None = None
    services: list[str] = Field(default_factory=list)
    environments: list[str] = Field(default_factory=list)
    features: list[str] = Field(default_factory=list)
    flags: list[str] = Field(default_factory=list)
    deployments: list[str] = Field(default_factory=list)
    customers: list[str] = Field(default_factory=list)
    customers_page: ListCut
    timeline: list[TimelineItem] = Field(
        default_factory=list,
        description="In order; when cut, its first few entries and then its latest.",
    )
    timeline_page: ListCut
    postmortem: PostmortemDetail | None = None
    tasks: list[TaskBrief] = Field(default_factory=list)
    tasks_page: ListCut
    links: list[Link] = Field(
        default_factory=list,
        description="The record's links: its page in PagerDuty, a status page, a chat room.",
    )
    source: FactSource | None = Field(
        default=None,
        description="Where the record came from (pagerduty, webhook, a file) and when that "
        "source last confirmed it; stale when a synced record is older than allowed.",
    )
    external_id: str | None = Field(
        default=None, description="Its id in the system it was synced from (PagerDuty's)."
    )

    def text(self) -> str:
        lines = [f"{self.key} {self.severity} {self.status}: {self.title or ''}".rstrip(": ")]
        if self.source is not None and (note := self.source.note("record", self.external_id)):
            lines.append(note)
        times = f"started {self.started_at:%Y-%m-%d %H:%M}Z"
        if self.minutes_to_detect is not None:
            times += f", detected after {self.minutes_to_detect:g} min"
        if self.minutes_to_resolve is not None:
            times += f", resolved after {self.minutes_to_resolve:g} min"
        lines.append(f"{times}; version {self.version}")
        if self.summary:
            lines.append(_clip(self.summary, 400))
        if self.services:
            lines.append(f"services: {', '.join(self.services)}")
        if self.environments:
            lines.append(f"environments: {', '.join(self.environments)}")
        if self.trigger:
            lines.append(f"trigger: {_clip(self.trigger, 200)}")
        pm = self.postmortem
        if pm and pm.root_cause:
            lines.append(f"root cause: {_clip(pm.root_cause, 400)}")
        if pm and pm.resolution:
            lines.append(f"resolution: {_clip(pm.resolution, 300)}")
        if self.timeline:
            where = "the first few and the latest" if self.timeline_page.truncated else ""
            lines.append(f"timeline{self.timeline_page.note('entries', where)}:")
            lines += [f"  {t.at:%m-%d %H:%M} {t.kind}: {_clip(t.text, 160)}" for t in self.timeline]
        if self.tasks:
            lines.append(f"remediation{self.tasks_page.note('tasks')}:")
            lines += [f"  {t.line()}" for t in self.tasks]
        return "\n".join(lines)

    def card_links(self) -> list[str]:
        return [link.url for link in self.links]


class IncidentList(Answer):
    incidents: list[IncidentSummary]
    page: PageInfo

    def text(self) -> str:
        if not self.incidents:
            return "No incidents match."
        head = f"{self.page.total} incident(s){self.page.note('incidents')}:"
        return "\n".join([head, *(f"- {i.line()}" for i in self.incidents)])


class TaskList(Answer):
    tasks: list[TaskBrief]
    overdue: int = Field(description="How many of all the matching tasks are overdue.")
    page: PageInfo

    def text(self) -> str:
        if not self.tasks:
            return "No remediation tasks match."
        head = f"{self.page.total} task(s), {self.overdue} overdue{self.page.note('tasks')}:"
        lines = [head]
        for task in self.tasks:
            source = f" [{task.incident}]" if task.incident else ""
            lines.append(f"- {task.name}{source} {task.line()} (version {task.version})")
        return "\n".join(lines)


class MatchReasons(BaseModel):
    """Why a past incident was taken as similar."""

    matched_terms: list[str] = Field(
        default_factory=list, description="Words of the query found in the incident's record."
    )
    shared_services: list[str] = Field(default_factory=list)
    related_services: list[str] = Field(
        default_factory=list,
        description="Dependencies or dependents, as 'a depends on b', linking the two.",
    )
    same_system: list[str] = Field(default_factory=list)
    same_trigger: list[str] = Field(
        default_factory=list, description="Kinds of trigger both share, e.g. deployment."
    )
    shared_failure_modes: list[str] = Field(
        default_factory=list, description="Kinds of failure both show, e.g. database."
    )
    similar_meaning: float | None = Field(
        default=None,
        description="How close the two texts are in meaning, 0 to 1 (the cosine of their "
        "sentence embeddings); only when the server ranks semantically.",
    )

    def line(self) -> str:
        parts = []
        if self.matched_terms:
            parts.append("terms " + ", ".join(self.matched_terms[:8]))
        if self.shared_services:
            parts.append("same service " + ", ".join(self.shared_services))
        if self.related_services:
            parts.append("; ".join(self.related_services[:3]))
        if self.same_system:
            parts.append("same system " + ", ".join(self.same_system))
        if self.same_trigger:
            parts.append("same trigger: " + ", ".join(self.same_trigger))
        if self.shared_failure_modes:
            parts.append("both " + ", ".join(self.shared_failure_modes))
        if self.similar_meaning is not None:
            parts.append(f"similar meaning {self.similar_meaning:.2f}")
        return "; ".join(parts) or "recent incident on the same services"


class SimilarIncident(BaseModel):
    key: str
    title: str | None = None
    severity: str
    status: str
    started_at: datetime
    resolved_at: datetime | None = None
    services: list[str] = Field(default_factory=list)
    score: float = Field(description="Higher is more similar; comparable within one answer.")
    why: MatchReasons
    postmortem: str | None = None
    trigger: str | None = None
    root_cause: str | None = Field(
        default=None, description="From the postmortem; the summary when it names none."
    )
    resolution: str | None = Field(default=None, description="What resolved it.")
    tasks: list[TaskStatus] = Field(default_factory=list)
    tasks_page: ListCut = Field(description="get_incident on its key lists every task.")


class SimilarIncidents(Answer):
    """Past incidents like the one described, best first, each with its evidence."""

    query: str | None = Field(default=None, description="The text searched, shortened.")
    incident: str | None = None
    services: list[str] = Field(default_factory=list)
    terms: list[str] = Field(default_factory=list, description="The words searched for.")
    results: list[SimilarIncident]
    page: ListCut = Field(
        description="How many past incidents were ranked; only the best `limit` come back."
    )

    def text(self) -> str:
        about = self.incident or repr(_clip(self.query, 60))
        if not self.results:
            return f"No past incident resembles {about}."
        lines = [f"{len(self.results)} past incident(s) like {about}:"]
        for n, hit in enumerate(self.results, start=1):
            when = _day(hit.started_at)
            lines.append(
                f"{n}. {hit.key} {hit.severity} {when}: {hit.title or ''} ({hit.score:.2f})"
            )
            lines.append(f"   why: {hit.why.line()}")
            if hit.root_cause:
                lines.append(f"   cause: {_clip(hit.root_cause, 160)}")
            if hit.resolution:
                lines.append(f"   fixed by: {_clip(hit.resolution, 120)}")
            # Finished tasks are in the structured answer; the text shows what is still owed.
            owed = [t for t in hit.tasks if t.status in ("open", "in_progress")]
            lines += [f"   owed: {t.line()}" for t in owed]
        return "\n".join(lines)


class RecurrenceGroup(BaseModel):
    reason: Literal["root cause", "symptom", "service"]
    label: str = Field(description="The service, or the words the incidents share.")
    evidence: list[str] = Field(
        default_factory=list,
        description="Why these belong together: references between them, a shared commit, "
        "shared words.",
    )
    count: int
    first_at: datetime
    last_at: datetime
    incidents: list[IncidentSummary] = Field(
        description="The latest few, newest first; count says how many there are."
    )

    def line(self) -> str:
        keys = ", ".join(i.key for i in self.incidents)
        if self.count > len(self.incidents):
            keys += f" and {self.count - len(self.incidents)} earlier"
        span = f"{_day(self.first_at)} to {_day(self.last_at)}"
        return f"{self.reason} {self.label}: {self.count} incidents, {span}: {keys}"


class RecurringIncidents(Answer):
    since: datetime
    service: str | None = None
    groups: list[RecurrenceGroup]
    page: PageInfo

    def text(self) -> str:
        if not self.groups:
            return f"No recurring incidents since {_day(self.since)}."
        head = f"{self.page.total} recurring group(s) since {_day(self.since)}"
        lines = [head + self.page.note("groups") + ":"]
        lines += [f"- {g.line()}" for g in self.groups]
        return "\n".join(lines)
