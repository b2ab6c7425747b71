"""What a WIQL query can fail with: always Azure's 400, with a message naming the token and its position.

Azure's ``typeKey`` for WIQL syntax errors is not documented (reference section 7). The
decompiled server maps its ``SyntaxException`` and ``QueryException`` to 400, so the emulator
uses those two keys: :class:`WiqlSyntaxError` for text that does not parse (``SyntaxException``),
:class:`WiqlQueryError` for a query that parses but cannot run — an unknown field (Azure's
``TF51005`` message), a value of the wrong type, a macro without its context
(``QueryException``). The 20,000-result cap has its own documented key and message
(:class:`WiqlResultSizeError`).
"""

from __future__ import annotations

from typing import Final

__all__ = ["MAX_RESULTS", "WiqlError", "WiqlQueryError", "WiqlResultSizeError", "WiqlSyntaxError"]

MAX_RESULTS: Final = 20_000
"""Azure's cap: a query matching more than this without ``$top`` is refused (VS402337)."""

_WIT_NAMESPACE: Final = "Microsoft.TeamFoundation.WorkItemTracking.Server"


class WiqlError(Exception):
    """A query Azure answers with 400; ``type_key``/``type_name`` go into its error JSON."""

    type_key = "QueryException"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @property
    def type_name(self) -> str:
        return f"{_WIT_NAMESPACE}.{self.type_key}, {_WIT_NAMESPACE}"


class WiqlSyntaxError(WiqlError):
    """The text does not parse; the message names the offending token and its 1-based position."""

    type_key = "SyntaxException"

    def __init__(self, message: str, position: int, token: str) -> None:
        shown = token if token else "end of query"
        super().__init__(f"{message} The error is caused by «{shown[:80]}» at position {position}.")
        self.position = position
        self.token = token


class WiqlQueryError(WiqlError):
    """The query parses but cannot run (unknown field, value of the wrong type, missing context)."""

    type_key = "QueryException"


class WiqlResultSizeError(WiqlError):
    """More than :data:`MAX_RESULTS` matches and no ``$top``: Azure's VS402337."""

    type_key = "WorkItemTrackingQueryResultSizeLimitExceededException"

    def __init__(self) -> None:
        super().__init__(
            f"VS402337: The number of work items returned exceeds the size limit of {MAX_RESULTS}. "
            "Change the query to return fewer items."
        )
