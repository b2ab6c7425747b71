"""The self-service hub and the action forms: ``/ui/self-service`` and ``/ui/self-service/{action}``.

The hub lists the self-service actions (automations are started by kiosk, not by people) as
cards grouped by blueprint, then by operation (CREATE, DAY-2, DELETE). kiosk's actions carry no
per-action permissions (the model refuses Port's ``permissions`` key) and the API lets every
member start every self-service action, so members and admins see the same cards; an action
that needs an admin's approval says so on its card.

The form is generated from the action's ``userInputs`` and evaluated on the server:

- A field's text is turned into the JSON value the API takes (:func:`parse_text`), then checked
  by the same compiled checks the API uses (:class:`kiosk.actions.inputs.InputSpec`), so the
  form and the API agree on what is valid; every field's error is shown next to it at once.
- Port's jq rules (``visible``, ``disabled``, ``default``, ``enum`` given as ``{"jqQuery": …}``)
  are evaluated by kiosk's bounded jq workers against ``.form`` (the values so far, secrets
  masked), ``.entity`` (the entity a DAY-2/DELETE action runs on) and ``.user``. Defaults first
  (one round trip), then the other rules over the form with its defaults (a second one).
- A default fills an empty field. A field whose ``dependsOn`` parent changed since the page was
  rendered (the page carries the values it showed, ``was.<name>``) is cleared first, so its
  default is computed again from the new parent.
- "Update" posts the form back and re-renders it (no JavaScript needed); with htmx a changed
  field posts it as a fragment request and only the fields are swapped.
- A secret is a password field, never written back into a page; jq sees it masked.

Submitting starts the run through :meth:`kiosk.actions.runs.Runs.start_run` (the API's own
path) with the signed-in person's email as actor and origin ``UI``, then redirects (303) to
the run's page.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import orjson
import sqlalchemy as sa
from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.responses import RedirectResponse, Response

from kiosk.actions.inputs import MASK, InputSpec, InvalidInput, is_jq_rule
from kiosk.actions.model import OPERATIONS, Action
from kiosk.actions.runs import Runs
from kiosk.actions.service import Actions
from kiosk.auth.sessions import Session
from kiosk.auth.users import User
from kiosk.catalog.service import Catalog
from kiosk.core import jq_engine
from kiosk.core.jq_engine import JqResult, JqStopped, JqUnavailable, first_line
from kiosk.errors import KioskError, NotFound, ValidationFailed
from kiosk.store.engine import Database
from kiosk.store.tables import blueprints, entities
from kiosk.ui.pages import Portal
from kiosk.ui.runs import build_runs_router, run_href

__all__ = [
    "MAX_ENTITY_OPTIONS",
    "FieldView",
    "FormState",
    "HubGroup",
    "build_actions_router",
    "evaluate_form",
    "hub_groups",
    "parse_text",
    "value_text",
]

#: Above this many entities an entity input is a text field (checked on submit), not a select.
MAX_ENTITY_OPTIONS = 200
MAX_FIELD_TEXT = 100_000
OPERATION_TITLES = {"CREATE": "Create", "DAY-2": "Day-2 operations", "DELETE": "Delete"}
_INTEGER = re.compile(r"^[+-]?\d+$")
_LOCAL_MINUTE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d$")  # what <input type=datetime-local> sends


# --------------------------------------------------------------------------------- the hub


@dataclass(frozen=True)
class ActionCard:
    identifier: str
    title: str
    description: str | None
    icon: str | None
    requires_approval: bool


@dataclass(frozen=True)
class HubGroup:
    """One blueprint's actions, by operation in Port's order (empty operations left out)."""

    blueprint: str
    title: str
    operations: list[tuple[str, str, list[ActionCard]]]  # (operation, heading, cards)


def hub_groups(actions: list[Action], blueprint_titles: dict[str, str]) -> list[HubGroup]:
    """The hub's cards: self-service actions only, grouped by blueprint title, then operation."""
    by_blueprint: dict[str, dict[str, list[ActionCard]]] = {}
    for action in actions:
        if action.is_automation:
            continue
        doc = action.document
        card = ActionCard(
            identifier=action.identifier,
            title=action.title or action.identifier,
            description=doc.get("description"),
            icon=doc.get("icon"),
            requires_approval=action.requires_approval,
        )
        by_blueprint.setdefault(action.blueprint, {}).setdefault(action.operation, []).append(card)
    groups = []
    for bp, ops in by_blueprint.items():
        operations = [
            (op, OPERATION_TITLES[op], sorted(ops[op], key=lambda c: c.title.lower())) for op in OPERATIONS if op in ops
        ]
        groups.append(HubGroup(blueprint=bp, title=blueprint_titles.get(bp, bp), operations=operations))
    return sorted(groups, key=lambda g: g.title.lower())


