"""Deterministic synthetic catalogs, as catalog documents, for benchmarks and load tests.

    from benchmarks.synthetic import generate, documents, load_synthetic

    for doc in generate("large", seed=7, deployments=200_000, incidents=100_000):
        ...                                   # dicts in the catalog file format
    report = await load_synthetic(store, "medium", seed=7)   # straight into a store

The same size and seed give the same documents, byte for byte. The catalog's shape does not
depend on how much history is asked for: deployments and incidents draw from their own
random streams, so `generate("large")` and `generate("large", incidents=10)` describe the
same services. History is produced lazily, one document at a time, oldest first.

The shape of a catalog, in short:
- domains, each with systems of about 25 services; the first domain (`platform`) holds the
  shared databases, caches and queues every other domain leans on; the last (`legacy`) has
  no owner, and half its systems have none either, so some services have no owner at all;
- services in five layers (web, api, domain logic, core, data); each depends on about five
  services in lower layers, mostly in its own system, some in its domain, some on
  `platform`; about four in five dependencies are hard; a few back edges make cycles;
- a team per domain with a team per system below it, five people in each; most teams
  have an on-call rotation, the rest escalate to their domain team;
- environments: staging, `production` with three regional cells, and tenant cells below
  the regional ones, each dedicated to an enterprise customer;
- features implemented by a few services of one system; flags on each feature (kill
  switches, releases, experiments, permissions) with a state per environment; customers
  on a plan, with a weight, entitled to features and served from cells.
"""

from __future__ import annotations

import random
import time
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from resilience_mcp.catalog.files import Document
from resilience_mcp.catalog.loader import LoadReport, load_documents
from resilience_mcp.store import Store

__all__ = [
    "ANCHOR",
    "ENVIRONMENTS",
    "SIZES",
    "Blueprint",
    "Size",
    "build_blueprint",
    "documents",
    "generate",
    "load_synthetic",
]

API = "resilience/v1"
# History ends here; the same moment as the demo catalog's anchor.
ANCHOR = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
PROD_CELLS = ("prod-us", "prod-eu", "prod-apac")
ENVIRONMENTS = ("staging", *PROD_CELLS)


@dataclass(frozen=True)
class Size:
    services: int
    features: int
    flags: int
    customers: int
    tenants: int


SIZES: dict[str, Size] = {
    "small": Size(services=100, features=10, flags=50, customers=40, tenants=2),
    "medium": Size(services=2_000, features=100, flags=1_000, customers=400, tenants=6),
    "large": Size(services=10_000, features=500, flags=5_000, customers=2_000, tenants=20),
}

_DOMAIN_WORDS = (
    "platform",
    "payments",
    "orders",
    "catalog",
    "search",
    "identity",
    "shipping",
    "pricing",
    "reviews",
    "messaging",
    "analytics",
    "billing",
    "inventory",
    "media",
    "ads",
    "support",
    "risk",
    "loyalty",
    "partners",
)
# Role words by layer, and the service type each data-layer role stands for.
_ROLES = (
    ("web", "app", "edge"),
    ("api", "bff", "gateway"),
    ("svc", "worker", "engine"),
    ("core", "store", "index"),
    ("db", "cache", "queue", "bucket", "vendor"),
)
_TYPES = {"db": "database", "cache": "cache", "queue": "queue", "bucket": "storage"}
_TYPES |= {"vendor": "external", "web": "website", "app": "website", "edge": "website"}
# Share of each system's services per layer, top (web) to bottom (data).
_LAYER_SHARES = (0.04, 0.16, 0.44, 0.2, 0.16)
_SYSTEM_SIZE = 25
_FEATURE_WORDS = (
    *("browse", "checkout", "signup", "login", "pay", "refund", "track", "review"),
    *("share", "export", "notify", "subscribe", "upload", "report", "compare"),
)
_PURPOSES = (("kill-switch", 0.15), ("release", 0.5), ("experiment", 0.25), ("permission", 0.1))
_PLANS = (("enterprise", 0.05), ("business", 0.15), ("pro", 0.3), ("free", 0.45), (None, 0.05))
_PLAN_FEATURES = {"enterprise": 60, "business": 30, "pro": 15, "free": 5, None: 5}
_PLAN_WEIGHT = {
    "enterprise": (1e6, 5e6),
    "business": (1e5, 1e6),
    "pro": (1e4, 1e5),
    "free": (0.0, 0.0),
    None: (0.0, 1e4),
}
_FIRST = ("Ana", "Ben", "Chen", "Dara", "Eli", "Fay", "Gus", "Hana", "Ivo", "Jo", "Kai", "Lea")
_LAST = ("Adler", "Brandt", "Costa", "Diaz", "Eze", "Fontaine", "Gupta", "Holm", "Ito", "Jansen")
_SYMPTOMS = (
    "elevated 5xx",
    "latency above SLO",
    "timeouts",
    "error budget burn",
    "queue backlog growing",
    "OOM kills",
    "connection pool exhausted",
    "stale reads",
    "TLS handshake failures",
    "disk full",
)
_CAUSES = (
    "a bad deploy",
    "a config change",
    "a certificate expiry",
    "a noisy neighbour",
    "a schema migration",
    "a retry storm",
    "an expired credential",
    "a DNS change",
    "a dependency upgrade",
    "a traffic spike",
)


