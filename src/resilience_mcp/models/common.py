"""Shapes shared by every answer: bounded lists, people, owners, on-call."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "Answer",
    "Card",
    "OnCallNow",
    "OwnerSummary",
    "PageInfo",
    "PersonSummary",
]


class Answer(BaseModel):
    """Base of every tool answer. `text()` is the short form a chat or an agent shows."""

    model_config = ConfigDict(extra="forbid")

    def text(self) -> str:
        raise NotImplementedError

    def card(self) -> Card:
        """A compact card for chat-ops: a title, a few lines, links."""
        lines = self.text().splitlines()
        return Card(title=lines[0] if lines else "", lines=lines[1:6], links=[])


class Card(BaseModel):
    title: str
    lines: list[str]
    links: list[str]


class PageInfo(BaseModel):
    """How a bounded list was cut: `total` items matched, `returned` came back."""

    total: int
    returned: int
    truncated: bool
    next_cursor: str | None = Field(
        default=None, description="Pass as `cursor` to get the next page."
    )

    @classmethod
    def of(cls, total: int, returned: int, offset: int = 0) -> PageInfo:
        more = offset + returned < total
        return cls(
            total=total,
            returned=returned,
            truncated=more,
            next_cursor=str(offset + returned) if more else None,
        )

    def note(self, noun: str) -> str:
        """`(showing 10 of 42 services)` when cut, else empty."""
        return f" (showing {self.returned} of {self.total} {noun})" if self.truncated else ""


class PersonSummary(BaseModel):
    name: str
    title: str | None = None
    email: str | None = None
    handle: str | None = None


class OnCallNow(BaseModel):
    rotation: str
    team: str
    person: PersonSummary
    shift_start: datetime
    shift_end: datetime
    is_override: bool = False


class OwnerSummary(BaseModel):
    """An owner, how it was found, and how to reach it now."""

    owner: str | None = Field(description="The owning team (or person); null when none is known.")
    owner_kind: str | None = None
    title: str | None = None
    inherited: bool = False
    inherited_from: str | None = Field(
        default=None, description="The `kind:name` whose owner this is, when inherited."
    )
    path: list[str] = Field(default_factory=list)
    chat_channel: str | None = None
    escalation: str | None = None
    on_call: list[OnCallNow] = Field(default_factory=list)
    on_call_from: str | None = Field(
        default=None, description="The team whose rotation answered, when not the owner's own."
    )

    def line(self) -> str:
        if not self.owner:
            return "no owner (neither its own nor inherited)"
        how = f" (inherited from {self.inherited_from})" if self.inherited else ""
        oncall = ", ".join(f"{c.person.title or c.person.name}" for c in self.on_call)
        reach = f"; on call: {oncall}" if oncall else "; nobody on call"
        chat = f"; {self.chat_channel}" if self.chat_channel else ""
        return f"{self.owner}{how}{chat}{reach}"
