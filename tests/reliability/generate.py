"""A catalog of any size for load and crash tests: teams, people, environments, services that
depend on each other, features and flags, written as JSON files of document arrays."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

__all__ = ["catalog_documents", "write_catalog"]

API = "resilience/v1"
ENVIRONMENTS = ("staging", "production")


def _doc(kind: str, name: str, spec: dict[str, Any], **metadata: Any) -> dict[str, Any]:
    return {"apiVersion": API, "kind": kind, "metadata": {"name": name, **metadata}, "spec": spec}


def catalog_documents(services: int, *, prefix: str = "gen") -> list[dict[str, Any]]:
    """A consistent catalog with `services` services; every reference resolves."""
    teams = [f"{prefix}-team-{i}" for i in range(max(1, services // 20))]
    docs = [_doc("Environment", f"{prefix}-{env}", {"type": env}) for env in ENVIRONMENTS]
    for i, team in enumerate(teams):
        members = [f"{prefix}-person-{i}-{j}" for j in range(3)]
        docs.append(_doc("Team", team, {"members": members, "chatChannel": f"#{team}"}))
        docs += [_doc("Person", person, {"email": f"{person}@example.com"}) for person in members]

    names = [f"{prefix}-service-{i}" for i in range(services)]
    for i, name in enumerate(names):
        spec = {
            "owner": teams[i % len(teams)],
            "tier": 1 + i % 4,
            "dependsOn": [names[j] for j in (i - 1, i // 2) if 0 <= j < i],
            "environments": [{"environment": f"{prefix}-{env}"} for env in ENVIRONMENTS],
        }
        docs.append(_doc("Service", name, spec, description=f"Service number {i}"))

    for i in range(0, services, 10):
        feature = f"{prefix}-feature-{i}"
        docs.append(_doc("Feature", feature, {"services": names[i : i + 3]}))
        states = [{"environment": f"{prefix}-{env}", "enabled": True} for env in ENVIRONMENTS]
        spec = {"purpose": "kill-switch", "feature": feature, "states": states}
        docs.append(_doc("FeatureFlag", f"{prefix}-flag-{i}", spec))
    return docs


def write_catalog(
    folder: Path, services: int, *, prefix: str = "gen", per_file: int = 500
) -> Counter[str]:
    """Write the catalog as JSON files into `folder`; returns how many entities of each kind."""
    docs = catalog_documents(services, prefix=prefix)
    folder.mkdir(parents=True, exist_ok=True)
    for start in range(0, len(docs), per_file):
        chunk = docs[start : start + per_file]
        (folder / f"part-{start // per_file:04d}.json").write_text(json.dumps(chunk))
    return Counter(doc["kind"] for doc in docs)