@dataclass
class Blueprint:
    """The skeleton of a catalog: every name and link, before it becomes documents."""

    size: Size
    domains: list[str] = field(default_factory=list)
    systems: dict[str, str] = field(default_factory=dict)  # system -> domain
    system_services: dict[str, list[list[str]]] = field(default_factory=dict)  # by layer
    services: list[str] = field(default_factory=list)
    service_system: dict[str, str] = field(default_factory=dict)
    service_layer: dict[str, int] = field(default_factory=dict)
    service_owned: dict[str, bool] = field(default_factory=dict)
    dependencies: dict[str, list[tuple[str, str, bool]]] = field(default_factory=dict)
    team_people: dict[str, list[str]] = field(default_factory=dict)
    cells: dict[str, tuple[str, str]] = field(default_factory=dict)  # cell -> (parent, domain)
    features: dict[str, list[str]] = field(default_factory=dict)  # feature -> services
    feature_domain: dict[str, str] = field(default_factory=dict)
    customers: list[str] = field(default_factory=list)

    def domain_of(self, service: str) -> str:
        return self.systems[self.service_system[service]]


def generate(
    size: str | Size = "small",
    *,
    seed: int = 0,
    deployments: int = 0,
    incidents: int = 0,
    anchor: datetime = ANCHOR,
) -> Iterator[dict[str, Any]]:
    """The documents of a synthetic catalog, then `deployments` and `incidents` of history."""
    blueprint = build_blueprint(size, seed=seed)
    rng = random.Random(seed)
    yield from _organisation(blueprint, rng, anchor)
    yield from _environments(blueprint)
    yield from _services(blueprint, rng)
    yield from _features(blueprint)
    yield from _flags(blueprint, rng, anchor)
    yield from _customers(blueprint, rng)

    history: dict[str, list[tuple[float, str, str]]] = {}
    if deployments:
        deploy_rng = random.Random(f"{seed}-deployments")
        yield from _deployments(blueprint, deploy_rng, deployments, anchor, history)
    if incidents:
        incident_rng = random.Random(f"{seed}-incidents")
        yield from _incidents(blueprint, incident_rng, incidents, anchor, history)


def documents(size: str | Size = "small", **options: Any) -> list[Document]:
    """`generate` wrapped as loader documents, numbered as if they were one file."""
    label = f"synthetic:{size if isinstance(size, str) else 'custom'}"
    return [Document(label, i, body) for i, body in enumerate(generate(size, **options), 1)]


async def load_synthetic(store: Store, size: str | Size = "small", **options: Any) -> LoadReport:
    """Generate a catalog and load it into `store` in one transaction."""
    source = f"synthetic:{size if isinstance(size, str) else 'custom'}"
    return await load_documents(store, documents(size, **options), source=source)


# The skeleton


def build_blueprint(size: str | Size, *, seed: int = 0) -> Blueprint:
    """Names and links of a catalog of `size`; the same seed gives the same blueprint."""
    chosen = SIZES[size] if isinstance(size, str) else size
    rng = random.Random(seed)
    bp = Blueprint(size=chosen)
    _plan_systems(bp)
    _plan_services(bp, rng)
    _plan_dependencies(bp, rng)
    _plan_cycles(bp, rng)
    _plan_teams(bp)
    _plan_cells(bp)
    _plan_features(bp, rng)
    bp.customers = [f"customer-{i:05d}" for i in range(chosen.customers)]
    return bp


