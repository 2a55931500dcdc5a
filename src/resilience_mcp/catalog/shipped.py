"""The files the package ships: the demo catalog and the prompts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from resilience_mcp.catalog.loader import LoadReport, load_catalog
from resilience_mcp.store import Store

__all__ = ["DEMO_ANCHOR", "demo_catalog_dir", "load_demo", "shipped_dir"]

# The demo catalog is written as if it were this moment; loading it moves every time by
# the distance from here to now, so "the last 24 hours" always has something in it.
DEMO_ANCHOR = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def shipped_dir(name: str) -> Path:
    """A top-level folder of the repository, or its copy inside an installed wheel."""
    package = Path(__file__).resolve().parent.parent
    for candidate in (package.parent.parent / name, package / "_shipped" / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"the package's {name}/ folder is missing; reinstall resilience-mcp")


def demo_catalog_dir() -> Path:
    return shipped_dir("data") / "catalog"


async def load_demo(store: Store, *, now: datetime | None = None) -> LoadReport:
    """Load the demo catalog with its times moved so that its anchor is `now`."""
    shift = (now or datetime.now(UTC)) - DEMO_ANCHOR
    # Whole minutes keep the shifted times readable.
    shift = timedelta(minutes=round(shift.total_seconds() / 60))
    return await load_catalog(store, [demo_catalog_dir()], source="demo", time_shift=shift)
