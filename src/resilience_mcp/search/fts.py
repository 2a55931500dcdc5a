"""Asking the engine's full-text index for incidents, safely, whatever the text.

An agent sends alert text, error lines, a whole log excerpt. None of it reaches the engine
as query syntax: the words are pulled out (letters and digits only), stop words and noise
(long numbers, hex ids) dropped, the most frequent kept up to a cap, and each word is
passed as a quoted term (FTS5) or a bound parameter (`plainto_tsquery`), joined with OR.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from sqlalchemy import text

from resilience_mcp.fulltext import FTS_KEYS, FTS_TABLE, PG_TABLE
from resilience_mcp.store import Store

__all__ = ["MAX_TERMS", "STOP_WORDS", "TextMatch", "extract_terms", "match_incidents", "stem"]

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
    if store.is_sqlite:
        return await _match_sqlite(store, terms, limit)
    return await _match_postgres(store, terms, limit)


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
