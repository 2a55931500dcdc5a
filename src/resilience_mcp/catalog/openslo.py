"""OpenSLO documents (v1alpha, v1, v2alpha) as this catalog's SLO documents.

An OpenSLO `SLO` becomes one `resilience/v1` SLO per objective: the service, the window
(rolling or calendar), the budgeting method, the target and the time-slice settings carry
over; the indicator becomes a one-line description of what is measured, since the
measurements themselves arrive as rows, not as queries. What cannot be carried over is
refused with a sentence naming it: composite SLOs, several time windows, windows under an
hour, unknown budgeting methods. Other OpenSLO kinds (Service, SLI, DataSource,
AlertPolicy, ...) are skipped and reported, like any kind the catalog does not model.

OpenSLO's duration shorthand is case-sensitive: `1m` is a minute and `1M` a month.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from resilience_mcp.catalog.files import Document
from resilience_mcp.errors import LoadIssue

__all__ = ["OPENSLO_PREFIXES", "OpenSLOResult", "convert_openslo", "is_openslo"]

OPENSLO_PREFIXES = ("openslo/", "openslo.com/")
VERSIONS = ("v1alpha", "v1", "v2alpha")

_SHORTHAND = re.compile(r"^\s*(\d+)\s*(m|h|d|w|M|Q|Y)\s*$")
# OpenSLO units as this catalog writes durations; months, quarters and years in days.
_UNITS = {"m": (1, "m"), "h": (1, "h"), "d": (1, "d"), "w": (7, "d"), "M": (30, "d")}
_UNITS |= {"Q": (90, "d"), "Y": (365, "d")}
# v1alpha writes a window as a count of a unit.
_V1ALPHA_UNITS = {
    "second": None,
    "minute": "m",
    "hour": "h",
    "day": "d",
    "week": "w",
    "month": "M",
    "quarter": "Q",
    "year": "Y",
}
_METHODS = {
    "occurrences": "occurrences",
    "timeslices": "timeslices",
    "ratiotimeslices": "ratio-timeslices",
}
_SLUG = re.compile(r"[^a-z0-9]+")


@dataclass
class OpenSLOResult:
    documents: list[Document] = field(default_factory=list)
    issues: list[LoadIssue] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)


class _Unsupported(ValueError):
    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field_name = field_name


def is_openslo(body: Any) -> bool:
    """An OpenSLO document, or a list of them (the form OpenSLO's examples use)."""
    if isinstance(body, dict):
        version = body.get("apiVersion")
        return isinstance(version, str) and version.startswith(OPENSLO_PREFIXES)
    return isinstance(body, list) and bool(body) and all(is_openslo(item) for item in body)


def convert_openslo(document: Document) -> OpenSLOResult:
    """This catalog's SLO documents for an OpenSLO document (or list of them)."""
    result = OpenSLOResult()
    if isinstance(document.body, list):
        items = [Document(document.file, i, b) for i, b in enumerate(document.body, start=1)]
    else:
        items = [document]
    for item in items:
        _convert_one(item, result)
    return result


def _convert_one(document: Document, result: OpenSLOResult) -> None:
    body: dict[str, Any] = document.body
    version = str(body["apiVersion"]).split("/", 1)[1]
    kind = body.get("kind")
    raw = body.get("metadata")
    metadata: dict[str, Any] = raw if isinstance(raw, dict) else {}
    name = metadata.get("name") if isinstance(metadata.get("name"), str) else None
    if kind != "SLO":
        result.skipped[f"OpenSLO {kind}"] += 1
        return
    try:
        if version not in VERSIONS:
            raise _Unsupported(
                "apiVersion",
                f"OpenSLO version {version!r} is not supported; use {', '.join(VERSIONS)}",
            )
        spec = body.get("spec")
        if not isinstance(spec, dict):
            raise _Unsupported("spec", "spec must be a mapping")
        bodies = _slo_bodies(version, metadata, spec)
    except _Unsupported as exc:
        result.issues.append(
            LoadIssue(
                document.file,
                document.index,
                str(exc),
                kind="SLO",
                name=name,
                field=exc.field_name,
            )
        )
        return
    result.documents += [Document(document.file, document.index, b) for b in bodies]


def _slo_bodies(version: str, metadata: dict[str, Any], spec: dict[str, Any]) -> list[Any]:
    """One `resilience/v1` SLO body per objective."""
    window, window_type = _window(version, spec)
    method = _method(spec.get("budgetingMethod"))
    service = spec.get("serviceRef") if version == "v2alpha" else spec.get("service")
    if version == "v2alpha" and service is None:
        service = spec.get("service")
    objectives = spec.get("objectives")
    if not isinstance(objectives, list) or not objectives:
        raise _Unsupported("spec.objectives", "an SLO needs at least one objective")
    if version != "v1alpha" and any(
        isinstance(o, dict) and ("indicator" in o or "indicatorRef" in o) for o in objectives
    ):
        raise _Unsupported(
            "spec.objectives",
            "composite SLOs (an indicator per objective) are not supported; write one SLO "
            "per indicator",
        )
    name = metadata.get("name")
    several = len(objectives) > 1
    bodies: list[dict[str, Any]] = []
    for index, objective in enumerate(objectives):
        if not isinstance(objective, dict):
            raise _Unsupported(f"spec.objectives[{index}]", "an objective must be a mapping")
        bodies.append(
            {
                "apiVersion": "resilience/v1",
                "kind": "SLO",
                "metadata": _metadata(metadata, spec, objective, index, several),
                "spec": _spec(version, spec, objective, index)
                | {
                    "service": service,
                    "window": window,
                    "windowType": window_type,
                    "budgetingMethod": method,
                },
            }
        )
    if several and len({b["metadata"]["name"] for b in bodies}) < len(bodies):
        raise _Unsupported("spec.objectives", f"objectives of {name!r} need distinct names")
    return bodies


def _metadata(
    metadata: dict[str, Any],
    spec: dict[str, Any],
    objective: dict[str, Any],
    index: int,
    several: bool,
) -> dict[str, Any]:
    name = str(metadata.get("name", ""))
    title = metadata.get("displayName")
    if several:
        label = objective.get("name") or objective.get("displayName") or str(index + 1)
        name = f"{name}-{_SLUG.sub('-', str(label).lower()).strip('-')}"
        title = f"{title or metadata.get('name')} ({objective.get('displayName') or label})"
    annotations = {
        str(k): str(v) for k, v in (metadata.get("annotations") or {}).items() if v is not None
    }
    calendar = _calendar(spec)
    if calendar.get("startTime"):
        annotations["openslo/calendar-start"] = str(calendar["startTime"])
    if calendar.get("timeZone"):
        annotations["openslo/calendar-time-zone"] = str(calendar["timeZone"])
    return {
        "name": name,
        "title": title,
        "description": spec.get("description"),
        "tags": _tags(metadata.get("labels")),
        "annotations": annotations,
    }


def _tags(labels: Any) -> list[str]:
    """OpenSLO labels (`team: [a, b]` or `env: prod`) as `key:value` tags."""
    if not isinstance(labels, dict):
        return []
    tags = []
    for key, values in labels.items():
        for value in values if isinstance(values, list) else [values]:
            tags.append(f"{key}:{value}")
    return tags


def _spec(
    version: str, spec: dict[str, Any], objective: dict[str, Any], index: int
) -> dict[str, Any]:
    where = f"spec.objectives[{index}]"
    target = objective.get("target")
    if target is None and objective.get("targetPercent") is not None:
        target = float(objective["targetPercent"]) / 100.0
    if target is None:
        raise _Unsupported(f"{where}.target", "an objective needs a target (or targetPercent)")
    slice_window = objective.get("timeSliceWindow")
    if slice_window is not None:
        slice_window = _duration(str(slice_window), f"{where}.timeSliceWindow", minimum=None)
    converted: dict[str, Any] = {
        "indicator": _indicator(version, spec, objective),
        "objective": target,
        "timesliceTarget": objective.get("timeSliceTarget"),
        "timesliceWindow": slice_window,
    }
    return {k: v for k, v in converted.items() if v is not None}


def _method(value: Any) -> str:
    key = str(value or "").replace("-", "").replace("_", "").lower()
    if key not in _METHODS:
        raise _Unsupported(
            "spec.budgetingMethod",
            f"budgetingMethod {value!r} is not one of Occurrences, Timeslices, RatioTimeslices",
        )
    return _METHODS[key]


def _calendar(spec: dict[str, Any]) -> dict[str, Any]:
    windows = spec.get("timeWindow") or spec.get("timeWindows") or []
    first = windows[0] if isinstance(windows, list) and windows else {}
    calendar = first.get("calendar") if isinstance(first, dict) else None
    return calendar if isinstance(calendar, dict) else {}


def _window(version: str, spec: dict[str, Any]) -> tuple[str, str]:
    """The window as a duration this catalog reads, and rolling or calendar."""
    key = "timeWindows" if version == "v1alpha" else "timeWindow"
    windows = spec.get(key)
    if not isinstance(windows, list) or not windows:
        raise _Unsupported(f"spec.{key}", "an SLO needs a time window")
    if len(windows) > 1:
        raise _Unsupported(f"spec.{key}", "several time windows are not supported; keep one")
    window = windows[0]
    if not isinstance(window, dict):
        raise _Unsupported(f"spec.{key}[0]", "a time window must be a mapping")
    if version == "v1alpha":
        unit = _V1ALPHA_UNITS.get(str(window.get("unit", "")).lower())
        if unit is None:
            raise _Unsupported(
                f"spec.{key}[0].unit",
                f"window unit {window.get('unit')!r} is not supported; use Day, Week, Month, "
                "Quarter or Year",
            )
        shorthand = f"{int(window.get('count', 1))}{unit}"
    else:
        shorthand = str(window.get("duration", ""))
    duration = _duration(shorthand, f"spec.{key}[0].duration", minimum=60)
    rolling = window.get("isRolling", True) is not False
    return duration, "rolling" if rolling else "calendar"


def _duration(text: str, where: str, *, minimum: int | None) -> str:
    """OpenSLO shorthand (`2w`, `1M`) as a duration this catalog reads (`14d`, `30d`)."""
    match = _SHORTHAND.match(text)
    if not match:
        raise _Unsupported(where, f"{text!r} is not an OpenSLO duration such as 5m, 1h, 4w, 1M")
    count, unit = int(match.group(1)), match.group(2)
    factor, ours = _UNITS[unit]
    if minimum is not None and unit == "m" and count < minimum:
        raise _Unsupported(
            where,
            f"a {count}-minute SLO window is not supported: OpenSLO reads {text!r} as minutes; "
            f"for months write {count}M",
        )
    return f"{count * factor}{ours}"


def _indicator(version: str, spec: dict[str, Any], objective: dict[str, Any]) -> str:
    """A one-line description of what the SLO measures."""
    if version == "v1alpha":
        sli, label = spec.get("indicator") or {}, None
        metrics = objective.get("ratioMetrics") or sli.get("thresholdMetric")
        kind = "ratio" if objective.get("ratioMetrics") else "threshold"
    else:
        key, ref = ("sli", "sliRef") if version == "v2alpha" else ("indicator", "indicatorRef")
        inline = spec.get(key)
        if not isinstance(inline, dict):
            return f"SLI {spec.get(ref)}" if spec.get(ref) else "not described"
        meta = inline.get("metadata") or {}
        label = str(meta.get("displayName") or meta.get("name") or "").rstrip(".") or None
        body = inline.get("spec") or {}
        kind = "ratio" if "ratioMetric" in body else "threshold"
        metrics = body.get("ratioMetric") or body.get("thresholdMetric")
    source = _source(metrics)
    what = "good over total" if kind == "ratio" else "a threshold metric"
    if kind == "threshold" and objective.get("op") and objective.get("value") is not None:
        what += f" ({objective['op']} {objective['value']})"
    described = f"{what}{f' from {source}' if source else ''}"
    return f"{label}: {described}" if label else described


def _source(metrics: Any) -> str | None:
    """The first data source named anywhere in a metric spec."""
    if isinstance(metrics, dict):
        for key in ("type", "source", "dataSourceRef", "metricSourceRef"):
            if isinstance(metrics.get(key), str):
                return str(metrics[key])
        for value in metrics.values():
            if (found := _source(value)) is not None:
                return found
    return None
