"""The write tools (only when the operator turned writes on) and the audit log (always).

Each write is a thin adapter: it builds the domain's draft from its arguments, has the
guard check the caller and start the audited request, and calls one domain function.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any, Literal

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.types import CallToolResult
from pydantic import Field

from resilience_mcp import writes as domain
from resilience_mcp.catalog.kinds import parse_duration
from resilience_mcp.connectors.flagpush import flag_publisher
from resilience_mcp.models.writes import AuditLogAnswer, WriteAnswer
from resilience_mcp.server.guard import write_request
from resilience_mcp.server.state import AppState, ServerConfig
from resilience_mcp.server.tooling import READ, WRITE, agent_errors, answer, app_state, parse_cursor
from resilience_mcp.writes import (
    FlagSetting,
    IncidentChange,
    IncidentDraft,
    PostmortemDraft,
    TaskChange,
    TaskDraft,
    WriteRequest,
)
from resilience_mcp.writes.lookup import parse_time

__all__ = ["register"]

# The hints say what a call does when retried without an idempotency key (the key is
# optional): a create makes another record, an update appends its timeline note again.
# Updates overwrite what was there; setting a value twice leaves it as once.
ADDS = WRITE.model_copy(update={"idempotent_hint": False})
OVERWRITES = WRITE.model_copy(update={"destructive_hint": True, "idempotent_hint": False})
SETS = WRITE.model_copy(update={"destructive_hint": True})
# Flipping a flag changes what production does for customers right now, and where a
# flag system (flagd) serves the environment the change is pushed to it.
WRITE_PRODUCTION = SETS.model_copy(update={"open_world_hint": True})

DryRun = Annotated[
    bool,
    Field(
        description="True to preview: the answer shows exactly what would change and nothing "
        "is written. False (default) makes the change."
    ),
]
IdempotencyKey = Annotated[
    str | None,
    Field(
        min_length=8,
        max_length=200,
        pattern=r"^[A-Za-z0-9._:-]+$",
        description="Recommended: a unique string you make up for this one action, such as a "
        "UUID. Retrying with the same key and the same arguments returns the first result "
        "and acts only once; the same key with other arguments is refused.",
    ),
]


def _text(description: str, max_length: int = 4000) -> Any:
    return Field(max_length=max_length, description=description)


def _time(description: str) -> Any:
    return Field(
        max_length=40, description=f"{description} ISO 8601, e.g. 2026-12-01T09:35:00Z (UTC)."
    )


IncidentKey = Annotated[
    str,
    Field(min_length=1, max_length=200, description="The incident key, e.g. INC-2049."),
]
Severity = Literal["SEV1", "SEV2", "SEV3", "SEV4", "SEV5"]
IncidentStatus = Literal["investigating", "identified", "monitoring", "mitigated", "resolved"]
TimelineKind = Literal["note", "action", "change", "detection", "mitigation", "resolution"]
Priority = Literal["P1", "P2", "P3", "P4", "P5"]
TaskStatus = Literal["open", "in_progress", "done", "wontfix"]


NameItem = Annotated[str, Field(min_length=1, max_length=200)]
_FORGIVEN = "by catalog name; case, separators and small typos are forgiven."
Services = Annotated[
    list[NameItem] | None, Field(max_length=50, description=f"Affected services {_FORGIVEN}")
]
Environments = Annotated[
    list[NameItem] | None,
    Field(max_length=50, description=f"Affected environments or tenants {_FORGIVEN}"),
]
Features = Annotated[
    list[NameItem] | None, Field(max_length=50, description=f"Affected features {_FORGIVEN}")
]
Customers = Annotated[
    list[NameItem] | None, Field(max_length=50, description=f"Affected customers {_FORGIVEN}")
]
Flags = Annotated[
    list[NameItem] | None, Field(max_length=50, description=f"Flags involved {_FORGIVEN}")
]
LineItem = Annotated[str, Field(min_length=1, max_length=1000)]
ContributingFactors = Annotated[
    list[LineItem] | None,
    Field(max_length=30, description="What made it worse or possible, one per item."),
]
Lessons = Annotated[
    list[LineItem] | None, Field(max_length=30, description="What was learned, one per item.")
]


def register(server: MCPServer[Any], config: ServerConfig) -> None:
    """The audit log always; the write tools only when the operator enabled writes."""
    _register_audit_log(server)
    if config.enable_writes:
        _register_incident_writes(server)
        _register_follow_up_writes(server)
        _register_flag_writes(server)


async def _request(
    state: AppState, tool: str, draft: Any, dry_run: bool, key: str | None
) -> WriteRequest:
    """The guarded, audited request for a call whose arguments are `draft`'s fields."""
    return await write_request(state, tool, asdict(draft), dry_run=dry_run, idempotency_key=key)


