"""The database: engine, sessions, schema and the catalog version.

SQLite (through aiosqlite) is the embedded default, one file in WAL mode. PostgreSQL
(through asyncpg) is the shared store several replicas use. Both take the same code.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import time
from collections.abc import AsyncIterator, Collection, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from sqlalchemy import Connection, event, text, update
from sqlalchemy import inspect as inspect_row
from sqlalchemy import select as select_rows
from sqlalchemy.engine import ExceptionContext, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction
from sqlalchemy.pool import StaticPool
from sqlalchemy.schema import CreateTable
from sqlmodel import SQLModel, col, func, select

from resilience_mcp import models as m
from resilience_mcp.errors import StoreError
from resilience_mcp.fulltext import install_fulltext
from resilience_mcp.models import (
    CatalogMeta,
    CatalogState,
    IncidentLink,
    SourceConfirmation,
    utcnow,
)
from resilience_mcp.models.tables import LINK_INDEX
from resilience_mcp.sqlite_driver import one_trip_dbapi

__all__ = [
    "FLAG_TABLES",
    "GRAPH_TABLES",
    "LOCK_ONLY",
    "SCHEMA_VERSION",
    "GraphVersions",
    "Store",
    "VersionWatch",
    "Versions",
    "bump_confirm_version",
    "bump_version",
    "chunks",
    "counted_page",
    "counted_rows",
    "default_db_url",
    "tallied_rows",
    "tracked_writes",
]

logger = logging.getLogger(__name__)


class GraphVersions(NamedTuple):
    """The store's versions the in-memory graph is kept against."""

    graph: int
    flags: int
    confirmations: int


class Versions(NamedTuple):
    """All the store's versions, read together: the catalog version, which every write
    moves, and those the graph is kept against."""

    catalog: int
    graph: GraphVersions


# Bump when a table changes shape; `Store.open` refuses a database of another version.
# 2: catalog_state.graph_version and flag_version, and the catalog_change table. Tables
# added since (source_confirmation) are created when a version 2 database is opened.
SCHEMA_VERSION = 2

# The tables the in-memory graph (`graph.catalog.build_graph`) is built from. A write to
# one of them moves the graph version, so every replica rebuilds its graph; history
# (deployments, incidents, flag changes, measurements) only moves the catalog version.
# Flag states (`FLAG_TABLES`) are in the graph too, but a write to them moves only the
# flag version: they change often, and replicas reload just them (`GraphCache`).
GRAPH_TABLES = frozenset(
    str(table.__tablename__)
    for table in (
        m.Service,
        m.Team,
        m.Person,
        m.System,
        m.Domain,
        m.Environment,
        m.Feature,
        m.FeatureFlag,
        m.Customer,
        m.OnCallRotation,
        m.ServiceInstance,
        m.OnCallOverride,
        m.Dependency,
        m.TeamMember,
        m.FeatureService,
        m.CustomerFeature,
        m.CustomerEnvironment,
        m.Scorecard,
    )
)
FLAG_TABLES = frozenset({str(m.FlagState.__tablename__)})
# Stands for a statement whose table is not known (raw SQL): taken as one the graph reads.
UNKNOWN_TABLE = "?"
# An execution option marking a statement that writes only to take a row lock (a no-op
# update): `tracked_writes` leaves it out, so it moves no graph or flag version.
LOCK_ONLY = "resilience_lock_only"

ENV_DB = "RESILIENCE_MCP_DB"

# Seconds a SQLite write waits for another writer's lock; `?timeout=` in the URL changes it.
SQLITE_BUSY_TIMEOUT = 10.0
# Query parameters of a PostgreSQL URL that become the connection's server settings:
# `search_path` keeps the catalog in its own schema, `application_name` names the
# connections in pg_stat_activity.
_PG_SERVER_SETTINGS = ("search_path", "application_name")


def _data_home() -> Path:
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support"
    if os.name == "nt":
        return Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
    return Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share"))


def default_db_url() -> str:
    """`RESILIENCE_MCP_DB` if set, else a SQLite file in the user's data directory."""
    if url := os.environ.get(ENV_DB):
        return url
    return f"sqlite+aiosqlite:///{_data_home() / 'resilience-mcp' / 'catalog.db'}"


def _normalise_url(url: str) -> str:
    """Accept plain driver names and bare paths, as people type them."""
    if "://" not in url:
        return f"sqlite+aiosqlite:///{Path(url).expanduser().resolve()}"
    if url.startswith("sqlite://"):
        return "sqlite+aiosqlite://" + url.removeprefix("sqlite://")
    if url.startswith(("postgres://", "postgresql://")):
        return "postgresql+asyncpg://" + url.split("://", 1)[1]
    return url


