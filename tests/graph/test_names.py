"""Forgiving names: case, separators, typos, and the closest names on a miss."""

from __future__ import annotations

import pytest

from resilience_mcp.errors import NotFoundError
from resilience_mcp.graph.names import NameIndex


@pytest.fixture
def index() -> NameIndex:
    names = NameIndex()
    names.add("Service", ["payments-api", "payments-db", "checkout", "fraud-check"])
    names.add("Team", ["team-payments", "checkout"])
    return names


@pytest.mark.parametrize(
    "typed", ["payments-api", "Payments API", "payments_api", " PAYMENTS.api "]
)
def test_case_and_separators_are_forgiven(index: NameIndex, typed: str) -> None:
    found = index.resolve(typed, ["Service"])

    assert (found.name, found.corrected_from) == ("payments-api", None)


@pytest.mark.parametrize(
    ("typed", "meant"), [("frad-check", "fraud-check"), ("chekout", "checkout")]
)
def test_a_small_typo_is_taken_for_the_one_close_name_and_says_so(
    index: NameIndex, typed: str, meant: str
) -> None:
    found = index.resolve(typed, ["Service"])

    assert (found.name, found.corrected_from) == (meant, typed)


def test_kinds_are_tried_in_the_order_given(index: NameIndex) -> None:
    assert index.resolve("checkout", ["Team", "Service"]).kind == "Team"
    assert index.resolve("checkout", ["Service", "Team"]).kind == "Service"


def test_an_ambiguous_near_miss_is_refused_with_the_candidates(index: NameIndex) -> None:
    with pytest.raises(NotFoundError) as caught:
        index.resolve("payments", ["Service"])

    assert set(caught.value.suggestions[:2]) == {"payments-api", "payments-db"}


def test_a_miss_lists_the_closest_names(index: NameIndex) -> None:
    with pytest.raises(NotFoundError) as caught:
        index.resolve("payment", ["Service"])

    assert set(caught.value.suggestions[:2]) == {"payments-api", "payments-db"}
    assert "Closest names" in str(caught.value)


def test_nothing_alike_gets_a_hint_to_search(index: NameIndex) -> None:
    with pytest.raises(NotFoundError, match="search_catalog"):
        index.resolve("zzzz", ["Service"])
