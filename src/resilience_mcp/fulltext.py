"""The full-text index over incidents, in each engine's own form.

Every incident has one search document: its title, summary and trigger, its postmortem
(summary, trigger, root cause, contributing factors, detection, resolution, lessons), its
timeline, the titles of its remediation tasks and the names of what it touched. The
document lives in four weighted parts: `title`, `summary`, `cause` and `detail`.

SQLite keeps it in an FTS5 table ranked with BM25; PostgreSQL in a `tsvector` column with a
GIN index, ranked with `ts_rank`. Triggers on the six source tables rebuild an incident's
document whenever any of its rows is written, so the index is right after a catalog load,
a write through `Store.transaction()`, or any other statement. `install_fulltext` creates
all of it once (and fills it from what the tables already hold); `rebuild_fulltext` fills
it again from scratch.
"""

from __future__ import annotations

import logging

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

__all__ = [
    "FTS_KEYS",
    "FTS_TABLE",
    "FTS_TOKENIZER",
    "FTS_VOCABULARY",
    "FULLTEXT_VERSION",
    "PG_TABLE",
    "install_fulltext",
    "rebuild_fulltext",
]

logger = logging.getLogger(__name__)

# Bump when the document or the index changes shape; the next open rebuilds the index.
FULLTEXT_VERSION = 3

FTS_TABLE = "incident_fts"
# How FTS5 splits and stems a document's words (and, in `search.fts`, a query's).
FTS_TOKENIZER = "porter unicode61 remove_diacritics 2"
FTS_KEYS = "incident_fts_key"
# How many documents hold each (stemmed) word, read to leave out words nearly all have.
FTS_VOCABULARY = "incident_fts_vocab"
PG_TABLE = "incident_search"
_META_KEY = "fulltext_version"

# The tables whose rows feed a document, and how a row names its incident. A task names
# its incident directly or through its postmortem.
_SOURCES = {
    "incident": "{row}.name",
    "postmortem": "{row}.incident",
    "timeline_entry": "{row}.incident",
    "incident_link": "{row}.incident",
    "remediation_task": (
        "coalesce({row}.incident, "
        "(SELECT p.incident FROM postmortem p WHERE p.name = {row}.postmortem))"
    ),
}


async def install_fulltext(conn: AsyncConnection) -> None:
    """Create the index and its triggers if missing, filling it from the tables."""
    if conn.dialect.name == "postgresql":
        # Replicas may open the same catalog at once and DDL on functions does not race
        # well: they take turns, per schema, so catalogs in other schemas are not held up.
        await conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(current_schema()))"))
    installed = await _installed_version(conn)
    if installed == FULLTEXT_VERSION:
        return
    if conn.dialect.name == "sqlite":
        await _install_sqlite(conn)
    elif conn.dialect.name == "postgresql":
        await _install_postgres(conn)
    else:
        logger.warning("no full-text index for %s; similar incidents will not be found", conn)
        return
    await rebuild_fulltext(conn)
    await _set_installed_version(conn)
    logger.info("full-text index v%d installed on %s", FULLTEXT_VERSION, conn.dialect.name)


async def rebuild_fulltext(conn: AsyncConnection) -> None:
    """Rebuild every incident's search document from the tables."""
    if conn.dialect.name == "sqlite":
        await conn.execute(text(f"DELETE FROM {FTS_TABLE}"))
        await conn.execute(text(f"DELETE FROM {FTS_KEYS}"))
        await conn.execute(text(f"INSERT INTO {FTS_KEYS}(incident) SELECT name FROM incident"))
        await conn.execute(text(_sqlite_insert_document("k.incident = i.name")))
    elif conn.dialect.name == "postgresql":
        # Each document is read through the indexes on the incident columns; after a bulk
        # write the planner's statistics still say the tables are empty and it would scan
        # them whole for every incident instead.
        for table in _SOURCES:
            await conn.execute(text(f"ANALYZE {table}"))
        await conn.execute(text(f"DELETE FROM {PG_TABLE}"))
        await conn.execute(
            text(
                f"INSERT INTO {PG_TABLE}(incident, document) "
                "SELECT name, incident_search_document(name) FROM incident"
            )
        )


async def _installed_version(conn: AsyncConnection) -> int | None:
    found = await conn.execute(
        text("SELECT value FROM catalog_meta WHERE key = :key"), {"key": _META_KEY}
    )
    value = found.scalar_one_or_none()
    return int(value) if value is not None else None


async def _set_installed_version(conn: AsyncConnection) -> None:
    await conn.execute(text("DELETE FROM catalog_meta WHERE key = :key"), {"key": _META_KEY})
    await conn.execute(
        text("INSERT INTO catalog_meta(key, value) VALUES (:key, :value)"),
        {"key": _META_KEY, "value": str(FULLTEXT_VERSION)},
    )


