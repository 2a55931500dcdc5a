"""Quality floors on public postmortem sets: fails when find_similar_rca gets worse.

The figures come from benchmarks/rca_eval.py (run it for the whole table); the sets live in
../shared/data and the test is skipped where they are not.
"""

from __future__ import annotations

import asyncio

import pytest
from benchmarks.rca_eval import Score, evaluate_all, held_out

from tests.support import shared_data

# Floors a little under what the ranking reaches now; the targets are in the benchmark.
FLOORS = {"danluu": 0.50, "dfds": 1.0, "k8s": 0.35, "icco": 0.90}


@pytest.fixture(scope="module")
def scores() -> dict[str, Score]:
    shared_data("danluu-post-mortems", "postmortems.jsonl")
    return asyncio.run(evaluate_all(sets=list(FLOORS)))


@pytest.mark.parametrize("name", list(FLOORS))
def test_quality_stays_above_its_floor(scores: dict[str, Score], name: str) -> None:
    assert scores[name].ours >= FLOORS[name], scores[name]


@pytest.mark.parametrize("name", ["danluu", "k8s"])
def test_the_ranking_beats_plain_tf_idf(scores: dict[str, Score], name: str) -> None:
    assert scores[name].ours > scores[name].tfidf


def test_every_danluu_class_is_reported(scores: dict[str, Score]) -> None:
    assert set(scores["danluu"].per_class) == {
        "config-errors",
        "hardware-power",
        "conflicts",
        "time",
        "database",
    }


@pytest.mark.parametrize("name", list(FLOORS))
def test_each_set_holds_out_about_half_its_queries(scores: dict[str, Score], name: str) -> None:
    score = scores[name]
    held, tuning = score.part("held-out"), score.part("tuning")

    assert held.queries + tuning.queries == score.queries
    assert 0.25 < held.queries / score.queries < 0.75


def test_the_split_depends_on_the_id_alone() -> None:
    ids = [f"k8saf-{n:03d}" for n in range(1, 51)]

    assert [held_out(i) for i in ids] == [held_out(i) for i in ids]
    assert 0 < sum(map(held_out, ids)) < len(ids)
