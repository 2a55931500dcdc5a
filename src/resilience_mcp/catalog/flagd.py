"""flagd (OpenFeature) flag files as catalog flags.

A flagd file holds `flags`, each with `variants`, a `defaultVariant`, a `state` (ENABLED or
DISABLED) and optional JSON Logic `targeting`; it describes one environment, so the
environment is given by the caller or by the file's `metadata.environment`. Each flag
becomes a FeatureFlag document whose state in that environment is read from the file:

- on or off from the default variant (false, 0, empty, or a variant named "off" is off)
  and from what targeting can choose; a DISABLED flag is off;
- the variant, for flags that are not plain on/off;
- a `fractional` split at the top of the targeting gives the rollout percentage;
- the targeting itself is summarised in words.

Which services read a flag, the feature it controls, its purpose and owner come from a
mapping argument, else the flag's `metadata` (`services`, `feature`, `purpose`, `owner`),
else the file's `metadata`, else what the catalog already says. A flag the catalog already
holds keeps everything else it has, including its state in other environments; when its
state in this environment differs from the catalog's, the import records the change.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import or_
from sqlmodel import SQLModel, col, select

from resilience_mcp import models as m
from resilience_mcp.catalog.files import Document
from resilience_mcp.catalog.kinds import CODECS
from resilience_mcp.errors import LoadIssue
from resilience_mcp.store import Store

__all__ = [
    "FlagdFlag",
    "describe_targeting",
    "flagd_documents",
    "is_flagd",
    "read_flagd",
    "with_state",
]

logger = logging.getLogger(__name__)

LINK_FIELDS = ("services", "feature", "purpose", "owner")
# Summaries longer than this are cut: targeting is for reading, not for evaluating.
MAX_TARGETING = 300
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
_COMPARISONS = {
    "==": "==",
    "===": "==",
    "!=": "!=",
    "!==": "!=",
    "<": "<",
    "<=": "<=",
    ">": ">",
    ">=": ">=",
}


def is_flagd(body: Any) -> bool:
    """A flagd flag set: a mapping with `flags`, not a catalog document."""
    return (
        isinstance(body, dict)
        and isinstance(body.get("flags"), dict)
        and "kind" not in body
        and "apiVersion" not in body
    )


@dataclass(frozen=True)
class FlagdFlag:
    """What one flagd flag says about the environment its file describes."""

    key: str
    description: str | None
    flag_type: str
    variants: dict[str, Any]
    default_variant: str | None
    enabled: bool
    rollout: float | None
    variant: str | None
    targeting: str | None
    links: dict[str, Any] = field(default_factory=dict)


def read_flagd(body: dict[str, Any]) -> tuple[list[FlagdFlag], list[tuple[str, str]]]:
    """The flags of a flagd file, and a (key, problem) for each flag that cannot be read."""
    evaluators = body.get("$evaluators") or {}
    defaults = _links(body.get("metadata"))
    flags: list[FlagdFlag] = []
    problems: list[tuple[str, str]] = []
    for key, raw in body["flags"].items():
        try:
            flags.append(_read_flag(str(key), raw, evaluators, defaults))
        except ValueError as exc:
            problems.append((str(key), str(exc)))
    return flags, problems


def _read_flag(
    key: str, raw: Any, evaluators: dict[str, Any], defaults: dict[str, Any]
) -> FlagdFlag:
    if not isinstance(raw, dict):
        raise ValueError("a flag must be a mapping with variants and defaultVariant")
    variants = raw.get("variants")
    if not isinstance(variants, dict) or not variants:
        raise ValueError("variants must be a mapping of variant names to values")
    default = raw.get("defaultVariant")
    if default is not None and (not isinstance(default, str) or default not in variants):
        raise ValueError(f"defaultVariant {default!r} is not one of the variants")
    if raw.get("state", "ENABLED") not in ("ENABLED", "DISABLED"):
        raise ValueError(f"state must be ENABLED or DISABLED, got {raw.get('state')!r}")

    rule = raw.get("targeting") or None
    flag_type = _flag_type(variants)
    outcomes = _outcomes(rule, default) if rule is not None else {default}
    enabled = raw.get("state", "ENABLED") == "ENABLED" and any(
        name is not None and _is_on(name, variants.get(name)) for name in outcomes
    )
    return FlagdFlag(
        key=key,
        description=raw.get("description"),
        flag_type=flag_type,
        variants=variants,
        default_variant=default,
        enabled=enabled,
        rollout=_rollout(rule, variants) if enabled else None,
        variant=_variant_shown(flag_type, default),
        targeting=_targeting_text(raw, rule, key, default, evaluators),
        links=defaults | _links(raw.get("metadata")),
    )


def with_state(
    raw: Mapping[str, Any],
    *,
    enabled: bool,
    rollout: float | None = None,
    variant: str | None = None,
) -> dict[str, Any]:
    """A flag's flagd definition changed so that everyone in its environment gets the state
    asked for: on or off, a variant, a partial rollout.

    Its targeting is replaced, since a state per environment cannot keep rules per user:
    off serves an off variant (or disables the flag when it has none), on serves
    `variant` or an on variant, and a rollout below 100 % becomes a `fractional` split
    between that variant and an off one. Raises ValueError when the flag's variants cannot
    express the state."""
    variants = raw.get("variants")
    if not isinstance(variants, dict) or not variants:
        raise ValueError("it has no variants")
    changed = {k: copy.deepcopy(v) for k, v in raw.items() if k != "targeting"}
    changed["state"] = "ENABLED"
    off = _pick(variants, on=False)
    if not enabled:
        if off is None:
            # No variant turns it off: a disabled flag leaves the application's default.
            changed["state"] = "DISABLED"
        else:
            changed["defaultVariant"] = off
        return changed

    default = raw.get("defaultVariant")
    keep = default if isinstance(default, str) and _is_on(default, variants.get(default)) else None
    chosen = variant or keep or _pick(variants, on=True)
    if chosen is None or chosen not in variants:
        raise ValueError(f"it has no variant {chosen!r}" if chosen else "no variant turns it on")
    if not _is_on(chosen, variants[chosen]):
        raise ValueError(f"its variant {chosen!r} turns it off")
    changed["defaultVariant"] = chosen
    if rollout is not None and rollout < 100:
        if off is None:
            raise ValueError("a partial rollout needs a variant that turns it off")
        changed["targeting"] = {
            "fractional": [[chosen, _weight(rollout)], [off, _weight(100 - rollout)]]
        }
    return changed


def _pick(variants: Mapping[str, Any], *, on: bool) -> str | None:
    """A variant that turns the flag on (or off): the one named so first, else the first."""
    named = "on" if on else "off"
    if named in variants and _is_on(named, variants[named]) is on:
        return named
    return next((name for name, value in variants.items() if _is_on(name, value) is on), None)


def _weight(percent: float) -> int | float:
    return int(percent) if float(percent).is_integer() else round(percent, 2)


def _flag_type(variants: dict[str, Any]) -> str:
    values = list(variants.values())
    if all(isinstance(v, bool) for v in values):
        return "boolean"
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return "number"
    if all(isinstance(v, str) for v in values):
        return "string"
    return "object"


def _is_on(name: str, value: Any) -> bool:
    """Whether a variant turns the flag's behaviour on: false, 0, empty or "off" do not."""
    if name.lower() == "off":
        return False
    return value not in (False, None, 0, "", {}, [])