class Store:
    """An open database. Create with `Store.open(url)`; close with `await store.close()`."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        # Transactions committed through this store, so that `VersionWatch` knows when
        # this process has written.
        self.commits = 0
        event.listen(engine.sync_engine, "commit", self._committed)

    def _committed(self, _conn: Connection) -> None:
        self.commits += 1

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @classmethod
    async def open(cls, url: str | None = None, *, create: bool = True) -> Store:
        """Open (and by default create) the database at `url`."""
        url = _normalise_url(url or default_db_url())
        store = cls(_make_engine(url))
        try:
            await store._prepare(create=create)
        except (SQLAlchemyError, OSError, _ConnectFailed) as exc:
            await store.close()
            safe = make_url(url).render_as_string(hide_password=True)
            if isinstance(exc, _ConnectFailed):
                detail: object = exc.detail
            else:
                detail = f"{exc.__class__.__name__}: " + str(
                    exc.args[0] if isinstance(exc, SQLAlchemyError) else exc
                )
            raise StoreError(
                f"Cannot open the database at {safe}: {detail}. "
                "Check the URL given by --db or RESILIENCE_MCP_DB and that the server runs."
            ) from exc
        except BaseException:
            await store.close()
            raise
        logger.info("opened %s store", store.dialect)
        return store

    async def close(self) -> None:
        await self.engine.dispose()

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session for reads; writes go through `transaction`."""
        async with AsyncSession(self.engine, expire_on_commit=False) as session:
            yield session

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session whose work commits together, bumping the catalog version (and the
        graph or flag version when it wrote a table the graph reads), or not at all."""
        async with (
            AsyncSession(self.engine, expire_on_commit=False) as session,
            session.begin(),
        ):
            with tracked_writes(session) as written:
                yield session
                await session.flush()
            await bump_version(session, written)

    async def catalog_version(self) -> int:
        """Moves with every write: catalog entities and history alike."""
        return await self._state(CatalogState.version)

    async def graph_version(self) -> int:
        """Moves with writes to the tables the graph is built from (`GRAPH_TABLES`)."""
        return await self._state(CatalogState.graph_version)

    async def flag_version(self) -> int:
        """Moves with writes to the flag states the graph holds (`FLAG_TABLES`)."""
        return await self._state(CatalogState.flag_version)

    async def confirm_version(self) -> int:
        """Moves when a sync confirms what its source holds, changed or not."""
        return await self._state(CatalogState.confirm_version)

    async def graph_versions(self) -> GraphVersions:
        """The versions the in-memory graph is kept against, read together."""
        return (await self.versions()).graph

    async def versions(self) -> Versions:
        """Every version, in one query."""
        columns = (
            CatalogState.version,
            CatalogState.graph_version,
            CatalogState.flag_version,
            CatalogState.confirm_version,
        )
        async with self.engine.connect() as conn:
            result = await conn.execute(select(*columns).where(col(CatalogState.id) == 1))
            row = result.one_or_none()
        if row is None:
            return Versions(0, GraphVersions(0, 0, 0))
        catalog, graph, flags, confirmations = (int(v) for v in row)
        return Versions(catalog, GraphVersions(graph, flags, confirmations))

    async def _state(self, column: Any) -> int:
        async with self.engine.connect() as conn:
            result = await conn.execute(select(column).where(col(CatalogState.id) == 1))
            return int(result.scalar_one_or_none() or 0)

    async def _prepare(self, *, create: bool) -> None:
        async with self.engine.begin() as conn:
            if create:
                await conn.run_sync(SQLModel.metadata.create_all)
            found = await conn.execute(
                select(CatalogMeta.value).where(col(CatalogMeta.key) == "schema_version")
            )
            version = found.scalar_one_or_none()
            if version is None:
                await conn.execute(
                    CatalogMeta.__table__.insert().values(  # type: ignore[attr-defined]
                        key="schema_version", value=str(SCHEMA_VERSION)
                    )
                )
                await conn.execute(
                    CatalogState.__table__.insert().values(  # type: ignore[attr-defined]
                        id=1, version=0, graph_version=0, flag_version=0, changed_at=utcnow()
                    )
                )
            elif int(version) != SCHEMA_VERSION:
                raise StoreError(
                    f"The database has schema version {version}, this release uses "
                    f"{SCHEMA_VERSION}. Export the catalog with the release that wrote it "
                    "and load it into a new database."
                )
            else:
                await conn.run_sync(_add_state_columns)
                await conn.run_sync(_add_source_confirmation)
                await conn.run_sync(_cover_link_index)
            if create:
                await install_fulltext(conn)


def _cover_link_index(conn: Connection) -> None:
    """Give a version 2 database written before it the covering index of incident links
    (kind, target, incident), in place of the one on (kind, target)."""
    found = {i["name"] for i in inspect_row(conn).get_indexes(IncidentLink.__tablename__)}
    if LINK_INDEX not in found:
        conn.execute(
            text(
                f"CREATE INDEX IF NOT EXISTS {LINK_INDEX} ON incident_link (kind, target, incident)"
            )
        )
    if "ix_incident_link_kind_target" in found:
        conn.execute(text("DROP INDEX IF EXISTS ix_incident_link_kind_target"))


def _add_state_columns(conn: Connection) -> None:
    """Add catalog_state.flag_version and confirm_version to a version 2 database written
    before they existed."""
    columns = {c["name"] for c in inspect_row(conn).get_columns(CatalogState.__tablename__)}
    for column in ("flag_version", "confirm_version"):
        if column not in columns:
            # Replicas starting together may both get here: PostgreSQL can say so.
            guard = "IF NOT EXISTS " if conn.dialect.name == "postgresql" else ""
            conn.execute(
                text(
                    f"ALTER TABLE catalog_state ADD COLUMN {guard}"
                    f"{column} INTEGER NOT NULL DEFAULT 0"
                )
            )


def _add_source_confirmation(conn: Connection) -> None:
    """Add the source_confirmation table to a version 2 database written before it existed
    (also when opened without `create`, as `doctor` does)."""
    if not inspect_row(conn).has_table(SourceConfirmation.__tablename__):
        table = SourceConfirmation.__table__  # type: ignore[attr-defined]
        conn.execute(CreateTable(table, if_not_exists=True))


class VersionWatch:
    """The store's versions as last read, read again once `max_age` seconds have passed or
    this process has committed a transaction since.

    A server checks the versions on every call, to see writes made through other replicas
    or processes; doing so by a query every time costs a round trip more than most answers'
    own work. Watched, writes through this process are still seen at once, and writes made
    elsewhere within `max_age`. A `max_age` of 0 reads on every call.
    """

    def __init__(self, store: Store, max_age: float = 0.0) -> None:
        self.store = store
        self.max_age = max_age
        # The versions last read, when (monotonic) the read began, and the commit count then.
        self._seen: tuple[Versions, float, int] | None = None

    async def current(self) -> Versions:
        seen = self._seen
        if seen is not None:
            versions, at, commits = seen
            if commits == self.store.commits and time.monotonic() - at < self.max_age:
                return versions
        # Taken before the query: a commit landing while it runs makes the next call read.
        commits, at = self.store.commits, time.monotonic()
        versions = await self.store.versions()
        self._seen = (versions, at, commits)
        return versions


T = TypeVar("T")

# The most values one `IN (...)` list binds: well within what either engine takes, and a
# statement that stays quick to plan.
CHUNK = 500


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    """`items` in runs of at most `size`, one `IN (...)` list each."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


