"""How well find_similar_rca finds related incidents, on public postmortem sets.

    python -m benchmarks.rca_eval            # prints the table
    python -m benchmarks.rca_eval --text-only   # also the ranking with text alone
    python -m benchmarks.rca_eval --semantic    # also with semantic re-ranking (the extra)

Each set is turned into Incident and Postmortem documents (DFDS through the Markdown
importer, from its raw files) and loaded into a temporary SQLite store; every query then
goes through `find_similar_rca` as an agent's would. A plain TF-IDF ranking over the same
texts runs beside it, for quality and speed. The sets and their baselines are described in
../shared/data/README.md; nothing from them is copied into the repository.

- danluu: leave-one-out over the 71 labelled postmortems, all 190 as corpus; P@5 of the
  same category, overall and per category.
- dfds: each of the 10 postmortems that has a recurring partner (same title, or one names
  the other) is queried with its summary alone; hit when a partner is in the top 5.
- k8s: 50 failure stories (title and impact); P@5 of sharing an involved component.
- icco: each short summary should find its own long description first (R@1).

Every set is split by a hash of each record's `id` (`held_out`): the weights are tuned on
the other half, and the table reports the held-out half beside all the queries. Every
record stays in the corpus either way; only which queries count differs.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import math
import re
import statistics
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from resilience_mcp.catalog import load_catalog, load_documents
from resilience_mcp.catalog.files import Document
from resilience_mcp.graph import CatalogGraph, build_graph
from resilience_mcp.search.incidents import Weights, find_similar_rca
from resilience_mcp.search.semantic import Embedder, SemanticIndex, load_embedder
from resilience_mcp.store import Store

__all__ = ["DATA", "SETS", "Part", "Score", "TfIdf", "evaluate_all", "held_out", "main"]

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "external"
NOW = datetime(2026, 12, 1, tzinfo=UTC)
# Sets without dates get one, so recency favours none of their incidents.
UNDATED = datetime(2020, 1, 1, tzinfo=UTC)


def held_out(record_id: str) -> bool:
    """Whether a record's query belongs to the held-out half: whether the first byte of the
    SHA-256 of its `id` is odd, so the split is the same on every run and machine."""
    return hashlib.sha256(record_id.encode()).digest()[0] % 2 == 1


@dataclass(frozen=True)
class Part:
    """A metric's mean over some of a set's queries, ours and the TF-IDF's."""

    queries: int
    ours: float
    tfidf: float


@dataclass
class Score:
    """One figure: ours, the TF-IDF beside it, the README's baseline and the target."""

    name: str
    # Each query's value, ours and the TF-IDF's, by query key.
    values: dict[str, tuple[float, float]]
    held_out: frozenset[str] = frozenset()
    baseline: float | None = None
    target: float | None = None
    ms_ours: float = 0.0
    ms_tfidf: float = 0.0
    # With semantic re-ranking: seconds to embed the set before the first query.
    s_index: float | None = None
    # Each query's class, where the set has classes.
    classes: dict[str, str] = field(default_factory=dict)

    @property
    def queries(self) -> int:
        return len(self.values)

    @property
    def ours(self) -> float:
        return self.part().ours

    @property
    def tfidf(self) -> float:
        return self.part().tfidf

    def part(self, which: str = "all", cls: str | None = None) -> Part:
        """The mean over `which` queries ("all", "held-out" or "tuning"), of one class."""
        keys = [
            k
            for k in self.values
            if (which == "all" or (k in self.held_out) == (which == "held-out"))
            and (cls is None or self.classes.get(k) == cls)
        ]
        if not keys:
            return Part(0, math.nan, math.nan)
        ours = statistics.fmean(self.values[k][0] for k in keys)
        return Part(len(keys), ours, statistics.fmean(self.values[k][1] for k in keys))

    @property
    def per_class(self) -> list[str]:
        """The classes, most queries first."""
        counts = Counter(self.classes[k] for k in self.values if k in self.classes)
        return [c for c, _ in counts.most_common()]


