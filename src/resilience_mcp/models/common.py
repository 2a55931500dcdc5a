"""Shapes shared by every answer: bounded lists, people, owners, on-call."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "Answer",
    "Card",
    "FactSource",
    "Link",
    "ListCut",
    "OnCallNow",
    "OwnerSummary",
    "PageInfo",
    "PersonSummary",
    "is_synced_source",
]

# Provenance labels of facts no sync confirms again: written by hand (files, the demo),
# through this server's write tools (`mcp`), or pushed once by a webhook event.
_LOCAL_SOURCES = ("local", "demo", "mcp", "webhook")
_SOURCE_NAMES = {"pagerduty": "PagerDuty", "backstage": "Backstage", "github": "GitHub"}


def is_synced_source(source: str) -> bool:
    """Whether facts from `source` are kept current by a sync (and so can go stale)."""
    return source not in _LOCAL_SOURCES and not source.startswith("files:")


class Answer(BaseModel):
    """Base of every tool answer. `text()` is the short form a chat or an agent shows."""

    model_config = ConfigDict(extra="forbid")

    def text(self) -> str:
        raise NotImplementedError

    def card(self) -> Card:
        """A compact card for chat-ops: a title, a few lines, and `card_links`."""
        lines = self.text().splitlines()
        links = [url for url in dict.fromkeys(self.card_links()) if _is_url(url)]
        return Card(title=lines[0] if lines else "", lines=lines[1:6], links=links)

    def card_links(self) -> list[str]:
        """The catalog's links a card of this answer offers; whatever is not a web address
        (a chat channel such as `#payments`) is left out."""
        return []


def _is_url(text: str) -> bool:
    return text.startswith(("https://", "http://"))


class Card(BaseModel):
    title: str
    lines: list[str]
    links: list[str]


class Link(BaseModel):
    """A web address the catalog gives an entity, with what it is."""

    url: str
    title: str | None = None

    @classmethod
    def all_of(cls, declared: Iterable[Mapping[str, str]]) -> list[Link]:
        """The links as the catalog stores them (`{url, title}`), those with an address."""
        return [
            cls(url=item["url"], title=item.get("title")) for item in declared if item.get("url")
        ]


# The docstrings of ListCut and PageInfo are the descriptions of every page in the output
# schemas, so they are one line. A list inside an answer (a card's dependencies, an
# incident's tasks) is a ListCut: it has no cursor, and the answer's note says which tool,
# or what larger `limit`, gives the rest. The answer's main list is a PageInfo, whose
# `next_cursor` the tool takes back as `cursor`.


class ListCut(BaseModel):
    """How a list was cut: `total` items, `returned` shown; no cursor."""

    total: int
    returned: int
    truncated: bool

    @classmethod
    def of(cls, total: int, returned: int) -> ListCut:
        return cls(total=total, returned=returned, truncated=returned < total)

    def note(self, noun: str, rest: str = "") -> str:
        """`(showing 10 of 42 services)` when cut, else empty; `rest` says where the others
        are: `(showing 10 of 42 services; get_dependencies lists them all)`."""
        if not self.truncated:
            return ""
        where = f"; {rest}" if rest else ""
        return f" (showing {self.returned} of {self.total} {noun}{where})"


class PageInfo(ListCut):
    """How a bounded list was cut: `total` items matched, `returned` came back."""

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


class FactSource(BaseModel):
    """Where a fact came from and how fresh it is."""

    source: str = Field(description="The system it was synced from, or how it was loaded.")
    synced_at: datetime = Field(description="When that source last confirmed it.")
    age_seconds: float = Field(description="How long ago that was, when the answer was made.")
    stale: bool = Field(
        default=False, description="True when a synced fact is older than the server allows."
    )
    external_id: str | None = Field(
        default=None,
        description="Its id in the system it was synced from (a PagerDuty id, a Backstage "
        "uid), when that system gives one.",
    )

    def note(self, fact: str, external_id: str | None = None) -> str:
        """`owner from PagerDuty (PT4KX9), synced 4 minutes ago`, or empty for hand-written
        facts; `external_id` names the record when this source has none of its own."""
        if not is_synced_source(self.source):
            return ""
        name = _SOURCE_NAMES.get(self.source, self.source)
        external_id = self.external_id or external_id
        ident = f" ({external_id})" if external_id else ""
        stale = " (stale)" if self.stale else ""
        return f"{fact} from {name}{ident}, synced {_ago(self.age_seconds)}{stale}"


def _ago(seconds: float) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = int(seconds // size)
            return f"{count} {unit}{'s' if count != 1 else ''} ago"
    return "just now"


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
    owner_source: FactSource | None = Field(
        default=None, description="Where the entity that names the owner came from."
    )
    on_call_source: FactSource | None = Field(
        default=None, description="Where the on-call rotation came from (the least fresh)."
    )

    def line(self) -> str:
        if not self.owner:
            return "nobody (no owner of its own, and none to inherit)"
        how = f" (inherited from {self.inherited_from})" if self.inherited else ""
        if self.owner_kind is None:
            missing = ", which is not in the catalog, so nobody on call is known"
            return f"{self.owner}{how}{missing}{self._provenance()}"
        oncall = ", ".join(f"{c.person.title or c.person.name}" for c in self.on_call)
        reach = f"; on call: {oncall}" if oncall else "; nobody on call"
        if oncall and self.on_call_from:
            # The owner has no rotation of its own: say whose rotation answers.
            reach += f" (from {self.on_call_from}'s rotation; {self.owner} has none)"
        chat = f"; {self.chat_channel}" if self.chat_channel else ""
        return f"{self.owner}{how}{chat}{reach}{self._provenance()}"

    def _provenance(self) -> str:
        notes = [
            source.note(fact)
            for fact, source in (("owner", self.owner_source), ("on-call", self.on_call_source))
            if source is not None
        ]
        text = "; ".join(note for note in notes if note)
        return f" ({text})" if text else ""