R = TypeVar("R", bound=SQLModel)


async def counted_page(
    session: AsyncSession,
    table: type[R],
    where: Sequence[Any],
    order: Sequence[Any],
    *,
    limit: int,
    offset: int = 0,
) -> tuple[int, list[R]]:
    """How many rows of `table` match `where`, and `limit` of them in `order` from `offset`."""
    total, rows = await counted_rows(session, table, [table], where, order, limit, offset)
    return total, [row[0] for row in rows]


async def counted_rows(
    session: AsyncSession,
    table: type[SQLModel],
    columns: Sequence[Any],
    where: Sequence[Any],
    order: Sequence[Any],
    limit: int,
    offset: int = 0,
) -> tuple[int, list[Any]]:
    """`counted_page` reading only `columns` (or entities) of each row: a listing that shows
    a few fields skips decoding the others. Each row ends with the count."""
    (total,), rows = await tallied_rows(session, table, columns, where, order, limit, offset)
    return total, rows


async def tallied_rows(
    session: AsyncSession,
    table: type[SQLModel],
    columns: Sequence[Any],
    where: Sequence[Any],
    order: Sequence[Any],
    limit: int,
    offset: int = 0,
    *,
    tallies: Sequence[Any] = (func.count(),),
) -> tuple[list[int], list[Any]]:
    """`columns` of a page of the rows of `table` matching `where`, and `tallies`
    (aggregates such as `func.count()`) over all of those rows.

    One statement: each tally rides on every row of the page as an uncorrelated subquery,
    which either engine computes once. Only a page past the end, which has no row to carry
    them, takes a second statement for the tallies. Each row ends with them.
    """
    carried = [
        select(tally).select_from(table).where(*where).scalar_subquery().correlate(None)
        for tally in tallies
    ]
    page = select_rows(*columns, *carried).where(*where).order_by(*order)
    rows: list[Any] = list((await session.execute(page.offset(offset).limit(limit))).all())
    if rows:
        return [int(value) for value in rows[0][len(columns) :]], rows
    if offset == 0:
        return [0] * len(tallies), []
    alone = select_rows(*tallies).select_from(table).where(*where)
    return [int(value) for value in (await session.execute(alone)).one()], []


