"""resources.webhooks declarations and the filter rules (reference: "The pipeline side")."""

from __future__ import annotations

import pytest

from kiosk.pipelines.errors import PipelineError
from kiosk.pipelines.webhooks import WebhookFilter, check_filters, select_path, webhook_resources

BODY = {
    "resource": {"message": {"title": "Hello, world!", "count": 3, "ok": True, "none": None}},
    "items": [{"name": "a"}, {"name": "b"}],
    "odd key": {"x": "y"},
}


def test_declarations_are_read_in_order_with_their_filters() -> None:
    document = {
        "resources": {
            "webhooks": [
                {"webhook": "WebHook", "connection": "IncomingWH", "filters": [{"path": "a.b", "value": 1}]},
                {"webhook": "Other", "connection": "Second", "type": ""},
            ]
        }
    }
    first, second = webhook_resources(document)
    assert (first.alias, first.connection, first.filters) == ("WebHook", "IncomingWH", (WebhookFilter("a.b", "1"),))
    assert (second.alias, second.connection, second.filters) == ("Other", "Second", ())


def test_a_pipeline_without_webhooks_declares_none() -> None:
    assert webhook_resources({"steps": []}) == []
    assert webhook_resources({"resources": {"repositories": []}}) == []


@pytest.mark.parametrize(
    ("hooks", "message"),
    [
        ("x", "must be a list"),
        ([{"connection": "c"}], "webhook (the alias) is required"),
        ([{"webhook": "bad alias!", "connection": "c"}], "must match"),
        ([{"webhook": "a"}], "connection"),
        ([{"webhook": "a", "connection": "c", "filters": [{"path": "x"}]}], "filters[0] needs a path and a value"),
    ],
)
def test_malformed_declarations_are_named(hooks: object, message: str) -> None:
    with pytest.raises(PipelineError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        webhook_resources({"resources": {"webhooks": hooks}})


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("resource.message.title", (True, "Hello, world!")),
        ("$.resource.message.title", (True, "Hello, world!")),
        ("items[1].name", (True, "b")),
        ("items.[0].name", (True, "a")),
        ("['odd key'].x", (True, "y")),
        ("resource.message.missing", (False, None)),
        ("items[5].name", (False, None)),
        ("resource.message.title.deeper", (False, None)),
        ("resource..message", (False, None)),
        ("resource.message.none", (True, None)),
    ],
)
def test_paths_select_dotted_names_and_indexes(path: str, expected: tuple[bool, object]) -> None:
    assert select_path(BODY, path) == expected


def test_filters_are_anded_and_compared_as_exact_strings() -> None:
    title = WebhookFilter("resource.message.title", "Hello, world!")
    assert check_filters(BODY, [title, WebhookFilter("resource.message.count", "3")]) is None
    assert check_filters(BODY, [WebhookFilter("resource.message.ok", "true")]) is None
    mismatch = check_filters(BODY, [title, WebhookFilter("resource.message.title", "hello, world!")])
    assert mismatch is not None
    assert mismatch.describe() == (
        "filter resource.message.title = 'hello, world!' did not match: the body has 'Hello, world!'"
    )


def test_case_insensitive_comparison_is_a_setting() -> None:
    lower = [WebhookFilter("resource.message.title", "hello, WORLD!")]
    assert check_filters(BODY, lower) is not None
    assert check_filters(BODY, lower, case_insensitive=True) is None


def test_a_missing_path_never_matches_not_even_an_empty_value() -> None:
    mismatch = check_filters(BODY, [WebhookFilter("resource.nothing", "")])
    assert mismatch is not None and not mismatch.found
    assert "the body has no resource.nothing" in mismatch.describe()
