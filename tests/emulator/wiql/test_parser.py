"""The WIQL parser: the clauses people write become the AST; anything else is a syntax error at a named token."""

from __future__ import annotations

import pytest

from kiosk.emulator.wiql import MAX_QUERY_LENGTH, WiqlQueryError, WiqlSyntaxError, parse_wiql
from kiosk.emulator.wiql.lexer import tokenize
from kiosk.emulator.wiql.nodes import And, Comparison, FieldRef, Literal, Macro, Not, Or, OrderBy


def where(condition: str) -> object:
    return parse_wiql(f"SELECT [System.Id] FROM WorkItems WHERE {condition}").where


def at(text: str, fragment: str) -> int:
    """The 1-based position of ``fragment`` in ``text`` (the end of the text for '')."""
    return text.index(fragment) + 1 if fragment else len(text) + 1


def test_a_full_flat_query() -> None:
    text = (
        "select [System.Id], [System.Title], State from workitems "
        "where [System.TeamProject] = @project and [System.State] <> 'Closed' "
        "order by [Microsoft.VSTS.Common.Priority] desc, [System.Id] asof '2026-01-02T00:00:00Z'"
    )
    query = parse_wiql(text)
    assert [c.name for c in query.columns] == ["System.Id", "System.Title", "State"]
    assert query.source == "workitems" and query.as_of == "2026-01-02T00:00:00Z" and query.mode == ()
    assert query.where == And(
        (
            Comparison(
                FieldRef("System.TeamProject", None, at(text, "[System.TeamProject]")),
                "=",
                (Macro("PROJECT", 0, at(text, "@project")),),
            ),
            Comparison(
                FieldRef("System.State", None, at(text, "[System.State]")),
                "<>",
                (Literal("Closed", at(text, "'Closed'")),),
            ),
        )
    )
    assert [(o.field.name, o.descending) for o in query.order_by] == [
        ("Microsoft.VSTS.Common.Priority", True),
        ("System.Id", False),
    ]
    assert isinstance(query.order_by[0], OrderBy)


@pytest.mark.parametrize(
    ("text", "operator", "values"),
    [
        ("[A] = 'x'", "=", ("x",)),
        ("[A] != 3", "<>", (3,)),
        ("[A] >= -2.5", ">=", (-2.5,)),
        ("[A] IN ('a', \"b\", 3)", "in", ("a", "b", 3)),
        ("[A] NOT IN ('a')", "not in", ("a",)),
        ("[A] CONTAINS 'it''s'", "contains", ("it's",)),
        ("[A] NOT CONTAINS 'x'", "not contains", ("x",)),
        ("[A] CONTAINS WORDS 'x y'", "contains words", ("x y",)),
        ("[A] NOT CONTAINS WORDS 'x'", "not contains words", ("x",)),
        ("[A] UNDER 'P\\Web'", "under", ("P\\Web",)),
        ("[A] NOT UNDER 'P'", "not under", ("P",)),
        ("[A] IS EMPTY", "is empty", ()),
        ("[A] IS NOT EMPTY", "is not empty", ()),
        ("[A] EVER 'Active'", "ever", ("Active",)),
        ("[A] WAS EVER 'Active'", "ever", ("Active",)),
        ("[A] NOT EVER 'Active'", "not ever", ("Active",)),
    ],
)
def test_every_operator(text: str, operator: str, values: tuple[object, ...]) -> None:
    condition = where(text)
    assert isinstance(condition, Comparison)
    assert condition.operator == operator
    assert tuple(v.value for v in condition.values if isinstance(v, Literal)) == values


def test_macros_with_offsets_and_field_comparisons() -> None:
    text = "[System.ChangedDate] >= @Today - 7 AND [A] < @StartOfMonth + 1 AND [B] = [System.CreatedBy]"
    condition = where(text)
    assert isinstance(condition, And)
    first, second, third = condition.parts
    assert isinstance(first, Comparison) and first.values[0] == Macro("TODAY", -7, first.values[0].position)
    assert isinstance(second, Comparison) and isinstance(second.values[0], Macro) and second.values[0].offset == 1
    assert isinstance(third, Comparison) and third.values[0] == FieldRef(
        "System.CreatedBy", None, len("SELECT [System.Id] FROM WorkItems WHERE ") + at(text, "[System.CreatedBy]")
    )


