"""What a summary answer leaves out.

Every tool takes `detail`: `summary` (the default) or `full`. A summary keeps what an agent
acts on (names, states, counts, owners, on-call, what to do next) and leaves out what only
explains or decorates it: paths, descriptions, inner lists, provenance, raw records. The
fields left out are emptied (an optional one left out of the answer, as every optional
field with no value is), so a summary validates against the same output schema as a full
answer. The text is the same in both.

`SUMMARY_OMITS` names those fields per answer model; models not named are kept whole, and
models nested anywhere inside an answer are summarised by the same table.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, cast, get_args, get_origin

from pydantic import BaseModel
from pydantic_core import to_jsonable_python

from resilience_mcp.models import catalog, common, flags, impact, incidents, metrics

__all__ = ["DETAIL_DESCRIPTION", "SUMMARY_OMITS", "Detail", "empty_value", "shape"]

Detail = Literal["summary", "full"]

DETAIL_DESCRIPTION = (
    "summary (default) answers with what to act on; full adds paths, descriptions, inner "
    "lists and where each fact came from. The text is the same either way."
)

SUMMARY_OMITS: dict[type[BaseModel], frozenset[str]] = {
    common.OwnerSummary: frozenset({"path", "owner_source", "on_call_source"}),
    catalog.OwnerAnswer: frozenset({"links"}),
    catalog.ServiceCard: frozenset({"description", "dashboards", "tags"}),
    catalog.SearchHit: frozenset({"description", "matched"}),
    impact.ImpactedFeature: frozenset({"services"}),
    impact.FlagLever: frozenset({"services"}),
    impact.AffectedCustomer: frozenset({"features", "environments"}),
    impact.OwnerToCall: frozenset({"services"}),
    impact.PastIncident: frozenset({"services"}),
    impact.DependencyLink: frozenset({"description"}),
    incidents.IncidentRecord: frozenset({"source"}),
    incidents.TimelineItem: frozenset({"author"}),
    incidents.PostmortemDetail: frozenset({"contributing_factors", "detection", "lessons"}),
    incidents.RecurrenceGroup: frozenset({"evidence"}),
    flags.FlagStateView: frozenset({"source"}),
    flags.FlagSummary: frozenset({"services"}),
    flags.FeatureCard: frozenset({"description"}),
    flags.ChangeEntry: frozenset({"reason"}),
    metrics.ScorecardResult: frozenset({"rules"}),
}


def shape(model: BaseModel, detail: Detail) -> dict[str, Any]:
    """`model` as structured content: a summary empties the fields SUMMARY_OMITS names, at
    every depth, and either way an optional field with no value is left out. A field that
    must be present keeps its null: there it says "no data" (a median of no restores)."""
    data = model.model_dump(mode="json")
    _shape(model, data, detail == "summary")
    return data


def _shape(model: BaseModel, data: dict[str, Any], summary: bool) -> None:
    plan = _plan(type(model))
    if summary:
        for name, empty in plan.omitted.items():
            # An empty list or dict of its own: the plan's is shared by every answer.
            data[name] = type(empty)() if isinstance(empty, (list, dict)) else empty
    for name in plan.nested:
        if summary and name in plan.omitted:
            continue
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            _shape(value, data[name], summary)
        elif isinstance(value, list):
            for item, shown in zip(value, data[name], strict=True):
                if isinstance(item, BaseModel):
                    _shape(item, shown, summary)
        elif isinstance(value, dict):
            for key, item in value.items():
                if isinstance(item, BaseModel):
                    _shape(item, data[name][str(key)], summary)
    for name in plan.optional:
        if data.get(name, False) is None:
            del data[name]


@dataclass(frozen=True)
class _Plan:
    """What shaping does to one answer model: the JSON each omitted field takes in a
    summary, the optional fields (left out when null), the fields that can hold models."""

    omitted: dict[str, Any]
    optional: tuple[str, ...]
    nested: tuple[str, ...]


@functools.cache
def _plan(model: type[BaseModel]) -> _Plan:
    fields = model.model_fields
    omits = SUMMARY_OMITS.get(model, frozenset())
    return _Plan(
        omitted={
            name: to_jsonable_python(empty_value(fields[name].annotation, fields[name]))
            for name in sorted(omits)
        },
        optional=tuple(name for name, info in fields.items() if not info.is_required()),
        nested=tuple(name for name, info in fields.items() if _holds_model(info.annotation)),
    )


def _holds_model(annotation: Any) -> bool:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return True
    return any(_holds_model(arg) for arg in get_args(annotation))


def empty_value(annotation: Any, info: Any) -> Any:
    """The value an omitted field takes: its default, else the empty value of its type."""
    if not info.is_required():
        # The factories here take no arguments; asking pydantic whether they want the
        # validated data inspects their signature on every call.
        factory = info.default_factory
        return info.default if factory is None else cast(Callable[[], Any], factory)()
    origin = get_origin(annotation)
    if origin is list:
        return []
    if origin is dict:
        return {}
    if type(None) in get_args(annotation):
        return None
    raise TypeError(f"a summary cannot leave out the required field of type {annotation!r}")
