"""Every API ``url`` and ``_links`` href the emulator returns resolves on the emulator itself.

Walks the JSON of the org routes (and what their URLs lead to, one level on) and GETs each API
URL. Not followed, on purpose: web pages (``_links.web``, ``webUrl``, ``remoteUrl``) and the
identity and avatar URLs inside IdentityRefs, which Azure serves from other hosts, and git clone URLs
(``…/_git/…``, a build repository's ``url``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from tests.emulator.conftest import CONFIG, EmulatorFactory
from tests.support.azure_sdk import with_generated_org

_SKIPPED_LINKS = {"web", "avatar", "html"}


def api_urls(value: Any, base: str) -> Iterator[str]:
    if isinstance(value, dict):
        identity = "uniqueName" in value and "displayName" in value
        for key, child in value.items():
            if (
                key == "url"
                and isinstance(child, str)
                and child.startswith(base)
                and not identity
                and "/_git/" not in child
            ):
                yield child
            elif key == "_links" and isinstance(child, dict):
                for name, link in child.items():
                    if (
                        name not in _SKIPPED_LINKS
                        and isinstance(link, dict)
                        and str(link.get("href", "")).startswith(base)
                    ):
                        yield link["href"]
            else:
                yield from api_urls(child, base)
    elif isinstance(value, list):
        for child in value:
            yield from api_urls(child, base)


def test_every_url_resolves(start_emulator: EmulatorFactory) -> None:
    emulator = start_emulator(config=with_generated_org(CONFIG, repos=6), execute=False)
    org = emulator.server.emulator.organisation("fabrikam")
    repo = next(r for r in org.repositories.values() if r.default_branch and not r.is_disabled)
    project = org.projects[repo.project_id]
    repo_path = f"/fabrikam/{project.id}/_apis/git/repositories/{repo.id}"
    starts = [
        "/fabrikam/_apis/projects",
        f"/fabrikam/_apis/projects/{project.id}",
        f"/fabrikam/_apis/projects/{project.id}/teams",
        f"/fabrikam/{project.id}/_apis/git/repositories?includeLinks=true",
        f"{repo_path}/refs",
        f"{repo_path}/items?scopePath=/&recursionLevel=Full",
        f"{repo_path}/commits",
        f"{repo_path}/pushes",
        f"{repo_path}/pullRequests?searchCriteria.status=all",
        f"/fabrikam/{project.id}/_apis/policy/configurations",
        f"/fabrikam/{project.id}/_apis/build/definitions",
        f"/fabrikam/{project.id}/_apis/build/builds",
    ]
    seen: set[str] = set()
    frontier = [emulator.base_url + path for path in starts]
    for depth in range(2):
        found: list[str] = []
        for url in frontier:
            if url in seen:
                continue
            seen.add(url)
            response = emulator.client.get(url, headers={"Accept": "application/json"})
            assert response.status_code == 200, (url, response.status_code, response.text[:200])
            if depth == 0:
                found.extend(api_urls(response.json(), emulator.base_url))
        frontier = found
    assert len(seen) > 50
