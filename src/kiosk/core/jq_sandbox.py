"""jq programs written by users, compiled so they cannot reach into the server.

kiosk runs jq from configuration and the API: action body templates, automation conditions,
generic receivers' mappings and watch reactions. jq's own builtins can read the process
environment (``$ENV``, ``env``) — exactly where kiosk's secret references (``{env: NAME}``)
resolve, so an action body ``{{ $ENV.KIOSK_SIGNING_SECRET }}`` would post the server's secret to
whoever the action's URL names — and jq's module system (``import``/``include``) reads files
from the server's disk. An admin who may define actions through the API must not gain the
server's secrets or files that way.

Every program is therefore compiled behind a prelude that shadows those builtins lexically
(``{} as $ENV | def env: $ENV; …``): a user's own ``def env: $ENV;`` sees the empty object, not
the process environment. ``input``/``inputs`` (there is only one input), ``debug``/``stderr``
(they would write the data, secrets included, to the server's stderr), ``halt``/``halt_error``
and the search-path introspection are shadowed too, and a program that starts with
``import``/``include`` is refused before jq sees it (imports are resolved at compile time).

Not bounded here: evaluation time and memory. jq runs in-process and cannot be interrupted, so
a program like ``[range(1e9)]`` still ties up the thread that runs it.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import jq

__all__ = ["PRELUDE", "compile_jq"]

#: Shadows the builtins that reach outside the one input document (see the module docstring).
PRELUDE = (
    "{} as $ENV | "
    "def env: $ENV; "
    "def input_filename: null; "
    'def input: error("input is not available: a kiosk jq program has one input"); '
    "def inputs: empty; "
    "def debug: .; "
    "def debug($message): .; "
    "def stderr: .; "
    'def halt: error("halt is not available in kiosk"); '
    'def halt_error: error("halt_error is not available in kiosk"); '
    'def halt_error($code): error("halt_error is not available in kiosk"); '
    "def get_search_list: []; "
    "def get_prog_origin: null; "
    "def get_jq_origin: null; "
)

#: ``import``/``include`` directives, possibly after blank lines and comments.
_MODULE_DIRECTIVE = re.compile(r"\A(?:\s|#[^\n]*(?:\n|\Z))*(?:import|include)\b")


@functools.lru_cache(maxsize=1024)
def compile_jq(expression: str) -> Any:
    """The compiled program for ``expression``, behind :data:`PRELUDE`; cached, since compiling
    costs ~3 ms (jq compiles its builtins each time) and the same few expressions run per action
    run, per event and per entity of a bulk write. Compiled programs are safe to share between
    threads (the bindings keep per-call state).

    Raises ``ValueError`` (as ``jq.compile`` does) for a syntax error — with jq's message for the
    expression as written, so line and column numbers are the user's — and for a module directive.
    """
    if _MODULE_DIRECTIVE.match(expression):
        raise ValueError("jq modules (import/include) are not available in kiosk: they would read the server's files")
    jq.compile(expression)  # the user's own syntax errors, positions unshifted by the prelude
    # The newline keeps a trailing "# comment" from swallowing the closing parenthesis.
    return jq.compile(f"{PRELUDE}({expression}\n)")
