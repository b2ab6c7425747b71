"""Ocean's mapping format: parsed as-is, every problem refused with its place in the document."""

from __future__ import annotations

from typing import Any

import pytest

from kiosk.ingest.defaults import ocean_default_mapping
from kiosk.ingest.kinds import known_kinds
from kiosk.ingest.mapping import MappingError, MappingProblem, SearchQuery, jq_syntax_problem, parse_port_app_config


def resource(kind: str = "repository", selector: dict[str, Any] | None = None, **mappings: Any) -> dict[str, Any]:
    return {
        "kind": kind,
        "selector": {"query": "true", **(selector or {})},
        "port": {"entity": {"mappings": {"identifier": ".id", "blueprint": '"svc"', **mappings}}},
    }


def problems(document: dict[str, Any]) -> list[MappingProblem]:
    with pytest.raises(MappingError) as info:
        parse_port_app_config(document)
    return info.value.problems


def test_oceans_default_mapping_parses_unchanged() -> None:
    config = ocean_default_mapping()
    assert [r.kind for r in config.resources] == [
        "project",
        "repository",
        "repository-policy",
        "repository-policy",
        "board",
        "work-item",
        "column",
        "release",
    ]
    assert config.kinds() == ["project", "repository", "repository-policy", "board", "work-item", "column", "release"]
    # Top level: what the file says, Ocean's defaults for the rest.
    assert config.deleteDependentEntities is True
    assert config.createMissingRelatedEntities is True
    assert config.useDefaultBranch is True
    assert config.enableMergeEntity is True
    assert config.entityDeletionThreshold == 0.9
    project, repository = config.resources[0], config.resources[1]
    assert project.selector_value("defaultTeam") is True  # written 'true', parsed as Ocean's pydantic does
    assert repository.selector_value("includedFiles") == ["README.md", "CODEOWNERS"]
    work_item = config.resources[5]
    assert work_item.selector_value("expand") == "All"
    assert work_item.selector_value("wiql").startswith("[System.State] NOT IN")
    mappings = repository.port.entity.mappings
    assert mappings.identifier == ".id"
    assert mappings.blueprint == '"azureDevopsRepository"'
    assert mappings.properties["readme"] == '.__includedFiles["README.md"]'
    assert mappings.relations == {"project": '.project.id | gsub(" "; "")'}
    assert config.resources[2].selector.query == '.type.displayName=="Minimum number of reviewers"'


def test_single_quoted_strings_read_as_ocean_reads_them() -> None:
    """Ocean reads ``'…'`` as a string (``// ''`` is ``// ""``): its default mapping has no warning."""
    assert ocean_default_mapping().warnings == []
    assert jq_syntax_problem(".a // ''") is None
    assert jq_syntax_problem("'x' | ascii_upcase") is None
    assert jq_syntax_problem(".a //") is not None


def test_unknown_kind_is_refused_with_the_known_kinds() -> None:
    found = problems({"resources": [resource(), resource(kind="repositories")]})
    assert found == [
        MappingProblem(
            ("resources", 1, "kind"),
            f"unknown kind 'repositories' (known kinds: {', '.join(known_kinds())})",
        )
    ]


def test_missing_kind_is_field_required() -> None:
    document = resource()
    del document["kind"]
    [problem] = problems({"resources": [document]})
    assert problem.loc == ("resources", 0, "kind")
    assert problem.message.startswith("field required (known kinds: project, ")


def test_unknown_selector_field_is_refused_with_the_kinds_fields() -> None:
    found = problems({"resources": [resource(selector={"includedFile": ["README.md"]})]})
    assert found == [
        MappingProblem(
            ("resources", 0, "selector", "includedFile"),
            "unknown selector field 'includedFile' for kind 'repository' (known: query, includedFiles)",
        )
    ]


def test_a_selector_field_of_another_kind_is_unknown_here() -> None:
    [problem] = problems({"resources": [resource(kind="team", selector={"minTimeInDays": 3})]})
    assert problem.loc == ("resources", 0, "selector", "minTimeInDays")
    assert problem.message == (
        "unknown selector field 'minTimeInDays' for kind 'team' (known: query, includeMembers, includeAreaPaths)"
    )


def test_selector_values_are_checked_against_the_kinds_types() -> None:
    found = problems(
        {
            "resources": [
                resource(kind="pull-request", selector={"minTimeInDays": 0}),
                resource(kind="work-item", selector={"expand": "Everything"}),
                resource(kind="file"),
            ]
        }
    )
    assert [p.loc for p in found] == [
        ("resources", 0, "selector", "minTimeInDays"),
        ("resources", 1, "selector", "expand"),
        ("resources", 2, "selector", "files"),
    ]
    assert found[0].message == "input should be greater than or equal to 1"
    assert "'None', 'Fields', 'Relations', 'Links' or 'All'" in found[1].message
    assert found[2].message == "field required"


@pytest.mark.parametrize(
    ("document", "loc"),
    [
        ({"resources": [resource(selector={"query": ".a =="})]}, ("resources", 0, "selector", "query")),
        ({"resources": [resource(identifier=".id |")]}, ("resources", 0, "port", "entity", "mappings", "identifier")),
        ({"resources": [resource(blueprint='"svc')]}, ("resources", 0, "port", "entity", "mappings", "blueprint")),
    ],
)
def test_a_jq_syntax_error_where_every_item_needs_the_program_is_refused(
    document: dict[str, Any], loc: tuple[str | int, ...]
) -> None:
    [problem] = problems(document)
    assert problem.loc == loc
    assert "is not a valid jq program: jq: error: syntax error" in problem.message


