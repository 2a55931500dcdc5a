"""Answers about how well things run: DORA, MTTR and MTBF, SLO budgets, scorecards.

Also the scorecard rule vocabulary itself (`ScorecardRule`), so a catalog file's rules are
checked when the file loads, long before anything is evaluated.
"""

from __future__ import annotations

import functools
import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from resilience_mcp.models.catalog import IncidentBrief
from resilience_mcp.models.common import Answer, ListCut, PageInfo
from resilience_mcp.models.kinds import canonical_kind
from resilience_mcp.models.tables import KIND_TABLES

__all__ = [
    "CHECKS",
    "LEVELS",
    "Band",
    "ChangeFailureRate",
    "CheckName",
    "DeploymentFrequency",
    "DoraAnswer",
    "DoraPeriod",
    "DurationStats",
    "FailedDeploymentRecovery",
    "FlakyComponent",
    "GroupBy",
    "LeadTime",
    "Level",
    "Mtbf",
    "ReliabilityAnswer",
    "RuleResult",
    "SLOStatus",
    "SLOStatusAnswer",
    "ScopeKind",
    "ScorecardAnswer",
    "ScorecardFailure",
    "ScorecardFailuresAnswer",
    "ScorecardResult",
    "ScorecardRule",
    "TimeToRestore",
    "check_rules_fit",
    "entity_field",
    "format_minutes",
]

Band = Literal["elite", "high", "medium", "low"]
Bucket = Literal["daily", "weekly", "monthly", "yearly"]
ScopeKind = Literal["service", "team", "system", "domain", "organisation"]
GroupBy = Literal["week", "month"]


def format_minutes(minutes: float | None) -> str:
    """45 min, 3 h 20 min, 2 d 4 h: what a person reads at a glance."""
    if minutes is None:
        return "n/a"
    if minutes < 60:
        return f"{minutes:.0f} min"
    hours, rest = divmod(round(minutes), 60)
    if hours < 24:
        return f"{hours} h {rest} min" if rest else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def _band(band: Band | None) -> str:
    return f" ({band})" if band else ""


# DORA


class DeploymentFrequency(BaseModel):
    deployments: int = Field(description="Production deployments that went out in the window.")
    deploy_days: int = Field(description="Distinct UTC days with at least one deployment.")
    weeks: int = Field(description="Calendar weeks (Monday to Sunday) the window touches.")
    per_week: float
    bucket: Bucket | None = Field(
        default=None,
        description="daily: the median week has deployments on 3 or more days; weekly: more "
        "than half the weeks have one; monthly: more than half the months have one; else yearly.",
    )
    band: Band | None = None


class LeadTime(BaseModel):
    median_minutes: float | None
    pairs: int = Field(description="(deployment, commit) pairs measured.")
    dropped: int = Field(description="Pairs at zero or below, or without a commit time: left out.")
    band: Band | None = None


class ChangeFailureRate(BaseModel):
    deployments: int
    failures: int = Field(description="Deployments linked to an incident, or rolled back.")
    linked_to_incidents: int = Field(
        description="Deployments an incident names as suspect or whose commits hold its root cause."
    )
    rolled_back: int = Field(description="Rolled-back deployments no incident names.")
    rate: float | None
    band: Band | None = None


class TimeToRestore(BaseModel):
    median_minutes: float | None
    restored: int = Field(description="Incidents started in the window and restored since.")
    open: int = Field(description="Incidents started in the window and not yet restored.")
    band: Band | None = None


class FailedDeploymentRecovery(BaseModel):
    median_minutes: float | None
    recovered: int
    unrecovered: int
    band: Band | None = None


class DoraPeriod(BaseModel):
    start: datetime
    end: datetime
    deployments: int
    deploy_days: int
    lead_time_median_minutes: float | None
    change_failure_rate: float | None
    time_to_restore_median_minutes: float | None
    incidents: int


