"""The `resilience-mcp` command: serve, load, export, and call any tool from a shell."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from resilience_mcp import __version__
from resilience_mcp.errors import ResilienceError
from resilience_mcp.server.state import ServerConfig

__all__ = ["main"]

logger = logging.getLogger("resilience_mcp")

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    _configure_logging(args.verbose, args.quiet)
    if not getattr(args, "command", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.handler(args) or 0)
    except ResilienceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="resilience-mcp",
        description="A resilience catalog served over MCP: owners, dependencies, impact, "
        "flags, customers, incidents.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
    parser.add_argument("-q", "--quiet", action="store_true", help="log warnings only")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the MCP server (stdio by default)")
    _store_options(serve)
    serve.add_argument("--http", action="store_true", help="serve streamable HTTP at /mcp")
    serve.add_argument("--host", default="127.0.0.1", help="HTTP address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="HTTP port (default 8000)")
    serve.add_argument(
        "--toolsets",
        default=os.environ.get("RESILIENCE_MCP_TOOLSETS", "default"),
        help="comma-separated toolsets to offer, or 'all' (default: default)",
    )
    serve.add_argument(
        "--enable-writes",
        action="store_true",
        default=os.environ.get("RESILIENCE_MCP_ENABLE_WRITES") == "1",
        help="offer the write tools (declare an incident, flip a flag, ...)",
    )
    serve.add_argument(
        "--load", action="append", default=[], metavar="PATH", help="load these catalog files first"
    )
    serve.set_defaults(handler=_serve)

    load = commands.add_parser(
        "load", help="load catalog files (YAML, JSON, Backstage) into the store"
    )
    _store_options(load, demo=False)
    load.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="files or folders")
    load.add_argument("--source", help="provenance label (default: the paths)")
    load.add_argument(
        "--prune", action="store_true", help="remove what the source no longer declares"
    )
    load.add_argument("--dry-run", action="store_true", help="validate and report, write nothing")
    load.set_defaults(handler=_load)

    export = commands.add_parser("export", help="write the whole catalog back to YAML files")
    _store_options(export)
    export.add_argument("directory", type=Path, help="folder to write into")
    export.set_defaults(handler=_export)

    call = commands.add_parser("call", help="run one MCP tool in-process and print its answer")
    _store_options(call)
    call.add_argument("tool", help="tool name, e.g. get_owner")
    call.add_argument(
        "arguments", nargs="?", default="{}", help='JSON object, e.g. \'{"name": "payments-api"}\''
    )
    call.add_argument("--json", action="store_true", help="print the structured answer as JSON")
    call.add_argument("--enable-writes", action="store_true", help="allow write tools")
    call.set_defaults(handler=_call)
    return parser


def _store_options(parser: argparse.ArgumentParser, *, demo: bool = True) -> None:
    parser.add_argument(
        "--db",
        default=None,
        help="SQLAlchemy URL or SQLite path (default: $RESILIENCE_MCP_DB, else a file in "
        "the user's data directory)",
    )
    if demo:
        parser.add_argument(
            "--demo", action="store_true", help="use a fresh database holding the demo catalog"
        )


def _configure_logging(verbose: bool, quiet: bool) -> None:
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logger.setLevel(level)


def _config(args: argparse.Namespace, **extra: Any) -> ServerConfig:
    return ServerConfig(db_url=args.db, demo=getattr(args, "demo", False), **extra)


def _serve(args: argparse.Namespace) -> int:
    from resilience_mcp.server import build_server

    toolsets = tuple(t.strip() for t in args.toolsets.split(",") if t.strip())
    config = _config(
        args, toolsets=toolsets, enable_writes=args.enable_writes, load_paths=tuple(args.load)
    )
    server = build_server(config)
    if not args.http:
        logger.info("serving MCP on stdio")
        server.run()
        return 0
    if args.host not in LOOPBACK:
        print(
            f"error: refusing to listen on {args.host} without authentication; serve on "
            "127.0.0.1, or configure tokens (see the README's HTTP section).",
            file=sys.stderr,
        )
        return 2
    logger.info("serving MCP over HTTP at http://%s:%d/mcp", args.host, args.port)
    server.run("streamable-http", host=args.host, port=args.port, stateless_http=True)
    return 0


def _load(args: argparse.Namespace) -> int:
    from resilience_mcp.catalog import load_catalog
    from resilience_mcp.store import Store

    async def run() -> str:
        store = await Store.open(args.db)
        try:
            report = await load_catalog(
                store,
                args.paths,
                source=args.source,
                prune=args.prune,
                dry_run=args.dry_run,
                progress=_progress_bar() if sys.stderr.isatty() else None,
            )
        finally:
            await store.close()
        return report.summary()

    print(asyncio.run(run()))
    return 0


def _progress_bar() -> Any:
    def show(done: int, total: int) -> None:
        width = 30
        filled = int(width * done / total) if total else width
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return show


def _export(args: argparse.Namespace) -> int:
    from resilience_mcp.server.app import open_state

    async def run() -> dict[str, int]:
        from resilience_mcp.catalog import export_catalog

        async with open_state(_config(args)) as state:
            return await export_catalog(state.store, args.directory)

    counts = asyncio.run(run())
    total = sum(counts.values())
    print(
        f"wrote {total} entities to {args.directory}: "
        + ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
    )
    return 0


def _call(args: argparse.Namespace) -> int:
    from mcp import Client

    from resilience_mcp.server import build_server

    try:
        arguments = json.loads(args.arguments)
    except json.JSONDecodeError as exc:
        print(
            f"error: the arguments are not JSON ({exc.msg}); pass an object such as "
            '\'{"name": "x"}\'',
            file=sys.stderr,
        )
        return 2
    if not isinstance(arguments, dict):
        print("error: the arguments must be a JSON object", file=sys.stderr)
        return 2
    config = _config(args, toolsets=("all",), enable_writes=args.enable_writes)

    async def run() -> tuple[bool, str]:
        async with Client(build_server(config)) as client:
            result = await client.call_tool(args.tool, arguments)
        if args.json and result.structured_content is not None and not result.is_error:
            return False, json.dumps(result.structured_content, indent=2, default=str)
        text = "\n".join(getattr(block, "text", "") for block in result.content)
        return bool(result.is_error), text

    failed, output = asyncio.run(run())
    print(output, file=sys.stderr if failed else sys.stdout)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
