"""Example-based tests for compile-time expansion: expressions in scalars and keys, parameter
declarations, directives, templates and their limits, runtime syntax left alone, and error
positions (file, line, column, expression)."""

from __future__ import annotations

import copy
import textwrap
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.support.pipelines import SEED_PAYLOAD, webhook_resources

from kiosk.pipelines.errors import ExpressionError, PipelineError
from kiosk.pipelines.expand import (
    MAX_NESTING,
    MAX_TEMPLATES,
    ExpansionError,
    ParameterError,
    TemplateError,
    dump_yaml,
    expand_pipeline,
)
from kiosk.pipelines.yaml_source import (
    TemplatePathError,
    YamlMap,
    YamlSeq,
    YamlSyntaxError,
    clear_parse_cache,
    dict_loader,
    directory_loader,
    parse_yaml_cached,
    resolve_path,
    to_plain,
)

WEBHOOK = webhook_resources() + "steps:\n- script: echo ${{ parameters.WebHook.resource.message.title }}\n"
PAYLOAD = SEED_PAYLOAD


def expand(text: str, files: dict[str, str] | None = None, **kwargs: Any) -> dict[str, Any]:
    return expand_pipeline(textwrap.dedent(text), load=dict_loader(files or {}), **kwargs)


def fails(text: str, kind: type[PipelineError] = PipelineError, **kwargs: Any) -> PipelineError:
    with pytest.raises(kind) as info:
        expand(text, **kwargs)
    return info.value


# ---------------------------------------------------------------- the seed: webhook payloads


def test_webhook_title_is_rendered_into_the_script() -> None:
    doc = expand(WEBHOOK, webhook_payloads={"WebHook": PAYLOAD})
    assert doc["steps"] == [{"script": "echo Hello, world!"}]
    assert doc["resources"]["webhooks"][0] == {"webhook": "WebHook", "connection": "IncomingWH"}


def test_webhook_object_in_a_string_is_an_error_naming_expression_and_line() -> None:
    text = WEBHOOK.replace("message.title", "message")
    err = fails(text, ExpressionError, webhook_payloads={"WebHook": PAYLOAD})
    assert err.file == "azure-pipelines.yml"
    assert err.line == 6
    assert err.column == 16  # where '${{' starts on that line
    assert err.expression == "parameters.WebHook.resource.message"
    assert "azure-pipelines.yml:6:16" in str(err)


def test_webhook_missing_path_renders_empty_and_absent_payload_is_null() -> None:
    assert expand(WEBHOOK, webhook_payloads={"WebHook": {}})["steps"] == [{"script": "echo "}]
    assert expand(WEBHOOK)["steps"] == [{"script": "echo "}]


def test_payload_for_an_undeclared_alias_is_an_error() -> None:
    err = fails(WEBHOOK, ParameterError, webhook_payloads={"Other": {}})
    assert "Other" in err.message


def test_whole_scalar_inserts_the_payload_object() -> None:
    text = WEBHOOK.replace(
        "- script: echo ${{ parameters.WebHook.resource.message.title }}",
        "- script: x\n  env: ${{ parameters.WebHook.resource.message }}",
    )
    doc = expand(text, webhook_payloads={"WebHook": PAYLOAD})
    assert doc["steps"][0]["env"] == PAYLOAD["resource"]["message"]


# ---------------------------------------------------------------- expressions in scalars and keys


def test_embedded_and_whole_scalar_expressions() -> None:
    doc = expand(
        """
        parameters:
        - name: n
          type: number
          default: 3
        - name: on
          type: boolean
          default: true
        variables:
          config: Release
        out:
          whole: ${{ parameters.n }}
          flag: ${{ parameters.on }}
          text: n=${{ parameters.n }} on=${{ parameters.on }}
          ${{ variables.config }}: key
          fmt: ${{ format('{0}-{1}', variables.config, parameters.n) }}
        """
    )
    assert doc["out"] == {"whole": 3, "flag": True, "text": "n=3 on=True", "Release": "key", "fmt": "Release-3"}


def test_given_variables_are_visible_and_yaml_variables_win() -> None:
    text = """
    variables:
    - name: a
      value: yaml
    - group: secrets
    out: ${{ variables.a }}-${{ variables.b }}
    """
    doc = expand(text, variables={"a": "queue", "b": "given"})
    assert doc["out"] == "yaml-given"
    assert doc["variables"] == [{"name": "a", "value": "yaml"}, {"group": "secrets"}]


