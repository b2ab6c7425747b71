"""Advanced Security alerts as the emulator serves them (Azure's ``advsec`` host, the org URL here):
the list's criteria and continuation paging, one alert, and the 400 of a repository with it off.

Microsoft's Python client has no Advanced Security client, so these go over plain HTTP.
"""

from __future__ import annotations

from typing import Any

import pytest
from tests.emulator.conftest import LiveEmulator

from kiosk.emulator.org.model import GitRepository, Organisation
from kiosk.emulator.routes.alerts import ADVANCED_SECURITY_OFF

VERSION = {"api-version": "7.2-preview.1"}


pytestmark = pytest.mark.generated_org(repos=8)


def scanned(org: Organisation) -> GitRepository:
    """The repository with the most alerts."""
    return org.repositories[
        max(org.advanced_security, key=lambda r: sum(a.repository_id == r for a in org.alerts.values()))
    ]


def alerts_path(repo: GitRepository) -> str:
    return f"/fabrikam/{repo.project_id}/_apis/alert/repositories/{repo.id}/alerts"


def get(live: LiveEmulator, path: str, **params: Any) -> Any:
    answer = live.client.get(path, params={**VERSION, **params})
    assert answer.status_code == 200, answer.text
    return answer


def test_alerts_of_a_repository_in_azure_s_shape(generated: LiveEmulator) -> None:
    org = generated.organisation()
    repo = scanned(org)
    mine = [a for a in org.alerts.values() if a.repository_id == repo.id]
    listed = get(generated, alerts_path(repo)).json()
    assert listed["count"] == len(mine) >= 2
    first = listed["value"][0]
    alert = mine[0]
    assert (first["alertId"], first["alertType"], first["severity"], first["state"], first["title"]) == (
        alert.id,
        alert.alert_type,
        alert.severity,
        alert.state,
        alert.title,
    )
    assert first["repositoryUrl"] == repo.web_url and first["tools"][0]["name"] == alert.tool_name
    assert first["physicalLocations"][0]["filePath"] == alert.file_path and first["firstSeenDate"].endswith("Z")
    by_name = get(generated, f"/fabrikam/{repo.project_id}/_apis/alert/repositories/{repo.name}/alerts").json()
    assert by_name == listed
    one = get(generated, f"{alerts_path(repo)}/{alert.id}").json()
    assert one == first
    missing = generated.client.get(f"{alerts_path(repo)}/999999", params=VERSION)
    assert missing.status_code == 404


def test_criteria_filter_and_tokens_page(generated: LiveEmulator) -> None:
    org = generated.organisation()
    repo = scanned(org)
    mine = [a for a in org.alerts.values() if a.repository_id == repo.id]
    for params, wanted in (
        ({"criteria.states": "active"}, [a.id for a in mine if a.state == "active"]),
        ({"criteria.states": "Fixed, dismissed"}, [a.id for a in mine if a.state in ("fixed", "dismissed")]),
        ({"criteria.severity": "critical,high"}, [a.id for a in mine if a.severity in ("critical", "high")]),
        ({"criteria.alertType": "code"}, [a.id for a in mine if a.alert_type == "code"]),
    ):
        assert [a["alertId"] for a in get(generated, alerts_path(repo), **params).json()["value"]] == wanted, params
    bad = generated.client.get(alerts_path(repo), params={**VERSION, "criteria.states": "open"})
    assert bad.status_code == 400

    tokens = generated.page_tokens(f"{alerts_path(repo)}?api-version=7.2-preview.1", 1)
    assert len(tokens) == len(mine) and tokens[1:] == [str(n) for n in range(1, len(mine))]


def test_a_repository_with_advanced_security_off_answers_400(generated: LiveEmulator) -> None:
    org = generated.organisation()
    off = next(r for r in org.repositories.values() if r.id not in org.advanced_security)
    answer = generated.client.get(alerts_path(off), params=VERSION)
    assert answer.status_code == 400 and answer.json()["typeKey"] == ADVANCED_SECURITY_OFF
    gone = generated.client.get(f"/fabrikam/{off.project_id}/_apis/alert/repositories/nothing-here/alerts")
    assert gone.status_code == 404 and gone.json()["typeKey"] == "GitRepositoryNotFoundException"
