"""Service-hook routes (reference 3.11), on the org host: subscriptions, their query and
notifications, publishers and event types, consumers and their actions; and the emulator's own
``GET /_emulator/hooks/deliveries`` (every delivery attempt, newest first).

Thin: validation, matching and delivery are in :mod:`kiosk.emulator.hooks`. Every route is
``async`` (it awaits nothing but the body): it runs on the event loop, never in a thread pool.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Annotated, Any, Final

from fastapi import FastAPI, Query, Request
from starlette.responses import Response

from kiosk.emulator.access import AccessPolicy
from kiosk.emulator.bodies import check_json_content_type, has_body, parse_json, read_body
from kiosk.emulator.errors import AzureError
from kiosk.emulator.hooks import ServiceHooks
from kiosk.emulator.hooks.catalogue import (
    CONSUMER_ACTION_ID,
    CONSUMER_ID,
    EVENT_TYPES,
    PUBLISHERS,
    consumer_action_json,
    consumer_json,
    event_type_json,
    publisher_json,
)
from kiosk.emulator.hooks.delivery import attempt_json
from kiosk.emulator.hooks.subscriptions import STATUSES, URL_PATTERN
from kiosk.emulator.routes.common import ApiVersion, wrapped
from kiosk.emulator.service import Emulator
from kiosk.web.responses import FastJSONResponse

__all__ = ["add_hooks_routes"]

_MAX_BODY: Final = 1024 * 1024
PublisherFilter = Annotated[str | None, Query(alias="publisherId")]
"""``publisherId``: filters the subscriptions list; the consumer routes take it and ignore it (their one
consumer takes every publisher's events)."""
Responses = Callable[..., dict[int | str, dict[str, Any]]]
JsonBody = Callable[..., dict[str, Any]]

_INPUTS: Final[dict[str, Any]] = {"type": ["object", "null"], "additionalProperties": {"type": ["string", "null"]}}
SUBSCRIPTION_SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "required": ["eventType", "publisherId", "consumerId", "consumerInputs"],
    "properties": {
        "publisherId": {"enum": sorted(PUBLISHERS)},
        "eventType": {"enum": sorted(EVENT_TYPES)},
        "resourceVersion": {"type": ["string", "null"]},
        "consumerId": {"const": CONSUMER_ID},
        "consumerActionId": {"enum": [CONSUMER_ACTION_ID, None]},
        "consumerInputs": {
            "type": "object",
            "required": ["url"],
            "properties": {"url": {"type": "string", "pattern": f"^{URL_PATTERN.pattern}$"}},
            "additionalProperties": {"type": ["string", "null"]},
        },
        "publisherInputs": _INPUTS,
        "status": {"enum": [*STATUSES, None]},
    },
    "oneOf": [
        {"properties": {"eventType": {"const": event.id}, "publisherId": {"const": event.publisher_id}}}
        for event in EVENT_TYPES.values()
    ],
}
"""The body's shape. Azure's cross-field rules (the event type belongs to the publisher, the
inputs it takes, https with a password…) are checked by the route and answered with a 400."""

_FILTER: Final[dict[str, Any]] = {
    "type": "object",
    "required": ["conditions"],
    "properties": {
        "conditions": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["inputId"],
                "properties": {
                    "inputId": {"type": "string"},
                    "inputValue": {"type": ["string", "null"]},
                    "operator": {"enum": ["equals", "notEquals", None]},
                    "caseSensitive": {"type": ["boolean", "null"]},
                },
            },
        }
    },
}
_QUERY_SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "properties": {
        "publisherId": {"type": ["string", "null"]},
        "eventType": {"type": ["string", "null"]},
        "consumerId": {"type": ["string", "null"]},
        "consumerActionId": {"type": ["string", "null"]},
        "publisherInputFilters": {"type": ["array", "null"], "items": _FILTER},
        "consumerInputFilters": {"type": ["array", "null"], "items": _FILTER},
        "subscriberId": {"type": ["string", "null"]},
    },
}


async def _body(request: Request) -> Any:
    """The JSON body, which these routes all require (415 unless JSON, 400 when missing or invalid)."""
    check_json_content_type(request.headers.get("content-type"), has_body=has_body(request))
    raw = await read_body(request, _MAX_BODY)
    if not raw:
        raise AzureError(400, "ArgumentNullException", "The request needs a JSON body.")
    return parse_json(raw)