class DoraAnswer(Answer):
    scope: ScopeKind
    name: str | None = None
    corrected_from: str | None = None
    services: int = Field(description="Services in scope.")
    since: datetime
    until: datetime
    deployment_frequency: DeploymentFrequency
    lead_time: LeadTime
    change_failure_rate: ChangeFailureRate
    time_to_restore: TimeToRestore
    failed_deployment_recovery: FailedDeploymentRecovery
    group_by: GroupBy | None = None
    periods: list[DoraPeriod] = Field(default_factory=list, description="Newest last.")
    periods_page: ListCut | None = None

    def text(self) -> str:
        who = "the organisation" if self.scope == "organisation" else f"{self.scope} {self.name}"
        asked = f" (taken for {self.corrected_from!r})" if self.corrected_from else ""
        days = (self.until - self.since).total_seconds() / 86400
        lines = [
            f"DORA for {who}{asked}, {self.services} service(s), {self.since:%Y-%m-%d} to "
            f"{self.until:%Y-%m-%d} ({days:.0f} days, production deployments):"
        ]
        df, lt, cfr = self.deployment_frequency, self.lead_time, self.change_failure_rate
        if df.deployments == 0:
            lines.append("- deployment frequency: no deployments in the window")
        else:
            lines.append(
                f"- deployment frequency: {df.bucket}{_band(df.band)}; {df.deployments} "
                f"deployments on {df.deploy_days} days, {df.per_week:.1f} a week"
            )
        lines.append(
            f"- lead time for changes: median {format_minutes(lt.median_minutes)}{_band(lt.band)}"
            f" over {lt.pairs} commit(s)"
        )
        rate = "n/a" if cfr.rate is None else f"{cfr.rate:.1%}"
        lines.append(
            f"- change failure rate: {rate}{_band(cfr.band)}; {cfr.failures} of "
            f"{cfr.deployments} ({cfr.linked_to_incidents} linked to incidents, "
            f"{cfr.rolled_back} rolled back)"
        )
        ttr, fdr = self.time_to_restore, self.failed_deployment_recovery
        lines.append(
            f"- time to restore: median {format_minutes(ttr.median_minutes)}{_band(ttr.band)};"
            f" {ttr.restored} restored, {ttr.open} open"
        )
        lines.append(
            f"- failed deployment recovery: median {format_minutes(fdr.median_minutes)}"
            f"{_band(fdr.band)}; {fdr.recovered} recovered, {fdr.unrecovered} not yet"
        )
        for p in self.periods:
            cfr_text = "n/a" if p.change_failure_rate is None else f"{p.change_failure_rate:.0%}"
            lines.append(
                f"  {p.start:%Y-%m-%d}: {p.deployments} deploys, lead "
                f"{format_minutes(p.lead_time_median_minutes)}, CFR {cfr_text}, restore "
                f"{format_minutes(p.time_to_restore_median_minutes)}"
            )
        if self.periods_page is not None and self.periods_page.truncated:
            rest = "a higher limit or a shorter window shows the others"
            lines.append(f"  {self.periods_page.note('periods', rest).strip()}")
        return "\n".join(lines)


# MTTR, MTBF and reliability


class DurationStats(BaseModel):
    count: int
    mean_minutes: float | None = None
    median_minutes: float | None = None

    def line(self) -> str:
        if not self.count:
            return "n/a"
        return (
            f"mean {format_minutes(self.mean_minutes)}, median "
            f"{format_minutes(self.median_minutes)} (n={self.count})"
        )


class Mtbf(BaseModel):
    failures: int = Field(description="Failures (incidents) that started in the window.")
    intervals: int = Field(description="Complete intervals between consecutive failures.")
    mtbf_hours: float | None = Field(
        description="Mean operating time between the starts of consecutive failures: from one "
        "failure's restoration to the next one's start. Null with fewer than two failures."
    )
    at_least_hours: float | None = Field(
        default=None,
        description="With fewer than two failures: the longest failure-free stretch seen, a "
        "lower bound on the MTBF.",
    )
    operating_hours: float
    downtime_hours: float

    def line(self) -> str:
        if self.mtbf_hours is not None:
            return (
                f"MTBF {format_minutes(self.mtbf_hours * 60)} over {self.intervals} interval(s) "
                f"between {self.failures} failures"
            )
        bound = format_minutes((self.at_least_hours or 0) * 60)
        return f"MTBF at least {bound} ({self.failures} failure(s), too few to measure)"


