"""How the tests' own Azure DevOps clients talk to the emulator: one set of options, so a failing
request is retried once, quickly, and a held answer fails in seconds rather than a minute."""

from __future__ import annotations

from typing import Any

from kiosk.azure.ratelimit import RetryPolicy

__all__ = ["FAST"]

#: ``AzureDevOpsRest``'s options (``rest_options`` of a resync, incremental pass or processor): a 500
#: is retried once after at most 20 ms, a request times out after 5 s.
FAST: dict[str, Any] = {"retry": RetryPolicy(max_attempts=2, base_delay=0.01, max_delay=0.02), "timeout": 5.0}
