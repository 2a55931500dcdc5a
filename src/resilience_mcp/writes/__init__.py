"""Guarded writes to the catalog: incidents, postmortems, remediation tasks, flags.

Every write runs through `perform_write` (see `audit`): at most once per idempotency key,
with a dry run that changes nothing, and an audit record in the same transaction.
"""

from resilience_mcp.writes.audit import WriteRequest, list_audit_log, scrub_arguments
from resilience_mcp.writes.flags import FlagSetting, set_feature_flag
from resilience_mcp.writes.incidents import (
    IncidentChange,
    IncidentDraft,
    declare_incident,
    update_incident,
)
from resilience_mcp.writes.postmortems import PostmortemDraft, record_postmortem
from resilience_mcp.writes.tasks import (
    TaskChange,
    TaskDraft,
    create_remediation_task,
    update_remediation_task,
)

__all__ = [
    "FlagSetting",
    "IncidentChange",
    "IncidentDraft",
    "PostmortemDraft",
    "TaskChange",
    "TaskDraft",
    "WriteRequest",
    "create_remediation_task",
    "declare_incident",
    "list_audit_log",
    "record_postmortem",
    "scrub_arguments",
    "set_feature_flag",
    "update_incident",
    "update_remediation_task",
]
