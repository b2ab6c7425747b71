"""Raw items mapped to entities with Ocean's semantics: the default mapping field by field, custom
mappings, every failure mode, itemsToParse, and the in-process and libjq paths agreeing."""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterator, Sequence
from typing import Any

import jq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kiosk.core.jq_engine import JqLimits, JqPool, JqResult, JqUnavailable
from kiosk.ingest.defaults import default_mapping, ocean_default_mapping
from kiosk.ingest.mapping import ResourceConfig, ocean_quotes, parse_port_app_config
from kiosk.ingest.transform import (
    FieldFailure,
    compile_resource,
    deletion_path,
    test_mapping,
)

# ------------------------------------------------------------------ realistic items, per kind

PROJECT = {
    "id": "6ce954b1-ce1f-45d1-b94d-e6bf2464ba2c",
    "name": "Fabrikam Fiber",
    "description": "The main project",
    "url": "https://dev.azure.com/contoso/_apis/projects/6ce954b1-ce1f-45d1-b94d-e6bf2464ba2c",
    "state": "wellFormed",
    "revision": 411,
    "visibility": "private",
    "lastUpdateTime": "2026-11-02T10:00:00.000Z",
    "defaultTeam": {"id": "t-1", "name": "Fabrikam Fiber Team", "url": "https://dev.azure.com/contoso/_apis/t-1"},
}
REPOSITORY = {
    "id": "5febef5a-833d-4e14-b9c0-14cb638f91e6",
    "name": "payments-api",
    "url": "https://dev.azure.com/contoso/6ce954b1/_apis/git/repositories/5febef5a",
    "project": {"id": "6ce954b1 ce1f", "name": "Fabrikam Fiber", "state": "wellFormed", "revision": 411},
    "defaultBranch": "refs/heads/main",
    "size": 72_213,
    "remoteUrl": "https://contoso@dev.azure.com/contoso/Fabrikam%20Fiber/_git/payments-api",
    "sshUrl": "git@ssh.dev.azure.com:v3/contoso/Fabrikam%20Fiber/payments-api",
    "webUrl": "https://dev.azure.com/contoso/Fabrikam%20Fiber/_git/payments-api",
    "isDisabled": False,
    "isInMaintenance": False,
    "__includedFiles": {"README.md": "# Payments API\n", "CODEOWNERS": None},
}
POLICY_REVIEWERS = {
    "id": 7,
    "isEnabled": True,
    "isBlocking": True,
    "type": {"id": "fa4e907d", "displayName": "Minimum number of reviewers"},
    "settings": {"minimumApproverCount": 2, "creatorVoteCounts": False},
    "__repository": REPOSITORY,
}
POLICY_LINKING = {
    "id": 8,
    "isEnabled": True,
    "isBlocking": False,
    "type": {"id": "40e92b44", "displayName": "Work item linking"},
    "settings": {},
    "__repository": REPOSITORY,
}
BOARD = {
    "id": "b 1",
    "name": "Stories",
    "url": "https://dev.azure.com/contoso/6ce954b1/_apis/work/boards/b1",
    "__project": {"id": "6ce954b1 ce1f"},
}
WORK_ITEM = {
    "id": 42,
    "rev": 3,
    "url": "https://dev.azure.com/contoso/_apis/wit/workItems/42",
    "fields": {
        "System.WorkItemType": "User Story",
        "System.BoardColumn": "In Progress",
        "System.State": "Active",
        "System.Reason": "Moved to state Active",
        "System.Title": "Pay by card",
        "System.Description": "<div>Card payments</div>",
        "System.CreatedBy": {"displayName": "Ann Lee", "uniqueName": "ann@contoso.com"},
        "System.ChangedBy": {"displayName": "Bo Chan", "uniqueName": "bo@contoso.com"},
        "System.CreatedDate": "2026-10-01T09:00:00Z",
        "System.ChangedDate": "2026-11-01T09:00:00Z",
        "Microsoft.VSTS.Scheduling.Effort": 5,
    },
    "__projectId": "6ce954b1 ce1f",
    "__project": {"id": "6ce954b1 ce1f", "name": "Fabrikam Fiber"},
}
COLUMN = {
    "id": "c-2",
    "name": "In Progress",
    "stateMappings": {"User Story": "Active"},
    "__board": BOARD,
    "__stateType": "User Story",
}
RELEASE = {
    "id": 17,
    "name": "Release-17",
    "status": "active",
    "reason": "manual",
    "createdOn": "2026-11-01T10:00:00Z",
    "modifiedOn": "2026-11-02T10:00:00Z",
    "createdBy": {"uniqueName": "ann@contoso.com"},
    "modifiedBy": {"uniqueName": "bo@contoso.com"},
    "releaseDefinition": {"id": 3, "name": "Payments CD"},
    "projectReference": {"id": "6ce954b1 ce1f", "name": "Fabrikam Fiber"},
    "_links": {"web": {"href": "https://dev.azure.com/contoso/Fabrikam/_release?releaseId=17"}},
}

