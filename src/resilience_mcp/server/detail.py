"""What a summary answer leaves out.

Every tool takes `detail`: `summary` (the default) or `full`. A summary keeps what an agent
acts on (names, states, counts, owners, on-call, what to do next) and leaves out what only
explains or decorates it: paths, descriptions, inner lists, provenance, raw records. The
fields left out keep their place in the output schema, empty, so a summary validates
against the same schema as a full answer. The text is the same in both.

`SUMMARY_OMITS` names those fields per answer model; models not named are kept whole, and
models nested anywhere inside an answer are summarised by the same table.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, TypeVar, cast, get_args, get_origin

from pydantic import BaseModel

from resilience_mcp.models import catalog, common, flags, impact, incidents, metrics

__all__ = ["DETAIL_DESCRIPTION", "SUMMARY_OMITS", "Detail", "empty_value", "summarize"]

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

M = TypeVar("M", bound=BaseModel)


def summarize(model: M) -> M:
    """`model` with the fields SUMMARY_OMITS names emptied, at every depth."""
    omitted = SUMMARY_OMITS.get(type(model), frozenset())
    updates: dict[str, Any] = {}
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        if name in omitted:
            updates[name] = empty_value(info.annotation, info)
            continue
        shrunk = _summarize_value(value)
        if shrunk is not value:
            updates[name] = shrunk
    return model.model_copy(update=updates) if updates else model


def _summarize_value(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return summarize(value)
    if isinstance(value, list) and value and isinstance(value[0], BaseModel):
        return [summarize(item) for item in value]
    return value


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