def _blueprint_titles(db: Database) -> dict[str, str]:
    with db.connect() as conn:
        rows = conn.execute(sa.select(blueprints.c.identifier, blueprints.c.definition)).all()
    return {r.identifier: str(r.definition.get("title") or r.identifier) for r in rows}


# --------------------------------------------------------------------------------- values and texts


class TextError(ValueError):
    """A field's text cannot be the JSON value its input takes (the message completes the label)."""


def parse_text(spec: dict[str, Any], text: str) -> Any:
    """The JSON value a field's ``text`` stands for; None when the field is empty (not given).

    Raises :class:`TextError` when the text cannot be of the input's type; whether the value is
    valid for the input is the API's check, made after this.
    """
    itype = spec.get("type")
    if itype == "boolean":
        return text == "true"
    if not text.strip():
        return None
    if _has_options(spec):
        try:
            return orjson.loads(text)  # a select's option values are JSON: 2 stays a number
        except orjson.JSONDecodeError:
            raise TextError("must be one of the options") from None
    if itype == "number":
        cleaned = text.strip()
        if _INTEGER.match(cleaned):
            return int(cleaned)
        try:
            number = float(cleaned)
        except ValueError:
            raise TextError("must be a number") from None
        if not math.isfinite(number):
            raise TextError("must be a number")
        return number
    if itype == "object":
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError:
            raise TextError("must be a JSON object") from None
        if not isinstance(value, dict):
            raise TextError("must be a JSON object")
        return value
    if itype == "array":
        given = spec.get("items")
        items: dict[str, Any] = given if isinstance(given, dict) else {}
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        if items.get("type") in ("number", "boolean", "object"):
            out = []
            for i, line in enumerate(lines):
                try:
                    out.append(orjson.loads(line))
                except orjson.JSONDecodeError:
                    raise TextError(f"line {i + 1} is not a {items['type']}") from None
            return out
        return lines
    if spec.get("format") == "date-time" and _LOCAL_MINUTE.match(text.strip()):
        return text.strip() + ":00Z"  # the form's date-times are in UTC, as its label says
    return text


def value_text(spec: dict[str, Any], value: Any) -> str:
    """The text a field shows for ``value`` (the inverse of :func:`parse_text`)."""
    if value is None:
        return ""
    itype = spec.get("type")
    if itype == "boolean":
        return "true" if value is True else "false"
    if _has_options(spec):
        return orjson.dumps(value).decode()
    if itype == "object":
        return orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()
    if itype == "array" and isinstance(value, list):
        return "\n".join(v if isinstance(v, str) else orjson.dumps(v).decode() for v in value)
    if isinstance(value, str):
        if spec.get("format") == "date-time" and len(value) >= 16 and value[10] in "Tt":
            return value[:16]  # datetime-local shows minutes; kiosk's date-times are UTC
        return value
    return orjson.dumps(value).decode()


def _has_options(spec: dict[str, Any]) -> bool:
    return spec.get("enum") is not None


# --------------------------------------------------------------------------------- the form


