"""Asking the engine's full-text index for incidents, safely, whatever the text.

An agent sends alert text, error lines, a whole log excerpt. None of it reaches the engine
as query syntax: the words are pulled out (letters and digits only), stop words and noise
(long numbers, hex ids) dropped, the most frequent kept up to a cap, and each word is
passed as a quoted term (FTS5) or a bound parameter (`plainto_tsquery`), joined with OR.

In a large store, words that many incidents contain (a service-name prefix, "error") say
little about which incident is meant and cost the most: both engines score every matching
document. So the rarest words are kept until the documents they match reach
`POSTINGS_BUDGET`, judged by the engine's own statistics: the FTS5 vocabulary (read in
full, so cached for a while; each word is looked up under the stem FTS5's own tokenizer
gives it) and the lexeme frequencies ANALYZE keeps in PostgreSQL. A store smaller than the
budget keeps every word.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
import threading
import time
import weakref
from collections import Counter
from dataclasses import dataclass
from functools import cache, lru_cache

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from resilience_mcp.fulltext import FTS_KEYS, FTS_TABLE, FTS_TOKENIZER, FTS_VOCABULARY, PG_TABLE
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
POSTINGS_BUDGET = 1500
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


@lru_cache(maxsize=65_536)
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
            return await _match_sqlite(conn, affordable(terms, counts), limit)
        counts = await _counts_postgres(conn, terms)
        return await _match_postgres(conn, affordable(terms, counts), limit)


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
    """Documents per term, from the (cached) vocabulary."""
    known = _VOCABULARIES.get(store)
    if known is None:
        known = _VOCABULARIES[store] = await _read_vocabulary(conn)
    elif time.monotonic() - known.at > VOCABULARY_TTL and not known.refreshing:
        known.refreshing = True
        task = asyncio.create_task(_refresh_vocabulary(store))
        _TASKS.add(task)
        task.add_done_callback(_TASKS.discard)
    stems = _tokenizer().stems(terms)
    return {t: float(known.counts.get(stems[t], 0)) for t in terms}


async def _read_vocabulary(conn: AsyncConnection) -> _Vocabulary:
    rows = await conn.execute(text(f"SELECT term, doc FROM {FTS_VOCABULARY}"))
    return _Vocabulary(time.monotonic(), {str(term): int(doc) for term, doc in rows})


async def _refresh_vocabulary(store: Store) -> None:
    try:
        async with store.engine.connect() as conn:
            _VOCABULARIES[store] = await _read_vocabulary(conn)
    except Exception:
        logger.exception("refreshing the full-text vocabulary failed")
        _VOCABULARIES.pop(store, None)


class _Tokenizer:
    """FTS5's own tokenizer, in a private in-memory database: the form (the porter stem)
    each query word is indexed under, so it can be looked up in the vocabulary."""

    MAX_KNOWN = 100_000

    def __init__(self) -> None:
        self._db = sqlite3.connect(":memory:", check_same_thread=False)
        self._db.execute(
            f"CREATE VIRTUAL TABLE words USING fts5(word, tokenize = '{FTS_TOKENIZER}')"
        )
        self._db.execute("CREATE VIRTUAL TABLE forms USING fts5vocab(words, 'instance')")
        self._known: dict[str, str] = {}
        self._lock = threading.Lock()

    def stems(self, words: list[str]) -> dict[str, str]:
        with self._lock:
            missing = [w for w in dict.fromkeys(words) if w not in self._known]
            if missing:
                if len(self._known) > self.MAX_KNOWN:
                    self._known.clear()
                self._known.update(self._tokenize(missing))
            return {w: self._known[w] for w in words}

    def _tokenize(self, words: list[str]) -> dict[str, str]:
        self._db.executemany(
            "INSERT INTO words(rowid, word) VALUES (?, ?)", enumerate(words, start=1)
        )
        found = dict(self._db.execute("SELECT doc, term FROM forms WHERE offset = 0"))
        self._db.execute("DELETE FROM words")
        return {w: str(found.get(n, "")) for n, w in enumerate(words, start=1)}


@cache
def _tokenizer() -> _Tokenizer:
    return _Tokenizer()


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


async def _match_sqlite(conn: AsyncConnection, terms: list[str], limit: int) -> list[TextMatch]:
    # Each term is a quoted string: FTS5 reads no operator inside quotes, and terms hold
    # no quote characters. The best rows are picked before their keys are joined.
    expression = " OR ".join(f'"{term}"' for term in terms)
    weights = ", ".join(str(w) for w in _BM25_WEIGHTS)
    sql = text(
        f"SELECT k.incident, best.score FROM (SELECT rowid AS id, "
        f"-bm25({FTS_TABLE}, {weights}) AS score FROM {FTS_TABLE} "
        f"WHERE {FTS_TABLE} MATCH :expression ORDER BY score DESC LIMIT :limit) best "
        f"JOIN {FTS_KEYS} k ON k.id = best.id ORDER BY best.score DESC"
    )
    rows = await conn.execute(sql, {"expression": expression, "limit": limit})
    return [TextMatch(str(key), float(score)) for key, score in rows]


async def _match_postgres(conn: AsyncConnection, terms: list[str], limit: int) -> list[TextMatch]:
    # One plainto_tsquery per term, OR-ed: parameters, never parsed as query syntax.
    params = {f"t{i}": term for i, term in enumerate(terms)}
    query = " || ".join(f"plainto_tsquery('english', :t{i})" for i in range(len(terms)))
    sql = text(
        f"SELECT s.incident, ts_rank('{_TS_WEIGHTS}'::float4[], s.document, q.query) AS score "
        f"FROM {PG_TABLE} s, (SELECT {query} AS query) q "
        "WHERE s.document @@ q.query ORDER BY score DESC LIMIT :limit"
    )
    rows = await conn.execute(sql, {**params, "limit": limit})
    return [TextMatch(str(key), float(score)) for key, score in rows]
