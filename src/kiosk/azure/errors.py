"""The errors of kiosk's Azure DevOps REST client for ingestion (:mod:`kiosk.azure.rest`): one tree.

An ingester must never mistake a failed call for an empty list (OCEAN turned 404s and timeouts into
"no data" and then deleted what it had not read: reference azure-devops-ingestion.md §6), so every
failure raises, and the caller (the resync) decides what a failure means for its kind::

    AzureRestError                 every failure; .method, .url (no credentials), .status, .type_key, .message
    ├── TransportError             no usable answer (status None)
    │   ├── RequestTimeout         connect/read/write/pool timeout, or the server held the connection
    │   └── ConnectionFailed       refused, reset, closed without an answer
    ├── MalformedResponse          an answer that is not the JSON the call expects (an HTML sign-in page,
    │                              a truncated body, a list without ``value``); .status is the answer's
    └── StatusError                a non-2xx answer, with Azure's ``typeKey`` and ``message`` when it sent them
        ├── AuthenticationFailed   401 (missing, wrong, expired or revoked PAT; TF400813)
        ├── PermissionDenied       403
        ├── NotFound               404 (.no_data False)
        │   └── NoDataNotFound     404 that Azure answers where a list simply has no data for the caller:
        │                          below a disabled repository (TF401019 on a repository's items, pull
        │                          requests, refs…) or a missing item path (TF401174). Still an error:
        │                          the caller tests ``isinstance(e, NoDataNotFound)`` (or ``e.no_data``)
        │                          and decides explicitly.
        ├── RateLimited            429 left after the retries (.retry_after: seconds Azure asked for)
        └── ServerError            5xx left after the retries

Messages name the call (``GET https://host/org/_apis/projects?$top=100``), the status and Azure's own
text; the PAT travels only in the ``Authorization`` header and credentials in a URL are removed, so
neither ever appears in an error or a log line.
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import urlsplit, urlunsplit

__all__ = [
    "AuthenticationFailed",
    "AzureRestError",
    "ConnectionFailed",
    "MalformedResponse",
    "NoDataNotFound",
    "NotFound",
    "PermissionDenied",
    "RateLimited",
    "RequestTimeout",
    "ServerError",
    "StatusError",
    "TransportError",
    "is_no_data_not_found",
    "safe_url",
    "status_error",
]

#: A repository's child resources (``…/repositories/{id}/items``, ``/pullrequests``, ``/refs``…).
_BELOW_REPOSITORY: Final = re.compile(r"/_apis/git/repositories/[^/?]+/[^?]", re.IGNORECASE)
_NO_DATA_ITEM_KEYS: Final = frozenset({"gititemnotfoundexception"})
_REPOSITORY_GONE_KEYS: Final = frozenset({"gitrepositorynotfoundexception"})


def safe_url(url: str) -> str:
    """``url`` without user information (``https://user:secret@host`` → ``https://host``)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


class AzureRestError(Exception):
    """A call that did not give the caller what it asked for; never an empty result in disguise."""

    no_data = False

    def __init__(
        self,
        method: str,
        url: str,
        message: str,
        *,
        status: int | None = None,
        type_key: str | None = None,
        attempts: int = 1,
    ) -> None:
        self.method = method
        self.url = safe_url(url)
        self.status = status
        self.type_key = type_key
        self.message = message
        self.attempts = attempts
        said = f"{status} " if status is not None else ""
        key = f" ({type_key})" if type_key else ""
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        super().__init__(f"{method} {self.url}: {said}{message}{key}{tries}")


class TransportError(AzureRestError):
    """No answer: the request could not be sent or its answer not received."""


class RequestTimeout(TransportError):
    """The call timed out (connecting, sending, waiting for or reading the answer)."""


class ConnectionFailed(TransportError):
    """The connection was refused, reset or closed before a complete answer."""


class MalformedResponse(AzureRestError):
    """An answer whose body is not the JSON the call expects."""


class StatusError(AzureRestError):
    """A non-2xx answer."""


class AuthenticationFailed(StatusError):
    """401: the PAT is missing, wrong, expired, revoked or lacks the scope."""


class PermissionDenied(StatusError):
    """403."""


class NotFound(StatusError):
    """404 for something that should exist (a project, a repository by id, an API route)."""


class NoDataNotFound(NotFound):
    """404 where Azure says "nothing here for you": below a disabled repository, or a missing item path."""

    no_data = True


class RateLimited(StatusError):
    """429 after the client's retries; ``retry_after`` is what Azure last asked to wait (seconds)."""

    def __init__(
        self,
        method: str,
        url: str,
        message: str,
        *,
        status: int | None = 429,
        type_key: str | None = None,
        attempts: int = 1,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(method, url, message, status=status, type_key=type_key, attempts=attempts)
        self.retry_after = retry_after


class ServerError(StatusError):
    """5xx after the client's retries (or at once for a call that is not safe to repeat)."""


def is_no_data_not_found(url: str, type_key: str | None) -> bool:
    """Whether a 404 on ``url`` with ``type_key`` is one of Azure's "no data" answers (see module docstring)."""
    key = (type_key or "").lower()
    if key in _NO_DATA_ITEM_KEYS:
        return True
    return key in _REPOSITORY_GONE_KEYS and _BELOW_REPOSITORY.search(urlsplit(url).path + "?") is not None


def status_error(
    method: str,
    url: str,
    status: int,
    message: str,
    type_key: str | None,
    *,
    attempts: int = 1,
    retry_after: float | None = None,
) -> StatusError:
    """The error of the tree for a non-2xx answer."""
    kind: type[StatusError]
    if status == 401:
        kind = AuthenticationFailed
    elif status == 403:
        kind = PermissionDenied
    elif status == 404:
        kind = NoDataNotFound if is_no_data_not_found(url, type_key) else NotFound
    elif status == 429:
        return RateLimited(
            method, url, message, status=status, type_key=type_key, attempts=attempts, retry_after=retry_after
        )
    elif status >= 500:
        kind = ServerError
    else:
        kind = StatusError
    return kind(method, url, message, status=status, type_key=type_key, attempts=attempts)
