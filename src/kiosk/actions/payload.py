"""What an action run sends: Port's default payload, or the action's own body template.

A body template is any JSON value; every string in it that contains ``{{ expr }}`` is a jq
expression evaluated over ``{inputs, entity, action, trigger, run: {id, reportToken}}`` (Port's
context, plus the run's report token). A
string that is exactly one ``{{ … }}`` becomes the JSON value jq returns (an object stays an
object); a string with text around its templates gets each result interpolated as text. Objects
and arrays are walked, so templates nest anywhere; object keys are left alone.

The report token (:mod:`kiosk.actions.report_tokens`) is never rendered here: the payload and
``.run.reportToken`` carry its placeholder (``krt_****``), which the delivery worker replaces with the
run's token when it sends the request, so a stored body never holds it. A template may place it
(alone or inside a string), not transform it.

No IO of its own. An expression is compiled in-process when the action is saved (so a syntax
error is refused then); a run's templates are evaluated by kiosk's jq workers, bounded in time
and memory (:mod:`kiosk.core.jq_engine`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from kiosk.actions.inputs import MASK
from kiosk.actions.report_tokens import PLACEHOLDER as REPORT_TOKEN
from kiosk.core import jq_engine
from kiosk.core.jq_engine import JqError, JqResult, JqStopped, JqUnavailable, first_line
from kiosk.core.jq_sandbox import compile_jq
from kiosk.errors import ServiceUnavailable, ValidationFailed

__all__ = [
    "RunContext",
    "check_templates",
    "default_payload",
    "jq_input",
    "render_template",
]

#: A ``{{ expr }}`` inside a string; non-greedy so several may share one string.
TEMPLATE = re.compile(r"\{\{(.+?)\}\}", re.DOTALL)
#: Port's payloads name the organisation; kiosk serves one.
ORG_ID = "kiosk"


@dataclass(frozen=True)
class RunContext:
    """Everything a run's body may draw on, with secret inputs in clear (built at send time)."""

    run_id: str
    #: The action's stored document (identifier, title, trigger, invocationMethod, ...).
    action: Mapping[str, Any]
    #: The entity the run acts on (DAY-2 / DELETE), as the catalog renders it; None for CREATE.
    entity: Mapping[str, Any] | None
    #: The validated inputs, clear, with entity inputs expanded to entity documents.
    inputs: Mapping[str, Any]
    #: ``{by: {orgId, userId, user}, origin, at}``
    trigger: Mapping[str, Any]

    @property
    def operation(self) -> str:
        return str(self.action["trigger"]["operation"])

    @property
    def blueprint(self) -> str:
        return str(self.action["trigger"]["blueprintIdentifier"])


def default_payload(ctx: RunContext) -> dict[str, Any]:
    """Port's default run payload (see the reference: action, resourceType, status, trigger, ...)."""
    return {
        "action": ctx.action["identifier"],
        "resourceType": "run",
        "status": "TRIGGERED",
        "trigger": dict(ctx.trigger),
        "context": {
            "entity": ctx.entity["identifier"] if ctx.entity is not None else None,
            "blueprint": ctx.blueprint,
            "runId": ctx.run_id,
            # The run's report token, filled in at send time (the stored body holds krt_****).
            "reportToken": REPORT_TOKEN,
        },
        "payload": {
            "entity": dict(ctx.entity) if ctx.entity is not None else None,
            "action": {"invocationMethod": _public_invocation(ctx.action), "trigger": ctx.operation},
            "properties": dict(ctx.inputs),
        },
    }


def _public_invocation(action: Mapping[str, Any]) -> dict[str, Any]:
    # The body template is the action's own business; the receiver gets the method and target.
    return {k: v for k, v in action["invocationMethod"].items() if k != "body"}


def jq_input(ctx: RunContext) -> dict[str, Any]:
    """The document body templates are evaluated over (Port's ``.inputs``, ``.entity``, ...)."""
    return {
        "inputs": dict(ctx.inputs),
        "entity": dict(ctx.entity) if ctx.entity is not None else None,
        "action": {
            "identifier": ctx.action["identifier"],
            "title": ctx.action.get("title"),
            "blueprint": ctx.blueprint,
            "operation": ctx.operation,
        },
        "trigger": {**ctx.trigger, "operation": ctx.operation},
        "run": {"id": ctx.run_id, "reportToken": REPORT_TOKEN},
    }


# --------------------------------------------------------------------------------- templates