def _register_incident_writes(server: MCPServer[Any]) -> None:
    @server.tool(title="Declare an incident", annotations=ADDS)
    @agent_errors
    async def declare_incident(
        title: Annotated[str, Field(min_length=3, max_length=300, description="What is wrong.")],
        severity: Annotated[Severity, Field(description="SEV1 is the worst.")],
        ctx: Context[Any],
        summary: Annotated[str | None, _text("What is known so far: symptoms, scope.")] = None,
        services: Services = None,
        environments: Environments = None,
        features: Features = None,
        customers: Customers = None,
        flags: Flags = None,
        commander: Annotated[
            str | None, Field(max_length=200, description="The incident commander (a person).")
        ] = None,
        started_at: Annotated[str | None, _time("When impact began; default now.")] = None,
        detected_at: Annotated[str | None, _time("When it was noticed; default now.")] = None,
        note: Annotated[
            str | None, Field(max_length=4000, description="The first timeline entry's text.")
        ] = None,
        key: Annotated[
            str | None,
            Field(max_length=200, description="Leave out to get the next free INC-nnnn key."),
        ] = None,
        dry_run: DryRun = False,
        idempotency_key: IdempotencyKey = None,
    ) -> Annotated[CallToolResult, WriteAnswer]:
        """Declare a new incident: this changes the catalog. Use it when something is broken
        and no open incident covers it yet (check the open incidents first).

        Records the title, severity, affected services, environments, features, customers
        and flags (names are checked; a miss lists the closest), the commander, start and
        detection times (default now), and a first timeline entry, with status
        investigating. Returns the new key and version, and every value written."""
        state = app_state(ctx)
        draft = IncidentDraft(
            title=title,
            severity=severity,
            summary=summary,
            key=key,
            commander=commander,
            services=services or [],
            environments=environments or [],
            features=features or [],
            customers=customers or [],
            flags=flags or [],
            started_at=started_at,
            detected_at=detected_at,
            note=note,
        )
        request = await _request(state, "declare_incident", draft, dry_run, idempotency_key)
        return answer(
            await domain.declare_incident(state.store, await state.graph(), request, draft)
        )

    @server.tool(title="Update an incident", annotations=OVERWRITES)
    @agent_errors
    async def update_incident(
        key: IncidentKey,
        ctx: Context[Any],
        expected_version: Annotated[
            int | None,
            Field(
                ge=1,
                description="The version you last read (get_incident, or this tool's last "
                "answer). Recommended: if the incident changed since, nothing is written and "
                "you are told to re-read.",
            ),
        ] = None,
        status: Annotated[IncidentStatus | None, Field(description="The new status.")] = None,
        severity: Annotated[Severity | None, Field(description="The new severity.")] = None,
        title: Annotated[
            str | None, Field(min_length=3, max_length=300, description="A better title.")
        ] = None,
        summary: Annotated[str | None, _text("Replaces the summary.")] = None,
        commander: Annotated[
            str | None, Field(max_length=200, description="The new incident commander.")
        ] = None,
        mitigated_at: Annotated[
            str | None, _time("When impact stopped; default now on status mitigated.")
        ] = None,
        resolved_at: Annotated[
            str | None, _time("When it was resolved; default now on status resolved.")
        ] = None,
        note: Annotated[
            str | None,
            Field(max_length=4000, description="Text for a timeline entry: what was seen or done."),
        ] = None,
        note_kind: Annotated[
            TimelineKind | None,
            Field(description="The timeline entry's kind; by default it follows the change."),
        ] = None,
        dry_run: DryRun = False,
        idempotency_key: IdempotencyKey = None,
    ) -> Annotated[CallToolResult, WriteAnswer]:
        """Change an open incident's record: this changes the catalog. Use it to move the
        status, change severity or commander, record mitigation or resolution times, or add
        a timeline note about what was seen or done.

        Setting status mitigated or resolved stamps that time now unless you give it;
        status and severity changes are noted on the timeline. Returns what changed and
        the new version. If another caller changed the incident first, nothing is written
        and the error says to re-read it with get_incident and retry."""
        state = app_state(ctx)
        change = IncidentChange(
            key=key,
            expected_version=expected_version,
            status=status,
            severity=severity,
            title=title,
            summary=summary,
            commander=commander,
            mitigated_at=mitigated_at,
            resolved_at=resolved_at,
            note=note,
            note_kind=note_kind,
        )
        request = await _request(state, "update_incident", change, dry_run, idempotency_key)
        return answer(
            await domain.update_incident(state.store, await state.graph(), request, change)
        )