def _checked_query(query: Any) -> dict[str, Any]:
    """A ``SubscriptionsQuery`` body: strings (or null) and lists of ``{conditions: [...]}`` (or null)."""
    if not isinstance(query, dict):
        raise AzureError(400, "ArgumentException", "the query must be a JSON object")
    for key in ("publisherId", "eventType", "consumerId", "consumerActionId", "subscriberId"):
        if query.get(key) is not None and not isinstance(query[key], str):
            raise AzureError(400, "ArgumentException", f"{key} must be a string")
    for key in ("publisherInputFilters", "consumerInputFilters"):
        filters = query.get(key)
        if filters is None:
            continue
        if not isinstance(filters, list) or not all(
            isinstance(f, Mapping) and isinstance(f.get("conditions"), list) for f in filters
        ):
            raise AzureError(400, "ArgumentException", f"{key} must be a list of {{conditions: [...]}}")
        for condition in (c for f in filters for c in f["conditions"]):
            if not _valid_condition(condition):
                raise AzureError(
                    400,
                    "ArgumentException",
                    f"{key}: a condition is {{inputId, inputValue, operator: equals|notEquals, caseSensitive}}",
                )
    return query


def _valid_condition(condition: Any) -> bool:
    return (
        isinstance(condition, Mapping)
        and isinstance(condition.get("inputId"), str)
        and (condition.get("inputValue") is None or isinstance(condition["inputValue"], str))
        and condition.get("operator") in (None, "equals", "notEquals")
        and (condition.get("caseSensitive") is None or isinstance(condition["caseSensitive"], bool))
    )


def _conditions_hold(filters: Any, inputs: Mapping[str, str]) -> bool:
    """``InputFilter`` list: every filter's conditions (``equals``/``notEquals``) hold (an empty list: all)."""
    if filters is None:
        return True
    lowered = {k.lower(): v for k, v in inputs.items()}
    for input_filter in filters:
        for condition in input_filter["conditions"]:
            actual = lowered.get(condition["inputId"].lower(), "")
            expected = condition.get("inputValue") or ""
            if not condition.get("caseSensitive"):
                actual, expected = actual.lower(), expected.lower()
            if (actual == expected) != (condition.get("operator") in (None, "equals")):
                return False
    return True


