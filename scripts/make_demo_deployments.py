#!/usr/bin/env python3
"""Generate ``data/catalog/deployments.yaml`` for the Northwind Market demo catalog.

Sixty days of deployments ending at the demo anchor time (2026-12-01T12:00:00Z). The
output is deterministic: a fixed random seed, and commit shas derived from the service
name and version, so running the script twice writes the same file.

How a release travels:

* it is built from a commit made hours to days earlier and goes to ``staging`` first;
* if staging is healthy it is promoted to ``prod-eu`` (the smaller cell, used as the
  canary cell) and then to ``prod-us``, during working hours on weekdays;
* the dedicated tenant cell ``prod-eu-acme`` only changes in its contractual change
  windows (Tuesday and Thursday, 06:00-08:00Z) and then receives the newest version that
  has run successfully in ``prod-us`` for at least twelve hours;
* a release that is superseded before it is promoted is not promoted any further;
* nothing is deployed during the Black Friday / Cyber Monday change freeze except the
  pinned emergency fix of INC-2046.

Some releases are pinned (fixed times, statuses and change descriptions) because the
incidents in ``data/catalog/incidents/`` name them as suspected deployments or root causes.
The script prints the names of those deployments so that the incident files can be checked.

Standard library only. Run from anywhere: ``python3 scripts/make_demo_deployments.py``.
"""

from __future__ import annotations

import hashlib
import random
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

ANCHOR = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
START = ANCHOR - timedelta(days=60)
SEED = 20261201
FREEZE_START = datetime(2026, 11, 25, 20, 0, tzinfo=UTC)
FREEZE_END = datetime(2026, 11, 30, 7, 0, tzinfo=UTC)
WORKDAY_START_HOUR = 8
WORKDAY_END_HOUR = 17
ACME_CELL = "prod-eu-acme"
ACME_WINDOW_DAYS = (1, 3)  # Tuesday, Thursday
OUTPUT = Path(__file__).resolve().parent.parent / "data" / "catalog" / "deployments.yaml"

STAGING = "staging"
CELLS = ("prod-eu", "prod-us")  # promotion order after staging

# People who deploy, per team. Must match data/catalog/teams.yaml.
TEAMS: dict[str, tuple[str, ...]] = {
    "team-platform": (
        "marta-kowalski",
        "dev-raman",
        "sean-odriscoll",
        "yuki-tanaka",
        "abena-owusu",
    ),
    "team-identity": ("lars-eriksen", "fatima-benali", "tomas-ibarra"),
    "team-data": ("chen-wei", "ingrid-solberg", "rahul-mehta", "olivia-grant"),
    "team-payments": ("priya-nair", "jonas-weber", "camila-rojas", "kwame-mensah", "hannah-becker"),
    "team-checkout": ("daniel-okafor", "sofia-marino", "ethan-brooks", "mei-lin"),
    "team-storefront": ("aisha-khan", "ben-carter", "julia-novak", "matteo-rossi"),
    "team-discovery": ("nadia-petrova", "oscar-lindqvist", "ravi-shankar"),
    "team-fulfilment": ("emma-dubois", "kenji-sato", "lucia-fernandez", "patrick-byrne"),
}


@dataclass(frozen=True)
class ServicePlan:
    """A deployable service: who deploys it, where it runs and how often it ships."""

    name: str
    team: str  # team whose people deploy it (the owner, or the inherited owner)
    acme: bool  # also runs in the dedicated prod-eu-acme cell
    releases_per_week: float
    version_before: tuple[int, int, int]  # version running everywhere at START
    topics: tuple[str, ...]  # what its changes are usually about
    us_only: bool = False  # runs in staging and prod-us only