def _register_follow_up_writes(server: MCPServer[Any]) -> None:
    @server.tool(title="Record a postmortem", annotations=SETS)
    @agent_errors
    async def record_postmortem(
        incident: IncidentKey,
        ctx: Context[Any],
        summary: Annotated[str | None, _text("What happened, in a few sentences.")] = None,
        trigger: Annotated[str | None, _text("The change or event that set it off.")] = None,
        root_cause: Annotated[str | None, _text("Why it could happen.")] = None,
        contributing_factors: ContributingFactors = None,
        detection: Annotated[str | None, _text("How and how fast it was noticed.")] = None,
        resolution: Annotated[str | None, _text("What stopped the impact and fixed it.")] = None,
        lessons: Lessons = None,
        title: Annotated[str | None, _text("Default: 'Postmortem: <incident title>'.", 300)] = None,
        author: Annotated[str | None, Field(max_length=200, description="A person.")] = None,
        publish: Annotated[
            bool, Field(description="True to mark it published now (once reviewed).")
        ] = False,
        dry_run: DryRun = False,
        idempotency_key: IdempotencyKey = None,
    ) -> Annotated[CallToolResult, WriteAnswer]:
        """Write an incident's postmortem: this changes the catalog. The first call creates
        it (named pm-<incident>); later calls set only the parts you pass, so it can be
        filled in as the review goes. Returns every value written, before and after."""
        state = app_state(ctx)
        draft = PostmortemDraft(
            incident=incident,
            title=title,
            summary=summary,
            trigger=trigger,
            root_cause=root_cause,
            detection=detection,
            resolution=resolution,
            contributing_factors=contributing_factors,
            lessons=lessons,
            author=author,
            publish=publish,
        )
        request = await _request(state, "record_postmortem", draft, dry_run, idempotency_key)
        return answer(
            await domain.record_postmortem(state.store, await state.graph(), request, draft)
        )

    @server.tool(title="Create a remediation task", annotations=ADDS)
    @agent_errors
    async def create_remediation_task(
        title: Annotated[str, Field(min_length=3, max_length=300, description="The work.")],
        owner: Annotated[
            str, Field(min_length=1, max_length=200, description="The team that will do it.")
        ],
        ctx: Context[Any],
        priority: Annotated[Priority, Field(description="P1 is the most urgent.")] = "P3",
        incident: Annotated[
            str | None, Field(max_length=200, description="The incident it comes from.")
        ] = None,
        postmortem: Annotated[
            str | None, Field(max_length=200, description="The postmortem it comes from.")
        ] = None,
        due_date: Annotated[str | None, _time("When it should be done.")] = None,
        description: Annotated[str | None, _text("Details: why, and what done means.")] = None,
        dry_run: DryRun = False,
        idempotency_key: IdempotencyKey = None,
    ) -> Annotated[CallToolResult, WriteAnswer]:
        """Open a follow-up task from an incident or postmortem: this changes the catalog.
        The owner team, incident and postmortem are checked against the catalog. Returns
        the new task's name (rt-<incident number>-<title words>) and version."""
        state = app_state(ctx)
        draft = TaskDraft(
            title=title,
            owner=owner,
            priority=priority,
            incident=incident,
            postmortem=postmortem,
            due_date=due_date,
            description=description,
        )
        request = await _request(state, "create_remediation_task", draft, dry_run, idempotency_key)
        graph = await state.graph()
        return answer(await domain.create_remediation_task(state.store, graph, request, draft))

    @server.tool(title="Update a remediation task", annotations=SETS)
    @agent_errors
    async def update_remediation_task(
        name: Annotated[str, Field(min_length=1, max_length=200, description="The task's name.")],
        ctx: Context[Any],
        expected_version: Annotated[
            int | None,
            Field(
                ge=1,
                description="The version you last read (list_remediation_tasks, the tasks of "
                "get_incident, or this tool's last answer). Recommended: if the task changed "
                "since, nothing is written and you are told to re-read.",
            ),
        ] = None,
        status: Annotated[TaskStatus | None, Field(description="The new status.")] = None,
        priority: Annotated[Priority | None, Field(description="The new priority.")] = None,
        owner: Annotated[str | None, _text("The team that now owns it.", 200)] = None,
        due_date: Annotated[str | None, _time("The new due date.")] = None,
        title: Annotated[
            str | None, Field(min_length=3, max_length=300, description="A better title.")
        ] = None,
        description: Annotated[str | None, _text("Replaces the description.")] = None,
        dry_run: DryRun = False,
        idempotency_key: IdempotencyKey = None,
    ) -> Annotated[CallToolResult, WriteAnswer]:
        """Move a remediation task along: this changes the catalog. Set its status (done
        and wontfix stamp the completion time), priority, owner team, due date or text.
        Returns what changed and the new version; a concurrent change is refused with a
        conflict that says to re-read."""
        state = app_state(ctx)
        change = TaskChange(
            name=name,
            expected_version=expected_version,
            status=status,
            priority=priority,
            owner=owner,
            due_date=due_date,
            title=title,
            description=description,
        )
        request = await _request(state, "update_remediation_task", change, dry_run, idempotency_key)
        graph = await state.graph()
        return answer(await domain.update_remediation_task(state.store, graph, request, change))