async def bump_confirm_version(session: AsyncSession) -> None:
    """Mark that a sync confirmed what its source holds: replicas re-read the confirmations
    without rebuilding their graph."""
    values = {"confirm_version": col(CatalogState.confirm_version) + 1}
    await session.execute(update(CatalogState).where(col(CatalogState.id) == 1).values(values))


async def bump_version(session: AsyncSession, written: Collection[str] | None = None) -> None:
    """Mark the catalog changed; and the graph too when `written` (the names of the tables
    written, see `tracked_writes`) holds one the graph is built from, the flag states
    when it holds one of `FLAG_TABLES`. One atomic statement, so concurrent writers never
    collide."""
    values = {"version": col(CatalogState.version) + 1, "changed_at": utcnow()}
    unknown = written is None or UNKNOWN_TABLE in written
    if unknown or not GRAPH_TABLES.isdisjoint(written or ()):
        values["graph_version"] = col(CatalogState.graph_version) + 1
    if unknown or not FLAG_TABLES.isdisjoint(written or ()):
        values["flag_version"] = col(CatalogState.flag_version) + 1
    await session.execute(update(CatalogState).where(col(CatalogState.id) == 1).values(values))


@contextmanager
def tracked_writes(session: AsyncSession) -> Iterator[set[str]]:
    """The names of the tables `session` writes while inside: rows flushed by the ORM and
    insert, update and delete statements; raw SQL counts as `UNKNOWN_TABLE`. Statements
    run with the `LOCK_ONLY` execution option write nothing and are left out."""
    written: set[str] = set()
    sync_session = session.sync_session

    def flushed(flushing: Session, _context: UOWTransaction) -> None:
        for row in (*flushing.new, *flushing.dirty, *flushing.deleted):
            written.update(table.name for table in inspect_row(row).mapper.tables)

    def executed(state: ORMExecuteState) -> None:
        if state.is_select or state.execution_options.get(LOCK_ONLY):
            return
        table = getattr(state.statement, "table", None)
        written.add(str(getattr(table, "name", None) or UNKNOWN_TABLE))

    event.listen(sync_session, "after_flush", flushed)
    event.listen(sync_session, "do_orm_execute", executed)
    try:
        yield written
    finally:
        event.remove(sync_session, "after_flush", flushed)
        event.remove(sync_session, "do_orm_execute", executed)


def _make_engine(url: str) -> AsyncEngine:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        # `?search_path=schema` keeps the catalog in its own schema of a shared database.
        connect_args: dict[str, Any] = {}
        settings = {k: str(v) for k, v in parsed.query.items() if k in _PG_SERVER_SETTINGS}
        if settings:
            parsed = parsed.difference_update_query(list(settings))
            connect_args["server_settings"] = settings
        pg_engine = create_async_engine(
            parsed, pool_pre_ping=True, pool_size=10, max_overflow=10, connect_args=connect_args
        )
        event.listen(pg_engine.sync_engine, "do_connect", _connect_or_explain)
        event.listen(pg_engine.sync_engine, "handle_error", _explain_failure)
        return pg_engine

    database = parsed.database or ""
    in_memory = database in ("", ":memory:") or parsed.query.get("mode") == "memory"
    timeout = _busy_timeout(parsed.query.get("timeout"))
    kwargs: dict[str, Any] = {"connect_args": {"timeout": timeout}, "module": one_trip_dbapi()}
    if in_memory:
        kwargs["poolclass"] = StaticPool
    else:
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(url, **kwargs)
    pragmas = functools.partial(_sqlite_pragmas, busy_ms=int(timeout * 1000))
    event.listen(engine.sync_engine, "connect", pragmas)
    event.listen(engine.sync_engine, "handle_error", _explain_failure)
    return engine


