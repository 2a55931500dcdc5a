"""References as files write them: kinds, Backstage namespaces, API names."""

from __future__ import annotations

import pytest

from resilience_mcp.catalog.refs import Ref, parse_ref, unresolved_names


@pytest.mark.parametrize(
    ("written", "namespace", "expected"),
    [
        ("team-x", None, Ref("Team", "team-x")),
        ("group:team-x", None, Ref("Team", "team-x")),
        ("group:default/team-x", None, Ref("Team", "team-x")),
        ("group:Default/team-x", "other", Ref("Team", "team-x")),
        ("group:other/team-x", None, Ref("Team", "other/team-x")),
        ("other/team-x", None, Ref("Team", "other/team-x")),
        # Without a namespace, the one given (a Backstage entity's own) applies.
        ("team-x", "other", Ref("Team", "other/team-x")),
        ("team-x", "default", Ref("Team", "team-x")),
        ("user:jo", "other", Ref("Person", "other/jo")),
        ("api:other/search", None, Ref("Service", "other/search.api")),
    ],
)
def test_a_reference_keeps_a_namespace_other_than_the_default_in_the_name(
    written: str, namespace: str | None, expected: Ref
) -> None:
    assert parse_ref(written, "Team", namespace) == expected


def test_names_in_two_namespaces_stay_two() -> None:
    assert parse_ref("group:other/team-x", "Team") != parse_ref("group:default/team-x", "Team")


@pytest.mark.parametrize("written", ["a/b/c", "group:", "", "team x"])
def test_what_is_no_reference_is_refused_with_an_example(written: str) -> None:
    with pytest.raises(ValueError, match="team:payments-api"):
        parse_ref(written, "Team")


def test_the_unresolved_annotation_lists_names_without_their_kinds() -> None:
    listed = {"resilience/unresolved-refs": "Team:backstage/maintainers, Service:x.api"}

    assert unresolved_names(listed) == {"backstage/maintainers", "x.api"}
    assert unresolved_names({}) == set()
