"""flagd flag files: read into flags with state, targeting in words, merged per environment."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, select

from resilience_mcp import cli
from resilience_mcp import models as m
from resilience_mcp.catalog import load_catalog
from resilience_mcp.catalog.files import Document
from resilience_mcp.catalog.flagd import (
    FlagdFlag,
    describe_targeting,
    flagd_documents,
    read_flagd,
    with_state,
)
from resilience_mcp.catalog.loader import load_documents
from resilience_mcp.errors import CatalogLoadError
from resilience_mcp.graph import build_graph
from resilience_mcp.store import Store
from tests.otel_demo import flag_body, load_otel_demo
from tests.support import shared_data

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
ENVIRONMENTS = """\
apiVersion: resilience/v1
kind: Environment
metadata: {name: prod}
---
apiVersion: resilience/v1
kind: Environment
metadata: {name: staging}
spec: {type: staging}
---
apiVersion: resilience/v1
kind: Service
metadata: {name: payment}
"""


def flagd_flag(*parts: str, key: str) -> FlagdFlag:
    flags, problems = read_flagd(json.loads(shared_data(*parts).read_text()))
    assert problems == []
    return next(flag for flag in flags if flag.key == key)


def write(path: Path, body: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = body if isinstance(body, str) else json.dumps(body)
    path.write_text(text, encoding="utf-8")
    return path


def one_flag(key: str, **flag: Any) -> dict[str, Any]:
    return {"flags": {key: {"state": "ENABLED"} | flag}}


BOOL = {"on": True, "off": False}
SAMPLES = ("flagd", "samples", "example_flags.flagd.json")
CHEAT_SHEET = ("flagd", "docs", "assets", "cheat-sheet-flags.json")
OTEL = ("otel-demo", "src", "flagd", "demo.flagd.json")


@pytest.mark.parametrize(
    ("source", "key", "expected"),
    [
        (SAMPLES, "myBoolFlag", ("boolean", True, None, None)),
        (SAMPLES, "myStringFlag", ("string", True, "key1", None)),
        (SAMPLES, "myFloatFlag", ("number", True, "one", None)),
        (SAMPLES, "myObjectFlag", ("object", True, "object1", None)),
        (
            SAMPLES,
            "isColorYellow",
            ("boolean", True, None, 'if color == "yellow" then on, else off'),
        ),
        (
            SAMPLES,
            "headerColor",
            (
                "string",
                True,
                "red",
                'if email contains "@faas.com" then split by headerColor + email: red 25%, '
                "blue 25%, green 25%, yellow 25%, else default (red)",
            ),
        ),
        (
            CHEAT_SHEET,
            "user-tier-flag",
            (
                "string",
                True,
                "basic",
                'if tier == "enterprise" then enterprise, else if tier == "premium" then '
                "premium, else default (basic)",
            ),
        ),
        (
            CHEAT_SHEET,
            "code-default-flag",
            ("boolean", False, None, "no default variant: the application's own default applies"),
        ),
        (OTEL, "paymentFailure", ("number", False, None, None)),
        (OTEL, "kafkaQueueProblems", ("number", False, None, None)),
        (OTEL, "loadGeneratorTraffic", ("number", True, None, None)),
        (OTEL, "loadGeneratorVUs", ("number", True, "5", None)),
        (
            OTEL,
            "productCatalogFailure",
            ("boolean", False, None, 'if product_id == "OLJCESPC7Z" then off, else off'),
        ),
    ],
)
def test_real_flagd_files_read_into_type_state_variant_and_targeting_in_words(
    source: tuple[str, ...], key: str, expected: tuple[Any, ...]
) -> None:
    flag = flagd_flag(*source, key=key)

    assert (flag.flag_type, flag.enabled, flag.variant, flag.targeting) == expected


@pytest.mark.parametrize(
    ("targeting", "enabled", "rollout"),
    [
        ({"fractional": [["on", 25], ["off", 75]]}, True, 25.0),
        ({"fractional": [{"var": "email"}, ["on", 1], ["off", 2]]}, True, 33.33),
        ({"fractional": [["off", 50], ["off", 50]]}, False, None),
        # Conditional splits have no single rollout; the words say who gets what.
        (
            {"if": [{"==": [{"var": "plan"}, "pro"]}, {"fractional": [["on", 5], ["off", 95]]}]},
            True,
            None,
        ),
    ],
)
def test_a_top_level_fractional_split_becomes_the_rollout_percentage(
    targeting: dict[str, Any], enabled: bool, rollout: float | None
) -> None:
    body = one_flag("newCheckout", variants=BOOL, defaultVariant="off", targeting=targeting)

    flags, _ = read_flagd(body)

    assert (flags[0].enabled, flags[0].rollout) == (enabled, rollout)


def test_a_disabled_flag_is_off_whatever_its_default_says() -> None:
    flags, _ = read_flagd(one_flag("banner", state="DISABLED", variants=BOOL, defaultVariant="on"))

    assert flags[0].enabled is False
    assert flags[0].targeting == "disabled in flagd: the application's own default applies"


@pytest.mark.parametrize(
    ("rule", "words"),
    [
        (
            {"in": [{"var": "country"}, ["us", "ca"]]},
            'if country in ["us", "ca"] then on, else off',
        ),
        (
            {"and": [{">=": [{"var": "age"}, 18]}, {"or": [{"var": "beta"}, {"!": {"var": "x"}}]}]},
            "if age >= 18 and (beta or not x) then on, else off",
        ),
        (
            {"ends_with": [{"var": "email"}, "@example.com"]},
            'if email ends with "@example.com" then on, else off',
        ),
        (
            {"sem_ver": [{"var": "version"}, ">=", "1.2.0"]},
            'if version >= "1.2.0" then on, else off',
        ),
        ({"$ref": "loop"}, "if loop then on, else off"),
    ],
)
def test_targeting_is_summarised_in_words(rule: dict[str, Any], words: str) -> None:
    text = describe_targeting(
        {"if": [rule, "on", "off"]}, key="f", default="off", evaluators={"loop": {"$ref": "loop"}}
    )

    assert text == words


def test_a_long_targeting_rule_is_cut_with_an_ellipsis() -> None:
    rule = {"in": [{"var": "customer"}, [f"customer-{i}" for i in range(100)]]}

    text = describe_targeting({"if": [rule, "on", "off"]}, key="f", default="off")

    assert len(text) == 300
    assert text.endswith("...")


def test_flags_that_cannot_be_read_are_named_and_the_rest_are_kept() -> None:
    body = {
        "flags": {
            "good": {"state": "ENABLED", "variants": BOOL, "defaultVariant": "on"},
            "typo": {"state": "ENABLED", "variants": BOOL, "defaultVariant": "yes"},
            "empty": {"state": "ENABLED", "variants": {}},
        }
    }

    flags, problems = read_flagd(body)

    assert [f.key for f in flags] == ["good"]
    assert problems == [
        ("typo", "defaultVariant 'yes' is not one of the variants"),
        ("empty", "variants must be a mapping of variant names to values"),
    ]


async def states(store: Store) -> dict[tuple[str, str], m.FlagState]:
    graph = await build_graph(store)
    return {(f, env): st for f, by_env in graph.flag_states.items() for env, st in by_env.items()}


async def changes(store: Store) -> list[m.FlagChange]:
    async with store.session() as session:
        rows = await session.execute(select(m.FlagChange).order_by(col(m.FlagChange.at)))
        return list(rows.scalars().all())


async def test_a_flagd_file_loads_for_the_environment_named_and_reloads_as_a_no_op(
    store: Store, tmp_path: Path
) -> None:
    await load_catalog(store, [write(tmp_path / "env.yaml", ENVIRONMENTS)])
    path = shared_data(*OTEL)

    first = await load_catalog(store, [path], flag_environment="prod")
    again = await load_catalog(store, [path], flag_environment="prod")

    assert first.created == {"FeatureFlag": 15}
    assert not again.changed
    loaded = await states(store)
    assert loaded[("loadGeneratorVUs", "prod")].variant == "5"
    assert loaded[("paymentFailure", "prod")].enabled is False
    graph = await build_graph(store)
    assert graph.flags["paymentFailure"].variants["50%"] == 0.5


async def test_a_flagd_file_without_an_environment_is_refused_and_nothing_is_written(
    store: Store,
) -> None:
    with pytest.raises(CatalogLoadError) as caught:
        await load_catalog(store, [shared_data(*OTEL)])

    assert "--environment" in str(caught.value)
    assert await states(store) == {}


async def test_an_environment_and_links_may_come_from_the_file_metadata(
    store: Store, tmp_path: Path
) -> None:
    await load_catalog(store, [write(tmp_path / "env.yaml", ENVIRONMENTS)])
    body = one_flag(
        "payFail",
        variants=BOOL,
        defaultVariant="on",
        metadata={"services": "payment", "purpose": "kill-switch"},
    ) | {"metadata": {"environment": "staging"}}

    await load_catalog(store, [write(tmp_path / "flags.flagd.json", body)])

    graph = await build_graph(store)
    assert graph.flags["payFail"].services == ["payment"]
    assert graph.flags["payFail"].purpose == "kill-switch"
    assert graph.flag_states["payFail"]["staging"].enabled is True


async def test_each_environment_keeps_its_state_and_a_flip_is_recorded_as_a_change(
    store: Store, tmp_path: Path
) -> None:
    await load_catalog(store, [write(tmp_path / "env.yaml", ENVIRONMENTS)])
    off = one_flag("payFail", variants=BOOL, defaultVariant="off")
    on = one_flag("payFail", variants=BOOL, defaultVariant="on")
    await load_catalog(store, [write(tmp_path / "prod.json", off)], flag_environment="prod")
    await load_catalog(store, [write(tmp_path / "staging.json", on)], flag_environment="staging")

    await load_catalog(store, [write(tmp_path / "prod.json", on)], flag_environment="prod")

    loaded = await states(store)
    assert (loaded[("payFail", "prod")].enabled, loaded[("payFail", "staging")].enabled) == (
        True,
        True,
    )
    [change] = await changes(store)
    assert (change.environment, change.from_state, change.to_state, change.by) == (
        "prod",
        "off",
        "on",
        "flagd file prod.json",
    )
    assert loaded[("payFail", "prod")].updated_by == "flagd file prod.json"


async def test_a_folder_of_flag_files_one_per_environment_loads_as_one_flag_each(
    store: Store, tmp_path: Path
) -> None:
    await load_catalog(store, [write(tmp_path / "env.yaml", ENVIRONMENTS)])
    folder = tmp_path / "flags"
    for env, default in (("prod", "off"), ("staging", "on")):
        body = one_flag("payFail", variants=BOOL, defaultVariant=default)
        write(folder / f"{env}.flagd.json", body | {"metadata": {"environment": env}})

    report = await load_catalog(store, [folder])

    assert report.created == {"FeatureFlag": 1}
    loaded = await states(store)
    assert (loaded[("payFail", "prod")].enabled, loaded[("payFail", "staging")].enabled) == (
        False,
        True,
    )
    assert await changes(store) == []


async def test_a_flag_given_twice_for_one_environment_is_refused_naming_both_files(
    store: Store, tmp_path: Path
) -> None:
    await load_catalog(store, [write(tmp_path / "env.yaml", ENVIRONMENTS)])
    first = write(tmp_path / "a.json", one_flag("payFail", variants=BOOL, defaultVariant="off"))
    second = write(tmp_path / "b.json", one_flag("payFail", variants=BOOL, defaultVariant="on"))

    with pytest.raises(CatalogLoadError) as caught:
        await load_catalog(store, [first, second], flag_environment="prod")

    [issue] = caught.value.issues
    assert (issue.file, issue.name, issue.field) == (str(second), "payFail", "flags.payFail")
    assert issue.message == f"the flag is given for prod twice; first in {first}"
    assert await states(store) == {}


async def test_a_flag_the_catalog_declares_keeps_its_owner_feature_and_history(
    store: Store, tmp_path: Path
) -> None:
    declared = (
        ENVIRONMENTS
        + """\