def test_items_to_parse_must_compile() -> None:
    document = resource()
    document["port"]["itemsToParse"] = ".items[]["
    [problem] = problems({"resources": [document]})
    assert problem.loc == ("resources", 0, "port", "itemsToParse")
    assert "not a valid jq program" in problem.message


def test_a_module_directive_is_refused_as_kiosks_sandbox_refuses_it() -> None:
    [problem] = problems({"resources": [resource(selector={"query": 'import "x" as x; true'})]})
    assert problem.loc == ("resources", 0, "selector", "query")
    assert "import" in problem.message


def test_a_field_program_that_does_not_compile_loads_with_a_warning() -> None:
    config = parse_port_app_config({"resources": [resource(properties={"ok": ".a", "bad": ".a |"}, title="(")]})
    assert [w.loc for w in config.warnings] == [
        ("resources", 0, "port", "entity", "mappings", "title"),
        ("resources", 0, "port", "entity", "mappings", "properties", "bad"),
    ]


def test_every_problem_is_reported_at_once() -> None:
    found = problems(
        {
            "entityDeletionThreshold": 1.5,
            "resources": [resource(kind="nope"), resource(selector={"x": 1}), resource(identifier=".id |")],
        }
    )
    assert [p.loc for p in found] == [
        ("entityDeletionThreshold",),
        ("resources", 0, "kind"),
        ("resources", 1, "selector", "x"),
        ("resources", 2, "port", "entity", "mappings", "identifier"),
    ]


def test_unknown_top_level_and_nested_keys_are_refused() -> None:
    found = problems({"deleteDependents": True, "resources": [resource()]})
    assert found[0].loc == ("deleteDependents",)
    assert found[0].message.startswith("unknown key 'deleteDependents' (known keys: deleteDependentEntities, ")
    document = resource()
    document["port"]["entity"]["mappings"]["propeties"] = {}
    [problem] = problems({"resources": [document]})
    assert problem == MappingProblem(
        ("resources", 0, "port", "entity", "mappings", "propeties"), "unknown key 'propeties'"
    )


def test_missing_mapping_fields_point_at_the_mapping() -> None:
    document = resource()
    del document["port"]["entity"]["mappings"]["blueprint"]
    [problem] = problems({"resources": [document]})
    assert problem == MappingProblem(("resources", 0, "port", "entity", "mappings", "blueprint"), "field required")


def test_search_queries_for_identifier_team_and_relations() -> None:
    query = {
        "combinator": '"and"',
        "rules": [
            {"property": '"$identifier"', "operator": '"="', "value": ".name"},
            {"combinator": '"or"', "rules": [{"property": '"tier"', "operator": '"in"', "value": '["a", "b"]'}]},
        ],
    }
    config = parse_port_app_config(
        {"resources": [resource(identifier=query, team=query, relations={"service": query, "project": ".p"})]}
    )
    mappings = config.resources[0].port.entity.mappings
    assert isinstance(mappings.identifier, SearchQuery)
    assert isinstance(mappings.relations["service"], SearchQuery)
    assert mappings.relations["project"] == ".p"
    assert mappings.programs()[:6] == ['"and"', '"$identifier"', '"="', ".name", '"or"', '"tier"']
    field_locs = [loc for loc, _ in mappings.field_programs()]
    assert ("relations", "service", "rules", 1, "rules", 0, "value") in field_locs


def test_a_broken_identifier_search_query_is_refused() -> None:
    query = {"combinator": '"and"', "rules": [{"property": '"$identifier"', "operator": '"="', "value": ".name |"}]}
    [problem] = problems({"resources": [resource(identifier=query)]})
    assert problem.loc == ("resources", 0, "port", "entity", "mappings")
    assert problem.message.startswith("identifier: '.name |' is not a valid jq program")


def test_a_bad_rule_points_into_the_query() -> None:
    query = {"combinator": '"and"', "rules": [{"property": '"$identifier"', "value": ".name"}]}
    [problem] = problems({"resources": [resource(relations={"service": query})]})
    assert problem == MappingProblem(
        ("resources", 0, "port", "entity", "mappings", "relations", "service", "rules", 0, "operator"),
        "field required",
    )


def test_yaml_scalars_are_jq_literals() -> None:
    config = parse_port_app_config({"resources": [resource(selector={"query": True}, properties={"n": 3})]})
    assert config.resources[0].selector.query == "true"
    assert config.resources[0].port.entity.mappings.properties["n"] == "3"


def test_a_program_must_be_text() -> None:
    [problem] = problems({"resources": [resource(properties={"tags": [".a"]})]})
    assert problem.loc == ("resources", 0, "port", "entity", "mappings", "properties", "tags")
    assert problem.message == "expected a string (a jq program), got a list"


def test_the_document_must_be_a_mapping() -> None:
    with pytest.raises(MappingError) as info:
        parse_port_app_config(["resources"])
    assert info.value.problems == [MappingProblem((), "a mapping must be a mapping of options, not a list")]
    assert parse_port_app_config({"resources": None}).resources == []
