"""From an action's ``invocationMethod`` and a rendered body to the request to deliver.

Building the request is all this module does; sending it (with retries, egress rules and the
signature computed from a secret resolved at send time) is the delivery layer's job. Pure.

:func:`render_request` is the one path from "what the templates see" to a request, shared by
self-service runs and automations.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import orjson

from kiosk.actions.payload import render_template
from kiosk.config.model import AzureDevOpsOrg
from kiosk.delivery.outbox import RESERVED_HEADERS, OutboundRequest, Signing
from kiosk.errors import ValidationFailed

__all__ = ["OutboundRequest", "build_request", "check_azure_org", "check_headers", "render_request"]

JSON_CONTENT_TYPE = {"Content-Type": "application/json"}


def check_azure_org(invocation: Mapping[str, Any], orgs: Mapping[str, AzureDevOpsOrg]) -> None:
    """An AZURE-DEVOPS action must name an organisation configured under ``azureDevOps.orgs``."""
    if invocation.get("type") != "AZURE-DEVOPS":
        return
    org = str(invocation.get("org"))
    if org not in orgs:
        known = ", ".join(sorted(orgs)) or "none is configured"
        raise ValidationFailed(
            f"invocationMethod.org: Azure DevOps org {org!r} is not configured under azureDevOps.orgs "
            f"in kiosk.yaml ({known})",
            code="azure_org_not_configured",
            details={"field": "invocationMethod.org", "org": org},
        )


#: Headers that carry credentials: an action's headers are stored in clear (in the action and in
#: every delivery), so a receiver authenticates kiosk by the webhook signature instead.
CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})


def check_headers(invocation: Mapping[str, Any]) -> None:
    """A WEBHOOK action may not set the headers kiosk's delivery layer owns (signature, length,
    ...) nor credentials (they would be stored in clear)."""
    for name in invocation.get("headers") or {}:
        if name.lower() in RESERVED_HEADERS:
            problem = "is set by kiosk, not by the action"
        elif name.lower() in CREDENTIAL_HEADERS:
            problem = "would store a credential in clear; receivers authenticate kiosk by the webhook signature"
        else:
            continue
        raise ValidationFailed(
            f"invocationMethod.headers: {name!r} {problem}",
            code="invalid_action",
            details={"field": "invocationMethod.headers"},
        )


def build_request(
    invocation: Mapping[str, Any],
    body: Any,
    *,
    orgs: Mapping[str, AzureDevOpsOrg],
    headers: Mapping[str, str] | None = None,
    sign_webhooks: bool = True,
) -> OutboundRequest:
    """The request for one run: ``body`` is the rendered JSON value, ``headers`` the rendered
    WEBHOOK headers (templates already evaluated).

    Signing is asked for only where a secret is configured to sign with (the org's
    ``signingSecret``; ``delivery.signingSecret`` for WEBHOOK, which ``sign_webhooks`` says):
    a delivery whose secret cannot be resolved would only ever fail.
    """
    payload = orjson.dumps(body)  # minified: these bytes are what gets signed
    if invocation["type"] == "AZURE-DEVOPS":
        check_azure_org(invocation, orgs)
        org_name = str(invocation["org"])
        org = orgs[org_name]
        signing = (
            Signing("azure", f"azureDevOps:{org_name}", header=org.signatureHeader)
            if org.signingSecret is not None
            else None
        )
        return OutboundRequest(
            method="POST",
            url=org.webhook_url(org_name, str(invocation["webhook"])),
            headers=dict(JSON_CONTENT_TYPE),
            body=payload,
            signing=signing,
        )
    given = dict(headers if headers is not None else invocation.get("headers") or {})
    for name, value in given.items():
        if not isinstance(value, str) or any(c in value for c in "\r\n\x00"):
            raise ValidationFailed(
                f"invocationMethod.headers.{name}: the rendered value must be text on one line",
                code="template_failed",
                details={"field": f"invocationMethod.headers.{name}"},
            )
    if not any(name.lower() == "content-type" for name in given):
        given = {**JSON_CONTENT_TYPE, **given}
    return OutboundRequest(
        method=str(invocation.get("method") or "POST"),
        url=str(invocation["url"]),
        headers=given,
        body=payload,
        signing=Signing("webhook", "webhook") if sign_webhooks else None,
        synchronized=bool(invocation.get("synchronized")),
    )


def render_request(
    invocation: Mapping[str, Any],
    data: Mapping[str, Any],
    default_body: Callable[[], Any],
    *,
    orgs: Mapping[str, AzureDevOpsOrg],
    sign_webhooks: bool,
    secrets: Mapping[str, str],
) -> OutboundRequest:
    """The request for one run: the action's body template evaluated over ``data`` (or
    ``default_body()`` when it has none), a WEBHOOK's header templates likewise.

    A template that fails, or a request that cannot be built, is a :class:`ValidationFailed`
    naming the field; jq's error text has ``secrets`` masked.
    """
    template = invocation.get("body")
    if template is not None:
        body = render_template(template, data, where="invocationMethod.body", secrets=secrets)
    else:
        body = default_body()
    headers = None
    if invocation["type"] == "WEBHOOK":
        headers = render_template(
            invocation.get("headers") or {}, data, where="invocationMethod.headers", secrets=secrets
        )
    return build_request(invocation, body, orgs=orgs, headers=headers, sign_webhooks=sign_webhooks)