def test_structure_in_key_position_is_an_error() -> None:
    err = fails(
        """
        parameters:
        - name: o
          type: object
          default: {a: 1}
        out:
          ${{ parameters.o }}: x
        """,
        ExpressionError,
    )
    assert err.line == 7


def test_unknown_name_error_has_line_and_column() -> None:
    err = fails("steps:\n- script: 'echo ${{ nope }}'\n", ExpressionError)
    assert (err.line, err.column) == (2, 17)
    assert err.expression == "nope"


def test_error_inside_literal_block_points_at_its_line() -> None:
    text = "steps:\n- script: |\n    echo one\n    echo ${{ nope }}\n"
    err = fails(text, ExpressionError)
    assert (err.line, err.column) == (4, 10)


def test_runtime_syntax_is_left_as_written() -> None:
    doc = expand(
        """
        variables:
          x: 1
        steps:
        - script: echo $(x) $(undefined)
          condition: $[ eq(variables.x, '1') ]
        """
    )
    assert doc["steps"] == [{"script": "echo $(x) $(undefined)", "condition": "$[ eq(variables.x, '1') ]"}]


def test_yaml_scalars_keep_their_types() -> None:
    doc = expand("a: 1\nb: 1.5\nc: true\nd: null\ne: '1'\nf: 2024-01-01\n")
    assert doc == {"a": 1, "b": 1.5, "c": True, "d": None, "e": "1", "f": "2024-01-01"}


# ---------------------------------------------------------------- parameters


PARAMS = """\
parameters:
- name: image
  type: string
  default: ubuntu-latest
  values: [ubuntu-latest, windows-latest]
- name: debug
  type: boolean
  default: false
- name: count
  type: number
  default: 1
- name: config
  type: object
  default: {a: [1, 2]}
- name: required
  type: string
out:
  image: ${{ parameters.image }}
  debug: ${{ parameters.debug }}
  count: ${{ parameters.count }}
  config: ${{ parameters.config }}
  required: ${{ parameters.required }}
"""


def test_parameter_defaults_and_conversions() -> None:
    doc = expand(PARAMS, parameters={"required": 5, "debug": "TRUE", "count": "12"})
    assert doc["out"] == {
        "image": "ubuntu-latest",
        "debug": True,
        "count": 12,
        "config": {"a": [1, 2]},
        "required": "5",
    }
    assert "parameters" not in doc


def test_missing_required_parameter() -> None:
    err = fails(PARAMS, ParameterError)
    assert "required" in err.message
    assert err.line == 15


@pytest.mark.parametrize(
    ("given", "line", "text"),
    [
        ({"image": "macos-latest"}, 2, "not one of"),
        ({"debug": "yes"}, 6, "boolean"),
        ({"count": "many"}, 9, "number"),
        ({"count": True}, 9, "number"),
        ({"image": ["a"]}, 2, "string"),
    ],
)
def test_bad_parameter_values(given: dict[str, Any], line: int, text: str) -> None:
    err = fails(PARAMS, ParameterError, parameters={"required": "x", **given})
    assert err.line == line
    assert text in err.message


def test_unknown_given_parameter() -> None:
    err = fails(PARAMS, ParameterError, parameters={"required": "x", "bogus": 1})
    assert "bogus" in err.message
    assert err.line == 1


@pytest.mark.parametrize(
    ("type_name", "value", "ok"),
    [
        ("step", {"script": "a"}, True),
        ("step", ["a"], False),
        ("stepList", [{"script": "a"}], True),
        ("stepList", [{"script": "a"}, "b"], False),
        ("job", {"job": "a"}, True),
        ("jobList", [{"job": "a"}], True),
        ("jobList", {"job": "a"}, False),
        ("stage", {"stage": "s"}, True),
        ("stageList", [{"stage": "s"}], True),
        ("stageList", "s", False),
    ],
)
def test_structured_parameter_types(type_name: str, value: Any, ok: bool) -> None:
    text = f"parameters:\n- name: p\n  type: {type_name}\nout: ${{{{ parameters.p }}}}\n"
    if ok:
        assert expand(text, parameters={"p": value})["out"] == value
    else:
        fails(text, ParameterError, parameters={"p": value})