@dataclass
class _Set:
    """A loaded set: the store, and for each query its text and how to judge a result."""

    store: Store
    graph: CatalogGraph
    texts: dict[str, str]
    queries: dict[str, str]
    relevant: Callable[[str, str], bool]
    cls: dict[str, str] = field(default_factory=dict)
    services: dict[str, list[str]] = field(default_factory=dict)
    # The queries of the held-out half (see `held_out`).
    held_out: frozenset[str] = frozenset()
    # Leave the query's own record out of its results (all sets but icco, where it is
    # the one to find).
    leave_out: bool = True


def _rows(*parts: str) -> list[dict[str, Any]]:
    path = DATA.joinpath(*parts)
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def _incident(
    key: str, title: str | None, text: str, *, services: Sequence[str] = ()
) -> list[dict[str, Any]]:
    """An incident whose postmortem summary carries the text."""
    spec = {"startedAt": UNDATED.isoformat(), "status": "resolved", "services": list(services)}
    return [
        {
            "apiVersion": "resilience/v1",
            "kind": "Incident",
            "metadata": {"name": key, "title": title},
            "spec": spec,
        },
        {
            "apiVersion": "resilience/v1",
            "kind": "Postmortem",
            "metadata": {"name": f"{key}-pm"},
            "spec": {"incident": key, "summary": text},
        },
    ]


# Set by --postgres: the sets then load into schemas of that database instead of SQLite.
POSTGRES: str | None = None


async def _store(folder: Path, name: str) -> Store:
    if POSTGRES is None:
        return await Store.open(f"sqlite+aiosqlite:///{folder / name}.db")
    schema = _schema(name)
    admin = create_async_engine(POSTGRES)
    async with admin.begin() as conn:
        await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    await admin.dispose()
    return await Store.open(f"{POSTGRES}?search_path={schema}")


async def _drop(name: str) -> None:
    if POSTGRES is None:
        return
    admin = create_async_engine(POSTGRES)
    async with admin.begin() as conn:
        await conn.execute(text(f'DROP SCHEMA IF EXISTS "{_schema(name)}" CASCADE'))
    await admin.dispose()


def _schema(name: str) -> str:
    return f"rca_eval_{re.sub(r'[^a-z0-9]', '_', name)}"


async def _open(
    folder: Path, name: str, bodies: list[dict[str, Any]]
) -> tuple[Store, CatalogGraph]:
    store = await _store(folder, name)
    documents = [Document(name, n, body) for n, body in enumerate(bodies, start=1)]
    await load_documents(store, documents, source=name)
    return store, await build_graph(store)


async def _danluu(folder: Path) -> _Set:
    rows = _rows("danluu-post-mortems", "postmortems.jsonl")
    bodies = [doc for r in rows for doc in _incident(r["id"], None, r["summary"])]
    store, graph = await _open(folder, "danluu", bodies)
    category = {r["id"]: r["category"] for r in rows}
    labelled = [r for r in rows if r["category"] != "uncategorized"]
    return _Set(
        store,
        graph,
        texts={r["id"]: r["summary"] for r in rows},
        queries={r["id"]: r["summary"] for r in labelled},
        relevant=lambda q, hit: category[q] == category[hit],
        cls={r["id"]: r["category"] for r in labelled},
        held_out=frozenset(r["id"] for r in labelled if held_out(r["id"])),
    )


async def _dfds(folder: Path) -> _Set:
    rows = _rows("dfds-postmortems", "postmortems.jsonl")
    store = await _store(folder, "dfds")
    await load_catalog(store, [DATA / "dfds-postmortems" / "raw"], source="dfds")
    partners: dict[str, set[str]] = defaultdict(set)
    for r in rows:
        key = r["postmortem_id"]
        for other in r["same_title_as"]:
            partners[key].add(other.removeprefix("dfds-"))
        for other in r["references"]:
            partners[key].add(other)
            partners[other].add(key)
    return _Set(
        store,
        await build_graph(store),
        texts={r["postmortem_id"]: r["summary"] for r in rows},
        queries={r["postmortem_id"]: r["summary"] for r in rows if partners[r["postmortem_id"]]},
        relevant=lambda q, hit: hit in partners[q],
        held_out=frozenset(r["postmortem_id"] for r in rows if held_out(r["id"])),
    )