class FlakyComponent(BaseModel):
    service: str
    tier: int | None = None
    owner: str | None = None
    failures: int
    mtbf_hours: float | None = None
    at_least_hours: float | None = None
    downtime_hours: float
    restore_median_minutes: float | None = None


class ReliabilityAnswer(Answer):
    name: str
    kind: str
    corrected_from: str | None = None
    services: int
    since: datetime
    until: datetime
    incidents: int
    open_incidents: int
    by_severity: dict[str, int] = Field(default_factory=dict)
    time_to_restore: DurationStats = Field(
        description="Start to restoration (mitigation, else resolution)."
    )
    time_to_detect: DurationStats = Field(description="Start to detection.")
    time_to_acknowledge: DurationStats = Field(description="Detection to acknowledgement.")
    time_to_resolve: DurationStats = Field(description="Start to resolution.")
    mtbf: Mtbf
    flakiest: list[FlakyComponent] = Field(default_factory=list)
    flakiest_page: ListCut
    slos: list[SLOStatus] = Field(default_factory=list)
    slos_page: ListCut
    recent_incidents: list[IncidentBrief] = Field(default_factory=list)

    def text(self) -> str:
        asked = f" (taken for {self.corrected_from!r})" if self.corrected_from else ""
        who = (
            "the organisation"
            if self.kind == "Organisation"
            else f"{self.kind.lower()} {self.name}"
        )
        lines = [
            f"Reliability of {who}{asked}, {self.since:%Y-%m-%d} to "
            f"{self.until:%Y-%m-%d}: {self.incidents} incident(s), {self.open_incidents} open",
            f"- time to restore: {self.time_to_restore.line()}",
            f"- time to detect: {self.time_to_detect.line()}",
            f"- time to acknowledge: {self.time_to_acknowledge.line()}",
            f"- {self.mtbf.line()}",
        ]
        if len(self.flakiest) > 1 or (self.flakiest and self.flakiest[0].service != self.name):
            flaky = ", ".join(f"{f.service} ({f.failures})" for f in self.flakiest[:5])
            lines.append(f"- flakiest: {flaky}{self.flakiest_page.note('services')}")
        for slo in self.slos:
            lines.append(f"- SLO {slo.line()}")
        if self.slos_page.truncated:
            rest = "get_slo_status lists them all"
            lines.append(f"- {self.slos_page.note('SLOs', rest).strip()}")
        lines += [
            f"- {i.key} {i.severity} {i.status}: {i.title or ''}".rstrip()
            for i in self.recent_incidents
        ]
        return "\n".join(lines)


# SLOs


class SLOStatus(BaseModel):
    name: str
    title: str | None = None
    service: str | None = None
    objective: float
    window_days: float
    window_type: str
    budgeting_method: str
    window_start: datetime
    window_end: datetime
    measurements: int
    good: float
    total: float
    attainment: float | None = Field(description="Good over total in the window (0 to 1).")
    error_budget: float | None = Field(
        description="Bad events (or slices) the objective allows in the whole window."
    )
    budget_spent: float | None = Field(description="Bad events (or slices) so far.")
    budget_remaining: float | None = Field(
        description="Share of the error budget left: 1 untouched, 0 spent, below 0 overspent."
    )
    burn_rate_short: float | None = Field(
        description="Error rate over the short window divided by the rate the objective "
        "allows; 1 spends the budget exactly by the end of the window."
    )
    burn_rate_long: float | None
    short_window_hours: float
    long_window_hours: float
    status: Literal["healthy", "at_risk", "exhausted", "no_data"]

    def line(self) -> str:
        if self.status == "no_data" or self.attainment is None:
            return f"{self.name}: no measurements in the window"
        left = "n/a" if self.budget_remaining is None else f"{self.budget_remaining:.0%}"
        burn = "n/a" if self.burn_rate_short is None else f"{self.burn_rate_short:.1f}x"
        long_burn = "n/a" if self.burn_rate_long is None else f"{self.burn_rate_long:.1f}x"
        return (
            f"{self.name}: {self.attainment:.3%} vs {self.objective:.2%} over "
            f"{self.window_days:g}d, budget left {left}, burn {burn} "
            f"({self.short_window_hours:g}h) / {long_burn} ({self.long_window_hours:g}h), "
            f"{self.status.replace('_', ' ')}"
        )


