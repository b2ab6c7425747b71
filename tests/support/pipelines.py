"""The seed's incoming-webhook pipeline pieces the pipeline, emulator and signing tests share.

The seed (Microsoft's incoming-webhook example) posts ``SEED_BODY`` to connection ``IncomingWH``,
signed with the secret ``secret`` into ``SEED_CHECKSUM``; the pipeline it triggers declares the
webhook resource :func:`webhook_resources` writes. Pipelines stay YAML text (their errors name
lines), so the resource block is text a test puts in front of its own steps.
"""

from __future__ import annotations

import json
from typing import Any

#: The seed's body, minified as Azure DevOps signs it.
SEED_BODY = b'{"resource":{"message":{"title":"Hello, world!","subtitle":"I\'m using WebHooks!"}}}'
#: ``SEED_BODY``'s HMAC-SHA1 checksum (``X-WH-Checksum``) with the secret ``secret``: the seed's test vector.
SEED_CHECKSUM = "750D33212D3AD4932CC390819050734831A0A94F"
#: ``SEED_BODY`` as data: what ``parameters.WebHook`` holds in the triggered run.
SEED_PAYLOAD: dict[str, Any] = json.loads(SEED_BODY)


def webhook_resources(*filters: tuple[str, str], webhook: str = "WebHook", connection: str = "IncomingWH") -> str:
    """A pipeline's ``resources:`` block declaring webhook ``webhook`` on ``connection``, triggered
    only when every ``(path, value)`` filter matches (values are written as they are: plain YAML)."""
    lines = ["resources:", "  webhooks:", f"    - webhook: {webhook}", f"      connection: {connection}"]
    if filters:
        lines.append("      filters:")
        for path, value in filters:
            lines += [f"        - path: {path}", f"          value: {value}"]
    return "\n".join(lines) + "\n"


#: The seed pipeline's webhook resource: runs for the seed's ``Hello, world!`` message only.
SEED_WEBHOOK_RESOURCES = webhook_resources(("resource.message.title", "Hello, world!"))
