"""Connectors: keep the catalog current from other systems, take events pushed to us, and
run the outbound actions an operator configured.

Each source fetches every page first, then loads once through the catalog loader, so a
sync validates like a file load, writes all or nothing, and marks each fact with where it
came from and when.
"""

from resilience_mcp.connectors.documents import SyncReport
from resilience_mcp.connectors.sync import (
    background_sync,
    load_connector_settings,
    run_sync,
)

__all__ = ["SyncReport", "background_sync", "load_connector_settings", "run_sync"]