def _whole_expression(text: str) -> str | None:
    """The expression of a string that is exactly one ``{{ … }}``, else None.

    Decided on the whole string rather than by the non-greedy pattern, so an expression that
    itself ends in ``}}`` (``{{ {a: {b: 1}} }}``) still counts as one template.
    """
    stripped = text.strip()
    if stripped.startswith("{{") and stripped.endswith("}}") and len(stripped) > 4:
        inner = stripped[2:-2]
        if "{{" not in inner:
            return inner
    return None


def _expressions(text: str) -> list[str]:
    whole = _whole_expression(text)
    if whole is not None:
        return [whole]
    return [m.group(1) for m in TEMPLATE.finditer(text)]


def _walk(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """(path, string) for every string in ``value`` that holds a template."""
    if isinstance(value, str):
        if "{{" in value and _expressions(value):
            yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _walk(item, f"{path}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _walk(item, f"{path}[{i}]")


def _compile(expression: str, where: str, template: str) -> Any:
    try:
        return compile_jq(expression)
    except ValueError as exc:
        raise ValidationFailed(
            f"{where}: the template {template!r} is not a valid jq expression: {first_line(str(exc))}",
            code="invalid_action",
            details={"field": where},
        ) from None


def check_templates(body: Any, where: str) -> None:
    """Compile every jq expression in a body template; a syntax error is a 422 naming the field."""
    for path, text in _walk(body, where):
        for expression in _expressions(text):
            _compile(expression, path, text)


def render_template(template: Any, data: Mapping[str, Any], *, where: str, secrets: Mapping[str, str]) -> Any:
    """``template`` with every ``{{ expr }}`` evaluated over ``data``.

    Every expression of the template is evaluated in one round trip to kiosk's jq workers
    (:mod:`kiosk.core.jq_engine`), bounded in time and memory; a template without any costs none.
    A jq error is a 422 naming the template; its text (jq quotes the values it failed on) has
    every secret input's value masked. A program stopped by a limit is a 422 naming the template,
    the program and the limit (``template_failed``, as any failing template: the run is refused
    and nothing is sent); no jq worker free in time is a 503.
    """
    sites: dict[str, tuple[str, str]] = {}  # expression -> (path, template) where it first appears
    for path, text in _walk(template, where):
        for expression in _expressions(text):
            _compile(expression, path, text)  # cached; a stored action's compile cannot fail
            sites.setdefault(expression, (path, text))
    results: dict[str, JqResult] = {}
    if sites:
        expressions = list(sites)
        try:
            evaluated = jq_engine.first_each(expressions, data if isinstance(data, dict) else dict(data))
        except JqStopped as exc:
            path, text = sites[exc.expression]
            raise ValidationFailed(
                f"{path}: the template {text!r} failed: {exc.message}",
                code="template_failed",
                details={"field": path, "limit": exc.limit},
            ) from None
        except JqUnavailable as exc:
            raise ServiceUnavailable(
                f"{where}: the template could not be evaluated now: {exc}", code="jq_unavailable"
            ) from None
        except JqError as exc:  # the input itself cannot be given to jq
            raise ValidationFailed(f"{where}: {exc}", code="template_failed", details={"field": where}) from None
        results = dict(zip(expressions, evaluated, strict=True))
    return _render(template, results, where, secrets)


def _render(template: Any, results: Mapping[str, JqResult], where: str, secrets: Mapping[str, str]) -> Any:
    if isinstance(template, str):
        return _render_string(template, results, where, secrets)
    if isinstance(template, dict):
        return {key: _render(v, results, f"{where}.{key}", secrets) for key, v in template.items()}
    if isinstance(template, list):
        return [_render(v, results, f"{where}[{i}]", secrets) for i, v in enumerate(template)]
    return template


def _render_string(text: str, results: Mapping[str, JqResult], where: str, secrets: Mapping[str, str]) -> Any:
    if "{{" not in text:
        return text
    whole = _whole_expression(text)
    if whole is not None:
        return _value(results[whole], text, where, secrets)

    def substitute(match: re.Match[str]) -> str:
        result = _value(results[match.group(1)], text, where, secrets)
        return result if isinstance(result, str) else orjson.dumps(result).decode()

    return TEMPLATE.sub(substitute, text)


def _value(result: JqResult, template: str, where: str, secrets: Mapping[str, str]) -> Any:
    """The template's value (the first result, as Port takes it), or a 422 with jq's error."""
    if result.error is None:
        return result.value
    message = first_line(result.error)
    for value in secrets.values():
        if value:
            message = message.replace(value, MASK)
    raise ValidationFailed(
        f"{where}: the template {template!r} failed: {message}",
        code="template_failed",
        details={"field": where},
    )