def test_unsupported_parameter_type_is_reported() -> None:
    err = fails("parameters:\n- name: p\n  type: secureFile\n  default: x\n", ParameterError)
    assert err.message.startswith("not supported")


def test_parameter_colliding_with_webhook_alias() -> None:
    text = "parameters:\n- name: WebHook\n  default: x\n" + WEBHOOK
    fails(text, ParameterError)


# ---------------------------------------------------------------- directives


def test_if_elseif_else_in_mapping() -> None:
    text = """
    parameters:
    - name: v
      type: string
    out:
      ${{ if eq(parameters.v, 'a') }}:
        pick: a
      ${{ elseif eq(parameters.v, 'b') }}:
        pick: b
      ${{ else }}:
        pick: other
      keep: 1
    """
    assert expand(text, parameters={"v": "A"})["out"] == {"pick": "a", "keep": 1}
    assert expand(text, parameters={"v": "b"})["out"] == {"pick": "b", "keep": 1}
    assert expand(text, parameters={"v": "z"})["out"] == {"pick": "other", "keep": 1}


def test_if_chain_in_sequence_flattens() -> None:
    text = """
    parameters:
    - name: on
      type: boolean
    steps:
    - script: first
    - ${{ if parameters.on }}:
      - script: on1
      - script: on2
    - ${{ else }}:
        script: off
    - script: last
    """
    on = expand(text, parameters={"on": True})["steps"]
    assert on == [{"script": "first"}, {"script": "on1"}, {"script": "on2"}, {"script": "last"}]
    off = expand(text, parameters={"on": False})["steps"]
    assert off == [{"script": "first"}, {"script": "off"}, {"script": "last"}]


@pytest.mark.parametrize("directive", ["${{ else }}", "${{ elseif true }}"])
def test_else_without_if(directive: str) -> None:
    err = fails(f"steps:\n- script: a\n- {directive}:\n  - script: b\n", ExpansionError)
    assert err.line == 3
    err = fails(f"out:\n  a: 1\n  {directive}:\n    b: 2\n", ExpansionError)
    assert err.line == 3


def test_if_chain_is_broken_by_an_ordinary_item() -> None:
    fails("steps:\n- ${{ if false }}:\n  - a\n- b\n- ${{ else }}:\n  - c\n", ExpansionError)


def test_each_over_list_and_mapping() -> None:
    text = """
    parameters:
    - name: names
      type: object
      default: [x, y]
    - name: env
      type: object
      default: {A: 1, B: 2}
    steps:
    - ${{ each n in parameters.names }}:
      - script: echo ${{ n }}
    - ${{ each pair in parameters.env }}:
      - script: set ${{ pair.key }}=${{ pair.value }}
    - ${{ each pair in parameters.env }}:
        ${{ pair.key }}: ${{ pair.value }}
    vars:
      ${{ each pair in parameters.env }}:
        ${{ pair.key }}_copy: ${{ pair.value }}
    """
    doc = expand(text)
    assert doc["steps"] == [
        {"script": "echo x"},
        {"script": "echo y"},
        {"script": "set A=1"},
        {"script": "set B=2"},
        {"A": 1, "B": 2},
    ]
    assert doc["vars"] == {"A_copy": 1, "B_copy": 2}


def test_each_over_a_scalar_is_an_error() -> None:
    err = fails("steps:\n- ${{ each x in 'abc' }}:\n  - a\n", ExpansionError)
    assert err.line == 2
    assert err.expression == "each x in 'abc'"


def test_insert_merges_mapping() -> None:
    text = """
    parameters:
    - name: extra
      type: object
      default: {b: 2, c: 3}
    out:
      a: 1
      ${{ insert }}: ${{ parameters.extra }}
    """
    assert expand(text)["out"] == {"a": 1, "b": 2, "c": 3}


def test_insert_clash_and_insert_in_sequence_are_errors() -> None:
    clash = "parameters:\n- name: e\n  default: {a: 2}\nout:\n  a: 1\n  ${{ insert }}: ${{ parameters.e }}\n"
    assert fails(clash, ExpansionError).line == 6
    assert fails("out:\n- ${{ insert }}:\n    a: 1\n", ExpansionError).line == 2