@dataclass
class FieldView:
    """One input as the template draws it."""

    name: str
    label: str
    description: str | None
    widget: str  # text, email, url, datetime, textarea, number, checkbox, select, password
    text: str  # what the field shows (never a secret's value)
    required: bool
    disabled: bool
    options: list[tuple[str, str]] = field(default_factory=list)  # (value, label) for a select
    error: str | None = None
    hint: str | None = None

    @property
    def element_id(self) -> str:
        return "in-" + re.sub(r"[^A-Za-z0-9_-]", "_", self.name)


@dataclass
class FormState:
    """The form after evaluation: the fields to draw, the values to submit, the errors found."""

    fields: list[FieldView]
    values: dict[str, Any]  # the visible fields' JSON values (secrets in clear: never rendered)
    errors: dict[str, str]  # input name -> message; only fields whose text could not be read
    problems: list[str]  # errors not tied to a visible field (a rule that failed, a hidden input)
    was: dict[str, str]  # the texts shown, for dependsOn on the next post (secrets left out)


def ordered_inputs(action: Action) -> list[tuple[str, dict[str, Any]]]:
    """The inputs in the action's ``order`` (when given), then the rest as defined."""
    user_inputs = action.document["trigger"].get("userInputs") or {}
    props: dict[str, Any] = user_inputs.get("properties") or {}
    order = [n for n in user_inputs.get("order") or [] if n in props]
    return [(n, props[n]) for n in [*dict.fromkeys(order), *(n for n in props if n not in order)]]


def _rule(spec: dict[str, Any], key: str) -> str | None:
    value = spec.get(key)
    return str(value["jqQuery"]) if isinstance(value, dict) and is_jq_rule(value) else None


def _jq_data(values: dict[str, Any], secret_names: frozenset[str], entity: Any, user: User) -> dict[str, Any]:
    form = {n: (MASK if n in secret_names else v) for n, v in values.items()}
    who = {"email": user.email, "name": user.name, "role": user.role}
    return {"form": form, "entity": entity, "user": who}


def _evaluate(expressions: dict[str, str], data: dict[str, Any]) -> dict[str, JqResult]:
    """Every rule in one round trip to the jq workers; unavailable workers fail every rule alike."""
    if not expressions:
        return {}
    keys = list(expressions)
    try:
        results = jq_engine.first_each([expressions[k] for k in keys], data)
    except (JqUnavailable, JqStopped) as exc:
        return {k: JqResult(error=f"the rule could not be evaluated now: {exc}") for k in keys}
    return dict(zip(keys, results, strict=True))