class SLOStatusAnswer(Answer):
    service: str | None = None
    corrected_from: str | None = None
    at: datetime
    slos: list[SLOStatus]
    page: PageInfo
    by_status: dict[str, int] = Field(default_factory=dict)

    def text(self) -> str:
        where = f" of {self.service}" if self.service else ""
        if not self.slos:
            return f"No SLOs{where} in the catalog."
        counts = ", ".join(f"{n} {s.replace('_', ' ')}" for s, n in sorted(self.by_status.items()))
        lines = [f"{self.page.total} SLO(s){where}: {counts}{self.page.note('SLOs')}"]
        lines += [f"- {slo.line()}" for slo in self.slos]
        return "\n".join(lines)


# Scorecards: the rule vocabulary


Level = Literal["Basic", "Bronze", "Silver", "Gold"]
LEVELS: tuple[Level, ...] = ("Basic", "Bronze", "Silver", "Gold")

CheckName = Literal[
    "has_owner",
    "owner_has_on_call",
    "has_field",
    "has_slo",
    "kill_switch_per_feature",
    "no_overdue_remediation",
    "mttr_under",
    "slo_budget_left",
]


class _Check(BaseModel):
    """What one check accepts: its parameters (required ones too) and the kinds it reads."""

    params: dict[str, type | tuple[type, ...]]
    required: tuple[str, ...] = ()
    kinds: tuple[str, ...] | None = None  # None: any kind the catalog graph holds


_NUMBER = (int, float)

CHECKS: dict[str, _Check] = {
    "has_owner": _Check(params={"direct": bool}),
    "owner_has_on_call": _Check(params={"parents": bool}),
    "has_field": _Check(params={"field": str}, required=("field",)),
    "has_slo": _Check(params={"min": int}, kinds=("Service",)),
    "kill_switch_per_feature": _Check(params={}, kinds=("Service",)),
    "no_overdue_remediation": _Check(params={"any_owner": bool}, kinds=("Service", "Team")),
    "mttr_under": _Check(
        params={"hours": _NUMBER, "window": str}, required=("hours",), kinds=("Service",)
    ),
    "slo_budget_left": _Check(params={"min": _NUMBER}, kinds=("Service",)),
}


def _level(value: Any) -> Any:
    return value.strip().capitalize() if isinstance(value, str) else value


class ScorecardRule(BaseModel):
    """One rule of a scorecard: a named check with parameters, required for a level.

    `when` narrows the entities a rule applies to by their fields (`tier: [1]`); a rule that
    does not apply counts as passed.
    """

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,99}$")
    title: str | None = None
    level: Annotated[Level, BeforeValidator(_level)]
    check: CheckName
    params: dict[str, Any] = Field(default_factory=dict)
    when: dict[str, list[Any]] = Field(default_factory=dict)
    hint: str | None = Field(default=None, description="What to do when the rule fails.")

    @model_validator(mode="after")
    def _params_fit_check(self) -> ScorecardRule:
        spec = CHECKS[self.check]
        unknown = sorted(set(self.params) - set(spec.params))
        if unknown:
            allowed = ", ".join(spec.params) or "none"
            raise ValueError(
                f"rule {self.id!r}: check {self.check} takes no parameter "
                f"{', '.join(unknown)} (it takes: {allowed})"
            )
        for name in spec.required:
            if name not in self.params:
                raise ValueError(f"rule {self.id!r}: check {self.check} needs params.{name}")
        for name, value in self.params.items():
            expected = spec.params[name]
            if not isinstance(value, expected) or (
                isinstance(value, bool) and expected is not bool
            ):
                raise ValueError(f"rule {self.id!r}: params.{name} has the wrong type ({value!r})")
        return self