def test_expression_item_producing_a_list_is_flattened() -> None:
    text = """
    parameters:
    - name: steps
      type: stepList
      default: [{script: a}, {script: b}]
    steps:
    - ${{ parameters.steps }}
    - script: c
    literal:
    - [1, 2]
    """
    doc = expand(text)
    assert doc["steps"] == [{"script": "a"}, {"script": "b"}, {"script": "c"}]
    assert doc["literal"] == [[1, 2]]


def test_if_condition_error_is_located() -> None:
    err = fails("out:\n  ${{ if nope }}:\n    a: 1\n", ExpressionError)
    assert err.line == 2
    assert err.expression == "if nope"


def test_parenthesised_conditions() -> None:
    text = "out:\n  ${{ if(eq(1, 2)) }}:\n    a: 1\n  ${{ elseif (eq('(', '(')) }}:\n    b: 1\n"
    assert expand(text)["out"] == {"b": 1}


def test_template_reference_inside_a_conditional_item() -> None:
    files = {"t.yml": STEPS_TEMPLATE}
    text = """
    parameters:
    - name: on
      type: boolean
    steps:
    - ${{ if parameters.on }}:
        template: t.yml
        parameters:
          who: cond
    - ${{ if parameters.on }}:
      - template: t.yml
    """
    doc = expand(text, files, parameters={"on": True})
    assert doc["steps"] == [{"script": "echo hello cond"}, {"script": "echo hello world"}]
    assert expand(text, files, parameters={"on": False})["steps"] == []


def test_malformed_directive() -> None:
    err = fails("out:\n  ${{ each x }}:\n    a: 1\n", ExpansionError)
    assert err.line == 2


# ---------------------------------------------------------------- templates

STEPS_TEMPLATE = """\
parameters:
- name: who
  type: string
  default: world
steps:
- script: echo hello ${{ parameters.who }}
"""


def test_steps_template_with_parameters_and_relative_paths() -> None:
    files = {
        "ci/steps.yml": STEPS_TEMPLATE,
        "ci/inner/more.yml": "steps:\n- template: ../steps.yml\n  parameters: {who: inner}\n",
    }
    doc = expand_pipeline(
        "steps:\n- template: steps.yml\n  parameters:\n    who: ${{ variables.who }}\n"
        "- template: inner/more.yml\n- template: /ci/steps.yml\n",
        file="ci/azure-pipelines.yml",
        variables={"who": "kiosk"},
        load=dict_loader(files),
    )
    assert doc["steps"] == [
        {"script": "echo hello kiosk"},
        {"script": "echo hello inner"},
        {"script": "echo hello world"},
    ]


def test_jobs_stages_and_variables_templates() -> None:
    files = {
        "jobs.yml": "jobs:\n- job: J\n  steps:\n  - template: steps.yml\n",
        "steps.yml": STEPS_TEMPLATE,
        "stages.yml": "stages:\n- stage: S\n  jobs:\n  - template: jobs.yml\n",
        "vars.yml": "variables:\n  a: 1\n",
    }
    doc = expand(
        "variables:\n- template: vars.yml\n- name: b\n  value: ${{ variables.a }}\n"
        "out: ${{ variables.a }}\nstages:\n- template: stages.yml\n",
        files,
    )
    # Issue 12: as in Azure, an entry sees the entries above it in its block (the template's too).
    assert doc["variables"] == [{"name": "a", "value": 1}, {"name": "b", "value": 1}]
    assert doc["out"] == 1
    assert doc["stages"] == [{"stage": "S", "jobs": [{"job": "J", "steps": [{"script": "echo hello world"}]}]}]


def test_template_errors_are_located_in_the_template_file() -> None:
    files = {"t.yml": "steps:\n- script: ${{ nope }}\n"}
    err = fails("steps:\n- script: a\n- template: t.yml\n", ExpressionError, files=files)
    assert (err.file, err.line) == ("t.yml", 2)


def test_template_parameter_errors_point_at_the_reference() -> None:
    files = {"t.yml": STEPS_TEMPLATE}
    err = fails("steps:\n- template: t.yml\n  parameters: {bogus: 1}\n", ParameterError, files=files)
    assert (err.file, err.line) == ("azure-pipelines.yml", 2)