def _variant_shown(flag_type: str, default: str | None) -> str | None:
    # On/off flags say it all with their state; a variant named on or off adds nothing.
    if flag_type == "boolean" or default is None or default.lower() in ("on", "off"):
        return None
    return default


def _links(metadata: Any) -> dict[str, Any]:
    if not isinstance(metadata, dict):
        return {}
    return {key: metadata[key] for key in LINK_FIELDS if metadata.get(key) not in (None, "")}


def _outcomes(rule: Any, default: str | None) -> set[str | None]:
    """The variants targeting can choose; None stands for the default variant."""
    if rule is None:
        return {default}
    if isinstance(rule, str):
        return {rule}
    if isinstance(rule, dict) and len(rule) == 1:
        op, args = next(iter(rule.items()))
        if op == "if" and isinstance(args, list):
            branches = args[1::2] + ([args[-1]] if len(args) % 2 == 1 else [None])
            return set().union(*(_outcomes(b, default) for b in branches))
        if op == "fractional" and isinstance(args, list):
            return {b[0] for b in args if isinstance(b, list) and b and isinstance(b[0], str)}
    return {default}


def _buckets(args: list[Any]) -> list[tuple[str, float]]:
    """A fractional split's (variant, weight) pairs; a bucket without a weight weighs 1."""
    pairs = []
    for bucket in args:
        if isinstance(bucket, list) and bucket and isinstance(bucket[0], str):
            weight = bucket[1] if len(bucket) > 1 and isinstance(bucket[1], int | float) else 1
            pairs.append((bucket[0], float(weight)))
    return pairs