def _plan_systems(bp: Blueprint) -> None:
    systems = max(3, -(-bp.size.services // _SYSTEM_SIZE))
    count = max(3, min(len(_DOMAIN_WORDS) + 1, systems // 20))
    words = list(_DOMAIN_WORDS[: count - 1])
    bp.domains = [*words, "legacy"]
    for i in range(systems):
        domain = bp.domains[i % len(bp.domains)]
        bp.systems[f"{domain}-sys-{i:04d}"] = domain


def _plan_services(bp: Blueprint, rng: random.Random) -> None:
    systems = list(bp.systems)
    per_system = [bp.size.services // len(systems)] * len(systems)
    for i in range(bp.size.services % len(systems)):
        per_system[i] += 1
    number = 0
    for system, count in zip(systems, per_system, strict=True):
        layers: list[list[str]] = [[] for _ in _LAYER_SHARES]
        for position in range(count):
            layer = _layer_at(position, count)
            role = rng.choice(_ROLES[layer])
            name = f"{bp.systems[system]}-{role}-{number:05d}"
            number += 1
            layers[layer].append(name)
            bp.services.append(name)
            bp.service_system[name] = system
            bp.service_layer[name] = layer
        bp.system_services[system] = layers


def _layer_at(position: int, count: int) -> int:
    """The layer of the `position`-th service of a system of `count`, by `_LAYER_SHARES`."""
    edge = 0.0
    fraction = (position + 0.5) / count
    for layer, share in enumerate(_LAYER_SHARES):
        edge += share
        if fraction < edge:
            return layer
    return len(_LAYER_SHARES) - 1


def _plan_dependencies(bp: Blueprint, rng: random.Random) -> None:
    by_domain: dict[str, list[str]] = {}
    for system, domain in bp.systems.items():
        by_domain.setdefault(domain, []).append(system)
    platform = by_domain[bp.domains[0]]

    for service in bp.services:
        layer = bp.service_layer[service]
        if layer == len(_LAYER_SHARES) - 1:
            bp.dependencies[service] = []
            continue
        system = bp.service_system[service]
        wanted = rng.randint(6, 11) if layer < 3 else rng.randint(2, 5)
        targets: dict[str, None] = {}
        for _ in range(wanted):
            roll = rng.random()
            if roll < 0.65:
                home = system
            elif roll < 0.85:
                home = rng.choice(by_domain[bp.systems[system]])
            else:
                home = rng.choice(platform)
            if target := _pick_below(bp, rng, home, layer):
                targets[target] = None
        bp.dependencies[service] = [_edge(bp, rng, target) for target in targets]


def _pick_below(bp: Blueprint, rng: random.Random, system: str, layer: int) -> str | None:
    layers = bp.system_services[system]
    below = [lay for lay in range(layer + 1, len(layers)) if layers[lay]]
    if not below:
        return None
    # Most calls go one layer down.
    chosen = below[0] if rng.random() < 0.6 else rng.choice(below)
    return rng.choice(layers[chosen])


def _edge(bp: Blueprint, rng: random.Random, target: str) -> tuple[str, str, bool]:
    role = target.rsplit("-", 2)[-2]
    kind = {"db": "data", "bucket": "data", "queue": "async"}.get(role, "sync")
    hard = rng.random() < (0.4 if kind == "async" else 0.8)
    return target, kind, hard


def _plan_cycles(bp: Blueprint, rng: random.Random) -> None:
    """Close a few loops: a service calls back one that calls it, as real systems do."""
    wanted = max(2, bp.size.services // 500)
    candidates = [
        (source, target)
        for source in bp.services
        if bp.service_layer[source] == 2
        for target, _, _ in bp.dependencies[source]
        if bp.service_layer[target] == 3
    ]
    for source, target in rng.sample(candidates, min(wanted, len(candidates))):
        hard = rng.random() < 0.5
        bp.dependencies[target].append((source, "async" if not hard else "sync", hard))


def _plan_teams(bp: Blueprint) -> None:
    number = 0
    for team in [f"team-{d}" for d in bp.domains] + [f"team-{s}" for s in bp.systems]:
        bp.team_people[team] = [f"person-{number + i:05d}" for i in range(5)]
        number += 5
    legacy = {s for s, d in bp.systems.items() if d == "legacy"}
    for i, service in enumerate(bp.services):
        system = bp.service_system[service]
        orphaned = system in legacy and _system_unowned(system)
        bp.service_owned[service] = (i % 7 != 0) and not (orphaned and i % 10 < 7)


def _system_unowned(system: str) -> bool:
    return system.startswith("legacy-") and int(system.rsplit("-", 1)[1]) % 2 == 0


def _plan_cells(bp: Blueprint) -> None:
    served = [d for d in bp.domains if d not in ("platform", "legacy")] or bp.domains
    for j in range(bp.size.tenants):
        bp.cells[f"cell-{j:02d}"] = (PROD_CELLS[j % 2], served[j % len(served)])


def _plan_features(bp: Blueprint, rng: random.Random) -> None:
    systems = [s for s, d in bp.systems.items() if d != "platform"]
    for i in range(bp.size.features):
        system = systems[i % len(systems)]
        layers = bp.system_services[system]
        upper = layers[0] + layers[1] + layers[2]
        count = min(len(upper), rng.randint(2, 5))
        domain = bp.systems[system]
        name = f"{domain}-{_FEATURE_WORDS[i % len(_FEATURE_WORDS)]}-{i:04d}"
        bp.features[name] = rng.sample(upper, count)
        bp.feature_domain[name] = domain


# Documents


def _doc(kind: str, name: str, spec: dict[str, Any], **metadata: Any) -> dict[str, Any]:
    return {"apiVersion": API, "kind": kind, "metadata": {"name": name, **metadata}, "spec": spec}


def _iso(moment: datetime) -> str:
    # isoformat is several times faster than strftime, which matters at 100,000 incidents.
    return moment.isoformat(timespec="seconds")[:19] + "Z"


def _organisation(bp: Blueprint, rng: random.Random, anchor: datetime) -> Iterator[dict[str, Any]]:
    yield from _teams(bp)
    yield from _groupings(bp)
    yield from _rotations(bp, rng, anchor)


def _teams(bp: Blueprint) -> Iterator[dict[str, Any]]:
    for team, people in bp.team_people.items():
        spec: dict[str, Any] = {"members": people, "chatChannel": f"#{team}"}
        spec["email"] = f"{team}@example.com"
        if (system := team.removeprefix("team-")) in bp.systems:
            spec["parent"] = f"team-{bp.systems[system]}"
        yield _doc("Team", team, spec)
        for person in people:
            number = int(person.rsplit("-", 1)[1])
            title = f"{_FIRST[number % len(_FIRST)]} {_LAST[number // len(_FIRST) % len(_LAST)]}"
            yield _doc("Person", person, {"email": f"{person}@example.com"}, title=title)


def _groupings(bp: Blueprint) -> Iterator[dict[str, Any]]:
    for domain in bp.domains:
        yield _doc("Domain", domain, {} if domain == "legacy" else {"owner": f"team-{domain}"})
    for system, domain in bp.systems.items():
        spec = {"domain": domain}
        if not _system_unowned(system):
            spec["owner"] = f"team-{system}"
        yield _doc("System", system, spec)


def _rotations(bp: Blueprint, rng: random.Random, anchor: datetime) -> Iterator[dict[str, Any]]:
    start = _iso(anchor - timedelta(days=91))
    for number, (team, people) in enumerate(bp.team_people.items()):
        # Domain teams always answer; one system team in ten escalates to its domain team.
        system_team = team.removeprefix("team-") in bp.systems
        if team == "team-legacy" or (system_team and number % 10 == 3):
            continue
        spec = {"team": team, "members": people, "shiftHours": rng.choice((24, 84, 168))}
        spec["start"] = start
        yield _doc("OnCall", f"oncall-{team.removeprefix('team-')}", spec)


def _environments(bp: Blueprint) -> Iterator[dict[str, Any]]:
    yield _doc("Environment", "staging", {"type": "staging", "region": "us-east-1"})
    yield _doc("Environment", "production", {"type": "production"})
    regions = {"prod-us": "us-east-1", "prod-eu": "eu-west-1", "prod-apac": "ap-southeast-1"}
    for cell, region in regions.items():
        yield _doc("Environment", cell, {"region": region, "parent": "production"})
    for cell, (parent, _domain) in bp.cells.items():
        spec = {"region": regions[parent], "parent": parent, "tenant": f"tenant-{cell[-2:]}"}
        yield _doc("Environment", cell, spec)


def _services(bp: Blueprint, rng: random.Random) -> Iterator[dict[str, Any]]:
    cells_by_domain: dict[str, list[str]] = {}
    for cell, (_parent, domain) in bp.cells.items():
        cells_by_domain.setdefault(domain, []).append(cell)
    for service in bp.services:
        system = bp.service_system[service]
        layer = bp.service_layer[service]
        role = service.rsplit("-", 2)[-2]
        version = f"{rng.randint(1, 9)}.{rng.randint(0, 40)}.{rng.randint(0, 9)}"
        runs = [{"environment": env, "version": version} for env in ENVIRONMENTS]
        runs += [{"environment": c} for c in cells_by_domain.get(bp.systems[system], ())]
        spec: dict[str, Any] = {
            "type": _TYPES.get(role, "service"),
            "tier": min(4, 1 + (layer + len(service)) % 4),
            "lifecycle": "production",
            "system": system,
            "runbook": f"https://runbooks.example.com/{service}",
            "dependencies": [
                {"target": t, "kind": kind, "hard": hard}
                for t, kind, hard in bp.dependencies[service]
            ],
            "environments": runs,
        }
        if bp.service_owned[service]:
            spec["owner"] = "team-legacy" if _system_unowned(system) else f"team-{system}"
        yield _doc("Service", service, spec, tags=[bp.systems[system], role])


def _features(bp: Blueprint) -> Iterator[dict[str, Any]]:
    for i, (feature, services) in enumerate(bp.features.items()):
        spec: dict[str, Any] = {"services": services}
        if i % 2 == 0 and bp.feature_domain[feature] != "legacy":
            spec["owner"] = f"team-{bp.feature_domain[feature]}"
        yield _doc("Feature", feature, spec)


def _flags(bp: Blueprint, rng: random.Random, anchor: datetime) -> Iterator[dict[str, Any]]:
    features = list(bp.features)
    purposes = [p for p, _ in _PURPOSES]
    weights = [w for _, w in _PURPOSES]
    for i in range(bp.size.flags):
        feature = features[i % len(features)]
        purpose = rng.choices(purposes, weights)[0]
        services = rng.sample(bp.features[feature], min(2, len(bp.features[feature])))
        states = [_flag_state(rng, purpose, env) for env in ENVIRONMENTS]
        changed = anchor - timedelta(hours=rng.randint(1, 2000))
        history = [
            {"at": _iso(changed), "environment": "prod-us", "from": "off", "to": "on"},
        ]
        spec = {
            "purpose": purpose,
            "feature": feature,
            "services": services,
            "states": states,
            "history": history,
        }
        yield _doc("FeatureFlag", f"{feature}-{purpose}-{i:05d}", spec)


def _flag_state(rng: random.Random, purpose: str, env: str) -> dict[str, Any]:
    if purpose == "kill-switch":
        return {"environment": env, "enabled": rng.random() < 0.03}
    if purpose == "experiment":
        return {"environment": env, "enabled": True, "rollout": rng.choice((5, 10, 25, 50))}
    return {"environment": env, "enabled": rng.random() < 0.8}


def _customers(bp: Blueprint, rng: random.Random) -> Iterator[dict[str, Any]]:
    features = list(bp.features)
    plans = [p for p, _ in _PLANS]
    weights = [w for _, w in _PLANS]
    cells = list(bp.cells)
    for i, customer in enumerate(bp.customers):
        plan = rng.choices(plans, weights)[0]
        low, high = _PLAN_WEIGHT[plan]
        entitled = rng.sample(features, min(len(features), _PLAN_FEATURES[plan]))
        if plan == "enterprise" and cells and i % 2 == 0:
            served = [cells[i // 2 % len(cells)]]
        else:
            served = rng.sample(PROD_CELLS, rng.randint(1, 2))
        spec: dict[str, Any] = {
            "weight": round(rng.uniform(low, high), 2),
            "features": entitled,
            "environments": served,
            "contacts": [{"name": f"Ops {i}", "email": f"ops@{customer}.example"}],
        }
        if plan:
            spec["plan"] = plan
        yield _doc("Customer", customer, spec, title=f"Customer {i:05d}")


# History
#
# Times are epoch seconds until they are written: at 100,000 incidents, datetime arithmetic
# and formatting would cost more than everything else together.

_MINUTE = 60


def _stamp(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def _between(rng: random.Random, low: int, high: int) -> int:
    """A whole number from low to high inclusive; cheaper than `randint`."""
    return low + int(rng.random() * (high - low + 1))


def _deployments(
    bp: Blueprint,
    rng: random.Random,
    count: int,
    anchor: datetime,
    history: dict[str, list[tuple[float, str, str]]],
) -> Iterator[dict[str, Any]]:
    """`count` deployments over the 180 days before `anchor`, oldest first."""
    end, span = anchor.timestamp(), 180 * 86_400
    services = bp.services
    people = [p for members in bp.team_people.values() for p in members]
    versions: dict[str, int] = {}
    for i in range(count):
        # Upper layers (lower numbers) ship more often, as front ends do.
        service = services[int(len(services) * rng.random() ** 2)]
        at = end - span * (count - i) / count + rng.random() * 60
        versions[service] = versions.get(service, 0) + 1
        commit = f"{rng.getrandbits(40):010x}"
        name = f"dep-{i:07d}"
        roll = rng.random()
        status = "success" if roll < 0.92 else "failed" if roll < 0.96 else "rolled_back"
        spec = {
            "service": service,
            "environment": "staging" if roll < 0.4 else PROD_CELLS[i % 3],
            "version": f"1.{versions[service]}.0",
            "commit": commit,
            "commitTime": _stamp(at - _between(rng, 10, 3000) * _MINUTE),
            "deployTime": _stamp(at),
            "status": status,
            "author": people[int(rng.random() * len(people))],
        }
        history.setdefault(service, []).append((at, name, commit))
        yield _doc("Deployment", name, spec)


def _incidents(
    bp: Blueprint,
    rng: random.Random,
    count: int,
    anchor: datetime,
    history: dict[str, list[tuple[float, str, str]]],
) -> Iterator[dict[str, Any]]:
    """`count` incidents over the two years before `anchor`, oldest first; the last few open."""
    end, span = anchor.timestamp(), 730 * 86_400
    services = bp.services
    still_open = max(1, count // 20_000)
    for i in range(count):
        service = services[int(len(services) * rng.random() ** 1.5)]
        started = end - span * (count - i) / count - rng.random() * 600
        open_now = i >= count - still_open
        yield _incident(bp, rng, i, service, started, open_now, history.get(service, []))


def _incident(
    bp: Blueprint,
    rng: random.Random,
    number: int,
    service: str,
    started: float,
    open_now: bool,
    deployed: list[tuple[float, str, str]],
) -> dict[str, Any]:
    env = PROD_CELLS[number % 3]
    symptom = _SYMPTOMS[int(rng.random() * len(_SYMPTOMS))]
    cause = _CAUSES[int(rng.random() * len(_CAUSES))]
    detected = started + _between(rng, 1, 30) * _MINUTE
    acknowledged = detected + _between(rng, 1, 15) * _MINUTE
    affected = [service] + [t for t, _, hard in bp.dependencies[service][:1] if hard]
    roll = rng.random()
    severity = "SEV1" if roll < 0.03 else "SEV2" if roll < 0.2 else "SEV3" if roll < 0.7 else "SEV4"
    spec: dict[str, Any] = {
        "severity": severity,
        "status": ("investigating", "identified", "monitoring")[number % 3]
        if open_now
        else "resolved",
        "summary": f"{symptom.capitalize()} on {service} in {env} after {cause}.",
        "trigger": cause,
        "startedAt": _stamp(started),
        "detectedAt": _stamp(detected),
        "acknowledgedAt": _stamp(acknowledged),
        "services": affected,
        "environments": [env],
        "timeline": [{"at": _stamp(detected), "kind": "detection", "text": f"Alert: {symptom}."}],
    }
    if not open_now:
        mitigated = acknowledged + _between(rng, 5, 300) * _MINUTE
        resolved = mitigated + _between(rng, 0, 600) * _MINUTE
        spec |= {"mitigatedAt": _stamp(mitigated), "resolvedAt": _stamp(resolved)}
        spec["timeline"].append({"at": _stamp(resolved), "kind": "resolution", "text": "Resolved."})

    # A third of incidents follow a deployment of the same service; most name its commit.
    before = bisect_left(deployed, (started,))
    if before and rng.random() < 0.33:
        _at, deployment, commit = deployed[before - 1]
        spec["suspectedDeployments"] = [deployment]
        if rng.random() < 0.7:
            spec["rootCauseCommit"] = commit
    title = f"{symptom.capitalize()} on {service}"
    return _doc("Incident", f"inc-{number + 1:06d}", spec, title=title)
