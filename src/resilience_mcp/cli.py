"""The `resilience-mcp` command: serve, load, export, and call any tool from a shell."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from resilience_mcp import __version__
from resilience_mcp.errors import InvalidInputError, ResilienceError
from resilience_mcp.server.state import ServerConfig

__all__ = ["main"]

logger = logging.getLogger("resilience_mcp")

ENV_STALE_AFTER_HOURS = "RESILIENCE_MCP_STALE_AFTER_HOURS"
# The exit status of a process that SIGPIPE ended, as a shell reports it.
EXIT_BROKEN_PIPE = 128 + 13


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    with _logging_to_stderr(args.verbose, args.quiet):
        try:
            code = _run(parser, args)
            # Flushed here, so that a reader that has gone is noticed where it is handled.
            sys.stdout.flush()
        except BrokenPipeError:
            # `resilience-mcp ... | head`: the reader has read enough. Stop quietly, as
            # other Unix tools do.
            _drop_stdout()
            return EXIT_BROKEN_PIPE
    return code


def _drop_stdout() -> None:
    """Send what is left of standard output nowhere, so that Python's own flush at exit
    does not fail on the closed pipe again."""
    try:
        descriptor = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return  # not a real file (a test's capture): nothing is flushed at exit
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, descriptor)
    finally:
        os.close(devnull)


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
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
    _semantic_option(serve)
    _http_options(serve)
    _connectors_option(serve)
    _stale_option(serve)
    serve.add_argument(
        "--no-sync", action="store_true", help="do not sync the connectors' sources while serving"
    )
    serve.add_argument(
        "--answer-ttl",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="serve a catalog-wide answer (recurring incidents, scorecard failures, DORA) again "
        "for up to this long while nothing is written (default 60; 0: always compute)",
    )
    serve.add_argument(
        "--version-max-age",
        type=float,
        default=0.25,
        metavar="SECONDS",
        help="read the store's versions again after this long: the longest a write made by "
        "another replica or process goes unseen (default 0.25; 0: read on every call)",
    )
    serve.set_defaults(handler=_serve)

    token = commands.add_parser("token", help="make bearer tokens for the HTTP transport")
    token_commands = token.add_subparsers(dest="token_command", metavar="ACTION", required=True)
    new = token_commands.add_parser(
        "new", help="make a random token; print it once, with its tokens-file line"
    )
    new.add_argument("--name", required=True, help="the client's name, e.g. incident-bot")
    new.add_argument("--scopes", default="read", help="read, write or read,write (default read)")
    new.set_defaults(handler=_token_new)
    hash_ = token_commands.add_parser(
        "hash", help="the tokens-file line for a token you have, read from standard input"
    )
    hash_.add_argument("--name", required=True, help="the client's name")
    hash_.add_argument("--scopes", default="read", help="read, write or read,write (default read)")
    hash_.set_defaults(handler=_token_hash)

    load = commands.add_parser(
        "load", help="load catalog files (YAML, JSON, Backstage) into the store"
    )
    _store_options(load, demo=False)
    load.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="files or folders")
    load.add_argument("--source", help="provenance label (default: the paths)")
    load.add_argument(
        "--prune",
        action="store_true",
        help="remove what the source no longer declares (anything still referred to is kept)",
    )
    load.add_argument("--dry-run", action="store_true", help="validate and report, write nothing")
    load.add_argument(
        "--environment", help="the environment that flagd flag files among the paths describe"
    )
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
    _semantic_option(call)
    _connectors_option(call)
    _stale_option(call)
    call.set_defaults(handler=_call)

    sync = commands.add_parser(
        "sync", help="sync the catalog from a source of the connectors file, now"
    )
    _store_options(sync, demo=False)
    _connectors_option(sync)
    sync.add_argument("source", help="a source's name in the connectors file, or 'all'")
    sync.add_argument("--dry-run", action="store_true", help="fetch and validate, write nothing")
    sync.set_defaults(handler=_sync)

    doctor = commands.add_parser("doctor", help="check a database and say what to fix")
    doctor.add_argument("--db", default=None, help="SQLAlchemy URL or SQLite path to check")
    doctor.add_argument(
        "--stale-after",
        type=float,
        default=24.0 * 7,
        metavar="HOURS",
        help="warn about entities no load or sync confirmed for this long (default 168)",
    )
    doctor.add_argument(
        "--full", action="store_true", help="SQLite: the full integrity_check, not quick_check"
    )
    doctor.set_defaults(handler=_doctor)
    return parser


def _connectors_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--connectors",
        default=os.environ.get("RESILIENCE_MCP_CONNECTORS"),
        metavar="PATH",
        help="the connectors file: sync sources, webhooks, actions (default: "
        "$RESILIENCE_MCP_CONNECTORS)",
    )


def _semantic_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--semantic",
        action="store_true",
        default=os.environ.get("RESILIENCE_MCP_SEMANTIC") == "1",
        help="rank similar incidents by meaning too, with a local model (needs the semantic "
        "extra: pip install 'resilience-mcp[semantic]')",
    )


def _stale_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--stale-after-hours",
        type=float,
        default=None,
        metavar="HOURS",
        help="mark synced facts older than this stale in answers (default: "
        "$RESILIENCE_MCP_STALE_AFTER_HOURS, else the connectors file's stale_after_hours, "
        "else 168)",
    )


def _stale_after_hours(args: argparse.Namespace) -> float | None:
    """The stale age the flag or the environment gives; None leaves it to the file."""
    given: float | None = getattr(args, "stale_after_hours", None)
    if given is not None:
        where, text = "--stale-after-hours", str(given)
    else:
        where, text = f"${ENV_STALE_AFTER_HOURS}", os.environ.get(ENV_STALE_AFTER_HOURS, "")
        if not text.strip():
            return None
    try:
        hours = float(text)
    except ValueError:
        hours = 0.0
    if not 0 < hours < float("inf"):
        raise InvalidInputError(f"{where} must be a positive number of hours, not {text!r}.")
    return hours


def _connector_settings(args: argparse.Namespace) -> Any:
    path = getattr(args, "connectors", None)
    if not path:
        return None
    from resilience_mcp.connectors import load_connector_settings

    return load_connector_settings(path)


def _sync(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from resilience_mcp.connectors import run_sync
    from resilience_mcp.store import Store

    settings = _connector_settings(args)
    if settings is None:
        print("error: give the connectors file with --connectors", file=sys.stderr)
        return 2
    chosen = settings.sources if args.source == "all" else [settings.source(args.source)]
    if None in chosen:
        names = ", ".join(s.name for s in settings.sources) or "none"
        print(f"error: no source {args.source!r}; the file has: {names}", file=sys.stderr)
        return 2

    async def run() -> int:
        store = await Store.open(args.db)
        failed = 0
        try:
            # Each source on its own: one that fails changes nothing and the rest still sync.
            for source in chosen:
                try:
                    report = await run_sync(
                        store, source, now=datetime.now(UTC), dry_run=args.dry_run
                    )
                except ResilienceError as exc:
                    failed += 1
                    print(
                        f"error: sync {source.name} failed, nothing changed: {exc}", file=sys.stderr
                    )
                    continue
                except Exception as exc:
                    # A fault of ours, not of the source: say which source, keep going.
                    failed += 1
                    logger.debug("sync %s failed unexpectedly", source.name, exc_info=True)
                    print(
                        f"error: sync {source.name} failed unexpectedly "
                        f"({exc.__class__.__name__}: {exc}); -v logs the traceback",
                        file=sys.stderr,
                    )
                    continue
                print(report.summary(), flush=True)
        finally:
            await store.close()
        return failed

    failed = asyncio.run(run())
    if failed and len(chosen) > 1:
        print(f"error: {failed} of {len(chosen)} sources failed", file=sys.stderr)
    return 1 if failed else 0


def _http_options(serve: argparse.ArgumentParser) -> None:
    serve.add_argument(
        "--tokens-file",
        default=os.environ.get("RESILIENCE_MCP_TOKENS_FILE"),
        metavar="PATH",
        help="bearer tokens for --http, one 'CLIENT SCOPES sha256:DIGEST' a line (default: "
        "$RESILIENCE_MCP_TOKENS_FILE; lines in $RESILIENCE_MCP_TOKENS are added)",
    )
    serve.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="HOST",
        help="a Host header to accept besides loopback, e.g. mcp.example.com (repeatable)",
    )
    serve.add_argument(
        "--allowed-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="an Origin header to accept besides loopback, e.g. https://chat.example.com",
    )
    serve.add_argument(
        "--max-body-bytes",
        type=int,
        default=1024 * 1024,
        metavar="N",
        help="largest request body accepted over HTTP (default 1 MiB)",
    )
    serve.add_argument(
        "--header-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="close a client that has not sent its request headers by then (default 10; 0: off)",
    )
    serve.add_argument(
        "--body-timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="answer 408 to a request whose body has not all arrived by then (default 60)",
    )
    serve.add_argument(
        "--stateful",
        action="store_true",
        help="keep MCP sessions over HTTP (default stateless, which suits replicas)",
    )


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


@contextmanager
def _logging_to_stderr(verbose: bool, quiet: bool) -> Iterator[None]:
    """Log to the standard error of this moment while the command runs, then put logging
    back as it was: called in-process (by tests, by scripts), the command must not leave a
    handler on a stream that its caller may close, for threads that log later to hit."""
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    saved = root.handlers[:], root.level, logger.level
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logger.setLevel(level)
    try:
        yield
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        logger.setLevel(saved[2])


def _config(args: argparse.Namespace, **extra: Any) -> ServerConfig:
    # Only `serve` syncs in the background; a one-off command must not start a sync.
    extra.setdefault("background_sync", False)
    return ServerConfig(
        db_url=args.db,
        demo=getattr(args, "demo", False),
        connectors=_connector_settings(args),
        stale_after_hours=_stale_after_hours(args),
        semantic=getattr(args, "semantic", False),
        **extra,
    )


def _serve(args: argparse.Namespace) -> int:
    from resilience_mcp.server import build_server

    toolsets = tuple(t.strip() for t in args.toolsets.split(",") if t.strip())
    config = _config(
        args,
        toolsets=toolsets,
        enable_writes=args.enable_writes,
        load_paths=tuple(args.load),
        background_sync=not args.no_sync,
        answer_ttl_seconds=args.answer_ttl,
        version_max_age_seconds=args.version_max_age,
    )
    if not args.http:
        server = build_server(config)
        logger.info("serving MCP on stdio")
        server.run()
        return 0
    return _serve_http(args, config)


def _serve_http(args: argparse.Namespace, config: ServerConfig) -> int:
    import uvicorn

    from resilience_mcp.server.app import build_http_app
    from resilience_mcp.server.auth import TokenBook
    from resilience_mcp.server.http import HttpSettings
    from resilience_mcp.server.listen import uvicorn_config

    tokens = TokenBook.load(args.tokens_file, os.environ.get("RESILIENCE_MCP_TOKENS"))
    settings = HttpSettings(
        host=args.host,
        port=args.port,
        allowed_hosts=tuple(args.allowed_host),
        allowed_origins=tuple(args.allowed_origin),
        max_body_bytes=args.max_body_bytes,
        stateless=not args.stateful,
        header_timeout_seconds=args.header_timeout,
        body_timeout_seconds=args.body_timeout,
    )
    app = build_http_app(config, settings, tokens)
    auth = f"{len(tokens)} token(s)" if tokens else "no authentication (loopback only)"
    logger.info("serving MCP over HTTP at http://%s:%d/mcp, %s", args.host, args.port, auth)
    uvicorn.Server(uvicorn_config(app, settings)).run()
    return 0


def _token_new(args: argparse.Namespace) -> int:
    from resilience_mcp.server.auth import new_token

    token, line = new_token(args.name, args.scopes)
    print(f"token (shown once; give it to {args.name}): {token}")
    print(f"tokens-file line: {line}")
    return 0


def _token_hash(args: argparse.Namespace) -> int:
    from resilience_mcp.server.auth import token_line

    token = sys.stdin.readline().strip()
    if not token:
        print("error: give the token on standard input", file=sys.stderr)
        return 2
    print(token_line(args.name, args.scopes, token))
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
                flag_environment=args.environment,
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


def _doctor(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime, timedelta

    from resilience_mcp.doctor import diagnose

    report = asyncio.run(
        diagnose(
            args.db,
            now=datetime.now(UTC),
            stale_after=timedelta(hours=args.stale_after),
            full=args.full,
        )
    )
    print(report.summary())
    return 0 if report.ok else 1


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
    if not args.enable_writes and args.tool in _write_tools():
        print(
            f"error: {args.tool} is a write tool and writes are off; add --enable-writes "
            "(every write is recorded in the audit log)",
            file=sys.stderr,
        )
        return 2

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


def _write_tools() -> set[str]:
    """The names of the tools that only a server with writes on offers."""
    from resilience_mcp.server import ServerConfig, build_server

    def names(enable_writes: bool) -> set[str]:
        server = build_server(ServerConfig(toolsets=("all",), enable_writes=enable_writes))
        return {tool.name for tool in asyncio.run(server.list_tools())}

    return names(True) - names(False)


if __name__ == "__main__":
    sys.exit(main())
