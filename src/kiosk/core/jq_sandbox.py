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

Compiling is done here, in-process, for one reason: to refuse a bad program when it is saved (a
kiosk.yaml load, an action written through the API) with jq's message for the user's own line
and column. Compiling is cheap and bounded. *Evaluating* is not: libjq holds the GIL and cannot
be interrupted, so ``[range(1e9)]`` evaluated in the server would freeze every request. kiosk
therefore never evaluates user jq in the server process: :mod:`kiosk.core.jq_engine` sends each
program to a pool of worker processes (:mod:`kiosk.core.jq_worker`) that compile it with
:func:`compile_first` — this same prelude — and run it under a time and a memory limit.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import jq

__all__ = ["PRELUDE", "check_expression", "compile_first", "compile_jq"]

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


def check_expression(expression: str) -> None:
    """Refuse what the prelude cannot make safe, before jq reads anything.

    Raises ``ValueError`` (as ``jq.compile`` does) for a module directive, and for a syntax error
    — with jq's message for the expression as written, so line and column numbers are the user's.
    Compiling the expression on its own also proves it is one balanced program, so wrapping it in
    parentheses below cannot let part of it escape the prelude's scope.
    """
    if _MODULE_DIRECTIVE.match(expression):
        raise ValueError("jq modules (import/include) are not available in kiosk: they would read the server's files")
    jq.compile(expression)  # the user's own syntax errors, positions unshifted by the prelude


@functools.lru_cache(maxsize=1024)
def compile_jq(expression: str) -> Any:
    """The compiled program for ``expression``, behind :data:`PRELUDE`; cached, since compiling
    costs ~3 ms (jq compiles its builtins each time) and the same few expressions are checked
    again and again. Compiled programs are safe to share between threads (the bindings keep
    per-call state).

    Used to validate expressions at config and API time; evaluation goes through
    :mod:`kiosk.core.jq_engine`. Raises ``ValueError`` as :func:`check_expression` does.
    """
    check_expression(expression)
    # The newline keeps a trailing "# comment" from swallowing the closing parenthesis.
    return jq.compile(f"{PRELUDE}({expression}\n)")


@functools.lru_cache(maxsize=1024)
def compile_first(expression: str) -> Any:
    """``expression`` behind :data:`PRELUDE`, compiled to give ``[first result]`` (``[]`` when it
    gives none): what kiosk's jq worker runs. ``limit(1; …)`` stops a generator after its first
    result, as taking the first item of a lazy iterator did, and the one output is an array whose
    JSON text the worker hands back as it is. Raises ``ValueError`` as :func:`check_expression`.
    """
    check_expression(expression)
    return jq.compile(f"{PRELUDE}[limit(1; ({expression}\n))]")