ITEMS: dict[str, list[dict[str, Any]]] = {
    "project": [PROJECT],
    "repository": [REPOSITORY],
    "repository-policy": [POLICY_REVIEWERS, POLICY_LINKING],
    "board": [BOARD],
    "work-item": [WORK_ITEM],
    "column": [COLUMN],
    "release": [RELEASE],
}


def resources(kind: str) -> list[ResourceConfig]:
    return [r for r in ocean_default_mapping().resources if r.kind == kind]


def resource(mappings: dict[str, Any], selector: str = "true", **port: Any) -> ResourceConfig:
    """A custom repository resource with these mappings (identifier and blueprint defaulted)."""
    document = {
        "resources": [
            {
                "kind": "repository",
                "selector": {"query": selector},
                "port": {"entity": {"mappings": {"identifier": ".id", "blueprint": '"svc"', **mappings}}, **port},
            }
        ]
    }
    return parse_port_app_config(document).resources[0]


# ------------------------------------------------------------------ Ocean's default mapping


def test_default_project_mapping_field_by_field() -> None:
    [project] = resources("project")
    batch = compile_resource(project).map([PROJECT])
    assert batch.failures == [] and batch.filtered == 0
    assert batch.entities == [
        {
            "identifier": "6ce954b1-ce1f-45d1-b94d-e6bf2464ba2c",
            "blueprint": "azureDevopsProject",
            "title": "Fabrikam Fiber",
            "properties": {
                "state": "wellFormed",
                "revision": 411,
                "visibility": "private",
                "defaultTeam": "Fabrikam Fiber Team",
                "link": "https://dev.azure.com/contoso/6ce954b1-ce1f-45d1-b94d-e6bf2464ba2c",
            },
        }
    ]


@pytest.mark.parametrize(
    ("kind", "item", "expected"),
    [
        (
            "repository",
            REPOSITORY,
            {
                "identifier": "5febef5a-833d-4e14-b9c0-14cb638f91e6",
                "blueprint": "azureDevopsRepository",
                "title": "payments-api",
                "properties": {
                    "url": "https://contoso@dev.azure.com/contoso/Fabrikam%20Fiber/_git/payments-api",
                    "readme": "# Payments API\n",
                    "codeowners": None,
                },
                "relations": {"project": "6ce954b1ce1f"},
            },
        ),
        (
            "board",
            BOARD,
            {
                "identifier": "b1",
                "blueprint": "azureDevopsBoard",
                "title": "Stories",
                "properties": {"link": BOARD["url"]},
                "relations": {"project": "6ce954b1ce1f"},
            },
        ),
        (
            "column",
            COLUMN,
            {
                "identifier": "UserStory/InProgress/6ce954b1ce1f",
                "blueprint": "azureDevopsColumn",
                "title": "In Progress",
                "relations": {"board": "b1"},
            },
        ),
        (
            "release",
            RELEASE,
            {
                "identifier": "6ce954b1ce1f/17",
                "blueprint": "azureDevopsRelease",
                "title": "Release-17",
                "properties": {
                    "status": "active",
                    "reason": "manual",
                    "createdDate": "2026-11-01T10:00:00Z",
                    "modifiedDate": "2026-11-02T10:00:00Z",
                    "createdBy": "ann@contoso.com",
                    "modifiedBy": "bo@contoso.com",
                    "definitionName": "Payments CD",
                    # gsub's pattern is a regex: ``?`` makes the ``e`` optional, so nothing matches (Ocean's too).
                    "link": "https://dev.azure.com/contoso/Fabrikam/_release?releaseId=17",
                },
                "relations": {"project": "6ce954b1ce1f"},
            },
        ),
    ],
)
def test_default_mapping_field_by_field(kind: str, item: dict[str, Any], expected: dict[str, Any]) -> None:
    [selected] = resources(kind)
    batch = compile_resource(selected).map([item])
    assert batch.failures == []
    assert batch.entities == [expected]


