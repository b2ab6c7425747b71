"""The kinds table: every kind of the reference, with Ocean's selector fields and defaults."""

from __future__ import annotations

import pytest

from kiosk.ingest.kinds import KINDS, known_kinds
from kiosk.ingest.mapping import parse_port_app_config

#: The kinds issue 13 names, plus the reference's others (29 in Ocean's Kind enum).
ISSUE_KINDS = [
    "project",
    "repository",
    "repository-policy",
    "branch",
    "pull-request",
    "pipeline",
    "pipeline-run",
    "build",
    "environment",
    "release",
    "release-definition",
    "work-item",
    "board",
    "column",
    "iteration",
    "area-path",
    "team",
    "member",
    "user",
    "file",
    "folder",
]
REFERENCE_ONLY = [
    "pipeline-stage",
    "pipeline-deployment",
    "release-deployment",
    "group",
    "group-member",
    "test-run",
    "advanced-security-alert",
    "wiki",
]


def test_every_kind_of_the_reference_is_known() -> None:
    assert set(known_kinds()) == set(ISSUE_KINDS) | set(REFERENCE_ONLY)
    assert len(KINDS) == 29
    for kind in KINDS.values():
        assert kind.calls, kind.name
        assert kind.selector_names()[0] == "query"


@pytest.mark.parametrize(
    ("kind", "selector"),
    [
        ("project", {"defaultTeam": False}),
        ("repository", {"includedFiles": []}),
        ("pull-request", {"minTimeInDays": 7, "maxResults": 100}),
        ("pipeline", {"includeRepo": False}),
        ("build", {"defaultTeam": False, "enrichWithFirstCommit": False}),
        ("work-item", {"wiql": None, "expand": "All"}),
        ("team", {"includeMembers": False, "includeAreaPaths": False}),
        ("release-definition", {"expand": "environments", "tagFilter": None}),
        ("user", {"source": "entitlements", "includeGroupMemberships": False}),
        ("test-run", {"includeResults": True, "codeCoverage": None}),
        ("area-path", {"depth": None}),
        ("folder", {"project_name": None, "folders": [], "includedFiles": []}),
        ("group", {}),
    ],
)
def test_a_resource_with_only_a_query_gets_the_kinds_defaults(kind: str, selector: dict[str, object]) -> None:
    """The selector model the mapping builds from the table fills in Ocean's defaults."""
    config = parse_port_app_config(
        {
            "resources": [
                {
                    "kind": kind,
                    "selector": {"query": "true"},
                    "port": {"entity": {"mappings": {"identifier": ".id", "blueprint": '"x"'}}},
                }
            ]
        }
    )
    resource = config.resources[0]
    assert resource.kind == kind
    for name, value in selector.items():
        assert resource.selector_value(name) == value
    assert set(resource.selector.model_dump()) == set(KINDS[kind].selector_names())


def test_the_file_kind_needs_its_files_and_takes_paths_or_globs() -> None:
    config = parse_port_app_config(
        {
            "resources": [
                {
                    "kind": "file",
                    "selector": {"query": "true", "files": {"path": ["**/port.yml", "catalog.json"], "repos": ["api"]}},
                    "port": {"entity": {"mappings": {"identifier": ".file.path", "blueprint": '"x"'}}},
                }
            ]
        }
    )
    files = config.resources[0].selector_value("files")
    assert files.path == ["**/port.yml", "catalog.json"]
    assert files.repos == ["api"]