def test_template_missing_body_and_missing_file() -> None:
    files = {"t.yml": "jobs: []\n"}
    assert "no 'steps'" in fails("steps:\n- template: t.yml\n", TemplateError, files=files).message
    err = fails("steps:\n- template: missing.yml\n", TemplatePathError)
    assert err.line == 2


def test_template_path_escaping_root_or_other_repo() -> None:
    with pytest.raises(TemplatePathError):
        resolve_path("a.yml", "../x.yml")
    with pytest.raises(TemplatePathError):
        resolve_path("a/b.yml", "../../x.yml")
    with pytest.raises(TemplatePathError, match="not supported"):
        resolve_path("a.yml", "x.yml@templates")
    assert resolve_path("a/b.yml", "../c/d.yml") == "c/d.yml"


def test_directory_loader(tmp_path: Path) -> None:
    (tmp_path / "t.yml").write_text(STEPS_TEMPLATE, encoding="utf-8")
    load = directory_loader(tmp_path)
    assert "steps" in load("t.yml")
    with pytest.raises(TemplatePathError):
        load("../outside.yml")
    with pytest.raises(TemplatePathError):
        load("absent.yml")
    doc = expand_pipeline("steps:\n- template: t.yml\n", load=load)
    assert doc["steps"] == [{"script": "echo hello world"}]


def test_extends_keeps_pipeline_identity() -> None:
    files = {
        "base.yml": (
            "parameters:\n- name: extra\n  type: stepList\n  default: []\n"
            "trigger: none\npool: {vmImage: ubuntu-latest}\n"
            "steps:\n- script: setup\n- ${{ parameters.extra }}\n"
        )
    }
    doc = expand(
        """
        name: my-run
        trigger: [main]
        resources:
          webhooks:
          - webhook: Hook
            connection: C
        extends:
          template: base.yml
          parameters:
            extra:
            - script: echo ${{ parameters.Hook.x }}
        """,
        files,
        webhook_payloads={"Hook": {"x": "payload"}},
    )
    assert doc["name"] == "my-run"
    assert doc["trigger"] == ["main"]
    assert doc["resources"]["webhooks"][0]["webhook"] == "Hook"
    assert doc["pool"] == {"vmImage": "ubuntu-latest"}
    assert doc["steps"] == [{"script": "setup"}, {"script": "echo payload"}]
    assert "extends" not in doc


LIST_BASE = """\
parameters:
- name: buildSteps
  type: stepList
  default: []
steps:
- script: before
- ${{ each step in parameters.buildSteps }}:
  - ${{ if ne(step.script, 'forbidden') }}:
    - ${{ step }}
- script: after
"""


def test_template_references_in_a_step_list_parameter_are_inlined_relative_to_their_writer() -> None:
    files = {
        "ci/base.yml": LIST_BASE,
        "ci/app/build.yml": "parameters:\n- name: who\n  default: x\nsteps:\n- script: build ${{ parameters.who }}\n"
        "- script: forbidden\n",
        "ci/build.yml": "steps:\n- script: the wrong file\n",  # next to the template, not the writer
    }
    text = (
        "extends:\n  template: ../base.yml\n  parameters:\n    buildSteps:\n"
        "    - template: build.yml\n      parameters:\n        who: ${{ variables.who }}\n    - script: own\n"
    )
    doc = expand_pipeline(text, file="ci/app/azure-pipelines.yml", variables={"who": "me"}, load=dict_loader(files))
    # The extends template's check saw the template's steps: 'forbidden' is filtered out.
    assert doc["steps"] == [{"script": "before"}, {"script": "build me"}, {"script": "own"}, {"script": "after"}]


