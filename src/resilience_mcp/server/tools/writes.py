"""Tools of this area; see the module's register()."""

from __future__ import annotations

from typing import Any

from mcp.server import MCPServer

from resilience_mcp.server.state import ServerConfig

__all__ = ["register"]


def register(server: MCPServer[Any], config: ServerConfig) -> None:
    """Registers this area's tools on `server`."""
