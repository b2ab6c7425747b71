"""The pure rules behind the work, wiki and environment routes: time frames, paths, page trees, name filters."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

from kiosk.emulator.org.model import ClassificationNode, Project, Wiki, WikiPage
from kiosk.emulator.routes.environments import name_matches
from kiosk.emulator.routes.query_params import enum_pattern
from kiosk.emulator.shapes_wiki import child_pages, page_tree
from kiosk.emulator.shapes_work import iteration_path, time_frame


def sprint(start: date, finish: date) -> ClassificationNode:
    return ClassificationNode(
        7,
        "0b1e6b0e-5a49-4b8f-9b3c-0c1b7c3a2f10",
        "Sprint 3",
        "iteration",
        "\\Old Name\\Iteration\\Sprint 3",
        start_date=datetime(start.year, start.month, start.day, tzinfo=UTC),
        finish_date=datetime(finish.year, finish.month, finish.day, tzinfo=UTC),
    )


def test_time_frame_counts_the_first_and_the_last_day_as_current() -> None:
    node = sprint(date(2026, 3, 2), date(2026, 3, 13))
    assert time_frame(node, date(2026, 3, 1)) == "future"
    assert time_frame(node, date(2026, 3, 2)) == "current"
    assert time_frame(node, date(2026, 3, 13)) == "current"
    assert time_frame(node, date(2026, 3, 14)) == "past"
    undated = ClassificationNode(8, "x", "Backlog", "iteration", "\\P\\Iteration\\Backlog")
    assert time_frame(undated, date(2026, 3, 14)) == "future"


def test_iteration_path_uses_the_projects_current_name_without_the_structure_segment() -> None:
    project = Project("p", "Nouveau Nom", "", "wellFormed", "private", 1, datetime(2026, 1, 1, tzinfo=UTC))
    assert iteration_path(project, sprint(date(2026, 3, 2), date(2026, 3, 13))) == "Nouveau Nom\\Sprint 3"


def test_page_tree_lists_parents_before_children_in_sibling_order() -> None:
    wiki = Wiki("w", "P.wiki", "projectWiki", "p", "r")
    for page_id, path, order in ((1, "/B", 1), (2, "/B/Two", 1), (3, "/A", 0), (4, "/B/One", 0), (5, "/B/One/x", 0)):
        wiki.pages.append(WikiPage(page_id, path, order, ""))
    assert [p.path for p in page_tree(wiki)] == ["/A", "/B", "/B/One", "/B/One/x", "/B/Two"]
    assert [p.path for p in child_pages(wiki, "/b")] == ["/B/One", "/B/Two"]


def test_environment_names_match_whole_any_case_with_wildcards() -> None:
    assert name_matches("Production", "production")
    assert not name_matches("prod", "production")
    assert name_matches("prod*", "production") and name_matches("*ion", "production")
    assert name_matches("p*d*n", "production") and not name_matches("p*x*n", "production")
    assert name_matches("a.b", "a.b") and not name_matches("a.b", "axb")  # no regex leaks through


def test_enum_patterns_spell_case_insensitivity_out() -> None:
    single = re.compile(enum_pattern(["idAscending", "nameDescending"]))
    assert single.fullmatch("IDASCENDING") and single.fullmatch("nameDescending")
    assert not single.fullmatch("idAscending,nameDescending")
    many = re.compile(enum_pattern(["succeeded", "failed"], many=True))
    assert many.fullmatch("Succeeded, FAILED") and not many.fullmatch("succeeded,,failed")