def test_template_references_in_job_and_stage_list_parameters() -> None:
    files = {
        "stages.yml": "parameters:\n- name: userStages\n  type: stageList\nstages: ${{ parameters.userStages }}\n",
        "jobs.yml": "parameters:\n- name: userJobs\n  type: jobList\n"
        "stages:\n- stage: S\n  jobs: ${{ parameters.userJobs }}\n",
        "one-stage.yml": "stages:\n- stage: FromTemplate\n",
        "one-job.yml": "jobs:\n- job: FromTemplate\n",
        # a template handing its own jobList parameter on: inlined once, by the first file
        "middle.yml": "parameters:\n- name: userJobs\n  type: jobList\nstages:\n"
        "- template: jobs.yml\n  parameters:\n    userJobs: ${{ parameters.userJobs }}\n",
    }
    stages = expand(
        "stages:\n- template: stages.yml\n  parameters:\n    userStages:\n    - template: one-stage.yml\n", files
    )
    assert stages["stages"] == [{"stage": "FromTemplate"}]
    jobs = expand(
        "stages:\n- template: middle.yml\n  parameters:\n    userJobs:\n    - template: one-job.yml\n    - job: Own\n",
        files,
    )
    assert jobs["stages"] == [{"stage": "S", "jobs": [{"job": "FromTemplate"}, {"job": "Own"}]}]


def test_object_parameters_are_passed_as_written() -> None:
    files = {"t.yml": "parameters:\n- name: o\n  type: object\nsteps:\n- script: x\n  env: ${{ parameters.o }}\n"}
    doc = expand("steps:\n- template: t.yml\n  parameters:\n    o:\n    - template: nope.yml\n", files)
    assert doc["steps"] == [{"script": "x", "env": [{"template": "nope.yml"}]}]


def test_a_missing_template_in_a_list_parameter_points_at_the_reference() -> None:
    err = fails(
        "x: 1\nextends:\n  template: base.yml\n  parameters:\n    buildSteps:\n    - template: missing.yml\n",
        TemplatePathError,
        files={"base.yml": LIST_BASE},
    )
    assert (err.file, err.line) == ("azure-pipelines.yml", 2)
    assert "missing.yml" in err.message


def test_template_limits() -> None:
    files = {"self.yml": "steps:\n- template: self.yml\n"}
    err = fails("steps:\n- template: self.yml\n", TemplateError, files=files)
    assert str(MAX_NESTING) in err.message
    many = {f"t{i}.yml": "steps:\n- script: x\n" for i in range(MAX_TEMPLATES + 1)}
    text = "steps:\n" + "".join(f"- template: t{i}.yml\n" for i in range(MAX_TEMPLATES + 1))
    err = fails(text, TemplateError, files=many)
    assert str(MAX_TEMPLATES) in err.message
    assert err.line == MAX_TEMPLATES + 2


def test_size_limit() -> None:
    big = "x: '" + "a" * (6 * 1024 * 1024) + "'\nsteps: []\n"
    err = fails("steps:\n- template: big.yml\n- template: big.yml\n", PipelineError, files={"big.yml": big})
    assert "MB" in err.message


# ---------------------------------------------------------------- YAML problems and output


def test_yaml_syntax_error_has_a_line() -> None:
    err = fails("steps:\n- script: a\n  bad: [\n", YamlSyntaxError)
    assert err.line is not None


def test_duplicate_keys_are_rejected() -> None:
    assert fails("a: 1\na: 2\n", YamlSyntaxError).line == 2


def test_merge_key_errors_are_located() -> None:
    err = fails("base: &b 5\nsteps:\n- <<: *b\n  script: x\n", YamlSyntaxError)
    assert (err.line, err.column) == (1, 7)


def test_error_in_a_top_level_variables_expression_is_located() -> None:
    err = fails("x: 1\nvariables: ${{ nope }}\n", ExpressionError)
    assert (err.line, err.column) == (2, 12)


def test_non_mapping_document_is_rejected() -> None:
    fails("- a\n- b\n", ExpansionError)


def test_dump_yaml_is_readable_and_round_trips() -> None:
    doc = {"steps": [{"script": "line1\nline2\n", "displayName": "x"}], "n": 1, "b": True}
    text = dump_yaml(doc)
    assert "script: |" in text
    assert expand_pipeline(text) == doc


# ---------------------------------------------------------------- the parse cache and sharing

CACHED = """\
parameters:
- name: items
  type: object
  default: [a, b]
resources:
  webhooks:
  - webhook: WebHook
    connection: C
variables:
  v: 1
steps:
- ${{ each item in parameters.items }}:
  - script: echo ${{ item }} ${{ parameters.WebHook.title }}
- template: t.yml
  parameters:
    payload: ${{ parameters.WebHook }}
- script: |
    whole ${{ variables.v }}
  env: ${{ parameters.WebHook }}
"""
CACHED_TEMPLATE = (
    "parameters:\n- name: payload\n  type: object\nsteps:\n- script: x\n  env: ${{ parameters.payload }}\n"
)


