"""The MCP surface: tools, resources, prompts, auth and transports."""

from resilience_mcp.server.app import TOOLSETS, build_server
from resilience_mcp.server.state import AppState, ServerConfig

__all__ = ["TOOLSETS", "AppState", "ServerConfig", "build_server"]
