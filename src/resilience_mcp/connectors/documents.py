"""What every connector shares: building catalog documents from remote records, loading
them so that bad records are skipped rather than sinking the sync, and the sync report.

Records are fetched whole first and loaded once, through the catalog loader, so a sync
validates like a file load and writes all of its good records or nothing.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from resilience_mcp.catalog.files import Document
from resilience_mcp.catalog.loader import EXTERNAL_ID_ANNOTATION, LoadReport, load_documents
from resilience_mcp.errors import CatalogLoadError
from resilience_mcp.store import Store

__all__ = [
    "API_VERSION",
    "Confirm",
    "NonEmpty",
    "ReadFields",
    "SyncReport",
    "catalog_document",
    "load_synced",
    "shape_problem",
    "slugify",
]

logger = logging.getLogger(__name__)

API_VERSION = "resilience/v1"
# Each round drops the records the loader refused; what they pulled with them goes next.
MAX_ROUNDS = 6

_NOT_SLUG = re.compile(r"[^a-z0-9._-]+")

# What else a sync confirms, given the documents that load: written in the load's own
# transaction, so that a sync that fails confirms nothing.
Confirm = Callable[[Sequence[Document], AsyncSession], Awaitable[None]]


def slugify(text: str, *, fallback: str = "unnamed") -> str:
    """A catalog name for free text: `Payments Team` -> `payments-team`."""
    slug = _NOT_SLUG.sub("-", text.strip().lower()).strip("-._")
    return slug[:200].rstrip("-._") or fallback


class ReadFields(BaseModel):
    """The fields of a record from another system that a connector reads, with their
    shapes; the rest is ignored. A record that does not fit is named by `shape_problem`."""

    model_config = ConfigDict(extra="ignore")


NonEmpty = Annotated[str, Field(min_length=1)]


def shape_problem(error: ValidationError, record: Any) -> str:
    """What is wrong with `record`, naming the field: `name should be text, got 5`."""
    errors = error.errors()
    first = errors[0]
    path = _field_path(record, first["loc"])
    if first["type"] == "missing":
        return f"it has no {_dotted([*path, first['loc'][len(path)]])}"
    got = repr(first["input"])[:40]
    if not path:
        return f"it is not an object (got {got})"
    # A field that may take several shapes fails once for each: name them all.
    same = [e for e in errors if _field_path(record, e["loc"]) == path]
    expected = list(dict.fromkeys(_EXPECTED.get(e["type"], "") for e in same))
    if "" in expected:
        return f"{_dotted(path)}: {first['msg'][:1].lower()}{first['msg'][1:]}, got {got}"
    return f"{_dotted(path)} should be {' or '.join(expected)}, got {got}"


# What a value should have been, by the pydantic error that refused it.
_EXPECTED = {
    "string_type": "text",
    "int_type": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "bool_type": "true or false",
    "list_type": "a list",
    "dict_type": "an object",
    "model_type": "an object",
    "model_attributes_type": "an object",
}


def _field_path(record: Any, loc: Sequence[int | str]) -> list[int | str]:
    """The part of an error's location that is in `record`: the field, without the names
    pydantic adds for each shape a field may take."""
    path: list[int | str] = []
    here = record
    for part in loc:
        in_list = isinstance(here, list) and isinstance(part, int) and 0 <= part < len(here)
        if not (in_list or (isinstance(here, dict) and part in here)):
            break
        here = here[part]
        path.append(part)
    return path


def _dotted(path: Sequence[int | str]) -> str:
    return ".".join(str(part) for part in path)


def catalog_document(
    origin: str,
    index: int,
    kind: str,
    name: str,
    spec: dict[str, Any],
    *,
    title: str | None = None,
    description: str | None = None,
    external_id: str | None = None,
    annotations: dict[str, str] | None = None,
    links: list[dict[str, str]] | None = None,
) -> Document:
    """A catalog document built in memory; `origin` says where it came from in errors."""
    notes = dict(annotations or {})
    if external_id:
        notes[EXTERNAL_ID_ANNOTATION] = external_id
    metadata: dict[str, Any] = {"name": name}
    if title:
        metadata["title"] = title
    if description:
        metadata["description"] = description
    if notes:
        metadata["annotations"] = notes
    if links:
        metadata["links"] = links
    body = {
        "apiVersion": API_VERSION,
        "kind": kind,
        "metadata": metadata,
        "spec": {k: v for k, v in spec.items() if v not in (None, [], {})},
    }
    return Document(origin, index, body)


@dataclass
class SyncReport:
    """What one sync of one source fetched, loaded, skipped and could not match."""

    source: str
    label: str
    fetched: dict[str, int] = field(default_factory=dict)
    load: LoadReport | None = None
    skipped: list[str] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        counts = ", ".join(f"{n} {what}" for what, n in self.fetched.items()) or "nothing"
        lines = [f"sync {self.source} (provenance {self.label!r}): fetched {counts}"]
        if self.load is not None:
            lines += ["  " + line for line in self.load.summary().splitlines()]
        if self.skipped:
            lines.append(f"  {len(self.skipped)} malformed record(s) skipped:")
            lines += [f"    - {reason}" for reason in self.skipped[:20]]
            if len(self.skipped) > 20:
                lines.append(f"    ... and {len(self.skipped) - 20} more")
        if self.unmatched:
            lines.append(f"  {len(self.unmatched)} record(s) matched nothing in the catalog:")
            lines += [f"    - {what}" for what in self.unmatched[:50]]
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)


async def load_synced(
    store: Store,
    documents: Sequence[Document],
    report: SyncReport,
    *,
    prune: bool,
    prune_kinds: Collection[str] | None = None,
    dry_run: bool = False,
    now: datetime | None = None,
    confirm: Confirm | None = None,
) -> list[Document]:
    """Load `documents` as one set under `report.label`, leaving out each one refused;
    returns the documents that loaded (the load's report is `report.load`).

    The load confirms, as of `now`, that the source holds what loaded, changed or not
    (see `catalog.confirmations`); `confirm` adds what else the caller confirms.

    A refused document (a bad field, a reference to nothing) is dropped with its reason
    added to `report.skipped`, and the rest is tried again; nothing is written until a set
    loads whole. When anything was skipped nothing is pruned: a record that is only
    malformed today must not lose its last good version."""
    remaining = list(documents)
    if prune and not remaining:
        # An empty answer is more likely a fault than a source emptied on purpose.
        report.notes.append("nothing was pruned, because the source returned no records")
        prune = False
    for round_ in range(1, MAX_ROUNDS + 1):
        try:
            report.load = await load_documents(
                store,
                remaining,
                source=report.label,
                prune=prune and not report.skipped,
                prune_kinds=prune_kinds,
                dry_run=dry_run,
                confirm=True,
                bookkeeping=None if confirm is None else functools.partial(confirm, remaining),
                now=now,
            )
        except CatalogLoadError as exc:
            if round_ == MAX_ROUNDS:
                raise
            remaining = _without_refused(remaining, exc, report.skipped)
            continue
        if prune and report.skipped:
            report.notes.append("nothing was pruned, because some records were skipped")
        return remaining
    raise AssertionError("unreachable")


def _without_refused(
    documents: list[Document], error: CatalogLoadError, dropped: list[str]
) -> list[Document]:
    refused = {(issue.file, issue.document) for issue in error.issues}
    kept = [d for d in documents if (d.file, d.index) not in refused]
    if len(kept) == len(documents):
        # The problem is not in any one record (an unreadable file): nothing to drop.
        raise error
    for issue in error.issues:
        logger.warning("skipped a record: %s", issue)
        dropped.append(str(issue))
    return kept
