"""Run-time variables: case-insensitive scoping, ``$(name)`` macros, environment names, YAML
``variables:`` sections and secret masking."""

from __future__ import annotations

from typing import Any

import pytest

from kiosk.pipelines.errors import PipelineError
from kiosk.pipelines.variables import (
    SecretMasker,
    Variable,
    VariableDefinition,
    VariableSet,
    environment_name,
    is_system_name,
    read_variables,
    yaml_scalar_text,
)


def test_names_are_case_insensitive_and_keep_their_first_spelling() -> None:
    variables = VariableSet({"Build.Reason": Variable("Manual")})
    variables.set("build.reason", Variable("ResourceTrigger"))
    assert variables.get("BUILD.REASON") == Variable("ResourceTrigger")
    assert [name for name, _ in variables] == ["Build.Reason"]
    assert "build.REASON" in variables and "other" not in variables


def test_copies_are_independent() -> None:
    parent = VariableSet({"a": Variable("1")})
    child = parent.copy()
    child.set("a", Variable("2"))
    child.set("b", Variable("3"), readonly=True)
    assert parent.get("a") == Variable("1") and "b" not in parent
    assert child.is_readonly("B") and not parent.is_readonly("b")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("echo $(name)", "echo kiosk"),
        ("$(NAME)$(name)", "kioskkiosk"),
        ("echo $(missing) $(name)", "echo $(missing) kiosk"),
        ("echo $(date +%s)", "echo $(date +%s)"),
        ("echo $(echo $(name))", "echo $(echo kiosk)"),
        ("$(greeting)", "hello kiosk"),
        ("$(a) $(b)", "$(a) $(b)"),  # a cycle comes back to where it started: as written
        ("unterminated $(name", "unterminated $(name"),
        ("no macros", "no macros"),
    ],
)
def test_macro_expansion(text: str, expected: str) -> None:
    variables = VariableSet(
        {
            "name": Variable("kiosk"),
            "greeting": Variable("hello $(name)"),
            "a": Variable("$(b)"),
            "b": Variable("$(a)"),
        }
    )
    assert variables.expand(text) == expected


def test_environment_maps_non_secret_variables_only() -> None:
    variables = VariableSet(
        {
            "Build.BuildId": Variable("42"),
            "my var.x": Variable("$(Build.BuildId)-x"),
            "token": Variable("hidden", secret=True),
        }
    )
    assert variables.environment() == {"BUILD_BUILDID": "42", "MY_VAR_X": "42-x"}
    assert variables.secrets() == ["hidden"]
    assert variables.values()["token"] == "hidden"  # conditions may read secrets


def test_environment_name_and_system_names() -> None:
    assert environment_name("Build.BuildId") == "BUILD_BUILDID"
    assert environment_name("my.var") == "MY_VAR"
    assert is_system_name("build.reason") and is_system_name("Resources.TriggeringAlias")
    assert not is_system_name("builder") and not is_system_name("my.build.var")


def test_read_variables_in_both_forms() -> None:
    assert read_variables({"a": 1, "b": True, "c": None}, "pipeline") == (
        [VariableDefinition("a", "1"), VariableDefinition("b", "true"), VariableDefinition("c", "")],
        [],
    )
    definitions, warnings = read_variables(
        [{"name": "x", "value": "1", "readonly": True}, {"group": "secrets"}], "stage S"
    )
    assert definitions == [VariableDefinition("x", "1", readonly=True)]
    assert warnings == ["Variable group 'secrets' is not available in the emulator; its variables are not defined."]
    assert read_variables(None, "job J") == ([], [])


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ("text", "must be a mapping or a list"),
        (["x"], "must be a mapping"),
        ([{"value": 1}], "needs 'name' and 'value'"),
        ([{"template": "vars.yml"}], "was not expanded"),
        ({"a": [1]}, "variable 'a': expected a text value, found a list"),
    ],
)
def test_read_variables_rejects(section: Any, message: str) -> None:
    with pytest.raises(PipelineError, match=message):
        read_variables(section, "pipeline")


def test_yaml_scalar_text() -> None:
    assert [yaml_scalar_text(v) for v in (None, False, 3, 1.5, "x")] == ["", "false", "3", "1.5", "x"]


def test_masker_masks_longest_values_first() -> None:
    masker = SecretMasker()
    masker.add("abc")
    masker.add("abcdef")
    masker.add("")  # ignored
    assert masker.mask("abcdef and abc and ab") == "*** and *** and ab"
    assert masker.mask("") == ""


def test_masker_masks_each_line_of_a_multi_line_secret() -> None:
    masker = SecretMasker()
    masker.add("first line\r\nsecond line")
    assert masker.mask("x first line y") == "x *** y"
    assert masker.mask("second line") == "***"