def _rollout(rule: Any, variants: dict[str, Any]) -> float | None:
    """The share of traffic a top-level fractional split turns on, when some of it is off."""
    if not (isinstance(rule, dict) and isinstance(rule.get("fractional"), list)):
        return None
    pairs = _buckets(rule["fractional"])
    total = sum(weight for _, weight in pairs)
    on = sum(weight for name, weight in pairs if _is_on(name, variants.get(name)))
    if not total or on == total:
        return None
    return round(100 * on / total, 2)


def _targeting_text(
    raw: dict[str, Any], rule: Any, key: str, default: str | None, evaluators: dict[str, Any]
) -> str | None:
    if raw.get("state", "ENABLED") == "DISABLED":
        return "disabled in flagd: the application's own default applies"
    if rule is None:
        if default is None:
            return "no default variant: the application's own default applies"
        return None
    return describe_targeting(rule, key=key, default=default, evaluators=evaluators)


def describe_targeting(
    rule: Any, *, key: str, default: str | None, evaluators: Mapping[str, Any] | None = None
) -> str:
    """JSON Logic targeting in words: `if color == "yellow" then on, else off`."""
    text = _Words(key, default, dict(evaluators or {})).outcome(rule)
    return text if len(text) <= MAX_TARGETING else text[: MAX_TARGETING - 3] + "..."


@dataclass
class _Words:
    key: str
    default: str | None
    evaluators: dict[str, Any]
    expanding: set[str] = field(default_factory=set)

    def outcome(self, node: Any) -> str:
        """What a branch of targeting evaluates to: a variant, a split, or more rules."""
        if node is None:
            return f"default ({self.default})" if self.default else "the application's default"
        if isinstance(node, str):
            return node
        return self.expr(node)

    def expr(self, node: Any) -> str:
        if isinstance(node, dict) and len(node) == 1:
            op, args = next(iter(node.items()))
            return self.operation(str(op), args if isinstance(args, list) else [args])
        if isinstance(node, list):
            return "[" + ", ".join(self.expr(item) for item in node) + "]"
        return json.dumps(node)

    def operation(self, op: str, args: list[Any]) -> str:
        if op == "var":
            name = str(args[0]) if args else ""
            return self.key if name == "$flagd.flagKey" else name
        if op == "$ref":
            return self.reference(str(args[0]) if args else "")
        if op == "if":
            return self.branches(args)
        if op == "fractional":
            return self.split(args)
        if op in _COMPARISONS and len(args) == 2:
            return f"{self.expr(args[0])} {_COMPARISONS[op]} {self.expr(args[1])}"
        if op in ("<", "<=") and len(args) == 3:
            a, b, c = (self.expr(x) for x in args)
            return f"{a} {op} {b} {op} {c}"
        if op == "in" and len(args) == 2:
            if isinstance(args[1], list):
                return f"{self.expr(args[0])} in {self.expr(args[1])}"
            return f"{self.expr(args[1])} contains {self.expr(args[0])}"
        if op in ("and", "or"):
            return f" {op} ".join(self.grouped(arg, op) for arg in args)
        if op in ("!", "!!"):
            inner = self.grouped(args[0], op) if args else ""
            return f"not {inner}" if op == "!" else f"{inner} is set"
        if op in ("starts_with", "ends_with") and len(args) == 2:
            verb = op.replace("_", " ")
            return f"{self.expr(args[0])} {verb} {self.expr(args[1])}"
        if op == "sem_ver" and len(args) == 3:
            return f"{self.expr(args[0])} {args[1]} {self.expr(args[2])}"
        if op == "cat":
            return " + ".join(self.expr(arg) for arg in args)
        return json.dumps({op: args}, separators=(",", ":"))

    def grouped(self, node: Any, within: str) -> str:
        text = self.expr(node)
        inner = next(iter(node)) if isinstance(node, dict) and len(node) == 1 else None
        return f"({text})" if inner in ("and", "or") and inner != within else text

    def reference(self, name: str) -> str:
        rule = self.evaluators.get(name)
        if rule is None or name in self.expanding:
            return name
        self.expanding.add(name)
        try:
            return self.expr(rule)
        finally:
            self.expanding.discard(name)

    def branches(self, args: list[Any]) -> str:
        parts = [
            f"if {self.expr(args[i])} then {self.outcome(args[i + 1])}"
            for i in range(0, len(args) - 1, 2)
        ]
        otherwise = args[-1] if len(args) % 2 == 1 else None
        return ", else ".join([*parts, self.outcome(otherwise)])

    def split(self, args: list[Any]) -> str:
        by = "the targeting key"
        if args and not (isinstance(args[0], list) and args[0] and isinstance(args[0][0], str)):
            by = self.expr(args[0])
        pairs = _buckets(args)
        total = sum(weight for _, weight in pairs) or 1.0
        shares = ", ".join(f"{name} {100 * weight / total:g}%" for name, weight in pairs)
        return f"split by {by}: {shares}"