---
apiVersion: resilience/v1
kind: Team
metadata: {name: payments}
---
apiVersion: resilience/v1
kind: FeatureFlag
metadata: {name: payment-failure, title: Payment failure injection}
spec:
  key: paymentFailure
  purpose: ops
  owner: payments
  services: [payment]
  states: [{environment: staging, enabled: true, variant: "10%"}]
  history: [{at: 2026-11-30T10:00:00Z, environment: staging, by: ana, from: "off", to: "on (10%)"}]
"""
    )
    await load_catalog(store, [write(tmp_path / "catalog.yaml", declared)])

    await load_catalog(store, [shared_data(*OTEL)], flag_environment="prod")

    graph = await build_graph(store)
    flag = graph.flags[graph.flag_by_key["paymentFailure"]]
    assert (flag.name, flag.title, flag.owner, flag.purpose, flag.services) == (
        "payment-failure",
        "Payment failure injection",
        "payments",
        "ops",
        ["payment"],
    )
    assert graph.flag_states["payment-failure"]["staging"].variant == "10%"
    assert graph.flag_states["payment-failure"]["prod"].enabled is False
    assert [c.by for c in await changes(store)] == ["ana"]


async def test_the_importer_puts_a_flip_down_to_whoever_it_is_told(store: Store) -> None:
    await load_otel_demo(store, now=T0)
    body = flag_body()
    body["flags"]["paymentFailure"]["defaultVariant"] = "50%"

    flags, _ = await flagd_documents(
        store, [Document("x.json", 1, body)], environment="prod", by="chaos-bot", now=T0
    )
    await load_documents(store, flags, source="flagd:prod")

    [change] = await changes(store)
    assert (change.flag, change.at, change.by, change.from_state, change.to_state) == (
        "paymentFailure",
        T0,
        "chaos-bot",
        "off",
        "on (50%)",
    )


def test_the_cli_loads_a_flagd_file_for_an_environment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "cli.db")
    env = write(tmp_path / "env.yaml", ENVIRONMENTS)
    assert cli.main(["-q", "load", str(env), "--db", db]) == 0

    code = cli.main(["-q", "load", str(shared_data(*OTEL)), "--environment", "prod", "--db", db])

    assert code == 0
    assert "created: 15 FeatureFlag" in capsys.readouterr().out


BOOLEAN = {"state": "ENABLED", "variants": {"on": True, "off": False}, "defaultVariant": "off"}
COLOURS = {
    "state": "ENABLED",
    "variants": {"red": "red", "blue": "blue"},
    "defaultVariant": "red",
    "targeting": {"if": [{"==": [{"var": "tier"}, "gold"]}, "blue", "red"]},
}


@pytest.mark.parametrize(
    ("raw", "asked", "read"),
    [
        (BOOLEAN, {"enabled": True}, (True, None, None, None)),
        (BOOLEAN, {"enabled": True, "rollout": 12.5}, (True, 12.5, None, "split")),
        ({**BOOLEAN, "defaultVariant": "on"}, {"enabled": False}, (False, None, None, None)),
        (COLOURS, {"enabled": True, "variant": "blue"}, (True, None, "blue", None)),
        (COLOURS, {"enabled": False}, (False, None, "red", "disabled")),
    ],
    ids=["on", "partial rollout", "off", "a variant for everyone", "off without an off variant"],
)
def test_a_flag_given_a_state_reads_back_as_that_state(
    raw: dict[str, Any], asked: dict[str, Any], read: tuple[Any, ...]
) -> None:
    original = json.dumps(raw, sort_keys=True)

    changed = with_state(raw, **asked)

    [flag], problems = read_flagd({"flags": {"f": changed}})
    assert problems == []
    enabled, rollout, variant, targeting = read
    assert (flag.enabled, flag.rollout, flag.variant) == (enabled, rollout, variant)
    assert (flag.targeting or "").startswith(targeting or "")
    assert (flag.targeting is None) is (targeting is None)
    assert json.dumps(raw, sort_keys=True) == original, "the definition given stays as it was"


@pytest.mark.parametrize(
    ("raw", "asked", "message"),
    [
        (COLOURS, {"enabled": True, "rollout": 50}, "a partial rollout needs a variant"),
        (BOOLEAN, {"enabled": True, "variant": "off"}, "its variant 'off' turns it off"),
        (BOOLEAN, {"enabled": True, "variant": "maybe"}, "it has no variant 'maybe'"),
    ],
)
def test_a_state_the_flags_variants_cannot_express_is_refused(
    raw: dict[str, Any], asked: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        with_state(raw, **asked)
