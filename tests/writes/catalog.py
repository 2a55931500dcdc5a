"""A small catalog for the write tests, and a way to make write requests against it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from resilience_mcp.catalog import DEMO_ANCHOR, load_catalog
from resilience_mcp.store import Store
from resilience_mcp.writes import WriteRequest

__all__ = ["CATALOG", "load_small_catalog", "request"]

CATALOG = """\
apiVersion: resilience/v1
kind: Team
metadata: {name: team-payments}
spec: {members: [dev-raman, hannah-becker]}
---
apiVersion: resilience/v1
kind: Person
metadata: {name: dev-raman, title: Dev Raman}
---
apiVersion: resilience/v1
kind: Person
metadata: {name: hannah-becker, title: Hannah Becker}
---
apiVersion: resilience/v1
kind: Service
metadata: {name: payments-api}
spec: {owner: team-payments, tier: 1, dependsOn: [payments-db]}
---
apiVersion: resilience/v1
kind: Service
metadata: {name: payments-db}
spec: {owner: team-payments, type: database, tier: 1}
---
apiVersion: resilience/v1
kind: Environment
metadata: {name: prod-eu}
spec: {type: production, region: eu-west-1}
---
apiVersion: resilience/v1
kind: Environment
metadata: {name: prod-eu-acme}
spec: {type: production, parent: prod-eu, tenant: acme}
---
apiVersion: resilience/v1
kind: Feature
metadata: {name: card-payments}
spec: {owner: team-payments, services: [payments-api]}
---
apiVersion: resilience/v1
kind: FeatureFlag
metadata: {name: payments-kill-switch}
spec:
  purpose: kill-switch
  feature: card-payments
  services: [payments-api]
  states:
    - {environment: prod-eu, enabled: false}
---
apiVersion: resilience/v1
kind: FeatureFlag
metadata: {name: psp-failover}
spec:
  purpose: kill-switch
  flagType: string
  variants: {stripe: stripe, adyen: adyen}
  states:
    - {environment: prod-eu, enabled: true, variant: stripe}
---
apiVersion: resilience/v1
kind: Customer
metadata: {name: initech}
spec: {plan: enterprise, features: [card-payments], environments: [prod-eu]}
---
apiVersion: resilience/v1
kind: Incident
metadata: {name: INC-0007, title: Card declines up}
spec:
  severity: SEV2
  status: investigating
  startedAt: 2026-12-01T09:35:00Z
  detectedAt: 2026-12-01T10:41:00Z
  services: [payments-api]
  timeline:
    - {at: 2026-12-01T10:41:00Z, kind: detection, text: Decline rate alert pages Payments.}
---
apiVersion: resilience/v1
kind: Postmortem
metadata: {name: pm-inc-0005}
spec: {incident: INC-0005, summary: An older outage.}
---
apiVersion: resilience/v1
kind: Incident
metadata: {name: INC-0005, title: An older outage}
spec: {severity: SEV3, status: resolved, startedAt: 2026-11-01T09:00:00Z,
       resolvedAt: 2026-11-01T10:00:00Z}
"""


async def load_small_catalog(store: Store, directory: Path) -> Store:
    path = directory / "catalog.yaml"
    path.write_text(CATALOG, encoding="utf-8")
    await load_catalog(store, [path], source="test")
    return store


def request(
    tool: str,
    *,
    idempotency_key: str | None = None,
    dry_run: bool = False,
    actor: str = "local",
    **arguments: Any,
) -> WriteRequest:
    """A write request at the demo anchor time; `arguments` stand for what the tool got."""
    return WriteRequest(
        tool=tool,
        actor=actor,
        at=DEMO_ANCHOR,
        arguments=arguments,
        dry_run=dry_run,
        idempotency_key=idempotency_key,
    )
