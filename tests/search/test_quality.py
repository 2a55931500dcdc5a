"""Quality floors on public postmortem sets: fails when find_similar_rca gets worse.

The figures come from benchmarks/rca_eval.py (run it for the whole table); the sets live in
../shared/data and the test is skipped where they are not.
"""

from __future__ import annotations

import asyncio

import pytest
from benchmarks.rca_eval import Score, evaluate_all

from tests.support import shared_data

# Floors a little under what the ranking reaches now; the targets are in the benchmark.
FLOORS = {"danluu": 0.50, "dfds": 1.0, "k8s": 0.33, "icco": 0.90}


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
