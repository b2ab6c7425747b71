"""WIQL, the Work Item Query Language, for the emulator: parse once, compile once, run over the org.

- :func:`parse_wiql` (:mod:`.parser`, over :mod:`.lexer`): text → :class:`~.nodes.Query`, pure;
- :func:`run_query` (:mod:`.evaluate`): a parsed query over an
  :class:`~kiosk.emulator.org.model.Organisation`'s work items → ids or link rows, ordered;
- :mod:`.fields`: the field table both use (and the fields API lists);
- :mod:`.errors`: every failure is a :class:`WiqlError`, which the route answers with Azure's 400.

Nothing here does IO or knows HTTP: :mod:`kiosk.emulator.routes.wit` is the route.
"""

from kiosk.emulator.wiql.errors import (
    MAX_RESULTS,
    WiqlError,
    WiqlQueryError,
    WiqlResultSizeError,
    WiqlSyntaxError,
)
from kiosk.emulator.wiql.evaluate import LinkRow, QueryContext, QueryResult, run_query
from kiosk.emulator.wiql.fields import FIELDS, FieldDef, find_field
from kiosk.emulator.wiql.nodes import Query
from kiosk.emulator.wiql.parser import MAX_QUERY_LENGTH, parse_wiql

__all__ = [
    "FIELDS",
    "MAX_QUERY_LENGTH",
    "MAX_RESULTS",
    "FieldDef",
    "LinkRow",
    "Query",
    "QueryContext",
    "QueryResult",
    "WiqlError",
    "WiqlQueryError",
    "WiqlResultSizeError",
    "WiqlSyntaxError",
    "find_field",
    "parse_wiql",
    "run_query",
]
