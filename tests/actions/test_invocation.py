"""Building the outbound request for AZURE-DEVOPS and WEBHOOK actions."""

from __future__ import annotations

import orjson
import pytest

from kiosk.actions.invocation import build_request, check_azure_org, check_headers
from kiosk.config.model import AzureDevOpsOrg
from kiosk.config.secrets import SecretRef
from kiosk.delivery.outbox import Signing
from kiosk.errors import ValidationFailed

ORGS = {
    "contoso": AzureDevOpsOrg(signingSecret=SecretRef(env="AZ_SECRET")),
    "fabrikam": AzureDevOpsOrg(baseUrl="http://127.0.0.1:8001/", signatureHeader="X-Hook-Checksum"),
}
BODY = {"b": [1, 2], "a": "é"}


def test_azure_devops_request() -> None:
    req = build_request({"type": "AZURE-DEVOPS", "org": "contoso", "webhook": "port_trigger"}, BODY, orgs=ORGS)
    assert req.method == "POST"
    assert req.url == (
        "https://dev.azure.com/contoso/_apis/public/distributedtask/webhooks/port_trigger?api-version=6.0-preview"
    )
    assert req.headers == {"Content-Type": "application/json"}
    assert req.body == b'{"b":[1,2],"a":"\xc3\xa9"}'  # minified, key order kept, UTF-8
    assert orjson.loads(req.body) == BODY
    assert req.signing == Signing("azure", "azureDevOps:contoso", header="X-Port-Signature")


def test_azure_devops_org_settings() -> None:
    req = build_request({"type": "AZURE-DEVOPS", "org": "fabrikam", "webhook": "w"}, {}, orgs=ORGS)
    assert req.url == "http://127.0.0.1:8001/fabrikam/_apis/public/distributedtask/webhooks/w?api-version=6.0-preview"
    assert req.signing is None  # no signing secret configured for this org: sent unsigned


def test_unconfigured_org_is_named() -> None:
    with pytest.raises(ValidationFailed) as info:
        build_request({"type": "AZURE-DEVOPS", "org": "initech", "webhook": "w"}, {}, orgs=ORGS)
    error = info.value
    assert error.status_code == 422 and error.code == "azure_org_not_configured"
    assert "'initech'" in error.message and "contoso, fabrikam" in error.message
    assert error.details == {"field": "invocationMethod.org", "org": "initech"}
    with pytest.raises(ValidationFailed, match="none is configured"):
        check_azure_org({"type": "AZURE-DEVOPS", "org": "x"}, {})
    check_azure_org({"type": "WEBHOOK", "url": "https://x.io"}, {})


def test_webhook_request() -> None:
    invocation = {"type": "WEBHOOK", "url": "https://hooks.example.com/run", "method": "PUT", "headers": {"X-A": "1"}}
    req = build_request(invocation, BODY, orgs={})
    assert (req.method, req.url) == ("PUT", "https://hooks.example.com/run")
    assert req.headers == {"Content-Type": "application/json", "X-A": "1"}
    assert req.signing == Signing("webhook", "webhook")
    unsigned = build_request(invocation, BODY, orgs={}, headers={"content-type": "text/plain"}, sign_webhooks=False)
    assert unsigned.headers == {"content-type": "text/plain"} and unsigned.signing is None
    with pytest.raises(ValidationFailed) as info:
        build_request(invocation, BODY, orgs={}, headers={"X-Count": 3})  # type: ignore[dict-item]
    assert info.value.details == {"field": "invocationMethod.headers.X-Count"}


@pytest.mark.parametrize("name", ["Host", "content-length", "X-Port-Signature", "webhook-id", "Webhook-Signature"])
def test_headers_kiosk_sets_are_refused(name: str) -> None:
    with pytest.raises(ValidationFailed, match="set by kiosk"):
        check_headers({"type": "WEBHOOK", "url": "https://x.io", "headers": {name: "x"}})
    check_headers({"type": "WEBHOOK", "url": "https://x.io", "headers": {"X-Other": "x"}})


@pytest.mark.parametrize("name", ["Authorization", "cookie", "Proxy-Authorization"])
def test_credential_headers_are_refused(name: str) -> None:
    with pytest.raises(ValidationFailed, match="credential in clear"):
        check_headers({"type": "WEBHOOK", "url": "https://x.io", "headers": {name: "Bearer x"}})
