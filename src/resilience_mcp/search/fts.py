"""Asking the engine's full-text index for incidents, safely, whatever the text.

An agent sends alert text, error lines, a whole log excerpt. None of it reaches the engine
as query syntax: the words are pulled out (letters and digits only), stop words and noise
(long numbers, hex ids) dropped, the most frequent kept up to a cap, and each word is
passed as a quoted term (FTS5) or a bound parameter (`plainto_tsquery`), joined with OR.

In a large store, words that many incidents contain (a service-name prefix, "error") say
little about which incident is meant and cost the most: both engines score every matching
document. So the rarest words are kept until the documents they match reach
`POSTINGS_BUDGET`, judged by the engine's own statistics: the FTS5 vocabulary (read in
full, so cached for a while) and the lexeme frequencies ANALYZE keeps in PostgreSQL. A
store smaller than the budget keeps every word.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import weakref
from collections import Counter
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from resilience_mcp.fulltext import FTS_KEYS, FTS_TABLE, FTS_VOCABULARY, PG_TABLE
from resilience_mcp.store import Store

__all__ = [
    "MAX_TERMS",
    "POSTINGS_BUDGET",
    "STOP_WORDS",
    "TextMatch",
    "affordable",
    "extract_terms",
    "match_incidents",
    "stem",
]

logger = logging.getLogger(__name__)

MAX_TERMS = 32
# Texts are cut here before words are taken; 64 kB of logs says what its start says.
MAX_TEXT = 64 * 1024

_WORD = re.compile(r"[^\W_]+")
_HEX = re.compile(r"^(?=[a-f]*[0-9])(?=[0-9]*[a-f])[0-9a-f]{8,}$")

_STOP_TEXT = """
    a about above after again against all also am an and any are aren as at be because been
    before being below between both but by can could did didn do does doesn doing don down
    during each either else etc even ever every few for from further get got had has have
    having he her here hers herself him himself his how however i if in into is isn it its
    itself just let like ll may me might more most much must my myself no nor not now of off
    on once only or other ought our ours ourselves out over own per re same shall she should
    so some such than that the their theirs them themselves then there these they this those
    through to too under until up upon us very was wasn we were weren what when where which
    while who whom why will with within without won would yet you your yours yourself
    yourselves
