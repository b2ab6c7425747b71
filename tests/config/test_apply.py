"""Applying kiosk.yaml: idempotent, independent of the order in the file, errors with lines."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.support.config_files import apply_error, apply_text

from kiosk.catalog.service import Catalog
from kiosk.config import ApplyReport, load_config
from kiosk.config.apply import apply_config, dependency_order
from kiosk.errors import ConfigError

DEMO = Path(__file__).resolve().parents[2] / "src" / "kiosk" / "demo" / "kiosk.yaml"


def statuses(report: ApplyReport) -> dict[str, str]:
    return {(f"{r.blueprint}/{r.identifier}" if r.blueprint else r.identifier): r.status for r in report.results}


def test_demo_applies_then_is_unchanged(catalog: Catalog) -> None:
    config = load_config(DEMO)
    first = apply_config(catalog, config)
    created = len(config.blueprints) + len(config.entities) + len(config.actions)
    assert first.counts() == {"created": created, "updated": 0, "unchanged": 0}
    assert [r.identifier for r in first.results][:3] == [bp.identifier for bp in config.blueprints]

    second = apply_config(catalog, config)
    assert second.counts()["unchanged"] == len(second.results)
    assert not second.changed

    checkout = catalog.get_entity("service", "checkout")
    assert checkout["relations"]["dependsOn"] == ["payments-api"]
    assert checkout["relations"]["project"] == "payments"
    # Defaults the catalog fills in do not make the next apply look like a change.
    assert catalog.get_entity("service", "ledger")["properties"]["onCall"] is False


def test_a_change_updates_only_that_object(catalog: Catalog, tmp_path: Path) -> None:
    text = """
        blueprints:
          - identifier: service
            schema: {properties: {tier: {type: number}}}
        entities:
          - {blueprint: service, identifier: a, properties: {tier: 1}}
          - {blueprint: service, identifier: b, title: B, team: core, properties: {tier: 2}}
        """
    apply_text(catalog, tmp_path, text)
    assert set(statuses(apply_text(catalog, tmp_path, text)).values()) == {"unchanged"}
    report = apply_text(catalog, tmp_path, text.replace("tier: 2", "tier: 3"))
    assert statuses(report) == {"service": "unchanged", "service/a": "unchanged", "service/b": "updated"}
    assert catalog.get_entity("service", "b")["properties"] == {"tier": 3}

    report = apply_text(catalog, tmp_path, text.replace("tier: {type: number}", "tier: {type: number, title: Tier}"))
    assert statuses(report)["service"] == "updated"


def test_relations_may_point_forward_in_the_file(catalog: Catalog, tmp_path: Path) -> None:
    # Every relation points at something defined further down, including a self-relation chain.
    report = apply_text(
        catalog,
        tmp_path,
        """
        entities:
          - blueprint: service
            identifier: web
            relations: {project: shop, dependsOn: [api]}
          - blueprint: service
            identifier: api
            relations: {project: shop, dependsOn: [db]}
          - blueprint: service
            identifier: db
            relations: {project: shop}
          - {blueprint: project, identifier: shop}
        blueprints:
          - identifier: service
            relations:
              project: {target: project, required: true}
              dependsOn: {target: service, many: true}
          - identifier: project
        """,
    )
    assert set(statuses(report).values()) == {"created"}
    assert catalog.get_entity("service", "web")["relations"] == {"project": "shop", "dependsOn": ["api"]}
    assert catalog.get_blueprint("service")["relations"]["project"]["target"] == "project"


def test_blueprint_cycle_is_applied_in_two_passes(catalog: Catalog, tmp_path: Path) -> None:
    text = """
        blueprints:
          - identifier: team
            relations: {lead: {target: person}}
          - identifier: person
            relations: {team: {target: team}}
        entities:
          - {blueprint: team, identifier: core, relations: {lead: ana}}
          - {blueprint: person, identifier: ana, relations: {team: core}}
        """
    report = apply_text(catalog, tmp_path, text)
    assert set(statuses(report).values()) == {"created"}
    assert catalog.get_blueprint("team")["relations"]["lead"]["target"] == "person"
    assert catalog.get_entity("team", "core")["relations"] == {"lead": "ana"}
    assert catalog.get_entity("person", "ana")["relations"] == {"team": "core"}
    assert set(statuses(apply_text(catalog, tmp_path, text)).values()) == {"unchanged"}


def test_catalog_refusal_names_file_line_and_field(catalog: Catalog, tmp_path: Path) -> None:
    error = apply_error(
        catalog,
        tmp_path,
        """
        blueprints:
          - identifier: service
            relations:
              project: {target: project, required: true}
          - identifier: project
        entities:
          - {blueprint: project, identifier: shop}
          - blueprint: service
            identifier: web
            relations:
              project: nowhere
        """,
    )
    message = error.message
    assert message.startswith(f"{tmp_path / 'kiosk.yaml'}:11: entities[1].relations.project: ")
    assert "nowhere" in message


def test_invalid_blueprint_is_caught_before_anything_is_written(catalog: Catalog, tmp_path: Path) -> None:
    error = apply_error(
        catalog,
        tmp_path,
        """
        blueprints:
          - identifier: fine
          - identifier: broken
            relations:
              owner:
                title: Owner
        """,
    )
    assert error.message.startswith(f"{tmp_path / 'kiosk.yaml'}:5: blueprints[1].relations.owner.target: ")
    with pytest.raises(Exception, match="does not exist"):
        catalog.get_blueprint("fine")


def test_unknown_blueprint_of_an_entity(catalog: Catalog, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"kiosk\.yaml:3: entities\[0\]\.blueprint: blueprint 'ghost' does not exist"):
        apply_text(
            catalog,
            tmp_path,
            """
            entities:
              - identifier: a
                blueprint: ghost
            """,
        )


def test_dependency_order_is_stable_and_tolerates_cycles() -> None:
    deps = {"a": ["c"], "b": [], "c": ["d"], "d": [], "x": ["y"], "y": ["x"]}
    order = dependency_order(["a", "b", "c", "d", "x", "y"], deps)
    assert order.index("d") < order.index("c") < order.index("a")
    assert order[:2] == ["b", "d"]
    assert order[-2:] == ["x", "y"]
    assert dependency_order(["s"], {"s": ["s", "unknown"]}) == ["s"]


def test_entity_property_past_the_depth_limit_names_file_and_limit(catalog: Catalog, tmp_path: Path) -> None:
    # kiosk.yaml's entities go through the same per-entity check as the API's (64 levels).
    deep = "[" * 70 + "]" * 70
    error = apply_error(
        catalog,
        tmp_path,
        f"""
        blueprints:
          - identifier: app
            schema: {{properties: {{tags: {{type: array}}}}}}
        entities:
          - blueprint: app
            identifier: web
            properties:
              tags: {deep}
        """,
    )
    message = error.message
    assert message.startswith(f"{tmp_path / 'kiosk.yaml'}:"), message
    assert "properties.tags" in message and "deeper than 64 levels" in message


def test_relation_flags_in_kiosk_yaml_are_json_booleans(catalog: Catalog, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"blueprints\[1\]\.relations\.project\.required"):
        apply_text(
            catalog,
            tmp_path,
            """
            blueprints:
              - identifier: project
              - identifier: service
                relations:
                  project: {target: project, required: "false"}
            """,
        )