async def _k8s(folder: Path, *, org_as_service: bool = False) -> _Set:
    rows = _rows("k8s-failure-stories", "stories.jsonl")
    services = {r["id"]: [_slug(r["org"])] if org_as_service else [] for r in rows}
    bodies: list[dict[str, Any]] = [
        {"apiVersion": "resilience/v1", "kind": "Service", "metadata": {"name": name}}
        for name in sorted({s for names in services.values() for s in names})
    ]
    for r in rows:
        bodies += _incident(r["id"], r["title"], r["impact"], services=services[r["id"]])
    store, graph = await _open(folder, "k8s-org" if org_as_service else "k8s", bodies)
    involved = {r["id"]: set(r["involved"]) for r in rows}
    texts = {r["id"]: f"{r['title']}. {r['impact']}" for r in rows}
    return _Set(
        store,
        graph,
        texts=texts,
        queries=texts,
        relevant=lambda q, hit: bool(involved[q] & involved[hit]),
        services=services,
        held_out=frozenset(r["id"] for r in rows if held_out(r["id"])),
    )


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "org"


async def _icco(folder: Path, *, strip_names: bool = False) -> _Set:
    rows = [r for r in _rows("icco-postmortems", "postmortems.jsonl") if r["description_enriched"]]

    def clean(r: dict[str, Any], text: str) -> str:
        if not strip_names:
            return text
        for name in (r.get("company"), r.get("product")):
            if name:
                text = re.sub(re.escape(name), " ", text, flags=re.IGNORECASE)
        return text

    bodies = [
        doc for r in rows for doc in _incident(r["id"], None, clean(r, r["description_enriched"]))
    ]
    store, graph = await _open(folder, "icco-strip" if strip_names else "icco", bodies)
    return _Set(
        store,
        graph,
        texts={r["id"]: clean(r, r["description_enriched"]) for r in rows},
        queries={r["id"]: clean(r, r["summary"]) for r in rows},
        relevant=lambda q, hit: q == hit,
        held_out=frozenset(r["id"] for r in rows if held_out(r["id"])),
        leave_out=False,
    )


class TfIdf:
    """The plain baseline: log-scaled term frequency, idf, cosine, over the same words."""

    def __init__(self, texts: dict[str, str]) -> None:
        self.docs = {key: Counter(self._words(text)) for key, text in texts.items()}
        df = Counter(w for counts in self.docs.values() for w in counts)
        self.idf = {w: math.log(len(self.docs) / n) for w, n in df.items()}
        self.vectors = {key: self._vector(counts) for key, counts in self.docs.items()}

    @staticmethod
    def _words(text: str) -> list[str]:
        return [w for w in re.findall(r"[a-z0-9]+", text.lower()) if len(w) > 1]

    def _vector(self, counts: Counter[str]) -> dict[str, float]:
        weights = {w: (1 + math.log(n)) * self.idf.get(w, 0.0) for w, n in counts.items()}
        norm = math.sqrt(sum(x * x for x in weights.values())) or 1.0
        return {w: x / norm for w, x in weights.items() if x}

    def rank(self, text: str, exclude: str | None) -> list[str]:
        query = self._vector(Counter(self._words(text)))
        scores = {
            key: sum(weight * vector.get(w, 0.0) for w, weight in query.items())
            for key, vector in self.vectors.items()
            if key != exclude
        }
        return sorted(scores, key=lambda k: (-scores[k], k))


