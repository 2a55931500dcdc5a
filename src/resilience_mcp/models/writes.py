"""Answers of the write tools and of the audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from resilience_mcp.models.common import Answer, PageInfo

__all__ = ["AuditEntry", "AuditLogAnswer", "FieldChange", "WriteAnswer"]

# Values longer than this are cut in the text form; the structured form keeps them whole.
_TEXT_VALUE = 120


def _short(value: str | None) -> str:
    if value is None:
        return "(none)"
    return value if len(value) <= _TEXT_VALUE else value[: _TEXT_VALUE - 1] + "…"


class FieldChange(BaseModel):
    """One value a write changed (or, on a dry run, would change)."""

    field: str = Field(description="What changed, e.g. status, severity, timeline, link:service.")
    before: str | None = Field(default=None, description="The value before; null when new.")
    after: str | None = Field(default=None, description="The value after; null when removed.")

    def line(self) -> str:
        if self.before is None:
            return f"{self.field}: + {_short(self.after)}"
        return f"{self.field}: {_short(self.before)} -> {_short(self.after)}"


class WriteAnswer(Answer):
    """What a write did to the catalog, or what it would do on a dry run."""

    tool: str
    kind: str = Field(
        description="What was written: Incident, Postmortem, RemediationTask, FeatureFlag or "
        "Action."
    )
    name: str = Field(description="The key or name of the entity written.")
    headline: str = Field(description="One sentence saying what was done.")
    dry_run: bool = Field(description="True when nothing was written: the changes are a preview.")
    replayed: bool = Field(
        default=False,
        description="True when an earlier call with the same idempotency key already did "
        "this; the answer is that call's and nothing was done again.",
    )
    created: bool = False
    version: int | None = Field(
        default=None,
        description="The entity's version after the write; pass it as expected_version to "
        "the next update so a concurrent change is noticed.",
    )
    changes: list[FieldChange] = Field(default_factory=list)
    corrected: list[str] = Field(
        default_factory=list, description="Names taken for near misses, as 'asked -> used'."
    )
    actor: str = Field(description="Who wrote: the HTTP token's client, or 'local'.")
    at: datetime
    audit_id: int | None = Field(default=None, description="The audit log entry of this call.")

    def text(self) -> str:
        if self.replayed:
            head = f"Already done by an earlier call with this idempotency key: {self.headline}"
        elif self.dry_run:
            head = f"Dry run, nothing written: {self.headline}"
        else:
            head = self.headline
        lines = [head]
        lines += [f"  {change.line()}" for change in self.changes]
        if not self.changes:
            lines.append("  no changes")
        lines += [f"  (took {item})" for item in self.corrected]
        return "\n".join(lines)


class AuditEntry(BaseModel):
    id: int
    at: datetime
    actor: str
    tool: str
    outcome: str = Field(
        description="ok, replayed (an idempotent retry), denied, conflict, invalid or failed."
    )
    dry_run: bool
    idempotency_key: str | None = None
    summary: str = Field(description="The result's headline, or the error for a refused call.")
    arguments: dict[str, Any] | None = Field(
        default=None, description="The call's arguments (detail=full only), secrets removed."
    )
    result: dict[str, Any] | None = Field(
        default=None, description="The structured result (detail=full only)."
    )


class AuditLogAnswer(Answer):
    entries: list[AuditEntry]
    page: PageInfo

    def text(self) -> str:
        if not self.entries:
            return "No audit entries match."
        lines = [f"{self.page.total} audit entr(ies), newest first{self.page.note('entries')}:"]
        for entry in self.entries:
            dry = " (dry run)" if entry.dry_run else ""
            when = entry.at.strftime("%Y-%m-%d %H:%M:%SZ")
            lines.append(
                f"- #{entry.id} {when} {entry.actor} {entry.tool} {entry.outcome}{dry}: "
                f"{_short(entry.summary)}"
            )
        return "\n".join(lines)
