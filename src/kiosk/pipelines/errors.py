"""Errors raised while reading and expanding Azure Pipelines YAML.

Every problem a pipeline author can cause is a :class:`PipelineError` naming where it happened
(file, line, column) and, for expressions, the expression text, because Azure itself reports
"no run queued" with little more than that and the emulator should do better.

    PipelineError
      ExpressionError   a ``${{ }}`` expression does not parse or cannot be evaluated

The expression layer knows only the expression text and a column inside it; template expansion
knows the file and line. So an error can be re-located after the fact with :meth:`located`,
which returns a copy and leaves the original untouched.
"""

from __future__ import annotations

import copy
from typing import Self


class PipelineError(Exception):
    """Base of every error kiosk raises about a pipeline definition."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        column: int | None = None,
        expression: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.file = file
        self.line = line
        self.column = column
        self.expression = expression

    def located(
        self,
        file: str | None = None,
        line: int | None = None,
        column: int | None = None,
        *,
        expression: str | None = None,
    ) -> Self:
        """Return a copy with the given location fields replaced; ``None`` keeps the current value.

        A copy (not mutation) so an error cached or shared by one caller is never re-labelled
        behind its back by another.
        """
        clone = copy.copy(self)
        if file is not None:
            clone.file = file
        if line is not None:
            clone.line = line
        if column is not None:
            clone.column = column
        if expression is not None:
            clone.expression = expression
        return clone

    @property
    def location(self) -> str:
        """``file:line:column`` with whatever parts are known ('' when none are)."""
        if self.file is not None:
            parts = [self.file]
            if self.line is not None:
                parts.append(str(self.line))
                if self.column is not None:
                    parts.append(str(self.column))
            return ":".join(parts)
        if self.line is not None:
            text = f"line {self.line}"
            return text if self.column is None else f"{text}, column {self.column}"
        if self.column is not None:
            return f"column {self.column}"
        return ""

    def __str__(self) -> str:
        location = self.location
        text = f"{location}: {self.message}" if location else self.message
        if self.expression is not None:
            text += f' in expression "{self.expression}"'
        return text


class ExpressionError(PipelineError):
    """A ``${{ }}`` expression is malformed, calls an unknown function, or fails to evaluate."""