def test_precedence_not_and_or_parentheses() -> None:
    condition = where("[A] = 1 OR [B] = 2 AND NOT [C] = 3")
    assert isinstance(condition, Or)
    left, right = condition.parts
    assert isinstance(left, Comparison) and isinstance(right, And)
    assert isinstance(right.parts[1], Not)
    grouped = where("([A] = 1 OR [B] = 2) AND [C] = 3")
    assert isinstance(grouped, And) and isinstance(grouped.parts[0], Or)


def test_link_queries_with_prefixes_and_mode() -> None:
    query = parse_wiql(
        "SELECT [System.Id] FROM WorkItemLinks WHERE ([Source].[System.WorkItemType] = 'Epic') "
        "AND ([System.Links.LinkType] = 'System.LinkTypes.Hierarchy-Forward') "
        "AND ([Target].[System.State] <> 'Removed') ORDER BY [System.Id] MODE (Recursive, ReturnMatchingChildren)"
    )
    assert query.source == "workitemlinks" and query.mode == ("recursive", "returnmatchingchildren")
    assert isinstance(query.where, And)
    prefixes = [part.field.prefix for part in query.where.parts if isinstance(part, Comparison)]
    assert prefixes == ["source", None, "target"]


@pytest.mark.parametrize(
    ("text", "token", "position"),
    [
        ("SELEC [System.Id] FROM WorkItems", "SELEC", 1),
        ("SELECT [System.Id] WorkItems", "WorkItems", 20),
        ("SELECT [System.Id] FROM Bugs", "Bugs", 25),
        ("SELECT [System.Id] FROM WorkItems WHERE [A] = ", "", 47),
        ("SELECT [System.Id] FROM WorkItems WHERE [A] == 1", "=", 46),
        ("SELECT [System.Id] FROM WorkItems WHERE ([A] = 1", "", 49),
        ("SELECT [System.Id] FROM WorkItems WHERE [A] LIKE 'x'", "LIKE", 45),
        ("SELECT [System.Id] FROM WorkItems WHERE [A] IN GROUP 'x'", "GROUP", 48),
        ("SELECT [System.Id] FROM WorkItems ORDER BY [A] ORDER BY [B]", "ORDER", 48),
        ("SELECT [System.Id] FROM WorkItems MODE (Recursive)", "MODE", 35),
        ("SELECT [System.Id] FROM WorkItems extra", "extra", 35),
        ("SELECT [System.Id] FROM WorkItems WHERE [A] = @Today - x", "x", 56),
    ],
)
def test_syntax_errors_point_at_the_token(text: str, token: str, position: int) -> None:
    expected = text.rindex(token) + 1 if token else len(text) + 1
    assert position == expected  # the table says where the token is; this keeps it honest
    with pytest.raises(WiqlSyntaxError) as caught:
        parse_wiql(text)
    assert (caught.value.token, caught.value.position) == (token, position)
    assert f"at position {position}" in caught.value.message
    assert f"«{token or 'end of query'}»" in caught.value.message


@pytest.mark.parametrize("text", ["SELECT [System.Id FROM WorkItems", "SELECT 'open FROM WorkItems", "SELECT # FROM x"])
def test_lexical_errors(text: str) -> None:
    with pytest.raises(WiqlSyntaxError):
        tokenize(text)


def test_query_length_limit() -> None:
    text = "SELECT [System.Id] FROM WorkItems WHERE [System.Title] = '" + "x" * MAX_QUERY_LENGTH + "'"
    with pytest.raises(WiqlQueryError, match="at most 32768 characters"):
        parse_wiql(text)
