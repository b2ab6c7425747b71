"""A request with invalid parameters gets Azure's 400 naming one of them: the path's first, then the query's
in the order the route declares them, whichever dependency (``from_query``) declares the query's."""

from __future__ import annotations

from tests.emulator.conftest import LiveEmulator

from kiosk.emulator.app import first_invalid


def message(emulator: LiveEmulator, url: str) -> str:
    response = emulator.client.get(url)
    assert response.status_code == 400, response.text
    assert response.json()["typeKey"] == "ArgumentException"
    return str(response.json()["message"])


def test_a_path_error_is_named_before_a_query_error(emulator: LiveEmulator) -> None:
    both = message(emulator, "/fabrikam/_apis/wit/workitems/abc/revisions?$top=-1&api-version=7.1")
    assert both.startswith("path.item_id: ")
    query_only = message(emulator, "/fabrikam/_apis/wit/workitems/7/revisions?$top=-1&api-version=7.1")
    assert query_only.startswith("query.$top: ")


def test_query_errors_are_named_in_the_declared_order(emulator: LiveEmulator) -> None:
    # $top before $skip (one dataclass); the release filters before TokenPage's $top (two dependencies).
    assert message(emulator, "/fabrikam/_apis/wit/workitems/7/updates?$skip=-1&$top=-1").startswith("query.$top: ")
    releases = "/fabrikam/web/_apis/release/releases?$top=-1&statusFilter=bogus"
    assert message(emulator, releases).startswith("query.statusFilter: ")
    pages = "/fabrikam/web/_apis/wiki/wikis/w/pages?includeContent=maybe&path=" + "x" * 1001
    assert message(emulator, pages).startswith("query.path: ")


def test_first_invalid_orders_by_place_and_keeps_the_order_within_one() -> None:
    errors = [
        {"loc": ("query", "b"), "msg": "b"},
        {"loc": ("body", "x"), "msg": "x"},
        {"loc": ("path", "p"), "msg": "p"},
        {"loc": ("path", "q"), "msg": "q"},
    ]
    assert first_invalid(errors)["msg"] == "p"
    assert first_invalid(errors[:2])["msg"] == "b"
    assert first_invalid([{"loc": ("elsewhere",), "msg": "e"}, errors[1]])["msg"] == "x"
    assert first_invalid([]) == {"loc": (), "msg": "invalid request"}