def evaluate_form(
    action: Action,
    *,
    user: User,
    entity: dict[str, Any] | None,
    submitted: dict[str, str] | None,
    was: dict[str, str],
    entity_options: dict[str, list[tuple[str, str]] | None],
) -> FormState:
    """The form for ``submitted`` texts (None: a first render, every default applied).

    ``entity_options``: for each blueprint an entity input names, its entities as (identifier,
    title) when few enough for a select, else None (a text field).
    """
    inputs = ordered_inputs(action)
    secret_names = action.inputs.secret_names
    texts: dict[str, str] = {}
    for name, spec in inputs:
        if submitted is None or spec.get("disabled") is True:
            texts[name] = ""  # a field disabled outright holds its default, whatever is posted
        elif spec.get("type") == "boolean":
            texts[name] = "true" if submitted.get(name) == "true" else ("false" if name in submitted else "")
        else:
            texts[name] = submitted.get(name, "")[:MAX_FIELD_TEXT]
    if submitted is not None:  # a parent that changed since the last render clears its dependents
        for name, spec in inputs:
            parents = spec.get("dependsOn") or []
            if any(p in was and texts.get(p, "") != was[p] for p in parents if isinstance(p, str)):
                texts[name] = ""
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name, spec in inputs:
        try:
            parsed = parse_text(spec, texts[name]) if texts[name] else None
        except TextError as exc:
            errors[name] = str(exc)
            continue
        if parsed is not None:
            values[name] = parsed
    # Defaults fill the empty fields: constants at once, jq ones in one round trip.
    for name, spec in inputs:
        if name not in values and name not in errors and "default" in spec and not is_jq_rule(spec["default"]):
            values[name] = spec["default"]
    problems: list[str] = []
    default_rules = {
        name: rule
        for name, spec in inputs
        if name not in values and name not in errors
        if (rule := _rule(spec, "default"))
    }
    for name, result in _evaluate(default_rules, _jq_data(values, secret_names, entity, user)).items():
        if result.error is not None:
            problems.append(f"The default of {_label(action, name)} could not be computed: {first_line(result.error)}")
        elif result.value is not None:
            values[name] = result.value
    rules = {
        (name, key): rule
        for name, spec in inputs
        for key in ("visible", "disabled", "enum")
        if (rule := _rule(spec, key))
    }
    keyed = {f"{name}\x00{key}": rule for (name, key), rule in rules.items()}
    evaluated = _evaluate(keyed, _jq_data(values, secret_names, entity, user))
    fields: list[FieldView] = []
    shown: dict[str, Any] = {}
    for name, spec in inputs:
        outcome = {key: evaluated.get(f"{name}\x00{key}") for key in ("visible", "disabled", "enum")}
        for key, found in outcome.items():
            if found is not None and found.error is not None:
                problems.append(f"The {key} rule of {_label(action, name)} failed: {first_line(found.error)}")
        visible = _flag(spec.get("visible", True), outcome["visible"], True)
        if not visible:
            continue
        disabled = _flag(spec.get("disabled", False), outcome["disabled"], False)
        options = _options(spec, outcome["enum"], entity_options)
        if outcome["enum"] is not None and name in values and not _offered(spec, values[name], options or []):
            values.pop(name)  # a jq list that no longer holds the value: cleared, as Port does
        if name in values:
            shown[name] = values[name]
        text = "" if name in secret_names else (texts[name] if name in errors else value_text(spec, values.get(name)))
        fields.append(
            FieldView(
                name=name,
                label=_label(action, name),
                description=spec.get("description"),
                widget=_widget(spec, options),
                text=text,
                required=name in action.inputs.required,
                disabled=disabled,
                options=options or [],
                error=errors.get(name),
                hint=_hint(spec),
            )
        )
    was_texts = {f.name: f.text for f in fields if f.name not in secret_names}
    return FormState(fields=fields, values=shown, errors=errors, problems=problems, was=was_texts)


def _offered(spec: dict[str, Any], value: Any, options: list[tuple[str, str]]) -> bool:
    """Whether ``value`` is one of a select's options (compared as the texts the select posts)."""
    return value_text(spec, value) in {text for text, _ in options}


def _flag(constant: Any, result: JqResult | None, fallback: bool) -> bool:
    if result is not None:
        return bool(result.value) if result.error is None else fallback
    return constant if isinstance(constant, bool) else fallback


def _label(action: Action, name: str) -> str:
    spec = dict(ordered_inputs(action)).get(name) or {}
    return str(spec.get("title") or name)


def _options(
    spec: dict[str, Any], enum_result: JqResult | None, entity_options: dict[str, list[tuple[str, str]] | None]
) -> list[tuple[str, str]] | None:
    """A select's options as (JSON value, label); None for a field without a fixed list."""
    if enum_result is not None:
        listed = enum_result.value if enum_result.error is None and isinstance(enum_result.value, list) else []
        return [(orjson.dumps(v).decode(), v if isinstance(v, str) else orjson.dumps(v).decode()) for v in listed]
    enum = spec.get("enum")
    if isinstance(enum, list):
        return [(orjson.dumps(v).decode(), v if isinstance(v, str) else orjson.dumps(v).decode()) for v in enum]
    if spec.get("format") == "entity" and spec.get("type") == "string":
        listed_entities = entity_options.get(str(spec.get("blueprint")))
        if listed_entities is not None:  # posted as the identifier itself, as the text field would be
            return [(i, f"{t} ({i})" if t != i else i) for i, t in listed_entities]
    return None


