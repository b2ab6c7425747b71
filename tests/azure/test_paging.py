"""The pure pagers: what each asks for first and next, and where each stops."""

from __future__ import annotations

import pytest

from kiosk.azure.paging import (
    BatchTokenPager,
    BodyTokenPager,
    HeaderTokenPager,
    PageRequest,
    PagingError,
    SkipPager,
    UnpagedList,
    list_items,
)


def page(*ids: int) -> dict[str, object]:
    return {"count": len(ids), "value": [{"id": n} for n in ids]}


def test_header_token_pager_follows_the_header_and_refuses_a_repeated_token() -> None:
    pager = HeaderTokenPager({"stateFilter": "all"}, top=2)
    assert pager.first() == PageRequest({"stateFilter": "all", "$top": "2"})
    body = page(1, 2)
    nxt = pager.next({"X-MS-ContinuationToken": "2"}, body, pager.items(body))
    assert nxt == PageRequest({"stateFilter": "all", "$top": "2", "continuationToken": "2"})
    assert pager.next({}, page(3), [{"id": 3}]) is None
    with pytest.raises(PagingError, match="came back twice"):
        pager.next({"x-ms-continuationtoken": "2"}, body, [])
    assert HeaderTokenPager(top=None).first() == PageRequest({})


def test_body_token_pager_reads_items_and_the_token_from_the_body() -> None:
    pager = BodyTokenPager({"select": "license"})
    body = {"members": [{"id": "a"}], "items": [{"id": "a"}], "continuationToken": "abc", "totalCount": 2}
    assert pager.items(body) == [{"id": "a"}]
    assert pager.next({}, body, []) == PageRequest({"select": "license", "continuationToken": "abc"})
    assert pager.next({}, {"items": [], "continuationToken": None}, []) is None
    assert BodyTokenPager(items_key="members").items(body) == [{"id": "a"}]


def test_skip_pager_stops_on_a_short_or_empty_page_and_at_max_items() -> None:
    pager = SkipPager({"searchCriteria.status": "all"}, top=2)
    assert pager.first() == PageRequest({"searchCriteria.status": "all", "$top": "2"})
    assert pager.next({}, page(1, 2), [1, 2]) == PageRequest(
        {"searchCriteria.status": "all", "$top": "2", "$skip": "2"}
    )
    assert pager.next({}, page(3), [3]) is None  # short page: the end
    patient = SkipPager(top=2, stop_on_short=False, top_param="top", skip_param="skip")
    assert patient.next({}, page(1), [1]) == PageRequest({"top": "2", "skip": "1"})
    assert patient.next({}, page(), []) is None
    capped = SkipPager(top=3, max_items=5)
    assert capped.next({}, page(1, 2, 3), [1, 2, 3]) == PageRequest({"$top": "2", "$skip": "3"})
    assert capped.next({}, page(4, 5), [4, 5]) is None
    with pytest.raises(PagingError, match="ignores"):
        SkipPager(top=1).next({}, page(1, 2), [1, 2])
    with pytest.raises(ValueError):
        SkipPager(top=0)


def test_unpaged_and_batch_pagers() -> None:
    assert UnpagedList().next({"x-ms-continuationtoken": "5"}, page(1), [1]) is None
    pager = BatchTokenPager({"versionDescriptor.version": "main"}, top=2, body={"pageViewsForDays": 7})
    assert pager.first() == PageRequest({"versionDescriptor.version": "main"}, {"pageViewsForDays": 7, "top": 2})
    nxt = pager.next({"x-ms-continuationtoken": "2"}, page(1, 2), [1, 2])
    assert nxt is not None and nxt.body == {"pageViewsForDays": 7, "top": 2, "continuationToken": "2"}
    assert pager.next({}, page(3), [3]) is None


def test_a_body_without_its_list_is_an_error_not_an_empty_page() -> None:
    assert list_items({"value": []}) == []
    bodies: list[object] = [None, [], {"count": 0}, {"value": None}, "text"]
    for body in bodies:
        with pytest.raises(PagingError):
            list_items(body)