def test_default_repository_policies_select_by_type() -> None:
    reviewers, linking = resources("repository-policy")
    first = compile_resource(reviewers).map([POLICY_REVIEWERS, POLICY_LINKING])
    assert first.filtered == 1 and first.failures == []
    assert first.entities == [
        {
            "identifier": REPOSITORY["id"],
            "blueprint": "azureDevopsRepository",
            "properties": {"minimumApproverCount": 2},
        }
    ]
    second = compile_resource(linking).map([POLICY_REVIEWERS, POLICY_LINKING])
    assert second.filtered == 1
    assert second.entities == [
        {"identifier": REPOSITORY["id"], "blueprint": "azureDevopsRepository", "properties": {"workItemLinking": False}}
    ]


def test_default_work_item_mapping_reads_single_quotes_as_ocean_does() -> None:
    [work_item] = resources("work-item")
    bare = copy.deepcopy(WORK_ITEM)
    del bare["fields"]["System.Description"]
    del bare["fields"]["Microsoft.VSTS.Scheduling.Effort"]
    batch = compile_resource(work_item).map([WORK_ITEM, bare])
    assert batch.failures == []
    full, without = batch.entities
    assert full == {
        "identifier": "6ce954b1ce1f/42",
        "blueprint": "azureDevopsWorkItem",
        "title": "Pay by card",
        "properties": {
            "type": "User Story",
            "state": "Active",
            "effort": 5,
            "description": "<div>Card payments</div>",
            "link": WORK_ITEM["url"],
            "reason": "Moved to state Active",
            "createdBy": "Ann Lee",
            "changedBy": "Bo Chan",
            "createdDate": "2026-10-01T09:00:00Z",
            "changedDate": "2026-11-01T09:00:00Z",
        },
        "relations": {"project": "6ce954b1ce1f", "column": "UserStory-InProgress-6ce954b1ce1f"},
    }
    # ``// ''`` is Ocean's single-quoted empty string, not a broken program: "" and -1 for the missing.
    assert without["properties"]["description"] == ""
    assert without["properties"]["effort"] == -1
    assert compile_resource(work_item).warnings() == []


def _reference_entity(resource: ResourceConfig, item: Any) -> dict[str, Any] | None:
    """Ocean's algorithm, spelt out with libjq itself (the ``jq`` module), one call per field."""

    def first(program: str) -> Any:
        return jq.compile(ocean_quotes(program)).input_value(item).first()

    if first(resource.selector.query) is not True:
        return None
    mappings = resource.port.entity.mappings
    assert isinstance(mappings.identifier, str)
    entity: dict[str, Any] = {"identifier": first(mappings.identifier), "blueprint": first(mappings.blueprint)}
    for name in ("title", "icon", "team"):
        program = getattr(mappings, name)
        if program is not None:
            assert isinstance(program, str)
            entity[name] = first(program)
    if mappings.properties:
        entity["properties"] = {key: first(program) for key, program in mappings.properties.items()}
    if mappings.relations:
        entity["relations"] = {key: first(program) for key, program in mappings.relations.items()}  # type: ignore[arg-type]
    return entity