def _widget(spec: dict[str, Any], options: list[tuple[str, str]] | None) -> str:
    itype, fmt = spec.get("type"), spec.get("format")
    if options is not None:
        return "select"
    if itype == "boolean":
        return "checkbox"
    if itype == "number":
        return "number"
    if itype in ("array", "object") or fmt in ("multi-line", "yaml"):
        return "textarea"
    return {"email": "email", "user": "email", "url": "url", "date-time": "datetime", "secret": "password"}.get(
        str(fmt), "text"
    )


def _hint(spec: dict[str, Any]) -> str | None:
    itype, fmt = spec.get("type"), spec.get("format")
    if itype == "array":
        return "One item per line."
    if itype == "object":
        return "A JSON object."
    if fmt == "yaml":
        return "A YAML document."
    if fmt == "date-time":
        return "In UTC."
    if fmt == "secret":
        return "Kept encrypted; never shown again. Enter it again after updating the form."
    if fmt == "entity":
        return f"The identifier of a {spec.get('blueprint')} entity."
    return None


# --------------------------------------------------------------------------------- checking a submission


def check_submission(action: Action, state: FormState) -> dict[str, str]:
    """Errors by input name, all at once: required fields, then the API's own check of each value
    (the same compiled checks :meth:`UserInputs.validate` runs, so both agree)."""
    errors = dict(state.errors)
    shown = {f.name: f for f in state.fields}
    specs = dict(ordered_inputs(action))
    for name in action.inputs.required:
        spec: InputSpec | None = action.inputs.specs.get(name)
        if name in shown and name not in state.values and name not in errors and not (spec and spec.has_default):
            errors[name] = "is required"
    for name, value in state.values.items():
        if name in errors:
            continue
        field_view = shown.get(name)
        is_select = field_view is not None and field_view.widget == "select"
        if is_select and field_view is not None and not _offered(specs[name], value, field_view.options):
            errors[name] = "must be one of the options"
            continue
        try:
            action.inputs.specs[name].check(value)
        except InvalidInput as exc:
            errors[name] = f"{exc.path} {exc.message}".strip()
    return errors


def field_of(error: ValidationFailed) -> str | None:
    """The input (or ``entity``) a run service's refusal names, else None."""
    details = error.details if isinstance(error.details, dict) else {}
    where = details.get("field")
    if not isinstance(where, str):
        return None
    if where == "entity":
        return "entity"
    found = re.match(r"^properties\.([^.\[]+)", where)
    return found.group(1) if found else None


def _message_for_field(error: ValidationFailed, name: str) -> str:
    """The refusal's text without the leading ``properties.<name>`` (the label stands there)."""
    message = error.message
    for prefix in (f"properties.{name}", name, "entity:", "entity"):
        if message.startswith(prefix):
            return message[len(prefix) :].lstrip(": ").strip() or message
    return message


# --------------------------------------------------------------------------------- reads for the pages


def _entity_options(db: Database, action: Action) -> dict[str, list[tuple[str, str]] | None]:
    """For each blueprint an entity input names (and the action's own, for the entity picker):
    its entities when there are at most :data:`MAX_ENTITY_OPTIONS`, else None."""
    wanted = set(action.inputs.entity_blueprints)
    if action.operation != "CREATE":
        wanted.add(action.blueprint)
    out: dict[str, list[tuple[str, str]] | None] = {}
    with db.connect() as conn:
        for bp in sorted(wanted):
            rows = conn.execute(
                sa.select(entities.c.identifier, sa.func.coalesce(entities.c.title, entities.c.identifier))
                .where(entities.c.blueprint == bp)
                .order_by(sa.func.coalesce(entities.c.title, entities.c.identifier), entities.c.identifier)
                .limit(MAX_ENTITY_OPTIONS + 1)
            ).all()
            out[bp] = None if len(rows) > MAX_ENTITY_OPTIONS else [(r[0], r[1]) for r in rows]
    return out