async def _rank(
    data: _Set, key: str, weights: Weights | None, k: int, semantic: SemanticIndex | None = None
) -> list[str]:
    answer = await find_similar_rca(
        data.store,
        data.graph,
        NOW,
        text=data.queries[key],
        services=data.services.get(key, ()),
        limit=k,
        weights=weights,
        exclude=[key] if data.leave_out else [],
        semantic=semantic,
    )
    return [hit.key for hit in answer.results]


async def _measure(
    name: str,
    data: _Set,
    *,
    k: int,
    metric: Callable[[str, list[str]], float],
    weights: Weights | None,
    baseline: float | None,
    target: float | None,
    embedder: Embedder | None = None,
) -> Score:
    tfidf = TfIdf(data.texts)
    values: dict[str, tuple[float, float]] = {}
    ours_ms, tfidf_ms = [], []
    semantic, s_index = None, None
    if embedder is not None:
        # The first query embeds the whole set; it is timed apart from the queries.
        semantic = SemanticIndex(embedder)
        started = time.perf_counter()
        await _rank(data, next(iter(data.queries)), weights, k, semantic)
        s_index = time.perf_counter() - started
    for key in data.queries:
        started = time.perf_counter()
        ranked = await _rank(data, key, weights, k, semantic)
        ours_ms.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        plain = tfidf.rank(data.queries[key], key if data.leave_out else None)[:k]
        tfidf_ms.append((time.perf_counter() - started) * 1000)
        values[key] = (metric(key, ranked), metric(key, plain))
    return Score(
        name=name,
        values=values,
        held_out=data.held_out,
        baseline=baseline,
        target=target,
        ms_ours=statistics.median(ours_ms),
        ms_tfidf=statistics.median(tfidf_ms),
        s_index=s_index,
        classes=data.cls,
    )


def _precision(data: _Set, k: int) -> Callable[[str, list[str]], float]:
    return lambda q, ranked: sum(data.relevant(q, hit) for hit in ranked[:k]) / k


def _hit(data: _Set, k: int) -> Callable[[str, list[str]], float]:
    return lambda q, ranked: float(any(data.relevant(q, hit) for hit in ranked[:k]))


def _plan(folder: Path) -> dict[str, tuple[str, Any, Any, int, float | None, float | None]]:
    """Each set: its name, how to load it, its metric, k, the README baseline, the target."""
    return {
        "danluu": ("danluu category P@5", _danluu, _precision, 5, 0.40, 0.50),
        "dfds": ("dfds recurring partner in top 5", _dfds, _hit, 5, 0.90, 1.0),
        "k8s": ("k8s component P@5", _k8s, _precision, 5, 0.38, 0.45),
        "k8s-org": (
            "k8s component P@5 (org as service)",
            lambda f: _k8s(f, org_as_service=True),
            _precision,
            5,
            0.38,
            None,
        ),
        "icco": ("icco summary -> description R@1", _icco, _hit, 1, 0.92, None),
        "icco-strip": (
            "icco R@1, company names removed",
            lambda f: _icco(f, strip_names=True),
            _hit,
            1,
            None,
            None,
        ),
    }


SETS = ("danluu", "dfds", "k8s", "k8s-org", "icco", "icco-strip")


async def evaluate_all(
    weights: Weights | None = None,
    sets: Sequence[str] = SETS,
    embedder: Embedder | None = None,
) -> dict[str, Score]:
    """The sets named (all by default), measured; needs ../shared/data. With `embedder`,
    each set is ranked with a semantic index of its own."""
    scores = {}
    with tempfile.TemporaryDirectory(prefix="rca-eval-") as scratch:
        folder = Path(scratch)
        plan = _plan(folder)
        for key in sets:
            name, load, metric, k, baseline, target = plan[key]
            data = await load(folder)
            try:
                scores[key] = await _measure(
                    name,
                    data,
                    k=k,
                    metric=metric(data, k),
                    weights=weights,
                    baseline=baseline,
                    target=target,
                    embedder=embedder,
                )
            finally:
                await data.store.close()
                await _drop(key)
    return scores