def _variants(item: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The item, and the same with odd but valid values: floats, big numbers, nulls, unicode."""
    yield item
    odd = copy.deepcopy(item)
    for key, value in list(odd.items()):
        if isinstance(value, str):
            odd[key] = value + " ✓ é"
        elif isinstance(value, int) and not isinstance(value, bool):
            odd[key] = value + 0.5
    yield odd
    floats = copy.deepcopy(item)
    for key, value in list(floats.items()):
        if isinstance(value, int) and not isinstance(value, bool):
            floats[key] = float(value)
        elif isinstance(value, dict) and key.startswith("__") is False:
            floats[key] = {**value, "extra": 2**60}
    yield floats


@pytest.mark.parametrize("mapping", ["ocean", "kiosk"])
@pytest.mark.parametrize("kind", sorted(ITEMS))
def test_mapping_agrees_with_libjq_per_field(mapping: str, kind: str) -> None:
    config = ocean_default_mapping() if mapping == "ocean" else default_mapping()
    for resource_config in (r for r in config.resources if r.kind == kind):
        items = [variant for item in ITEMS[kind] for variant in _variants(item)]
        batch = compile_resource(resource_config).map(items)
        assert batch.failures == []
        expected = [entity for entity in (_reference_entity(resource_config, item) for item in items) if entity]
        assert batch.entities == expected


#: Programs the fast forms take (plain paths, ``PATH | gsub``/``sub`` with a literal pattern), and
#: neighbours they must leave to the general closure (a regex pattern, an array index).
FAST_FORMS = [
    ".id",
    ".a.b",
    ".a.b.c",
    '.__includedFiles["README.md"]',
    '."x y"',
    '.a["b"].c',
    '.a."b"',
    '.a.b | gsub(" "; "")',
    '.id | sub("-"; "_")',
    '.a.b.c | gsub("a b"; "")',
    '.id | gsub("a?"; "")',
    ".a[0]",
]
_KEYS = st.sampled_from(["id", "a", "b", "c", "x y", "README.md", "__includedFiles"])
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(alphabet="ab -_é", max_size=6),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda children: st.one_of(st.lists(children, max_size=3), st.dictionaries(_KEYS, children, max_size=4)),
    max_leaves=12,
)


@functools.lru_cache(maxsize=64)
def _jq_program(program: str) -> Any:
    return jq.compile(program)


def _libjq(program: str, item: Any) -> tuple[bool, Any]:
    try:
        return True, _jq_program(program).input_value(item).first()
    except ValueError as exc:
        return False, str(exc).strip().splitlines()[0]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items=st.lists(st.dictionaries(_KEYS, _VALUES, max_size=5) | _VALUES, min_size=1, max_size=6))
def test_fast_forms_give_libjqs_values_and_errors(items: list[Any]) -> None:
    properties = {f"p{n}": program for n, program in enumerate(FAST_FORMS)}
    config = resource({"identifier": '"e"', "properties": properties})
    batch = compile_resource(config).map(items)
    entities = iter(batch.entities)
    for index, item in enumerate(items):
        expected = {key: _libjq(program, item) for key, program in properties.items()}
        errors = [(f"properties.{key}", message) for key, (ok, message) in expected.items() if not ok]
        got = [(f.field, f.message) for f in batch.failures if f.item == index]
        assert got == errors
        if not errors:
            assert next(entities)["properties"] == {key: value for key, (_, value) in expected.items()}
    assert next(entities, None) is None


# ------------------------------------------------------------------ custom mappings


def test_custom_mapping_title_icon_team_and_computed_fields() -> None:
    config = resource(
        {
            "title": ".name | ascii_upcase",
            "icon": '"Git"',
            "team": '[.project.name, "platform"]',
            "properties": {
                "size": ".size",
                "kb": ".size / 1024 | floor",
                "label": '"\\(.name) in \\(.project.name)"',
                "disabled": 'if .isDisabled then "yes" else "no" end',
                "missing": ".nothing.here",
                "files": ".__includedFiles | keys",
            },
            "relations": {"project": ".project.id", "owners": "[.project.id, .id]"},
        }
    )
    [entity] = compile_resource(config).map([REPOSITORY]).entities
    assert entity == {
        "identifier": REPOSITORY["id"],
        "blueprint": "svc",
        "title": "PAYMENTS-API",
        "icon": "Git",
        "team": ["Fabrikam Fiber", "platform"],
        "properties": {
            "size": 72_213,
            "kb": 70,
            "label": "payments-api in Fabrikam Fiber",
            "disabled": "no",
            "missing": None,
            "files": ["CODEOWNERS", "README.md"],
        },
        "relations": {"project": "6ce954b1 ce1f", "owners": ["6ce954b1 ce1f", REPOSITORY["id"]]},
    }


def test_team_as_a_string_and_fields_left_out_when_not_mapped() -> None:
    [entity] = compile_resource(resource({"team": ".project.name"})).map([REPOSITORY]).entities
    assert entity == {"identifier": REPOSITORY["id"], "blueprint": "svc", "team": "Fabrikam Fiber"}


def test_a_custom_selector_filters() -> None:
    config = resource({}, selector='.name | startswith("pay")')
    other = {**REPOSITORY, "id": "x-1", "name": "web"}
    batch = compile_resource(config).map([REPOSITORY, other, REPOSITORY])
    assert [e["identifier"] for e in batch.entities] == [REPOSITORY["id"], REPOSITORY["id"]]
    assert batch.filtered == 1 and batch.failures == []


# ------------------------------------------------------------------ failure modes


def test_selector_that_is_not_boolean_fails_the_item() -> None:
    batch = compile_resource(resource({}, selector=".name")).map([REPOSITORY, {"id": "a", "name": None}])
    assert batch.entities == [] and batch.filtered == 0
    assert [(f.item, f.field) for f in batch.failures] == [(0, "selector.query"), (1, "selector.query")]
    assert "true or false, not string 'payments-api'" in batch.failures[0].message
    assert "not null" in batch.failures[1].message


def test_selector_error_fails_only_that_item() -> None:
    batch = compile_resource(resource({}, selector=".size > 10")).map([REPOSITORY, 5, {"id": "s", "size": 1}])
    assert [e["identifier"] for e in batch.entities] == [REPOSITORY["id"]]
    assert batch.filtered == 1
    assert batch.failures == [FieldFailure(1, "selector.query", 'Cannot index number with string ("size")', None)]


@pytest.mark.parametrize(
    ("identifier", "problem"),
    [(None, "not null"), ("", "not an empty string"), (42, "not number 42"), ({"a": 1}, "not an object")],
)
def test_identifier_that_is_not_a_non_empty_string_produces_no_entity(identifier: Any, problem: str) -> None:
    batch = compile_resource(resource({})).map([{"id": identifier}, {"id": "ok"}])
    assert [e["identifier"] for e in batch.entities] == ["ok"]
    [failure] = batch.failures
    assert (failure.item, failure.field, failure.identifier) == (0, "identifier", None)
    assert problem in failure.message and "no entity is produced" in failure.message


def test_blueprint_that_is_null_produces_no_entity() -> None:
    batch = compile_resource(resource({"blueprint": ".kind"})).map([{"id": "a"}, {"id": "b", "kind": "svc"}])
    assert batch.entities == [{"identifier": "b", "blueprint": "svc"}]
    assert batch.failures == [
        FieldFailure(0, "blueprint", "blueprint must be a non-empty string, not null: no entity is produced", "a")
    ]


def test_jq_error_in_one_field_fails_that_entity_only() -> None:
    config = resource({"properties": {"n": ".count + 1", "name": ".name"}, "relations": {"p": ".p | tostring"}})
    batch = compile_resource(config).map([{"id": "a", "count": "x", "name": "A"}, {"id": "b", "count": 1}])
    assert batch.entities == [
        {"identifier": "b", "blueprint": "svc", "properties": {"n": 2, "name": None}, "relations": {"p": "null"}}
    ]
    assert batch.failures == [
        FieldFailure(0, "properties.n", 'string ("x") and number (1) cannot be added', "a"),
    ]


def test_search_query_relations_and_identifiers_fail_each_entity_clearly() -> None:
    query = {"combinator": '"and"', "rules": [{"property": '"$identifier"', "operator": '"="', "value": ".id"}]}
    batch = compile_resource(resource({"relations": {"owner": query}})).map([{"id": "a"}, {"id": "b"}])
    assert batch.entities == []
    assert [(f.item, f.field, f.identifier) for f in batch.failures] == [
        (0, "relations.owner", "a"),
        (1, "relations.owner", "b"),
    ]
    assert "relation search queries are not supported" in batch.failures[0].message
    by_search = compile_resource(resource({"identifier": query})).map([{"id": "a"}])
    assert by_search.entities == []
    assert by_search.failures[0].field == "identifier"
    assert "identifier search queries are not supported" in by_search.failures[0].message


def test_field_program_that_does_not_compile_maps_to_null_with_a_warning() -> None:
    compiled = compile_resource(resource({"properties": {"bad": ".a | | .b", "ok": ".name"}}))
    assert compiled.map([REPOSITORY]).entities[0]["properties"] == {"bad": None, "ok": "payments-api"}
    [warning] = compiled.warnings()
    assert warning.field == "properties.bad" and "is not a valid jq program" in warning.message


# ------------------------------------------------------------------ itemsToParse

PULL_REQUEST = {
    "pullRequestId": 9,
    "repository": {"id": "r-1"},
    "reviewers": [{"uniqueName": "ann@contoso.com", "vote": 10}, {"uniqueName": "bo@contoso.com", "vote": 0}],
}


def test_items_to_parse_maps_each_element_under_item_without_the_array() -> None:
    config = resource(
        {
            "identifier": '"\\(.pullRequestId)-\\(.item.uniqueName)"',
            "properties": {"vote": ".item.vote", "repo": ".repository.id", "rest": ".reviewers"},
        },
        itemsToParse=".reviewers",
    )
    batch = compile_resource(config).map([PULL_REQUEST, {**PULL_REQUEST, "pullRequestId": 10, "reviewers": []}])
    assert batch.failures == []
    assert batch.entities == [
        {
            "identifier": "9-ann@contoso.com",
            "blueprint": "svc",
            "properties": {"vote": 10, "repo": "r-1", "rest": None},
        },
        {"identifier": "9-bo@contoso.com", "blueprint": "svc", "properties": {"vote": 0, "repo": "r-1", "rest": None}},
    ]
    assert PULL_REQUEST["reviewers"]  # the raw item is not changed


def test_items_to_parse_name_selector_and_keeping_the_array() -> None:
    config = resource(
        {"identifier": ".reviewer.uniqueName", "properties": {"count": ".reviewers | length"}},
        selector=".reviewer.vote > 0",
        itemsToParse=".reviewers",
        itemsToParseName="reviewer",
        itemsToParseTopLevelTransform=False,
    )
    batch = compile_resource(config).map([PULL_REQUEST])
    assert batch.entities == [{"identifier": "ann@contoso.com", "blueprint": "svc", "properties": {"count": 2}}]
    assert batch.filtered == 1


def test_items_to_parse_failures_name_the_item() -> None:
    config = resource({"identifier": ".item"}, itemsToParse=".reviewers")
    batch = compile_resource(config).map([{"reviewers": "ann"}, [1, 2], {"reviewers": ["x"]}, {"reviewers": 3}])
    assert batch.entities == [{"identifier": "x", "blueprint": "svc"}]
    assert [(f.item, f.field) for f in batch.failures] == [
        (0, "itemsToParse"),
        (1, "itemsToParse"),
        (3, "itemsToParse"),
    ]
    assert "must give an array, not string 'ann'" in batch.failures[0].message
    assert batch.failures[1].message == 'Cannot index array with string ("reviewers")'
    assert "not number 3" in batch.failures[2].message


def test_items_to_parse_without_a_plain_path_keeps_the_item_whole() -> None:
    config = resource(
        {"identifier": ".item", "properties": {"all": ".names | length"}}, itemsToParse="[.names[] | ascii_downcase]"
    )
    batch = compile_resource(config).map([{"names": ["A", "B"]}])
    assert batch.entities == [
        {"identifier": "a", "blueprint": "svc", "properties": {"all": 2}},
        {"identifier": "b", "blueprint": "svc", "properties": {"all": 2}},
    ]


@pytest.mark.parametrize(
    ("program", "path"),
    [
        (".reviewers", ".reviewers"),
        (".file.content.parsed.items // []", ".file.content.parsed.items"),
        ('.__includedFiles["x.json"] | fromjson | .items', '.__includedFiles["x.json"]'),
        (". as $root | .values", ".values"),
        ("(.a.b) | map(.)", ".a.b"),
        ("[.names[] | ascii_downcase]", None),
    ],
)
def test_deletion_path_is_found_as_ocean_finds_it(program: str, path: str | None) -> None:
    assert deletion_path(program) == path


def test_ocean_quotes_only_rewrites_string_delimiters() -> None:
    assert ocean_quotes(".a // ''") == '.a // ""'
    assert ocean_quotes("'x'") == '"x"'
    assert ocean_quotes('"it\'s"') == '"it\'s"'
    assert ocean_quotes(".a") == ".a"


# ------------------------------------------------------------------ the libjq path


class CountingPool(JqPool):
    """A real pool that counts its round trips; with ``failure``, one whose every round trip raises it."""

    def __init__(self, limits: JqLimits | None = None, failure: Exception | None = None) -> None:
        super().__init__(limits)
        self.calls = 0
        self.failure = failure

    def evaluate(
        self,
        programs: Sequence[str],
        inputs: Sequence[Any],
        pairs: Sequence[tuple[int, int]] | None = None,
    ) -> list[JqResult]:
        self.calls += 1
        if self.failure is not None:
            raise self.failure
        return super().evaluate(programs, inputs, pairs)


@pytest.fixture
def pool() -> Iterator[CountingPool]:
    counting = CountingPool(JqLimits(timeout_seconds=0.5, workers=1))
    yield counting
    counting.close()


def test_programs_outside_the_subset_go_to_libjq_in_one_round_trip(pool: CountingPool) -> None:
    # ``def`` is outside the compiled subset: the same fields, written so only libjq can run them.
    compiled_form = resource(
        {"title": ".name", "properties": {"readme": '.__includedFiles["README.md"]'}, "relations": {"p": ".project.id"}}
    )
    libjq_form = resource(
        {
            "identifier": "def f: .id; f",
            "title": "def f: .name; f",
            "properties": {"readme": 'def f: .__includedFiles["README.md"]; f'},
            "relations": {"p": "def f: .project.id; f"},
        },
        selector="def t: true; t",
    )
    items = [{**REPOSITORY, "id": f"r-{n}", "name": f"repo {n}", "size": n + 0.25} for n in range(50)]
    items.append({**REPOSITORY, "id": "r-x", "project": 3})
    ours = compile_resource(compiled_form, pool=pool).map(items)
    assert pool.calls == 0
    theirs = compile_resource(libjq_form, pool=pool).map(items)
    assert pool.calls == 2  # the selector's round trip, then every field's in one
    assert theirs.entities == ours.entities and len(ours.entities) == 50
    assert [(f.item, f.field, f.message) for f in theirs.failures] == [
        (50, "relations.p", 'Cannot index number with string ("id")')
    ]
    assert [(f.item, f.field, f.message) for f in ours.failures] == [
        (50, "relations.p", 'Cannot index number with string ("id")')
    ]


def test_inputs_the_closures_defer_are_answered_by_libjq(pool: CountingPool) -> None:
    config = resource({"properties": {"size": ".size | tostring", "big": ".big + 1"}})
    items = [{"id": "a", "size": 1.1, "big": 2**60}, {"id": "b", "size": 3, "big": 1}]
    batch = compile_resource(config, pool=pool).map(items)
    expected = [jq.compile("{size: (.size | tostring), big: (.big + 1)}").input_value(item).first() for item in items]
    assert [entity["properties"] for entity in batch.entities] == expected
    assert pool.calls == 1


def test_a_program_stopped_by_a_limit_fails_only_its_item(pool: CountingPool) -> None:
    config = resource(
        {"properties": {"n": "def slow: reduce range(1e9) as $i (0; . + 1); if .slow then slow else .n end"}}
    )
    items = [{"id": "a", "n": 1}, {"id": "b", "slow": True}, {"id": "c", "n": 3}]
    batch = compile_resource(config, pool=pool).map(items)
    assert [(e["identifier"], e["properties"]["n"]) for e in batch.entities] == [("a", 1), ("c", 3)]
    [failure] = batch.failures
    assert (failure.item, failure.field, failure.identifier) == (1, "properties.n", "b")
    assert "time limit" in failure.message
    assert pool.calls == 2  # the stopped round trip names the pair; the others in one more


def test_an_input_jq_cannot_read_fails_only_its_entity(pool: CountingPool) -> None:
    config = resource({"properties": {"x": ".x"}})
    batch = compile_resource(config, pool=pool).map([{"id": "a", "x": {1, 2}}, {"id": "b", "x": 2.5}])
    assert batch.entities == [{"identifier": "b", "blueprint": "svc", "properties": {"x": 2.5}}]
    [failure] = batch.failures
    assert (failure.item, failure.field, failure.identifier) == (0, "properties.x", "a")
    assert "cannot be given to jq" in failure.message


def test_no_worker_available_raises() -> None:
    unavailable = CountingPool(failure=JqUnavailable("every jq worker stayed busy"))
    with pytest.raises(JqUnavailable):
        compile_resource(resource({"title": "def f: .name; f"}), pool=unavailable).map([REPOSITORY])


# ------------------------------------------------------------------ test-mapping


def test_test_mapping_shows_entities_and_errors_per_example() -> None:
    config = resource({"properties": {"n": ".count + 1", "bad": ".a | | .b"}}, selector='.kind != "skip"')
    examples = [{"id": "a", "count": 1}, {"id": "b", "count": "x"}, {"id": "c", "kind": "skip"}]
    first, second, third = test_mapping(config, examples)
    assert first.entities == [{"identifier": "a", "blueprint": "svc", "properties": {"n": 2, "bad": None}}]
    assert first.failures == [] and first.filtered == 0
    assert second.entities == []
    assert second.failures == [FieldFailure(1, "properties.n", 'string ("x") and number (1) cannot be added', "b")]
    assert third.entities == [] and third.filtered == 1
    assert [w.field for w in first.warnings] == ["properties.bad"]