SERVICES: tuple[ServicePlan, ...] = (
    ServicePlan(
        "web-storefront",
        "team-storefront",
        True,
        4.2,
        (3, 41, 0),
        (
            "product page",
            "basket drawer",
            "image lazy-loading",
            "SEO metadata",
            "checkout entry",
            "header navigation",
            "Core Web Vitals",
        ),
    ),
    ServicePlan(
        "checkout",
        "team-checkout",
        True,
        3.6,
        (7, 3, 2),
        (
            "address step",
            "payment step",
            "order submit",
            "idempotency keys",
            "tax display",
            "one-page checkout",
        ),
    ),
    ServicePlan(
        "payments-api",
        "team-payments",
        True,
        3.0,
        (4, 12, 3),
        (
            "refunds",
            "webhook handling",
            "3DS challenge flow",
            "idempotency keys",
            "capture retries",
            "PSP error mapping",
        ),
    ),
    ServicePlan(
        "catalog-api",
        "team-storefront",
        False,
        3.0,
        (6, 2, 0),
        (
            "product variants",
            "category tree",
            "bulk import",
            "price history",
            "seller listings",
            "GraphQL resolvers",
        ),
    ),
    ServicePlan(
        "cart",
        "team-checkout",
        True,
        2.6,
        (5, 18, 0),
        (
            "cart merge on login",
            "line item validation",
            "Redis TTLs",
            "saved-for-later",
            "stock hints",
        ),
    ),
    ServicePlan(
        "search-api",
        "team-discovery",
        False,
        2.6,
        (3, 15, 0),
        ("query parsing", "facet counts", "typo tolerance", "synonyms", "ranking signals"),
    ),
    ServicePlan(
        "pricing",
        "team-checkout",
        True,
        1.5,
        (2, 9, 4),
        ("VAT rules", "currency rounding", "price cache", "seller price overrides"),
    ),
    ServicePlan(
        "promotions",
        "team-checkout",
        True,
        1.0,
        (1, 27, 0),
        ("coupon validation", "campaign scheduling", "stacking rules"),
    ),
    ServicePlan(
        "gift-cards",
        "team-payments",
        False,
        0.5,
        (0, 14, 1),
        ("balance checks", "redemption", "bulk issuance"),
    ),
    ServicePlan(
        "fraud-check",
        "team-payments",
        True,
        1.5,
        (2, 31, 0),
        ("velocity rules", "device fingerprinting", "model thresholds", "feature fetch timeouts"),
    ),
    ServicePlan(
        "ledger",
        "team-payments",
        False,
        1.0,
        (3, 4, 2),
        ("posting rules", "reconciliation", "FX revaluation"),
    ),
    ServicePlan(
        "payouts",
        "team-payments",
        False,
        0.7,
        (1, 8, 0),
        ("payout schedules", "Stripe Connect transfers", "payout statements"),
    ),
    ServicePlan(
        "seller-portal",
        "team-storefront",
        False,
        1.5,
        (2, 44, 1),
        ("listing editor", "payout statements", "order export", "bulk upload"),
    ),
    ServicePlan(
        "search-indexer",
        "team-discovery",
        False,
        0.7,
        (1, 6, 2),
        ("reindex batching", "consumer offsets", "mapping updates"),
    ),
    ServicePlan(
        "recommendations",
        "team-discovery",
        False,
        1.5,
        (2, 3, 0),
        ("candidate generation", "ranker features", "carousel API"),
    ),
    ServicePlan(
        "orders-api",
        "team-fulfilment",
        True,
        2.0,
        (5, 7, 1),
        ("order state machine", "cancellations", "split shipments", "order events"),
    ),
    ServicePlan(
        "inventory",
        "team-fulfilment",
        False,
        1.5,
        (3, 22, 0),
        ("reservations", "stock sync", "warehouse feeds"),
    ),
    ServicePlan(
        "shipping",
        "team-fulfilment",
        False,
        1.0,
        (2, 11, 3),
        ("carrier rates", "label printing", "carrier webhooks"),
    ),
    ServicePlan(
        "order-tracking",
        "team-fulfilment",
        False,
        0.6,
        (1, 19, 0),
        ("tracking page", "status mapping", "delivery estimates"),
    ),
    ServicePlan(
        "auth-service",
        "team-identity",
        True,
        1.5,
        (8, 2, 0),
        ("token refresh", "session handling", "passwordless login", "OIDC"),
    ),
    ServicePlan(
        "notifications",
        "team-platform",
        False,
        1.0,
        (2, 5, 6),
        ("email templates", "push delivery", "rate limits"),
    ),
    ServicePlan(
        "ml-feature-store",
        "team-data",
        False,
        1.0,
        (1, 13, 0),
        ("online store", "feature views", "materialisation jobs"),
    ),
    ServicePlan(
        "reviews-service",
        "team-storefront",
        False,
        0.15,
        (0, 9, 7),
        ("dependency updates",),
        us_only=True,
    ),
)