def check_rules_fit(applies_to: str, rules: list[ScorecardRule]) -> str:
    """The canonical kind a scorecard applies to; raises ValueError when a rule cannot."""
    kind = canonical_kind(applies_to)
    if kind is None:
        raise ValueError(f"appliesTo {applies_to!r} is not a catalog kind")
    seen: set[str] = set()
    for rule in rules:
        if rule.id in seen:
            raise ValueError(f"rule id {rule.id!r} is used twice; rule ids must be unique")
        seen.add(rule.id)
        kinds = CHECKS[rule.check].kinds
        if kinds is not None and kind not in kinds:
            raise ValueError(
                f"rule {rule.id!r}: check {rule.check} works on {' or '.join(kinds)}, not on {kind}"
            )
        fields = [*rule.when, rule.params["field"]] if rule.check == "has_field" else [*rule.when]
        for name in fields:
            if entity_field(kind, name) is None:
                raise ValueError(f"rule {rule.id!r}: a {kind} has no field {name!r}")
    return kind


@functools.cache
def entity_field(kind: str, name: str) -> str | None:
    """The column a rule's field name (camelCase or snake_case) means on `kind`, if any."""
    table = KIND_TABLES.get(kind)
    snake = re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()
    return snake if table is not None and snake in table.model_fields else None


# Scorecards: results


class RuleResult(BaseModel):
    rule: str
    title: str
    level: Level
    check: str
    passed: bool
    applies: bool = True
    detail: str
    hint: str | None = None


class ScorecardResult(BaseModel):
    scorecard: str
    title: str | None = None
    level: Level | None = Field(description="The highest level whose rules, and all below, pass.")
    next_level: Level | None = None
    passed: int
    failed: int
    not_applicable: int
    next_step: list[RuleResult] = Field(
        default_factory=list, description="The failing rules that stand before the next level."
    )
    failing: list[RuleResult] = Field(default_factory=list)
    rules: list[RuleResult] = Field(default_factory=list)

    def lines(self) -> list[str]:
        reached = self.level or "no level (a Basic rule fails)"
        head = f"{self.scorecard}: {reached}; {self.passed} passed, {self.failed} failed"
        out = [head]
        if self.next_level:
            out.append(f"  next: {self.next_level} needs")
            out += [f"  - {r.title}: {r.detail}" for r in self.next_step]
        others = [r for r in self.failing if r not in self.next_step]
        out += [f"  also failing ({r.level}): {r.title}" for r in others]
        return out


class ScorecardAnswer(Answer):
    name: str
    kind: str
    corrected_from: str | None = None
    owner: str | None = None
    results: list[ScorecardResult]

    def text(self) -> str:
        asked = f" (taken for {self.corrected_from!r})" if self.corrected_from else ""
        lines = [f"Scorecards of {self.kind.lower()} {self.name}{asked}:"]
        if not self.results:
            lines.append("no scorecard applies to this kind")
        for result in self.results:
            lines += result.lines()
        return "\n".join(lines)


class ScorecardFailure(BaseModel):
    entity: str
    kind: str
    owner: str | None = None
    scorecard: str
    rule: str
    title: str
    level: Level
    detail: str


class ScorecardFailuresAnswer(Answer):
    rule: str | None = None
    level: Level | None = None
    team: str | None = None
    entities: int = Field(description="Entities evaluated after the filters.")
    levels: dict[str, int] = Field(
        default_factory=dict, description="Entities at each level ('none' below Basic)."
    )
    by_rule: dict[str, int] = Field(default_factory=dict)
    failures: list[ScorecardFailure]
    page: PageInfo

    def text(self) -> str:
        asked = [
            f"{k} {v}" for k, v in (("rule", self.rule), ("level", self.level), ("team", self.team))
        ]
        filters = ", ".join(a for a in asked if not a.endswith(" None"))
        head = f"{self.page.total} failing rule(s) over {self.entities} entities"
        head += f" ({filters})" if filters else ""
        if not self.failures:
            return head + ": everything passes."
        levels = ", ".join(f"{n} {lvl}" for lvl, n in self.levels.items())
        lines = [f"{head}{self.page.note('failures')}; levels: {levels}"]
        lines += [
            f"- {f.entity} [{f.level}] {f.title}: {f.detail}"
            + (f" (owner {f.owner})" if f.owner else "")
            for f in self.failures
        ]
        return "\n".join(lines)


ReliabilityAnswer.model_rebuild()