# SQLite: an FTS5 table keyed by a small table that gives each incident a stable rowid.


def _sqlite_parts(i: str) -> dict[str, str]:
    """SQL for each part of the document of incident row `i`."""
    pm = f"FROM postmortem p WHERE p.incident = {i}.name"

    def each(column: str) -> str:
        # JSON lists are indexed by their items, not their quotes and brackets.
        return (
            "(SELECT group_concat(j.value, ' ') FROM postmortem p, json_each("
            f"CASE WHEN json_valid(p.{column}) THEN p.{column} ELSE '[]' END) j "
            f"WHERE p.incident = {i}.name)"
        )

    def joined(*parts: str) -> str:
        return " || ' ' || ".join(f"coalesce({p}, '')" for p in parts)

    return {
        "title": joined(f"{i}.title", f"(SELECT group_concat(p.title, ' ') {pm})"),
        "summary": joined(
            f"{i}.summary", f"{i}.description", f"(SELECT group_concat(p.summary, ' ') {pm})"
        ),
        "cause": joined(
            f"{i}.trigger",
            f"(SELECT group_concat(p.trigger, ' ') {pm})",
            f"(SELECT group_concat(p.root_cause, ' ') {pm})",
            each("contributing_factors"),
        ),
        "detail": joined(
            f"(SELECT group_concat(t.text, ' ') FROM timeline_entry t WHERE t.incident = {i}.name)",
            f"(SELECT group_concat(p.detection, ' ') {pm})",
            f"(SELECT group_concat(p.resolution, ' ') {pm})",
            each("lessons"),
            # Tasks name the incident, or only its postmortem: two index lookups, not an OR.
            "(SELECT group_concat(title, ' ') FROM ("
            f"SELECT r.title FROM remediation_task r WHERE r.incident = {i}.name UNION "
            "SELECT r.title FROM remediation_task r JOIN postmortem p ON r.postmortem = p.name "
            f"WHERE p.incident = {i}.name))",
            "(SELECT group_concat(l.target, ' ') FROM incident_link l "
            f"WHERE l.incident = {i}.name)",
        ),
    }


def _sqlite_insert_document(where: str) -> str:
    parts = _sqlite_parts("i")
    return (
        f"INSERT INTO {FTS_TABLE}(rowid, title, summary, cause, detail) "
        f"SELECT k.id, {parts['title']}, {parts['summary']}, {parts['cause']}, "
        f"{parts['detail']} FROM incident i JOIN {FTS_KEYS} k ON k.incident = i.name "
        f"WHERE {where}"
    )


def _sqlite_refresh(key: str) -> list[str]:
    """Statements that rebuild the document of the incident named by the SQL `key`."""
    return [
        f"DELETE FROM {FTS_TABLE} WHERE rowid IN "
        f"(SELECT id FROM {FTS_KEYS} WHERE incident = {key})",
        f"DELETE FROM {FTS_KEYS} WHERE incident = {key} "
        f"AND NOT EXISTS (SELECT 1 FROM incident WHERE name = {key})",
        f"INSERT OR IGNORE INTO {FTS_KEYS}(incident) SELECT name FROM incident WHERE name = {key}",
        _sqlite_insert_document(f"i.name = {key}"),
    ]


def _sqlite_trigger(table: str, event: str) -> str:
    rows = {"INSERT": ["NEW"], "DELETE": ["OLD"], "UPDATE": ["OLD", "NEW"]}[event]
    body = [s for row in rows for s in _sqlite_refresh(_SOURCES[table].format(row=row))]
    statements = ";\n  ".join(body)
    return (
        f"CREATE TRIGGER IF NOT EXISTS {FTS_TABLE}_{table}_{event.lower()} "
        f"AFTER {event} ON {table} BEGIN\n  {statements};\nEND"
    )


async def _install_sqlite(conn: AsyncConnection) -> None:
    for table in _SOURCES:
        for event in ("INSERT", "UPDATE", "DELETE"):
            await conn.execute(text(f"DROP TRIGGER IF EXISTS {FTS_TABLE}_{table}_{event.lower()}"))
    await conn.execute(text(f"DROP TABLE IF EXISTS {FTS_VOCABULARY}"))
    await conn.execute(text(f"DROP TABLE IF EXISTS {FTS_TABLE}"))
    await conn.execute(
        text(
            f"CREATE VIRTUAL TABLE {FTS_TABLE} USING fts5("
            f"title, summary, cause, detail, tokenize = '{FTS_TOKENIZER}')"
        )
    )
    await conn.execute(
        text(f"CREATE VIRTUAL TABLE {FTS_VOCABULARY} USING fts5vocab({FTS_TABLE}, 'row')")
    )
    await conn.execute(
        text(
            f"CREATE TABLE IF NOT EXISTS {FTS_KEYS} "
            "(id INTEGER PRIMARY KEY, incident TEXT NOT NULL UNIQUE)"
        )
    )
    for table in _SOURCES:
        for event in ("INSERT", "UPDATE", "DELETE"):
            await conn.execute(text(_sqlite_trigger(table, event)))