CHANGE_TEMPLATES = (
    "Fix {topic} edge case",
    "Refactor {topic}",
    "Add metrics and traces for {topic}",
    "Improve {topic} error handling",
    "Tighten timeouts in {topic}",
    "Clean up {topic} feature flag code",
    "Performance: {topic}",
    "Tests and small fixes for {topic}",
)
GENERIC_CHANGES = (
    "Dependency updates (weekly Renovate batch)",
    "Bump service-kit to latest",
    "Base image refresh (CVE patches)",
)


@dataclass(frozen=True)
class PinnedStep:
    environment: str
    at: datetime
    status: str


@dataclass(frozen=True)
class PinnedRelease:
    """A release placed by hand because an incident refers to it."""

    service: str
    bump: str  # "patch" or "minor"
    author: str
    description: str
    commit_time: datetime
    steps: tuple[PinnedStep, ...]
    why: str


def at(text: str) -> datetime:
    """Parse '2026-10-07T13:55' as UTC."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def step(environment: str, when: str, status: str = "success") -> PinnedStep:
    return PinnedStep(environment, at(when), status)


PINNED: tuple[PinnedRelease, ...] = (
    PinnedRelease(
        "payments-api",
        "minor",
        "jonas-weber",
        "Raise Hikari maximum-pool-size from 10 to 30 to cut refund batch queueing",
        at("2026-10-06T11:47"),
        (
            step("staging", "2026-10-06T15:10"),
            step("prod-eu", "2026-10-07T08:42"),
            step("prod-us", "2026-10-07T13:55", "rolled_back"),
        ),
        "INC-2031 root cause",
    ),
    PinnedRelease(
        "payments-api",
        "patch",
        "priya-nair",
        "Revert Hikari maximum-pool-size to 10 (INC-2031)",
        at("2026-10-07T15:31"),
        (
            step("staging", "2026-10-07T15:48"),
            step("prod-eu", "2026-10-07T16:20"),
            step("prod-us", "2026-10-07T16:41"),
        ),
        "INC-2031 follow-up revert",
    ),
    PinnedRelease(
        "catalog-api",
        "minor",
        "matteo-rossi",
        "Publish full product snapshots to catalog.product-snapshots.v1",
        at("2026-10-09T16:02"),
        (
            step("staging", "2026-10-12T10:30"),
            step("prod-eu", "2026-10-12T15:05"),
            step("prod-us", "2026-10-13T09:20"),
        ),
        "INC-2033 root cause",
    ),
    PinnedRelease(
        "search-api",
        "minor",
        "oscar-lindqvist",
        "Match partial SKUs and brand prefixes with query_string wildcards",
        at("2026-10-19T09:37"),
        (
            step("staging", "2026-10-19T14:12"),
            step("prod-eu", "2026-10-20T08:35", "rolled_back"),
            step("prod-us", "2026-10-20T13:02", "rolled_back"),
        ),
        "INC-2035 root cause",
    ),
    PinnedRelease(
        "cart",
        "minor",
        "ethan-brooks",
        "Store cart lines as JSON instead of MessagePack",
        at("2026-10-27T17:25"),
        (step("staging", "2026-10-28T10:04"), step("prod-eu", "2026-10-29T09:12", "rolled_back")),
        "INC-2036 root cause",
    ),
    PinnedRelease(
        "ml-feature-store",
        "patch",
        "rahul-mehta",
        "Upgrade Feast online store client to 0.38",
        at("2026-11-09T10:15"),
        (
            step("staging", "2026-11-09T13:20"),
            step("prod-eu", "2026-11-10T09:05"),
            step("prod-us", "2026-11-10T13:18"),
        ),
        "INC-2040 suspect, ruled out",
    ),
    PinnedRelease(
        "payments-api",
        "patch",
        "camila-rojas",
        "Pre-freeze: bump stripe-java to 26.1, tidy refund logging",
        at("2026-11-24T16:40"),
        (
            step("staging", "2026-11-25T09:10"),
            step("prod-eu", "2026-11-25T11:35"),
            step("prod-us", "2026-11-25T14:20"),
        ),
        "INC-2046 suspect, ruled out",
    ),
    PinnedRelease(
        "payments-api",
        "patch",
        "priya-nair",
        "EMERGENCY (INC-2046): Hikari pool 10 -> 6 per pod, HPA maxReplicas 90 -> 70",
        at("2026-11-27T16:24"),
        (
            step("staging", "2026-11-27T16:31"),
            step("prod-us", "2026-11-27T16:44"),
            step("prod-eu", "2026-11-27T17:35"),
        ),
        "INC-2046 mitigation (freeze exception)",
    ),
    PinnedRelease(
        "fraud-check",
        "minor",
        "kwame-mensah",
        "Velocity rule set v14 for EU card-not-present transactions",
        at("2026-11-27T18:05"),
        (
            step("staging", "2026-11-30T09:02"),
            step("prod-eu", "2026-11-30T15:12"),
            step("prod-us", "2026-11-30T17:40"),
        ),
        "INC-2049 suspect",
    ),
    PinnedRelease(
        "payments-api",
        "minor",
        "hannah-becker",
        "Send network-token cryptograms for saved Mastercard cards (EU)",
        at("2026-11-27T14:50"),
        (step("staging", "2026-11-30T10:05"), step("prod-eu", "2026-12-01T09:24")),
        "INC-2049 suspect; prod-us promotion on hold",
    ),
    PinnedRelease(
        "shipping",
        "minor",
        "kenji-sato",
        "Move carrier webhook consumer to shipping.carrier-events.v2 topic",
        at("2026-11-26T11:12"),
        (
            step("staging", "2026-11-30T09:40"),
            step("prod-eu", "2026-11-30T14:30"),
            step("prod-us", "2026-11-30T16:05"),
        ),
        "INC-2048 suspect",
    ),
    PinnedRelease(
        "checkout",
        "patch",
        "sofia-marino",
        "One-page checkout: keep the address step on page refresh",
        at("2026-11-30T11:02"),
        (
            step("staging", "2026-11-30T13:30"),
            step("prod-eu", "2026-12-01T08:05"),
            step("prod-us", "2026-12-01T10:15"),
        ),
        "recent change to checkout",
    ),
    PinnedRelease(
        "web-storefront",
        "patch",
        "julia-novak",
        "Lazy-load recommendation carousels below the fold",
        at("2026-12-01T07:48"),
        (
            step("staging", "2026-12-01T09:10"),
            step("prod-eu", "2026-12-01T10:40"),
            step("prod-us", "2026-12-01T11:52", "in_progress"),
        ),
        "deployment in progress at the anchor",
    ),
)


@dataclass
class Release:
    service: str
    bump: str
    author: str
    description: str
    commit_time: datetime
    steps: list[PinnedStep]
    pinned: PinnedRelease | None = None
    version: str = ""
    commit: str = ""


@dataclass
class Deployment:
    service: str
    environment: str
    version: str
    commit: str
    commit_time: datetime
    deploy_time: datetime
    status: str
    author: str
    description: str
    pinned: PinnedRelease | None
    name: str = ""
    url: str = field(default="")


def in_freeze(t: datetime) -> bool:
    return FREEZE_START <= t < FREEZE_END


def next_working_time(t: datetime, rng: random.Random) -> datetime:
    """The first moment at or after t that is inside working hours and outside the freeze."""
    while True:
        if in_freeze(t):
            t = FREEZE_END
            continue
        if t.weekday() >= 5:
            days = 7 - t.weekday()
            t = (t + timedelta(days=days)).replace(hour=WORKDAY_START_HOUR, minute=0)
            t += timedelta(minutes=rng.randint(5, 90))
            continue
        if t.hour < WORKDAY_START_HOUR:
            t = t.replace(hour=WORKDAY_START_HOUR, minute=rng.randint(5, 59))
            continue
        if t.hour >= WORKDAY_END_HOUR:
            t = (t + timedelta(days=1)).replace(hour=WORKDAY_START_HOUR, minute=0)
            t += timedelta(minutes=rng.randint(5, 90))
            continue
        return t.replace(second=0, microsecond=0)


def commit_sha(service: str, version: str) -> str:
    return hashlib.sha1(f"northwind/{service}@{version}".encode()).hexdigest()


def describe(plan: ServicePlan, rng: random.Random) -> str:
    if rng.random() < 0.15:
        return rng.choice(GENERIC_CHANGES)
    return rng.choice(CHANGE_TEMPLATES).format(topic=rng.choice(plan.topics))


def blocked_windows(service: str) -> list[tuple[datetime, datetime]]:
    """Periods in which no random release may start, around the pinned releases."""
    windows = []
    for pin in PINNED:
        if pin.service != service:
            continue
        first = min(s.at for s in pin.steps)
        last = max(s.at for s in pin.steps)
        windows.append((first - timedelta(hours=30), last + timedelta(hours=3)))
    return windows


def random_release_starts(plan: ServicePlan, rng: random.Random) -> list[datetime]:
    """Staging deploy times of the unpinned releases of one service."""
    blocked = blocked_windows(plan.name)
    starts = []
    day = START.replace(hour=0, minute=0)
    while day < ANCHOR:
        if day.weekday() < 5:
            expected = plan.releases_per_week / 5
            count = int(expected) + (1 if rng.random() < expected - int(expected) else 0)
            for _ in range(count):
                t = day.replace(
                    hour=rng.randint(WORKDAY_START_HOUR, WORKDAY_END_HOUR - 2),
                    minute=rng.randint(0, 59),
                )
                if (
                    START <= t < ANCHOR
                    and not in_freeze(t)
                    and not any(a <= t <= b for a, b in blocked)
                ):
                    starts.append(t)
        day += timedelta(days=1)
    return sorted(starts)


def plan_random_release(plan: ServicePlan, start: datetime, rng: random.Random) -> Release:
    """A release's deploys to staging and the shared cells; statuses decided here."""
    steps = []
    t = start
    status = "failed" if rng.random() < 0.04 else "success"
    steps.append(PinnedStep(STAGING, t, status))
    cells = ("prod-us",) if plan.us_only else CELLS
    for cell in cells:
        if status != "success":
            break
        delay = timedelta(minutes=rng.randint(70, 330))
        t = next_working_time(t + delay, rng)
        roll = rng.random()
        status = "rolled_back" if roll < 0.025 else "failed" if roll < 0.037 else "success"
        steps.append(PinnedStep(cell, t, status))
    roll = rng.random()
    bump = "major" if roll < 0.01 else "minor" if roll < 0.25 else "patch"
    lead = timedelta(hours=min(rng.expovariate(1 / 20), 120) + 0.5)
    return Release(
        service=plan.name,
        bump=bump,
        author=rng.choice(TEAMS[plan.team]),
        description=describe(plan, rng),
        commit_time=(start - lead).replace(second=0, microsecond=0),
        steps=steps,
    )