def _busy_timeout(value: Any) -> float:
    if value is None:
        return SQLITE_BUSY_TIMEOUT
    try:
        return max(0.0, float(value))
    except ValueError:
        raise StoreError(
            f"The database URL's timeout {value!r} is not a number; give the seconds a write "
            "may wait for another writer, e.g. ?timeout=10."
        ) from None


def _sqlite_pragmas(dbapi_connection: Any, _record: Any, *, busy_ms: int) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
    cursor.execute("PRAGMA foreign_keys=OFF")
    # A larger page cache and memory-mapped reads: full-text ranking of a large store
    # reads many pages per query.
    cursor.execute("PRAGMA cache_size=-32768")
    cursor.execute("PRAGMA mmap_size=268435456")
    cursor.close()


# SQLite failures an operator can act on, by a phrase of the driver's message.
_SQLITE_FAILURES = {
    "database is locked": (
        "The database is locked by another writer (a process or connection), and the wait for "
        "it ran out; nothing of this change was written. Retry when that writer is done, or "
        "let writes wait longer with ?timeout=SECONDS in the database URL."
    ),
    "database table is locked": (
        "A table of the database is locked by another connection, and the wait for it ran "
        "out; nothing of this change was written. Retry when that writer is done."
    ),
    "database or disk is full": (
        "The disk holding the database is full (or the database reached its size limit); "
        "nothing of this change was written. Free some space and retry."
    ),
    "disk i/o error": (
        "The disk holding the database failed to read or write; nothing of this change was "
        "written. Check the disk, then run `resilience-mcp doctor` on the database."
    ),
    "readonly database": (
        "The database file cannot be written (it or its folder is read-only); nothing was "
        "written. Give the server write access to the file and its folder."
    ),
    "file is not a database": (
        "The file is not a SQLite database, or it is damaged; check the path given by --db, "
        "or run `resilience-mcp doctor` on it."
    ),
    "malformed": (
        "The database file is damaged; run `resilience-mcp doctor` on it, then export what "
        "can be read and load it into a new database."
    ),
}


class _ConnectFailed(StoreError):
    """A new connection to a database server could not be made (it is down, restarting,
    or refuses us); `detail` is the driver's reason."""

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(
            f"Cannot connect to the database server ({detail}); nothing was read or written. "
            "If it is restarting, retry in a moment: the next call connects again by itself. "
            "If it keeps failing, check that the server runs and accepts connections."
        )


def _connect_or_explain(
    dialect: Any, _record: Any, cargs: tuple[Any, ...], cparams: dict[str, Any]
) -> Any:
    """Make a new server connection; a refusal becomes a `StoreError` that says so.

    A server that is down refuses the socket with an `OSError`, which neither the driver nor
    the pool wraps; one that is shutting down or starting up answers with a driver error."""
    try:
        return dialect.connect(*cargs, **cparams)
    except (OSError, dialect.loaded_dbapi.Error) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise _ConnectFailed(f"{exc.__class__.__name__}: {reason}") from exc


def _explain_failure(context: ExceptionContext) -> StoreError | None:
    """Turn a failure an operator can act on into a `StoreError` that says what to do."""
    if context.is_pre_ping:
        # The pool's liveness check must see the driver's error to replace the connection.
        return None
    detail = str(context.original_exception)
    if context.is_disconnect:
        return StoreError(
            f"The connection to the database was lost during the call ({detail.strip()}); "
            "the change was not confirmed. Retry: the next call opens a new connection."
        )
    if context.dialect.name == "sqlite":
        lowered = detail.lower()
        for phrase, message in _SQLITE_FAILURES.items():
            if phrase in lowered:
                return StoreError(message)
    elif "invalid byte sequence" in detail and "0x00" in detail:
        return StoreError(
            "A text value holds a NUL character (\\0), which PostgreSQL can neither store nor "
            "search for; nothing was written. Remove the character and retry."
        )
    return None


async def execute_text(store: Store, sql: str, **params: Any) -> list[Any]:
    """Run raw SQL (for engine-specific pieces such as full-text search)."""
    async with store.engine.connect() as conn:
        result = await conn.execute(text(sql), params)
        return list(result.fetchall())