def _fmt(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.3f}"


def _table(scores: list[Score], title: str) -> str:
    """All queries and the held-out half side by side, each with the TF-IDF beside ours."""
    lines = [
        title,
        f"{'':<38} {'all queries':-^29}  {'held out':-^21}",
        f"{'set and metric':<38} {'n':>4} {'README':>7} {'tf-idf':>7} {'ours':>7}  "
        f"{'n':>4} {'tf-idf':>7} {'ours':>7} {'target':>7} {'ms tf-idf':>9} {'ms ours':>8}",
    ]
    for s in scores:
        every, held = s.part(), s.part("held-out")
        lines.append(
            f"{s.name:<38} {every.queries:>4} {_fmt(s.baseline):>7} {_fmt(every.tfidf):>7} "
            f"{_fmt(every.ours):>7}  {held.queries:>4} {_fmt(held.tfidf):>7} "
            f"{_fmt(held.ours):>7} {_fmt(s.target):>7} {s.ms_tfidf:>9.2f} {s.ms_ours:>8.2f}"
        )
        for cls in s.per_class:
            every, held = s.part(cls=cls), s.part("held-out", cls)
            lines.append(
                f"  {cls:<36} {every.queries:>4} {'':>7} {_fmt(every.tfidf):>7} "
                f"{_fmt(every.ours):>7}  {held.queries:>4} {_fmt(held.tfidf):>7} "
                f"{_fmt(held.ours):>7}"
            )
    return "\n".join(lines)


def _compare(off: list[Score], on: list[Score]) -> str:
    """The same figures without and with semantic re-ranking, side by side."""
    lines = [
        "semantic re-ranking off and on (all queries / held out)",
        f"{'set and metric':<38} {'target':>7} {'off':>13} {'on':>13} {'ms off':>8} "
        f"{'ms on':>8} {'s embed':>8}",
    ]
    for a, b in zip(off, on, strict=True):
        off_part, on_part = a.part("held-out"), b.part("held-out")
        lines.append(
            f"{a.name:<38} {_fmt(a.target):>7} "
            f"{_fmt(a.ours):>6}/{_fmt(off_part.ours):<6} {_fmt(b.ours):>6}/{_fmt(on_part.ours):<6} "
            f"{a.ms_ours:>8.2f} {b.ms_ours:>8.2f} {b.s_index or 0.0:>8.1f}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--text-only", action="store_true", help="also rank with the full-text score alone"
    )
    parser.add_argument(
        "--postgres",
        metavar="URL",
        help="load the sets into this PostgreSQL database (schemas rca_eval_*) instead",
    )
    parser.add_argument(
        "--semantic",
        action="store_true",
        help="also rank with semantic re-ranking (needs the semantic extra)",
    )
    parser.add_argument("--sets", nargs="+", choices=SETS, default=list(SETS))
    args = parser.parse_args(argv)
    global POSTGRES
    POSTGRES = args.postgres
    if not DATA.is_dir():
        print(f"reference data not found at {DATA}")
        return 1
    scores = asyncio.run(evaluate_all(sets=args.sets))
    engine = "PostgreSQL" if POSTGRES else "SQLite"
    print(_table(list(scores.values()), f"find_similar_rca (default weights, {engine})"))
    if args.text_only:
        text_only = Weights(title=0.0, concepts=0.0, structure=0.0, recency=0.0)
        print()
        alone = asyncio.run(evaluate_all(text_only, sets=args.sets))
        print(_table(list(alone.values()), "full-text score alone"))
    if args.semantic:
        semantic = asyncio.run(evaluate_all(sets=args.sets, embedder=load_embedder()))
        print()
        print(_table(list(semantic.values()), f"with semantic re-ranking ({engine})"))
        print()
        print(_compare(list(scores.values()), list(semantic.values())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