def bump_version(version: tuple[int, int, int], bump: str) -> tuple[int, int, int]:
    major, minor, patch = version
    if bump == "major":
        return (major + 1, 0, 0)
    if bump == "minor":
        return (major, minor + 1, 0)
    return (major, minor, patch + 1)


def releases_for(plan: ServicePlan, rng: random.Random) -> list[Release]:
    releases = [plan_random_release(plan, t, rng) for t in random_release_starts(plan, rng)]
    for pin in PINNED:
        if pin.service == plan.name:
            releases.append(
                Release(
                    plan.name,
                    pin.bump,
                    pin.author,
                    pin.description,
                    pin.commit_time,
                    list(pin.steps),
                    pinned=pin,
                )
            )
    releases.sort(key=lambda r: r.steps[0].at)
    version = plan.version_before
    for release in releases:
        version = bump_version(version, release.bump)
        release.version = "{}.{}.{}".format(*version)
        release.commit = commit_sha(plan.name, release.version)
    return releases


def expand(releases: list[Release]) -> list[Deployment]:
    """Deploys of each release, dropping promotions overtaken by the next release."""
    deployments = []
    for i, release in enumerate(releases):
        next_start = releases[i + 1].steps[0].at if i + 1 < len(releases) else ANCHOR
        for s in release.steps:
            if release.pinned is None and (s.at >= next_start or s.at >= ANCHOR):
                break  # superseded by a newer release before promotion, or not yet
            deployments.append(
                Deployment(
                    release.service,
                    s.environment,
                    release.version,
                    release.commit,
                    release.commit_time,
                    s.at,
                    s.status,
                    release.author,
                    release.description,
                    release.pinned,
                )
            )
    return deployments