def _find_entity(catalog: Catalog, action: Action, identifier: str) -> dict[str, Any] | None:
    if action.operation == "CREATE" or not identifier:
        return None
    try:
        return catalog.get_entity(action.blueprint, identifier)
    except (NotFound, KioskError):
        return None


def _entity_param(action: Action, raw: str | None) -> str:
    """The identifier of ``?entity=<blueprint>/<identifier>`` (or a bare identifier) for this action."""
    if not raw:
        return ""
    prefix = action.blueprint + "/"
    return raw[len(prefix) :] if raw.startswith(prefix) else raw


@dataclass
class FormPage:
    """Everything one render of the action form needs."""

    action: Action
    state: FormState
    entity_id: str
    entity: dict[str, Any] | None
    entity_choices: list[tuple[str, str]] | None
    entity_error: str | None = None


def _form_page(
    portal: Portal,
    actions: Actions,
    identifier: str,
    user: User,
    entity_id: str,
    submitted: dict[str, str] | None,
    was: dict[str, str],
) -> FormPage | None:
    """Read the action, its entity and entity options, and evaluate the form (thread pool work)."""
    with portal.db.connect() as conn:
        try:
            action = actions.load(conn, identifier)
        except (NotFound, ValidationFailed):
            return None
    if action.is_automation:
        return None
    options = _entity_options(portal.db, action)
    entity = _find_entity(portal.catalog, action, entity_id)
    state = evaluate_form(action, user=user, entity=entity, submitted=submitted, was=was, entity_options=options)
    choices = options.get(action.blueprint) if action.operation != "CREATE" else None
    return FormPage(action=action, state=state, entity_id=entity_id, entity=entity, entity_choices=choices)


def _submitted(form: FormData) -> tuple[dict[str, str], dict[str, str]]:
    """The fields' texts (``in.<name>``) and the texts last shown (``was.<name>``)."""
    submitted: dict[str, str] = {}
    was: dict[str, str] = {}
    for key, value in form.multi_items():
        if not isinstance(value, str):
            continue
        if key.startswith("in."):
            name = key[3:]
            # A checkbox posts a hidden "false" then, when ticked, "true": the last word wins.
            submitted[name] = value if name not in submitted or value == "true" else submitted[name]
        elif key.startswith("was."):
            was[key[4:]] = value[:MAX_FIELD_TEXT]
    return submitted, was


# --------------------------------------------------------------------------------- routes