async def flagd_documents(
    store: Store,
    documents: Sequence[Document],
    *,
    environment: str | None = None,
    links: Mapping[str, Mapping[str, Any]] | None = None,
    by: str | None = None,
    now: datetime | None = None,
) -> tuple[list[Document], list[LoadIssue]]:
    """Replace each flagd file among `documents` by one FeatureFlag document per flag.

    `environment` names the environment the files describe (else each file's
    `metadata.environment`); `links` maps a flag key to its `services`, `feature`,
    `purpose` and `owner`; `by` is who a recorded state change is put down to.
    Other documents pass through unchanged.
    """
    if not any(is_flagd(doc.body) for doc in documents):
        return list(documents), []
    now = now or datetime.now(UTC)
    issues: list[LoadIssue] = []
    # Reading many flags is CPU work: in a thread, so queries go on meanwhile.
    readings = await asyncio.to_thread(_read_all, documents, environment, issues)
    keys = [flag.key for _, (_, flags) in readings for flag in flags]
    built = await _existing_flags(store, keys)
    made = await asyncio.to_thread(_build_all, readings, built, links, by, now, issues)
    others = [doc for doc in documents if not is_flagd(doc.body)]
    return others + list(made.values()), issues


_Reading = tuple[Document, tuple[str, list[FlagdFlag]]]


def _read_all(
    documents: Sequence[Document], environment: str | None, issues: list[LoadIssue]
) -> list[_Reading]:
    return [
        (doc, read)
        for doc in documents
        if is_flagd(doc.body) and (read := _read_document(doc, environment, issues)) is not None
    ]


def _build_all(
    readings: list[_Reading],
    built: dict[str, dict[str, Any]],
    links: Mapping[str, Mapping[str, Any]] | None,
    by: str | None,
    now: datetime,
    issues: list[LoadIssue],
) -> dict[str, Document]:
    """One FeatureFlag document per flag key, over what the catalog already holds."""
    # Files for several environments may name the same flag: it becomes one document.
    made: dict[str, Document] = {}
    seen: dict[tuple[str, str], str] = {}
    for doc, (env, flags) in readings:
        who = by or f"flagd file {Path(doc.file).name}"
        for flag in flags:
            if first := seen.get((flag.key, env)):
                issues.append(_twice(doc, flag.key, env, first))
                continue
            seen[(flag.key, env)] = doc.file
            overrides = flag.links | dict((links or {}).get(flag.key, {}))
            built[flag.key] = _flag_document(flag, env, built.get(flag.key), overrides, who, now)
            made[flag.key] = Document(doc.file, doc.index, built[flag.key])
        logger.debug("read %d flags for %s from %s", len(flags), env, doc.file)
    return made


def _twice(doc: Document, key: str, environment: str, first: str) -> LoadIssue:
    message = f"the flag is given for {environment} twice; first in {first}"
    return LoadIssue(doc.file, doc.index, message, "FeatureFlag", key, f"flags.{key}")


def _read_document(
    doc: Document, environment: str | None, issues: list[LoadIssue]
) -> tuple[str, list[FlagdFlag]] | None:
    metadata = doc.body.get("metadata")
    env = environment or (metadata.get("environment") if isinstance(metadata, dict) else None)
    if not env:
        issues.append(
            LoadIssue(
                doc.file,
                doc.index,
                "a flagd file describes one environment; say which with --environment "
                "(or metadata.environment in the file)",
            )
        )
        return None
    flags, problems = read_flagd(doc.body)
    for key, message in problems:
        issues.append(LoadIssue(doc.file, doc.index, message, "FeatureFlag", key, f"flags.{key}"))
    return str(env), flags