def acme_deployments(
    plan: ServicePlan, releases: list[Release], shared: list[Deployment], rng: random.Random
) -> list[Deployment]:
    """Batch the newest prod-us version into the acme cell in its change windows."""
    by_version = {r.version: r for r in releases}
    proven = sorted(
        (d for d in shared if d.environment == "prod-us" and d.status == "success"),
        key=lambda d: d.deploy_time,
    )
    current = "{}.{}.{}".format(*plan.version_before)
    out = []
    day = START.replace(hour=0, minute=0)
    while day < ANCHOR:
        if day.weekday() in ACME_WINDOW_DAYS and not in_freeze(day.replace(hour=6)):
            window = day.replace(hour=6) + timedelta(minutes=rng.randint(0, 80))
            ready = [d for d in proven if d.deploy_time <= window - timedelta(hours=12)]
            if ready and ready[-1].version != current and window < ANCHOR:
                release = by_version[ready[-1].version]
                roll = rng.random()
                status = "rolled_back" if roll < 0.02 else "success"
                out.append(
                    Deployment(
                        plan.name,
                        ACME_CELL,
                        release.version,
                        release.commit,
                        release.commit_time,
                        window,
                        status,
                        rng.choice(TEAMS[plan.team]),
                        release.description,
                        None,
                    )
                )
                if status == "success":
                    current = release.version
        day += timedelta(days=1)
    return out