def add_hooks_routes(
    app: FastAPI,
    emulator: Emulator,
    hooks: ServiceHooks | None,
    policy: AccessPolicy,
    responses: Responses,
    json_body: JsonBody,
) -> None:
    """Add the service-hook routes (404 everywhere when the emulator runs without hooks)."""
    base = emulator.options.base_url
    read = responses(400, 401, 403, 404)
    write = responses(400, 401, 403, 404, 413, 415)

    def _hooks() -> ServiceHooks:
        if hooks is None:
            raise AzureError(404, "NotFoundException", "service hooks are not enabled on this emulator")
        return hooks

    # ------------------------------------------------------------ subscriptions

    @app.post("/{org}/_apis/hooks/subscriptions", responses=write, openapi_extra=json_body(SUBSCRIPTION_SCHEMA))
    async def create_subscription(org: str, request: Request, api_version: ApiVersion) -> Response:
        """Create a subscription (200 with the subscription, as Azure answers)."""
        name = emulator.org_name(org)
        service = _hooks()
        return FastJSONResponse(service.json(service.create(name, await _body(request))))

    @app.get("/{org}/_apis/hooks/subscriptions", responses=read)
    async def list_subscriptions(
        org: str,
        api_version: ApiVersion,
        publisher_id: PublisherFilter = None,
        event_type: Annotated[str | None, Query(alias="eventType")] = None,
        consumer_id: Annotated[str | None, Query(alias="consumerId")] = None,
        consumer_action_id: Annotated[str | None, Query(alias="consumerActionId")] = None,
    ) -> Response:
        """The org's subscriptions (unpaged), by publisher, event type, consumer and action."""
        service = _hooks()
        found = service.subscriptions.listed(
            emulator.org_name(org),
            publisher_id=publisher_id,
            event_type=event_type,
            consumer_id=consumer_id,
            consumer_action_id=consumer_action_id,
        )
        return wrapped([service.json(s) for s in found])

    @app.get("/{org}/_apis/hooks/subscriptions/{subscription_id}", responses=read)
    async def get_subscription(org: str, subscription_id: str, api_version: ApiVersion) -> Response:
        service = _hooks()
        return FastJSONResponse(service.json(service.get(emulator.org_name(org), subscription_id)))

    @app.put(
        "/{org}/_apis/hooks/subscriptions/{subscription_id}",
        responses=write,
        openapi_extra=json_body(SUBSCRIPTION_SCHEMA),
    )
    async def replace_subscription(
        org: str, subscription_id: str, request: Request, api_version: ApiVersion
    ) -> Response:
        """Replace a subscription (a ``********`` password keeps the stored one; ``status`` enables or disables)."""
        service = _hooks()
        name = emulator.org_name(org)
        service.get(name, subscription_id)
        return FastJSONResponse(service.json(service.replace(name, subscription_id, await _body(request))))

    @app.delete(
        "/{org}/_apis/hooks/subscriptions/{subscription_id}",
        status_code=204,
        response_class=Response,
        responses=read,
    )
    async def delete_subscription(org: str, subscription_id: str, api_version: ApiVersion) -> Response:
        _hooks().delete(emulator.org_name(org), subscription_id)
        return Response(status_code=204)

    @app.post("/{org}/_apis/hooks/subscriptionsQuery", responses=write, openapi_extra=json_body(_QUERY_SCHEMA))
    async def query_subscriptions(org: str, request: Request, api_version: ApiVersion) -> Response:
        """``SubscriptionsQuery``: the query echoed, with the matching subscriptions as ``results``."""
        service = _hooks()
        name = emulator.org_name(org)
        query = _checked_query(await _body(request))
        found = service.subscriptions.listed(
            name,
            publisher_id=query.get("publisherId") or None,
            event_type=query.get("eventType") or None,
            consumer_id=query.get("consumerId") or None,
            consumer_action_id=query.get("consumerActionId") or None,
        )
        results = []
        for subscription in found:
            shown = service.json(subscription)
            if _conditions_hold(query.get("publisherInputFilters"), shown["publisherInputs"]) and _conditions_hold(
                query.get("consumerInputFilters"), subscription.consumer_inputs
            ):
                results.append(shown)
        subscriber = query.get("subscriberId")
        if subscriber:
            results = [r for r in results if r["subscriber"]["id"] == str(subscriber).lower()]
        return FastJSONResponse({**query, "results": results})

    # ------------------------------------------------------------ notifications

    @app.get("/{org}/_apis/hooks/subscriptions/{subscription_id}/notifications", responses=read)
    async def notifications(
        org: str,
        subscription_id: str,
        api_version: ApiVersion,
        max_results: Annotated[int | None, Query(alias="maxResults", ge=1, le=100_000)] = None,
        status: str | None = None,
        result: str | None = None,
    ) -> Response:
        """A subscription's notifications, newest first (``status``, ``result``, ``maxResults``)."""
        items = _hooks().notifications(
            emulator.org_name(org), subscription_id, max_results=max_results, status=status, result=result
        )
        return wrapped(items)

    @app.get("/{org}/_apis/hooks/subscriptions/{subscription_id}/notifications/{notification_id}", responses=read)
    async def notification(org: str, subscription_id: str, notification_id: int, api_version: ApiVersion) -> Response:
        return FastJSONResponse(_hooks().notification(emulator.org_name(org), subscription_id, notification_id))

    # ------------------------------------------------------------ publishers, event types, consumers

    def _publisher(publisher_id: str) -> Any:
        found = PUBLISHERS.get(publisher_id)
        if found is None:
            raise AzureError(
                404, "ServiceHookPublisherNotFoundException", f"No publisher with id {publisher_id[:64]!r} exists."
            )
        return found

    @app.get("/{org}/_apis/hooks/publishers", responses=read)
    async def publishers(org: str, api_version: ApiVersion) -> Response:
        name = emulator.org_name(org)
        return wrapped([publisher_json(base, name, p) for p in PUBLISHERS.values()])

    @app.get("/{org}/_apis/hooks/publishers/{publisher_id}", responses=read)
    async def publisher(org: str, publisher_id: str, api_version: ApiVersion) -> Response:
        return FastJSONResponse(publisher_json(base, emulator.org_name(org), _publisher(publisher_id)))

    @app.get("/{org}/_apis/hooks/publishers/{publisher_id}/eventTypes", responses=read)
    async def event_types(org: str, publisher_id: str, api_version: ApiVersion) -> Response:
        name = emulator.org_name(org)
        found = _publisher(publisher_id)
        return wrapped([event_type_json(base, name, e) for e in EVENT_TYPES.values() if e.publisher_id == found.id])

    @app.get("/{org}/_apis/hooks/publishers/{publisher_id}/eventTypes/{event_type_id}", responses=read)
    async def event_type(org: str, publisher_id: str, event_type_id: str, api_version: ApiVersion) -> Response:
        name = emulator.org_name(org)
        found = _publisher(publisher_id)
        event = EVENT_TYPES.get(event_type_id)
        if event is None or event.publisher_id != found.id:
            raise AzureError(
                404,
                "ServiceHookEventTypeNotFoundException",
                f"The publisher {found.id} has no event type {event_type_id[:100]!r}.",
            )
        return FastJSONResponse(event_type_json(base, name, event))

    def _consumer(org: str, consumer_id: str) -> str:
        """The org's name, once ``consumer_id`` is the one consumer served (Web Hooks), else Azure's 404."""
        name = emulator.org_name(org)
        if consumer_id != CONSUMER_ID:
            raise AzureError(
                404, "ServiceHookConsumerNotFoundException", f"No consumer with id {consumer_id[:64]!r} is served here."
            )
        return name

    @app.get("/{org}/_apis/hooks/consumers", responses=read)
    async def consumers(org: str, api_version: ApiVersion, publisher_id: PublisherFilter = None) -> Response:
        """The one consumer served, Web Hooks (it takes every publisher's events)."""
        return wrapped([consumer_json(base, emulator.org_name(org))])

    @app.get("/{org}/_apis/hooks/consumers/{consumer_id}", responses=read)
    async def consumer(
        org: str, consumer_id: str, api_version: ApiVersion, publisher_id: PublisherFilter = None
    ) -> Response:
        return FastJSONResponse(consumer_json(base, _consumer(org, consumer_id)))

    @app.get("/{org}/_apis/hooks/consumers/{consumer_id}/actions", responses=read)
    async def consumer_actions(
        org: str, consumer_id: str, api_version: ApiVersion, publisher_id: PublisherFilter = None
    ) -> Response:
        return wrapped([consumer_action_json(base, _consumer(org, consumer_id))])

    @app.get("/{org}/_apis/hooks/consumers/{consumer_id}/actions/{action_id}", responses=read)
    async def consumer_action(
        org: str, consumer_id: str, action_id: str, api_version: ApiVersion, publisher_id: PublisherFilter = None
    ) -> Response:
        name = _consumer(org, consumer_id)
        if action_id != CONSUMER_ACTION_ID:
            raise AzureError(
                404,
                "ServiceHookConsumerActionNotFoundException",
                f"The consumer {CONSUMER_ID} has no action {action_id[:64]!r}.",
            )
        return FastJSONResponse(consumer_action_json(base, name))

    # ------------------------------------------------------------ the emulator's own

    @app.get("/_emulator/hooks/deliveries", responses=responses(400, 401, 403))
    async def deliveries(
        request: Request,
        org: str | None = None,
        subscription: Annotated[str | None, Query(max_length=64)] = None,
        event_type: Annotated[str | None, Query(alias="eventType", max_length=200)] = None,
        status: Annotated[str | None, Query(pattern="^(succeeded|failed)$")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> Response:
        """Every delivery attempt of the caller's orgs, newest first: request (Authorization masked),
        response or error, duration, attempt number and what the subscription's status became."""
        visible: frozenset[str] | None = None
        if not policy.allow_anonymous:
            visible = request.scope.get("state", {}).get("pat_orgs", frozenset())
        if hooks is None:
            return wrapped([])
        found = hooks.log.query(
            orgs=visible, org=org, subscription_id=subscription, event_type=event_type, status=status, limit=limit
        )
        return wrapped([attempt_json(a) for a in found])