def _snapshot(node: Any) -> Any:
    """Everything a tree holds: values, types and every recorded position."""
    if isinstance(node, YamlMap):
        return ("map", node.position, [(k, node.locations[k], _snapshot(v)) for k, v in node.items()])
    if isinstance(node, YamlSeq):
        return ("seq", node.position, [(p, _snapshot(v)) for p, v in zip(node.locations, node, strict=True)])
    return (type(node).__name__, node)


def test_expansion_through_the_cache_is_repeatable_and_leaves_the_tree_unchanged() -> None:
    clear_parse_cache()
    files = {"t.yml": CACHED_TEMPLATE}
    payloads = {"WebHook": {"title": "hi", "list": [1, {"deep": True}]}}
    first = expand(CACHED, files, webhook_payloads=payloads)
    tree = parse_yaml_cached(CACHED, "azure-pipelines.yml")
    template = parse_yaml_cached(CACHED_TEMPLATE, "t.yml")
    before = (_snapshot(tree), _snapshot(template))
    second = expand(CACHED, files, webhook_payloads=payloads)
    assert parse_yaml_cached(CACHED, "azure-pipelines.yml") is tree  # the second run used the cache
    assert second == first
    assert (_snapshot(tree), _snapshot(template)) == before
    assert first["steps"][0] == {"script": "echo a hi"}
    assert first["steps"][2] == {"script": "x", "env": payloads["WebHook"]}


def test_the_output_shares_nothing_with_the_tree_or_the_payloads() -> None:
    clear_parse_cache()
    files = {"t.yml": CACHED_TEMPLATE}
    payloads = {"WebHook": {"title": "hi", "list": [1, {"deep": True}]}}
    original = copy.deepcopy(payloads)
    first = expand(CACHED, files, webhook_payloads=payloads)
    expected = copy.deepcopy(first)
    for step in first["steps"]:  # a caller editing its document (the emulator skips stages, ...)
        for value in step.values():
            if isinstance(value, dict):
                value["list"].append("changed")
                value["list"][1]["deep"] = "changed"
                value["new"] = 1
        step["script"] = "changed"
    first["variables"]["v"] = "changed"
    assert payloads == original
    assert expand(CACHED, files, webhook_payloads=payloads) == expected
    assert to_plain(parse_yaml_cached(CACHED, "azure-pipelines.yml"))["variables"] == {"v": 1}


# ---------------------------------------------------------------- property: determinism

SCALARS = st.one_of(st.booleans(), st.integers(-1000, 1000), st.text(max_size=10))

PROPERTY_DOC = """\
parameters:
- name: items
  type: object
- name: flag
  type: boolean
- name: label
  type: string
steps:
- ${{ each item in parameters.items }}:
  - script: echo ${{ convertToJson(item) }}
- ${{ if parameters.flag }}:
  - script: ${{ parameters.label }}
- ${{ else }}:
  - script: other ${{ length(parameters.label) }}
"""


@settings(max_examples=40, deadline=None)
@given(items=st.lists(SCALARS, max_size=4), flag=st.booleans(), label=st.text(max_size=12))
def test_expansion_is_deterministic(items: list[Any], flag: bool, label: str) -> None:
    params = {"items": items, "flag": flag, "label": label}
    first = expand_pipeline(PROPERTY_DOC, parameters=params, load=dict_loader({}))
    second = expand_pipeline(PROPERTY_DOC, parameters=params, load=dict_loader({}))
    assert first == second
    assert dump_yaml(first) == dump_yaml(second)
    assert len(first["steps"]) == len(items) + 1


def test_payload_text_is_data_never_re_expanded() -> None:
    payload = {"resource": {"message": {"title": "${{ variables.secret }} $(secret)"}}}
    doc = expand(WEBHOOK, webhook_payloads={"WebHook": payload}, variables={"secret": "s3cr3t"})
    assert doc["steps"] == [{"script": "echo ${{ variables.secret }} $(secret)"}]
