"""Postmortems written in Markdown, turned into Incident, Postmortem and RemediationTask
documents that load like any catalog file.

The shape read is the common one: a `# Title`, then sections such as Summary, Timeline (a
table or a list of `time | event`), Contributing Factors, Root Cause, Resolution, Lessons
Learned, Action Items and Stats (`Category`, `Time to detection`, `Time to recovery`).
Headings are matched loosely, and sections it does not know (Attendees) are left out.

Optional YAML front matter between `---` lines sets what a write-up rarely says in a form a
program can read: `key`, `severity`, `status`, `services`, `environments`, `features`,
`customers`, `commander`, `owner` (the team that owns the action items), `startedAt`,
`timezone`, `tags`. Without a key, the file's name is the incident key.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import yaml

__all__ = ["is_postmortem", "markdown_documents"]

_HEADING = re.compile(r"^(#{1,2})\s+(.+?)\s*#*\s*$")
_FRONT_MATTER = re.compile(r"\A---\s*\n(.*?)\n---\s*\n", re.DOTALL)
# A date and an optional time; a year typed with one digit too many (20202) is read as
# its first four digits.
_DATE = re.compile(r"(?<!\d)(\d{4})\d?[-/](\d{1,2})[-/](\d{1,2})(?:[ T]+(\d{1,2}):(\d{2}))?")
_BULLET = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+(.*)$")
_SEVERITY = re.compile(r"\bsev(?:erity)?[\s-]*([1-5])\b", re.IGNORECASE)
_NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(day|hour|hr|minute|min|second|sec)", re.IGNORECASE)

# Offsets of the zones postmortems name in "All times in CET".
_ZONES = {
    "UTC": 0,
    "GMT": 0,
    "Z": 0,
    "WET": 0,
    "BST": 1,
    "CET": 1,
    "CEST": 2,
    "EET": 2,
    "EEST": 3,
    "IST": 5.5,
    "EST": -5,
    "EDT": -4,
    "CST": -6,
    "CDT": -5,
    "MST": -7,
    "MDT": -6,
    "PST": -8,
    "PDT": -7,
}
_ZONE = re.compile(r"\b(" + "|".join(_ZONES) + r")\b")

# Section headings, matched by their start, and the part of the write-up each one is.
_SECTIONS = (
    ("summary", ("summary", "overview", "description", "what happened", "incident summary")),
    ("impact", ("impact", "customer impact")),
    ("timeline", ("timeline", "chronology")),
    ("factors", ("contributing factor", "contributing cause", "findings")),
    ("root_cause", ("root cause", "cause", "underlying")),
    ("trigger", ("trigger",)),
    ("detection", ("detection",)),
    ("resolution", ("resolution", "recovery", "mitigation", "fix")),
    ("lessons", ("lessons", "learnings", "what we learned", "what went")),
    ("actions", ("action item", "actions", "remediation", "follow-up", "follow up", "next step")),
    ("stats", ("stats", "statistics", "metadata", "details")),
)

_DETECTED = re.compile(r"detect|alert|notif|report|page[ds]?\b|warning|noticed|aware", re.I)
_RESOLVED = re.compile(r"resolv|back to normal|restored|recovered|operational|verified work", re.I)
_DONE = re.compile(r"\((?:done|completed|fixed)\)|^\[x\]|\bdone\s*$", re.IGNORECASE)


@dataclass
class _Entry:
    at: datetime
    text: str
    kind: str = "note"


@dataclass
class _Postmortem:
    title: str
    sections: dict[str, str] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)


def is_postmortem(text: str) -> bool:
    """Whether Markdown reads as a postmortem: a title and a dated timeline, or front matter
    that gives `startedAt` (other Markdown, such as a README, is not one)."""
    front = _FRONT_MATTER.match(text)
    if front and re.search(r"^\s*startedAt\s*:", front.group(1), re.MULTILINE):
        return True
    parsed = _parse(text[front.end() :] if front else text)
    if parsed is None:
        return False
    return next(_timeline(parsed.sections.get("timeline", ""), UTC), None) is not None


def markdown_documents(text: str, path: Path) -> list[dict[str, Any]]:
    """The catalog documents one Markdown postmortem describes; ValueError says what is amiss."""
    try:
        parsed = _parse(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"the front matter is not valid YAML: {exc}") from exc
    if parsed is None or not {"summary", "timeline"} & set(parsed.sections):
        raise ValueError(
            "this Markdown file does not read as a postmortem: it needs a '# Title' and a "
            "'## Summary' or '## Timeline' section"
        )
    meta = parsed.meta
    key = _name(str(meta.get("key") or meta.get("incident") or path.stem))
    zone = _zone(str(meta.get("timezone") or ""), parsed.sections.get("timeline", ""))
    entries = list(_timeline(parsed.sections.get("timeline", ""), zone))
    stats = _stats(parsed.sections.get("stats", ""))

    incident = _incident(key, parsed, entries, stats, zone)
    postmortem = _postmortem(key, parsed)
    tasks = [
        _task(key, n, item, meta)
        for n, item in enumerate(_items(parsed.sections.get("actions", "")), start=1)
    ]
    return [incident, postmortem, *tasks]


def _parse(text: str) -> _Postmortem | None:
    meta: dict[str, Any] = {}
    if match := _FRONT_MATTER.match(text):
        loaded = yaml.safe_load(match.group(1))
        meta = loaded if isinstance(loaded, dict) else {}
        text = text[match.end() :]
    title: str | None = None
    sections: dict[str, list[str]] = {}
    current: str | None = None
    for line in text.splitlines():
        heading = _HEADING.match(line)
        if heading and title is None and heading.group(1) == "#":
            title = _inline(heading.group(2))
            current = None
        elif heading:
            current = _section(heading.group(2))
            if current is not None:
                sections.setdefault(current, [])
        elif current is not None:
            sections[current].append(line)
    title = str(meta.get("title") or title or "")
    if not title:
        return None
    body = {name: "\n".join(lines).strip() for name, lines in sections.items()}
    return _Postmortem(title=title, sections={k: v for k, v in body.items() if v}, meta=meta)


def _section(heading: str) -> str | None:
    words = _inline(heading).lower()
    for name, starts in _SECTIONS:
        if words.startswith(starts):
            return name
    return None


def _inline(text: str) -> str:
    """Markdown inline syntax removed: emphasis, code, links (their text kept)."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"(\*\*|__|`)", "", text)
    text = re.sub(r"(?<![\w*])[*_](\S[^*_]*?)[*_](?![\w*])", r"\1", text)
    return " ".join(text.split())


def _paragraphs(section: str) -> list[str]:
    blocks = re.split(r"\n\s*\n", section)
    return [_inline(b) for b in blocks if _inline(b)]


def _items(section: str) -> list[str]:
    """A section's bullet items (continuation lines joined), or its paragraphs."""
    items: list[str] = []
    in_list = False
    for line in section.splitlines():
        bullet = _BULLET.match(line)
        if bullet:
            items.append(bullet.group(1))
            in_list = True
        elif line.strip() and in_list and line.startswith((" ", "\t")):
            items[-1] += " " + line.strip()
        elif not line.strip():
            continue
        else:
            in_list = False
    cleaned = [_inline(i) for i in items if _inline(i)]
    return cleaned or _paragraphs(section)


def _zone(named: str, timeline: str) -> timezone:
    found = _ZONE.search(named.upper()) or _ZONE.search(timeline)
    hours = _ZONES[found.group(1)] if found else 0
    return timezone(timedelta(hours=hours))


def _timeline(section: str, zone: timezone) -> Iterator[_Entry]:
    """Entries from a Markdown table (`| time | event |`) or a list (`- time: event`)."""
    last: datetime | None = None
    for line in section.splitlines():
        cells = _cells(line)
        if cells is None:
            continue
        when, what = cells
        at = _time(when, zone) or last
        what = _inline(what)
        if at is None or not what:
            continue
        last = at
        yield _Entry(at=at, text=what)


def _cells(line: str) -> tuple[str, str] | None:
    stripped = line.strip()
    if stripped.startswith("|"):
        cells = [c.strip() for c in stripped.strip("|").split("|")]
        if len(cells) < 2 or set(cells[0]) <= set(":- ") or not _DATE.search(cells[0]):
            return None
        return cells[0], " ".join(c for c in cells[1:] if c)
    bullet = _BULLET.match(line)
    if bullet and (date := _DATE.search(bullet.group(1))):
        rest = bullet.group(1)[date.end() :].lstrip(" *:-–|")
        return date.group(0), rest
    return None


def _time(cell: str, zone: timezone) -> datetime | None:
    match = _DATE.search(cell)
    if match is None:
        return None
    year, month, day, hour, minute = (int(g) if g else 0 for g in match.groups())
    if not 1970 <= year <= 2100:
        return None
    try:
        local = datetime(year, month, day, hour, minute, tzinfo=zone)
    except ValueError:
        return None
    return local.astimezone(UTC)


def _stats(section: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for item in _items(section):
        if ":" in item:
            name, value = item.split(":", 1)
            found[name.strip().lower()] = value.strip()
    return found


def _minutes(value: str | None) -> float | None:
    if not value:
        return None
    units = {"day": 1440.0, "hour": 60.0, "hr": 60.0, "minute": 1.0, "min": 1.0}
    total = 0.0
    for amount, unit in _DURATION.findall(value):
        total += float(amount) * units.get(unit.lower(), 1 / 60)
    return total or None


def _name(text: str) -> str:
    cleaned = _NAME_CHARS.sub("-", text).strip("-._")
    return cleaned[:200] or "postmortem"


def _incident(
    key: str,
    parsed: _Postmortem,
    entries: list[_Entry],
    stats: dict[str, str],
    zone: timezone,
) -> dict[str, Any]:
    meta = parsed.meta
    started = _meta_time(meta.get("startedAt"), zone) or min((e.at for e in entries), default=None)
    if started is None:
        raise ValueError(
            "the postmortem gives no time: add a Timeline with dated entries "
            "(| 2024-03-01 10:15 | what happened |) or startedAt in front matter"
        )
    detected, resolved = _detected_resolved(started, entries, stats)
    _mark_kinds(entries, detected, resolved)
    summary = _paragraphs(parsed.sections.get("summary", ""))
    tags = [str(t) for t in meta.get("tags", [])]
    if category := stats.get("category"):
        tags.append(_name(category.lower()))
    severity = meta.get("severity") or _severity(parsed)

    spec: dict[str, Any] = {
        "severity": severity,
        "status": meta.get("status", "resolved"),
        "summary": summary[0] if summary else None,
        "commander": meta.get("commander"),
        "trigger": _first(parsed.sections.get("trigger")),
        "startedAt": started.isoformat(),
        "detectedAt": detected.isoformat() if detected else None,
        "resolvedAt": resolved.isoformat() if resolved else None,
        "timeline": [{"at": e.at.isoformat(), "kind": e.kind, "text": e.text} for e in entries],
    }
    for name in ("services", "environments", "features", "customers"):
        if meta.get(name):
            spec[name] = [str(v) for v in meta[name]]
    return _document("Incident", key, parsed.title, spec, tags=sorted(set(tags)))


def _meta_time(value: Any, zone: timezone) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=zone)
    if isinstance(value, str):
        return _time(value, zone)
    return None


def _detected_resolved(
    started: datetime, entries: list[_Entry], stats: dict[str, str]
) -> tuple[datetime | None, datetime | None]:
    """Stated times to detect and recover win; else the entries that say so."""
    to_detect = _minutes(stats.get("time to detection") or stats.get("time to detect"))
    to_recover = _minutes(stats.get("time to recovery") or stats.get("time to resolve"))
    detected = started + timedelta(minutes=to_detect) if to_detect is not None else None
    resolved = started + timedelta(minutes=to_recover) if to_recover is not None else None
    if detected is None:
        detected = next((e.at for e in entries if _DETECTED.search(e.text)), None)
    if resolved is None and entries:
        resolved = max(e.at for e in entries)
    # Times must not run backwards, whatever the write-up's arithmetic.
    if detected is not None and detected < started:
        detected = started
    if resolved is not None and resolved < (detected or started):
        resolved = detected or started
    return detected, resolved


def _mark_kinds(
    entries: list[_Entry], detected: datetime | None, resolved: datetime | None
) -> None:
    detection = next((e for e in entries if _DETECTED.search(e.text)), None)
    if detection is not None and detected is not None:
        detection.kind = "detection"
    closing = [e for e in entries if _RESOLVED.search(e.text)]
    if closing:
        closing[-1].kind = "resolution"


def _severity(parsed: _Postmortem) -> str:
    text = " ".join(parsed.sections.values())
    found = [int(n) for n in _SEVERITY.findall(text)]
    return f"SEV{min(found)}" if found else "SEV3"


def _first(section: str | None) -> str | None:
    if not section:
        return None
    paragraphs = _paragraphs(section)
    return paragraphs[0] if paragraphs else None


def _joined(section: str | None) -> str | None:
    if not section:
        return None
    return "\n\n".join(_paragraphs(section)) or None


def _postmortem(key: str, parsed: _Postmortem) -> dict[str, Any]:
    sections = parsed.sections
    summary = "\n\n".join(
        p for name in ("summary", "impact") for p in _paragraphs(sections.get(name, ""))
    )
    spec = {
        "incident": key,
        "summary": summary or None,
        "trigger": _joined(sections.get("trigger")),
        "rootCause": _joined(sections.get("root_cause")),
        "contributingFactors": _items(sections.get("factors", "")),
        "detection": _joined(sections.get("detection")),
        "resolution": _joined(sections.get("resolution")),
        "lessons": _items(sections.get("lessons", "")),
        "author": parsed.meta.get("author"),
    }
    return _document("Postmortem", f"{key}-postmortem", f"Postmortem: {parsed.title}", spec)


def _task(key: str, number: int, item: str, meta: dict[str, Any]) -> dict[str, Any]:
    done = bool(_DONE.search(item))
    text = re.sub(r"^\[[ xX]\]\s*", "", item)
    title, _, rest = text.partition(": ") if len(text) > 120 else (text, "", "")
    title = title if len(title) <= 200 else title[:197].rstrip() + "..."
    spec: dict[str, Any] = {
        "postmortem": f"{key}-postmortem",
        "incident": key,
        "status": "done" if done else "open",
        "owner": meta.get("owner"),
    }
    return _document(
        "RemediationTask", f"{key}-action-{number}", title, spec, description=rest or None
    )


def _document(
    kind: str,
    name: str,
    title: str,
    spec: dict[str, Any],
    *,
    tags: list[str] | None = None,
    description: str | None = None,
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "title": title}
    if tags:
        metadata["tags"] = tags
    if description:
        metadata["description"] = description
    return {
        "apiVersion": "resilience/v1",
        "kind": kind,
        "metadata": metadata,
        "spec": {k: v for k, v in spec.items() if v not in (None, [], "")},
    }