"""
STOP_WORDS = frozenset(_STOP_TEXT.split())

# At most this many matching documents (summed over the words) are ranked; past it the
# most common words are left out. However common, KEEP_AT_LEAST words are searched for.
POSTINGS_BUDGET = 3000
KEEP_AT_LEAST = 2
VOCABULARY_TTL = 600.0

# The bm25 column weights (title, summary, cause, detail) and ts_rank weights
# (D, C, B, A): a word in the title or the root cause says more than one in the timeline.
_BM25_WEIGHTS = (3.0, 2.0, 2.0, 1.0)
_TS_WEIGHTS = "{0.1, 0.4, 0.8, 1.0}"


@dataclass(frozen=True)
class TextMatch:
    key: str
    score: float


def extract_terms(query: str, limit: int = MAX_TERMS) -> list[str]:
    """The words of `query` worth searching for, most repeated first, at most `limit`."""
    words = _WORD.findall(query[:MAX_TEXT].lower())
    counts = Counter(w for w in words if _useful(w))
    first = {w: i for i, w in reversed(list(enumerate(words)))}
    ranked = sorted(counts, key=lambda w: (-counts[w], first[w]))
    return ranked[:limit]


def _useful(word: str) -> bool:
    if len(word) < 2 or len(word) > 40 or word in STOP_WORDS:
        return False
    if word.isdigit() and len(word) > 4:
        return False
    return not _HEX.match(word)


def stem(word: str) -> str:
    """A light English stem, enough to see that `connections` matched `connection`."""
    for suffix in ("ations", "ation", "ings", "ing", "edly", "ed", "ies", "es", "s", "ly"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)] + ("y" if suffix == "ies" else "")
    return word


async def match_incidents(store: Store, terms: list[str], *, limit: int = 100) -> list[TextMatch]:
    """Incidents whose search documents contain any of `terms`, best first."""
    if not terms:
        return []
    async with store.engine.connect() as conn:
        if store.is_sqlite:
            counts = await _counts_sqlite(store, conn, terms)
        else:
            counts = await _counts_postgres(conn, terms)
    kept = affordable(terms, counts)
    if store.is_sqlite:
        return await _match_sqlite(store, kept, limit)
    return await _match_postgres(store, kept, limit)


def affordable(terms: list[str], counts: dict[str, float]) -> list[str]:
    """The rarest terms whose documents add up to at most POSTINGS_BUDGET (at least
    KEEP_AT_LEAST of them), in their original order. Ranking costs a little for every
    matching document, and the words left out are the ones that say least."""
    if sum(counts.get(t, 0.0) for t in terms) <= POSTINGS_BUDGET:
        return terms
    chosen: set[str] = set()
    spent = 0.0
    for term in sorted(terms, key=lambda t: counts.get(t, 0.0)):
        cost = counts.get(term, 0.0)
        if len(chosen) >= KEEP_AT_LEAST and spent + cost > POSTINGS_BUDGET:
            break
        chosen.add(term)
        spent += cost
    return [t for t in terms if t in chosen]


@dataclass
class _Vocabulary:
    at: float
    counts: dict[str, int]
    refreshing: bool = False


# Per store: how many documents hold each stem. Reading FTS5's vocabulary means walking
# the whole index, so it is kept for VOCABULARY_TTL seconds and refreshed in the background.
_VOCABULARIES: weakref.WeakKeyDictionary[Store, _Vocabulary] = weakref.WeakKeyDictionary()
_TASKS: set[asyncio.Task[None]] = set()


async def _counts_sqlite(store: Store, conn: AsyncConnection, terms: list[str]) -> dict[str, float]:
    known = _VOCABULARIES.get(store)
    if known is None:
        known = _VOCABULARIES[store] = _Vocabulary(time.monotonic(), await _read_vocabulary(conn))
    elif time.monotonic() - known.at > VOCABULARY_TTL and not known.refreshing:
        known.refreshing = True
        task = asyncio.create_task(_refresh_vocabulary(store))
        _TASKS.add(task)
        task.add_done_callback(_TASKS.discard)
    counts = known.counts
    # The vocabulary holds porter stems: a term's stem is taken to be its longest prefix
    # listed there, no more than four letters shorter.
    found: dict[str, float] = {}
    for term in terms:
        for size in range(len(term), max(2, len(term) - 5), -1):
            if term[:size] in counts:
                found[term] = counts[term[:size]]
                break
    return found


async def _read_vocabulary(conn: AsyncConnection) -> dict[str, int]:
    rows = await conn.execute(text(f"SELECT term, doc FROM {FTS_VOCABULARY}"))
    return {str(term): int(doc) for term, doc in rows}


async def _refresh_vocabulary(store: Store) -> None:
    try:
        async with store.engine.connect() as conn:
            counts = await _read_vocabulary(conn)
        _VOCABULARIES[store] = _Vocabulary(time.monotonic(), counts)
    except Exception:
        logger.exception("refreshing the full-text vocabulary failed")
        _VOCABULARIES.pop(store, None)


async def _counts_postgres(conn: AsyncConnection, terms: list[str]) -> dict[str, float]:
    """Documents per term, as ANALYZE estimates them for the most common lexemes; a term
    whose lexemes are not among them counts as rare."""
    rows = await conn.execute(
        text(
            "WITH common AS (SELECT e.lexeme, e.share FROM pg_stats s, "
            "unnest(s.most_common_elems::text::text[], s.most_common_elem_freqs) "
            "AS e(lexeme, share) "
            f"WHERE s.schemaname = current_schema() AND s.tablename = '{PG_TABLE}' "
            "AND s.attname = 'document' AND e.lexeme IS NOT NULL) "
            "SELECT t.term, max(c.share) * "
            f"(SELECT greatest(reltuples, 0) FROM pg_class WHERE oid = '{PG_TABLE}'::regclass) "
            "FROM unnest(CAST(:terms AS text[])) AS t(term) JOIN common c "
            "ON c.lexeme = ANY(tsvector_to_array(to_tsvector('english', t.term))) "
            "GROUP BY t.term"
        ),
        {"terms": terms},
    )
    return {str(term): float(count or 0.0) for term, count in rows}


async def _match_sqlite(store: Store, terms: list[str], limit: int) -> list[TextMatch]:
    # Each term is a quoted string: FTS5 reads no operator inside quotes, and terms hold
    # no quote characters.
    expression = " OR ".join(f'"{term}"' for term in terms)
    weights = ", ".join(str(w) for w in _BM25_WEIGHTS)
    sql = text(
        f"SELECT k.incident, -bm25({FTS_TABLE}, {weights}) AS score "
        f"FROM {FTS_TABLE} JOIN {FTS_KEYS} k ON k.id = {FTS_TABLE}.rowid "
        f"WHERE {FTS_TABLE} MATCH :expression ORDER BY score DESC LIMIT :limit"
    )
    async with store.engine.connect() as conn:
        rows = await conn.execute(sql, {"expression": expression, "limit": limit})
        return [TextMatch(str(key), float(score)) for key, score in rows]


async def _match_postgres(store: Store, terms: list[str], limit: int) -> list[TextMatch]:
    # One plainto_tsquery per term, OR-ed: parameters, never parsed as query syntax.
    params = {f"t{i}": term for i, term in enumerate(terms)}
    query = " || ".join(f"plainto_tsquery('english', :t{i})" for i in range(len(terms)))
    sql = text(
        f"SELECT s.incident, ts_rank('{_TS_WEIGHTS}'::float4[], s.document, q.query) AS score "
        f"FROM {PG_TABLE} s, (SELECT {query} AS query) q "
        "WHERE s.document @@ q.query ORDER BY score DESC LIMIT :limit"
    )
    async with store.engine.connect() as conn:
        rows = await conn.execute(sql, {**params, "limit": limit})
        return [TextMatch(str(key), float(score)) for key, score in rows]
