"""Schemathesis over kiosk's own OpenAPI document: whatever it sends, no 5xx, on both engines.

Driven through hypothesis directly (one ``@given`` per operation and generation mode) rather
than schemathesis' pytest plugin, whose fixture integration does not support this pytest.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.openapi import from_url
from tests.web.live import LiveServer


def seed_catalog(live: LiveServer) -> None:
    api = live.admin
    api.post("/v1/blueprints", json={"identifier": "project"})
    api.post(
        "/v1/blueprints",
        json={
            "identifier": "service",
            "schema": {"properties": {"lang": {"type": "string", "x-kiosk-index": True}, "n": {"type": "number"}}},
            "relations": {"project": {"target": "project"}, "deps": {"target": "service", "many": True}},
        },
    )
    api.post("/v1/blueprints/project/entities", json={"identifier": "p1"})


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["positive", "negative"])
def test_no_server_errors(live: LiveServer, mode: GenerationMode) -> None:
    seed_catalog(live)
    schema = from_url(live.base_url + "/openapi.json")
    headers = {"Authorization": str(live.admin.headers["Authorization"])}
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 14

    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def exercise(case: schemathesis.Case) -> None:
            case.call_and_validate(base_url=live.base_url, headers=headers, checks=[not_a_server_error])

        try:
            exercise()
        except Unsatisfiable:
            # Negative mode only: nothing in this operation can be made invalid (no body, no
            # constrained parameter), so there is no negative case to send.
            assert mode is GenerationMode.NEGATIVE, operation.label
        except Exception as exc:  # collect every operation's failure, then report them all
            failures.append(f"{operation.label}: {exc}")
    assert not failures, "\n\n".join(failures)
