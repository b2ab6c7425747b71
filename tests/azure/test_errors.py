"""The error tree: the class for each answer, what "no data" 404s are, and no credentials in the text."""

from __future__ import annotations

from kiosk.azure.errors import (
    AuthenticationFailed,
    AzureRestError,
    NoDataNotFound,
    NotFound,
    PermissionDenied,
    RateLimited,
    ServerError,
    StatusError,
    safe_url,
    status_error,
)

BASE = "https://dev.azure.com/org/p/_apis/git/repositories/r1"


def test_each_status_has_its_class() -> None:
    assert type(status_error("GET", BASE, 401, "TF400813", "UnauthorizedRequestException")) is AuthenticationFailed
    assert type(status_error("GET", BASE, 403, "no", None)) is PermissionDenied
    assert type(status_error("GET", BASE, 404, "TF401019", "GitRepositoryNotFoundException")) is NotFound
    assert type(status_error("GET", BASE, 500, "boom", None)) is ServerError
    assert type(status_error("GET", BASE, 400, "bad", "ArgumentException")) is StatusError
    limited = status_error("GET", BASE, 429, "TF400733", "RequestBlockedException", retry_after=12, attempts=3)
    assert isinstance(limited, RateLimited) and limited.retry_after == 12 and limited.attempts == 3
    assert all(issubclass(kind, AzureRestError) for kind in (StatusError, NotFound, RateLimited))


def test_no_data_404s_are_marked() -> None:
    below = status_error("GET", BASE + "/pullrequests?$top=100", 404, "TF401019", "GitRepositoryNotFoundException")
    assert isinstance(below, NoDataNotFound) and below.no_data
    items = status_error("GET", BASE + "/items?path=/README.md", 404, "TF401174", "GitItemNotFoundException")
    assert items.no_data
    repository = status_error("GET", BASE + "?api-version=7.1", 404, "TF401019", "GitRepositoryNotFoundException")
    assert not repository.no_data  # the repository itself is missing: a plain NotFound
    project = status_error(
        "GET", "https://h/org/x/_apis/git/repositories/r/refs", 404, "TF200016", "ProjectDoesNotExistWithNameException"
    )
    assert not project.no_data


def test_the_text_names_the_call_and_never_credentials() -> None:
    error = status_error("GET", "https://me:secret@dev.azure.com/org/_apis/projects", 503, "busy", "X", attempts=4)
    assert str(error) == "GET https://dev.azure.com/org/_apis/projects: 503 busy (X) after 4 attempts"
    assert "secret" not in repr(error.__dict__)
    assert safe_url("http://h/x?y=1") == "http://h/x?y=1"
