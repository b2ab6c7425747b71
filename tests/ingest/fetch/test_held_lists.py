"""A list Azure holds past the client's timeout, for the fetchers reading one list per project or
repository: each raises :class:`RequestTimeout` rather than yield the part it read (a partial list
would let the resync delete what it did not see)."""

from __future__ import annotations

import pytest
from tests.emulator.conftest import LiveEmulator
from tests.ingest.fetch.conftest import read_kind, set_faults

from kiosk.azure.errors import RequestTimeout


@pytest.mark.parametrize(
    ("kind", "path"),
    [
        ("branch", "*/refs"),
        ("environment", "*/_apis/distributedtask/environments"),
        ("release-deployment", "*/_apis/release/deployments"),
    ],
)
def test_a_held_list_is_a_timeout(generated_org: LiveEmulator, kind: str, path: str) -> None:
    set_faults(generated_org, {"path": path, "holdSeconds": 2})
    with pytest.raises(RequestTimeout):
        read_kind(generated_org, kind, timeout=0.2)