def build_actions_router() -> APIRouter:
    router = APIRouter(include_in_schema=False)

    def portal_of(request: Request) -> Portal:
        portal: Portal = request.app.state.portal
        return portal

    def actions_of(request: Request) -> Actions:
        actions: Actions = request.app.state.actions
        return actions

    def runs_of(request: Request) -> Runs:
        runs: Runs = request.app.state.runs
        return runs

    def render_form(
        request: Request, portal: Portal, session: Session, page: FormPage, *, status: int = 200
    ) -> Response:
        context = {
            **portal.page_context(session),
            "action": page.action.document,
            "operation": page.action.operation,
            "blueprint": page.action.blueprint,
            "fields": page.state.fields,
            "problems": page.state.problems,
            "was": page.state.was,
            "entity_id": page.entity_id,
            "entity": page.entity,
            "entity_choices": page.entity_choices,
            "entity_error": page.entity_error,
            "form_path": f"/ui/self-service/{page.action.identifier}",
            "error_count": sum(1 for f in page.state.fields if f.error) + (1 if page.entity_error else 0),
        }
        fragment = request.headers.get("hx-request") == "true"
        template = "_action_fields.html" if fragment else "action_form.html"
        return portal.renderer.page(template, context, status=status, headers={"Vary": "HX-Request"})

    @router.get("/ui/self-service")
    async def hub(request: Request) -> Response:
        portal = portal_of(request)
        session = await run_in_threadpool(portal.guard.session, request)
        if session is None:
            return portal.to_sign_in(request)

        def read() -> list[HubGroup]:
            with portal.db.connect() as conn:
                parsed = actions_of(request).all_parsed(conn)
            return hub_groups(parsed, _blueprint_titles(portal.db))

        groups = await run_in_threadpool(read)
        return portal.renderer.page(
            "self_service.html", {**portal.page_context(session, "self-service"), "groups": groups}
        )

    @router.get("/ui/self-service/{identifier}")
    async def form(request: Request, identifier: str, entity: str | None = None) -> Response:
        portal = portal_of(request)
        session = await run_in_threadpool(portal.guard.session, request)
        if session is None:
            return portal.to_sign_in(request)
        actions = actions_of(request)

        def read() -> FormPage | None:
            with portal.db.connect() as conn:
                try:
                    action = actions.load(conn, identifier)
                except (NotFound, ValidationFailed):
                    return None
            if action.is_automation:
                return None
            return _form_page(portal, actions, identifier, session.user, _entity_param(action, entity), None, {})

        page = await run_in_threadpool(read)
        if page is None:
            return portal.error_page(request, 404, "Not found", f"There is no self-service action {identifier!r}.")
        if entity and page.entity is None and page.action.operation != "CREATE":
            page.entity_error = f"There is no {page.action.blueprint} entity {page.entity_id!r}."
        return render_form(request, portal, session, page)

    @router.post("/ui/self-service/{identifier}")
    async def submit(request: Request, identifier: str) -> Response:
        portal = portal_of(request)
        session = await run_in_threadpool(portal.guard.session, request)
        if session is None:
            return portal.to_sign_in(request)
        data = await request.form()
        token = data.get("csrf_token")
        if not portal.guard.session_form_ok(request, session, token if isinstance(token, str) else None):
            return portal.forbidden(request)
        submitted, was = _submitted(data)
        raw_entity = data.get("entity")
        entity_id = raw_entity.strip()[:1000] if isinstance(raw_entity, str) else ""
        actions = actions_of(request)
        page = await run_in_threadpool(_form_page, portal, actions, identifier, session.user, entity_id, submitted, was)
        if page is None:
            return portal.error_page(request, 404, "Not found", f"There is no self-service action {identifier!r}.")
        if data.get("intent") != "run":
            return render_form(request, portal, session, page)
        errors = check_submission(page.action, page.state)
        if page.action.operation != "CREATE" and not entity_id:
            page.entity_error = "is required: choose the entity to run on"
        if errors or page.entity_error:
            _attach(page, errors)
            return render_form(request, portal, session, page, status=422)
        body = {"entity": entity_id or None, "properties": page.state.values}
        try:
            run = await run_in_threadpool(
                runs_of(request).start_run, identifier, body, actor=session.user.email, origin="UI"
            )
        except ValidationFailed as exc:
            name = field_of(exc)
            if name == "entity":
                page.entity_error = _message_for_field(exc, "entity")
            elif name is not None and any(f.name == name for f in page.state.fields):
                _attach(page, {name: _message_for_field(exc, name)})
            else:
                page.state.problems.append(exc.message)
            return render_form(request, portal, session, page, status=422)
        except NotFound as exc:
            page.state.problems.append(exc.message)
            return render_form(request, portal, session, page, status=422)
        return RedirectResponse(run_href(str(run["id"])), status_code=303)

    router.include_router(build_runs_router())  # a submitted form lands on its run's page
    return router


def _attach(page: FormPage, errors: dict[str, str]) -> None:
    for field_view in page.state.fields:
        if field_view.name in errors:
            field_view.error = errors[field_view.name]