# PostgreSQL: a tsvector per incident with weights A-D, maintained by one trigger function.

_PG_DOCUMENT = """
CREATE OR REPLACE FUNCTION incident_search_document(key text) RETURNS tsvector
LANGUAGE sql STABLE AS $$
  SELECT
    setweight(to_tsvector('english', concat_ws(' ', i.title,
      (SELECT string_agg(p.title, ' ') FROM postmortem p WHERE p.incident = i.name))), 'A')
    || setweight(to_tsvector('english', concat_ws(' ', i.summary, i.description,
      (SELECT string_agg(p.summary, ' ') FROM postmortem p WHERE p.incident = i.name))), 'B')
    || setweight(to_tsvector('english', concat_ws(' ', i.trigger,
      (SELECT string_agg(concat_ws(' ', p.trigger, p.root_cause,
         (SELECT string_agg(f, ' ') FROM json_array_elements_text(
            CASE WHEN json_typeof(p.contributing_factors) = 'array'
            THEN p.contributing_factors ELSE '[]'::json END) f)), ' ')
       FROM postmortem p WHERE p.incident = i.name))), 'B')
    || setweight(to_tsvector('english', concat_ws(' ',
      (SELECT string_agg(t.text, ' ') FROM timeline_entry t WHERE t.incident = i.name),
      (SELECT string_agg(concat_ws(' ', p.detection, p.resolution,
         (SELECT string_agg(f, ' ') FROM json_array_elements_text(
            CASE WHEN json_typeof(p.lessons) = 'array'
            THEN p.lessons ELSE '[]'::json END) f)), ' ')
       FROM postmortem p WHERE p.incident = i.name),
      (SELECT string_agg(t.title, ' ') FROM (
         SELECT r.title FROM remediation_task r WHERE r.incident = i.name
         UNION
         SELECT r.title FROM remediation_task r JOIN postmortem p ON r.postmortem = p.name
         WHERE p.incident = i.name) t),
      (SELECT string_agg(l.target, ' ') FROM incident_link l WHERE l.incident = i.name))), 'C')
  FROM incident i WHERE i.name = key
$$
"""

_PG_REFRESH = f"""
CREATE OR REPLACE FUNCTION incident_search_refresh(key text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  IF key IS NULL THEN RETURN; END IF;
  DELETE FROM {PG_TABLE} WHERE incident = key;
  INSERT INTO {PG_TABLE}(incident, document)
    SELECT i.name, incident_search_document(i.name) FROM incident i WHERE i.name = key;
END
$$
"""

_PG_KEY = """
CREATE OR REPLACE FUNCTION incident_search_key(source text, r jsonb) RETURNS text
LANGUAGE sql STABLE AS $$
  SELECT CASE source
    WHEN 'incident' THEN r ->> 'name'
    WHEN 'remediation_task' THEN coalesce(r ->> 'incident',
      (SELECT p.incident FROM postmortem p WHERE p.name = r ->> 'postmortem'))
    ELSE r ->> 'incident'
  END
$$
"""

_PG_TRIGGER = """
CREATE OR REPLACE FUNCTION incident_search_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP IN ('UPDATE', 'DELETE') THEN
    PERFORM incident_search_refresh(incident_search_key(TG_TABLE_NAME, to_jsonb(OLD)));
  END IF;
  IF TG_OP IN ('INSERT', 'UPDATE') THEN
    PERFORM incident_search_refresh(incident_search_key(TG_TABLE_NAME, to_jsonb(NEW)));
  END IF;
  RETURN NULL;
END
$$
"""


async def _install_postgres(conn: AsyncConnection) -> None:
    await conn.execute(
        text(
            f"CREATE TABLE IF NOT EXISTS {PG_TABLE} "
            "(incident text PRIMARY KEY, document tsvector NOT NULL)"
        )
    )
    await conn.execute(
        text(
            f"CREATE INDEX IF NOT EXISTS ix_{PG_TABLE}_document ON {PG_TABLE} USING gin (document)"
        )
    )
    for ddl in (_PG_DOCUMENT, _PG_REFRESH, _PG_KEY, _PG_TRIGGER):
        await conn.execute(text(ddl))
    for table in _SOURCES:
        await conn.execute(
            text(
                f"CREATE OR REPLACE TRIGGER {PG_TABLE}_{table} "
                f"AFTER INSERT OR UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION incident_search_changed()"
            )
        )