def name_deployments(deployments: list[Deployment]) -> None:
    env_order = {STAGING: 0, "prod-eu": 1, "prod-us": 2, ACME_CELL: 3}
    by_service: dict[str, list[Deployment]] = defaultdict(list)
    for d in deployments:
        by_service[d.service].append(d)
    for service, items in by_service.items():
        items.sort(key=lambda d: (d.deploy_time, env_order[d.environment]))
        base = 100 + int(hashlib.sha1(service.encode()).hexdigest()[:6], 16) % 700
        for n, d in enumerate(items, start=base):
            d.name = f"dep-{service}-{n:04d}"
            d.url = f"https://deploy.example.com/northwind/{service}/deployments/{n}"


def iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render(deployments: list[Deployment]) -> str:
    lines = [
        "# Generated by scripts/make_demo_deployments.py: do not edit by hand.",
        f"# {len(deployments)} deployments from {iso(START)} to {iso(ANCHOR)} (the demo anchor).",
    ]
    for d in deployments:
        lines += [
            "---",
            "apiVersion: resilience/v1",
            "kind: Deployment",
            "metadata:",
            f"  name: {d.name}",
            f"  description: {quote(d.description)}",
            "spec:",
            f"  service: {d.service}",
            f"  environment: {d.environment}",
            f"  version: {quote(d.version)}",
            f"  commit: {quote(d.commit)}",
            f"  commitTime: {iso(d.commit_time)}",
            f"  deployTime: {iso(d.deploy_time)}",
            f"  status: {d.status}",
            f"  author: {d.author}",
            f"  url: {d.url}",
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    rng = random.Random(SEED)
    everything: list[Deployment] = []
    for plan in SERVICES:
        releases = releases_for(plan, rng)
        shared = expand(releases)
        everything += shared
        if plan.acme:
            everything += acme_deployments(plan, releases, shared, rng)
    name_deployments(everything)
    everything.sort(key=lambda d: (d.deploy_time, d.service, d.environment))
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(render(everything), encoding="utf-8")

    print(f"wrote {len(everything)} deployments to {OUTPUT}")
    print("pinned deployments (named by incidents):")
    for d in everything:
        if d.pinned is not None:
            print(
                f"  {d.name:32} {d.environment:13} {d.version:8} {d.status:12} "
                f"{iso(d.deploy_time)} {d.commit}  [{d.pinned.why}]"
            )
    print("running versions at the anchor (latest successful deployment):")
    latest: dict[tuple[str, str], Deployment] = {}
    for d in everything:
        if d.status == "success":
            latest[(d.service, d.environment)] = d
    for plan in SERVICES:
        envs = [STAGING, "prod-eu", "prod-us", ACME_CELL]
        cells = {e: latest[(plan.name, e)].version for e in envs if (plan.name, e) in latest}
        print(f"  {plan.name:18} " + "  ".join(f"{e}={v}" for e, v in cells.items()))


if __name__ == "__main__":
    main()
