"""Conformance table: the examples on Microsoft's "Expressions" page (compile-time subset) and the
webhook page's seed, each as expression + context -> expected value or expected error type.

Runtime-only functions (``succeeded()``, ``counter()``, ``dependencies`` ...) are out of scope for
``${{ }}`` templates and deliberately absent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from tests.support.pipelines import SEED_PAYLOAD

from kiosk.pipelines.errors import ExpressionError
from kiosk.pipelines.expressions import Version, evaluate, substitute

WEBHOOK_BODY = SEED_PAYLOAD

DEFAULT_CONTEXT: dict[str, Any] = {
    "parameters": {
        "WebHook": WEBHOOK_BODY,
        "list": ["a", "b", "c"],
        "environment": "prod",
        "image": "ubuntu-latest",
        "tags": ["x", "y"],
        "nums": [1, 2],
        "jobs": [{"name": "build"}, {"name": "deploy"}],
    },
    "variables": {
        "Build.SourceBranch": "refs/heads/main",
        "Build.Reason": "PullRequest",
        "staticVar": "my value",
        "Path": "C:\\tools;D:\\bin",
        "major": "1",
        "minor": "2",
        "configuration": "Release",
        "emptyString": "",
    },
}


@dataclass(frozen=True)
class Case:
    name: str
    expression: str
    expected: Any = None
    error: type[Exception] | None = None
    context: dict[str, Any] = field(default_factory=lambda: DEFAULT_CONTEXT)
    substitute: bool = False  # run through substitute() (text with ${{ }}) instead of evaluate()


CASES = [
    # Literals section
    Case("boolean literal, any case", "True", True),
    Case("negative decimal", "-1.2", -1.2),
    Case("string literal", "'a b c'", "a b c"),
    Case("escaped quote", "'It''s OK if they''re using contractions.'", "It's OK if they're using contractions."),
    Case("version literal", "1.2.3", Version((1, 2, 3))),
    Case("hex number", "0x10", 16),
    Case("exponent", "1e3", 1000.0),
    Case("null from dictionary miss", "variables['noSuch']", None),
    # Variables
    Case("index syntax for dotted names", "variables['Build.SourceBranch']", "refs/heads/main"),
    Case("property syntax", "variables.staticVar", "my value"),
    Case("compile-time variable in text", "echo ${{variables.staticVar}}", "echo my value", substitute=True),
    # Functions: comparison
    Case("eq on branch", "eq(variables['Build.SourceBranch'], 'refs/heads/main')", True),
    Case("eq ignores case", "eq('refs/heads/MAIN', variables['build.sourcebranch'])", True),
    Case("ne on reason", "ne(variables['Build.Reason'], 'Schedule')", True),
    Case("eq with type conversion", "eq(1, '1')", True),
    Case("ne when conversion fails", "ne(1, 'a')", True),
    Case("eq when conversion fails", "eq(1, 'a')", False),
    Case("gt numbers", "gt(5, 1)", True),
    Case("ge strings", "ge('abc', 'ABC')", True),
    Case("lt", "lt(5, 5)", False),
    Case("le", "le(5, 5)", True),
    Case("gt conversion failure raises", "gt(5, 'abc')", error=ExpressionError),
    # Functions: logical
    Case(
        "and",
        "and(eq(parameters.environment, 'prod'), startsWith(variables['Build.SourceBranch'], 'refs/heads/'))",
        True,
    ),
    Case("or", "or(eq(variables['Build.Reason'], 'Manual'), eq(variables['Build.Reason'], 'PullRequest'))", True),
    Case("not", "not(eq(1, 2))", True),
    Case("xor", "xor(True, False)", True),
    Case("and takes many arguments", "and(true, true, true, false)", False),
    # Functions: strings and collections
    Case("contains", "contains('ABCDE', 'BCD')", True),
    Case("containsValue", "containsValue(parameters.list, 'b')", True),
    Case("containsValue on object", "containsValue(parameters.WebHook.resource.message, 'hello, WORLD!')", True),
    Case("startsWith", "startsWith('ABCDE', 'AB')", True),
    Case("endsWith", "endsWith('ABCDE', 'DE')", True),
    Case("in", "in('B', 'A', 'B', 'C')", True),
    Case("notIn", "notIn('D', 'A', 'B', 'C')", True),
    Case("in reason", "in(variables['Build.Reason'], 'IndividualCI', 'BatchedCI', 'PullRequest')", True),
    Case("format", "format('{0}.{1}', variables.major, variables.minor)", "1.2"),
    Case("format escapes", "format('{{0}} -> {0}', 'x')", "{0} -> x"),
    Case("format bad index", "format('{0}.{1}', 'only')", error=ExpressionError),
    Case("coalesce default", "coalesce(variables.x, 'default')", "default"),
    Case("coalesce skips empty string", "coalesce(variables.emptyString, variables.x, 'fallback')", "fallback"),
    Case("join", "join(';', parameters.list)", "a;b;c"),
    Case("join non-array", "join(';', 'abc')", "abc"),
    Case(
        "replace",
        "replace('https://www.tinfoilsociety.com/people/', '/people/', '/')",
        "https://www.tinfoilsociety.com/",
    ),
    Case("split", "split('a,b', ',')", ["a", "b"]),
    Case("split path", "split(variables.Path, ';')", ["C:\\tools", "D:\\bin"]),
    Case("lower", "lower(variables.configuration)", "release"),
    Case("upper", "upper(variables.configuration)", "RELEASE"),
    Case("trim", "trim('  variable  ')", "variable"),
    Case("length of string", "length('fabrikam')", 8),
    Case("length of array", "length(parameters.tags)", 2),
    Case("convertToJson", "convertToJson(parameters.nums)", "[\n  1,\n  2\n]"),
    Case(
        "iif",
        "iif(eq(variables['Build.Reason'], 'PullRequest'), 'ManagedDevOpsPool', 'Azure Pipelines')",
        "ManagedDevOpsPool",
    ),
    Case("filtered array", "parameters.jobs.*.name", ["build", "deploy"]),
    Case("type casting: boolean to string", "format('{0}', true)", "True"),
    Case("type casting: string to null, '' -> Null", "eq(null, '')", True),
    Case("type casting: empty string to number", "eq(0, '')", True),
    # "Type casting" table. String to number: '' -> 0, otherwise TryParse with AllowDecimalPoint |
    # AllowLeadingSign | AllowLeadingWhite | AllowThousands | AllowTrailingWhite (invariant culture).
    Case("string to number: thousands separators", "eq(1000, '1,000')", True),
    Case("string to number: thousands and decimals", "eq(1234567.5, '1,234,567.5')", True),
    Case("string to number: leading and trailing white space", "eq(-12, ' -12 ')", True),
    Case("string to number: leading sign and decimal point", "eq(0.5, '+.5')", True),
    Case("string to number: no exponent", "eq(1000, '1e3')", False),
    Case("string to number: no hex", "eq(16, '0x10')", False),
    Case("string to number: no separator after the point", "eq(1.23, '1.2,3')", False),
    Case("string to number: white space alone is not ''", "eq(0, ' ')", False),
    Case("string to number: failure orders nothing", "gt(1, '1e3')", error=ExpressionError),
    Case("string to boolean: empty is False", "eq(false, '')", True),
    Case("string to boolean: any other string is True", "eq(true, 'false')", True),
    Case("string to null: '' only", "eq(null, 'x')", False),
    Case("string to version", "eq(1.2.3, '1.2.3')", True),
    Case("string to version needs major and minor", "eq(1.2.3, '1')", False),
    Case("boolean to number", "eq(1, true)", True),
    Case("boolean to string", "eq('False', false)", True),
    Case("boolean to version: not convertible", "eq(1.2, true)", False),
    Case("null to number", "eq(0, null)", True),
    Case("null to string", "eq('', null)", True),
    Case("null to boolean", "eq(false, null)", True),
    Case("number to boolean", "eq(true, 2)", True),
    Case("number to string: no thousands separator", "format('{0}', 1234567)", "1234567"),
    Case("number to version", "ge(1.2.3, 1.2)", True),
    Case("number to version: needs a decimal part", "ge(1.2.3, 1)", error=ExpressionError),
    Case("version to string", "format('{0}', 1.2.3.4)", "1.2.3.4"),
    Case("version to boolean", "and(1.2.3, true)", True),
    Case("version to number: not convertible", "eq(1, 1.2.3)", False),
    Case("unknown function", "frobnicate(1)", error=ExpressionError),
    Case("wrong arity", "eq(1, 2, 3)", error=ExpressionError),
    # The seed: the webhook resource example
    Case("seed: webhook title", "parameters.WebHook.resource.message.title", "Hello, world!"),
    Case(
        "seed: echo title",
        "echo ${{ parameters.WebHook.resource.message.title }}",
        "echo Hello, world!",
        substitute=True,
    ),
    Case(
        "seed: object in string -> no run queued",
        "echo ${{ parameters.WebHook.resource.message }}",
        error=ExpressionError,
        substitute=True,
    ),
    Case(
        "seed: whole-value object is inserted as a mapping",
        "${{ parameters.WebHook.resource.message }}",
        WEBHOOK_BODY["resource"]["message"],
        substitute=True,
    ),
    Case(
        "seed: object as JSON in string",
        "echo ${{ convertToJson(parameters.WebHook.resource.message) }}",
        'echo {\n  "title": "Hello, world!",\n  "subtitle": "I\'m using WebHooks!"\n}',
        substitute=True,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_conformance(case: Case) -> None:
    def run() -> Any:
        if case.substitute:
            return substitute(case.expression, case.context)
        return evaluate(case.expression, case.context)

    if case.error is not None:
        with pytest.raises(case.error):
            run()
        return
    result = run()
    assert result == case.expected
    assert type(result) is type(case.expected)


def test_seed_failure_message_says_what_the_value_was() -> None:
    with pytest.raises(ExpressionError) as info:
        substitute("echo ${{ parameters.WebHook.resource.message }}", DEFAULT_CONTEXT)
    text = str(info.value)
    assert "cannot be inserted into a string: it is an object" in text
    assert 'in expression "parameters.WebHook.resource.message"' in text
    assert info.value.column == 6