def _register_flag_writes(server: MCPServer[Any]) -> None:
    @server.tool(title="Set a feature flag in one environment", annotations=WRITE_PRODUCTION)
    @agent_errors
    async def set_feature_flag(
        flag: Annotated[
            str, Field(min_length=1, max_length=200, description="The flag's name or key.")
        ],
        environment: Annotated[
            str,
            Field(min_length=1, max_length=200, description="One environment or tenant."),
        ],
        reason: Annotated[
            str,
            Field(
                min_length=3,
                max_length=1000,
                description="Why, for the flag's history: e.g. the incident key and symptom.",
            ),
        ],
        ctx: Context[Any],
        enabled: Annotated[
            bool | None,
            Field(description="On or off. A kill switch ON disables what it guards."),
        ] = None,
        rollout: Annotated[
            float | None, Field(ge=0, le=100, description="Percent of traffic, 0 to 100.")
        ] = None,
        variant: Annotated[
            str | None, Field(max_length=200, description="One of the flag's variants.")
        ] = None,
        dry_run: DryRun = False,
        idempotency_key: IdempotencyKey = None,
    ) -> Annotated[CallToolResult, WriteAnswer]:
        """Change a feature flag in ONE environment or tenant: this changes the catalog and
        what production does. The self-healing step: flip a kill switch on to turn a broken
        feature off, or roll an experiment back. Values you leave out stay as they are.

        Writes the flag's new state there and a history entry (who, when, from, to, reason).
        Where a flag system (flagd) serves the environment, it gets the change first, and
        the catalog changes only if it took it; dry_run shows the request it would get.
        Returns the state before and after. Try dry_run first when unsure."""
        state = app_state(ctx)
        setting = FlagSetting(
            flag=flag,
            environment=environment,
            reason=reason,
            enabled=enabled,
            rollout=rollout,
            variant=variant,
        )
        request = await _request(state, "set_feature_flag", setting, dry_run, idempotency_key)
        publisher = flag_publisher(state.config.connectors)
        return answer(
            await domain.set_feature_flag(
                state.store, await state.graph(), request, setting, publisher
            )
        )


def _register_audit_log(server: MCPServer[Any]) -> None:
    @server.tool(title="Audit log of writes", annotations=READ)
    @agent_errors
    async def get_audit_log(
        ctx: Context[Any],
        tool: Annotated[
            str | None, Field(max_length=100, description="Only calls of this write tool.")
        ] = None,
        actor: Annotated[
            str | None,
            Field(max_length=200, description="Only this caller: a token's client or 'local'."),
        ] = None,
        since: Annotated[
            str | None,
            Field(
                max_length=40,
                description="Only entries from this time on: ISO 8601, or a span back from "
                "now such as 24h or 7d.",
            ),
        ] = None,
        limit: Annotated[int, Field(ge=1, le=100, description="At most this many entries.")] = 20,
        cursor: Annotated[
            str | None, Field(description="The next_cursor of a previous page.")
        ] = None,
        detail: Annotated[
            Literal["summary", "full"],
            Field(description="full adds each call's arguments and structured result."),
        ] = "summary",
    ) -> Annotated[CallToolResult, AuditLogAnswer]:
        """Who changed what through this server's write tools, newest first: each call's
        time, caller, tool, outcome (ok, replayed, denied, conflict, invalid, failed), dry
        runs included. Use it to check what an agent did during an incident."""
        state = app_state(ctx)
        found = await domain.list_audit_log(
            state.store,
            tool=tool,
            actor=actor,
            since=_since(since, state.now()),
            limit=limit,
            offset=parse_cursor(cursor),
            full=detail == "full",
        )
        return answer(found)


def _since(text: str | None, now: datetime) -> datetime | None:
    """An ISO time, or a span such as 24h counted back from now."""
    if text is None or not text.strip():
        return None
    try:
        return now - parse_duration(text)
    except ValueError:
        return parse_time(text, "since")