async def _existing_flags(store: Store, keys: list[str]) -> dict[str, dict[str, Any]]:
    """The catalog's own document for each flag already known by one of `keys`."""
    if not keys:
        return {}
    table = m.FeatureFlag
    async with store.session() as session:
        found = await session.execute(
            select(table).where(or_(col(table.key).in_(keys), col(table.name).in_(keys)))
        )
        rows = list(found.scalars().all())
        refs = [f"FeatureFlag:{row.name}" for row in rows]
        owned: dict[str, dict[type[SQLModel], list[Any]]] = {ref: {} for ref in refs}
        for child in (m.FlagState, m.FlagChange):
            result = await session.execute(select(child).where(col(child.owner_ref).in_(refs)))
            for part in result.scalars().all():
                owned[part.owner_ref].setdefault(child, []).append(part)

    by_key: dict[str, dict[str, Any]] = {}
    # A match on the key wins over a flag that merely has the key as its name.
    for row in sorted(rows, key=lambda r: r.key in keys):
        document = _catalog_document(row, owned[f"FeatureFlag:{row.name}"])
        by_key[row.key if row.key in keys else row.name] = document
    return by_key


def _catalog_document(row: m.FeatureFlag, owned: dict[type[SQLModel], list[Any]]) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": row.name}
    for key in ("title", "description", "tags", "links", "annotations"):
        if value := getattr(row, key):
            metadata[key] = value
    return {
        "apiVersion": "resilience/v1",
        "kind": "FeatureFlag",
        "metadata": metadata,
        "spec": CODECS["FeatureFlag"].dump(row, owned),
    }


def _flag_document(
    flag: FlagdFlag,
    environment: str,
    existing: dict[str, Any] | None,
    overrides: Mapping[str, Any],
    by: str,
    now: datetime,
) -> dict[str, Any]:
    document = copy.deepcopy(existing) or {
        "apiVersion": "resilience/v1",
        "kind": "FeatureFlag",
        "metadata": {"name": _name(flag.key)},
        "spec": {},
    }
    if flag.description and not document["metadata"].get("description"):
        document["metadata"]["description"] = flag.description
    spec = document["spec"]
    spec.update(
        key=flag.key,
        flagType=flag.flag_type,
        variants=flag.variants,
        defaultVariant=flag.default_variant,
    )
    for name in LINK_FIELDS:
        if (value := overrides.get(name)) is not None:
            spec[name] = _listed(value) if name == "services" else value

    states = [s for s in spec.get("states", []) if s.get("environment") != environment]
    before = next((s for s in spec.get("states", []) if s.get("environment") == environment), None)
    state = _state(flag, environment)
    if before is not None and _differs(before, state):
        state |= {"updatedAt": _iso(now), "updatedBy": by}
        spec.setdefault("history", []).append(_change(before, state, environment, by, now))
    elif before is not None:
        state = before
    spec["states"] = sorted([*states, state], key=lambda s: str(s.get("environment")))
    return document


def _name(key: str) -> str:
    if _NAME.match(key):
        return key
    return re.sub(r"[^A-Za-z0-9._-]+", "-", key).strip("-._")[:200] or "flag"


def _listed(value: Any) -> list[str]:
    """Services as a list; flagd metadata holds only scalars, so a comma list is accepted."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return [str(v) for v in value]


def _state(flag: FlagdFlag, environment: str) -> dict[str, Any]:
    state: dict[str, Any] = {"environment": environment, "enabled": flag.enabled}
    for name, value in (
        ("rollout", flag.rollout),
        ("variant", flag.variant),
        ("targeting", flag.targeting),
    ):
        if value is not None:
            state[name] = value
    return state


def _shape(state: Mapping[str, Any]) -> tuple[Any, ...]:
    rollout = state.get("rollout")
    return (
        bool(state.get("enabled")),
        None if rollout is None else float(rollout),
        state.get("variant"),
        state.get("targeting"),
    )


def _differs(before: Mapping[str, Any], after: Mapping[str, Any]) -> bool:
    return _shape(before) != _shape(after)


def _words(state: Mapping[str, Any]) -> str:
    enabled, rollout, variant, _ = _shape(state)
    if not enabled:
        return "off"
    if variant:
        return f"on ({variant})"
    if rollout is not None and rollout < 100:
        return f"on {rollout:g}%"
    return "on"


def _change(
    before: Mapping[str, Any], after: Mapping[str, Any], environment: str, by: str, now: datetime
) -> dict[str, Any]:
    was, now_words = _words(before), _words(after)
    reason = "changed in the flagd file"
    if was == now_words:
        reason = f"targeting changed in the flagd file: {after.get('targeting') or 'none'}"
    return {
        "at": _iso(now),
        "environment": environment,
        "by": by,
        "from": was,
        "to": now_words,
        "reason": reason,
    }


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
