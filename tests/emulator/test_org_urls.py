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

from kiosk.emulator.org.model import Organisation

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


def extras_starts(org: Organisation) -> list[str]:
    """Graph, entitlements, and the commit, branch, pull-request and build extras (routes/graph.py, …)."""
    repo = next(r for r in org.repositories.values() if r.default_branch and not r.is_disabled and r.commits)
    repo_path = f"/fabrikam/{repo.project_id}/_apis/git/repositories/{repo.id}"
    pr = next(iter(org.pull_requests.values()))
    pr_repo = org.repositories[pr.repository_id]
    pr_path = f"/fabrikam/{pr_repo.project_id}/_apis/git/repositories/{pr_repo.id}/pullRequests/{pr.id}"
    build = next(iter(org.builds.values()))
    user = next(iter(org.users.values()))
    return [
        "/fabrikam/_apis/graph/users",
        "/fabrikam/_apis/graph/groups",
        f"/fabrikam/_apis/graph/memberships/{user.descriptor}",
        f"/fabrikam/_apis/graph/storagekeys/{user.descriptor}",
        f"/fabrikam/_apis/graph/descriptors/{repo.project_id}",
        "/fabrikam/_apis/userentitlements?select=all",
        "/fabrikam/_apis/teams",
        f"{repo_path}/stats/branches",
        f"{repo_path}/commits/{next(iter(repo.commits))}/changes",
        f"{pr_path}/commits",
        f"/fabrikam/{build.project_id}/_apis/build/builds/{build.id}/changes",
    ]


def work_starts(org: Organisation) -> list[str]:
    """Boards, team settings, wikis, environments, releases (routes/work.py, wiki.py, environments.py, release.py)."""
    release = next(iter(org.releases.values()))
    project = org.projects[release.project_id]
    team = next(t for t in org.project_teams(project.id) if t.id != project.default_team_id)
    board = org.boards[team.id][0]
    wiki = next(w for w in org.wikis.values() if w.project_id == project.id)
    environment = next(e for e in org.environments.values() if e.project_id == project.id and e.deployments)
    team_path = f"/fabrikam/{project.id}/{team.id}/_apis/work"
    return [
        f"/fabrikam/{project.id}/_apis/work/boards",
        f"{team_path}/boards/{board.id}",
        f"{team_path}/teamsettings",
        f"{team_path}/teamsettings/iterations",
        f"{team_path}/teamsettings/teamfieldvalues",
        "/fabrikam/_apis/wiki/wikis",
        f"/fabrikam/{project.id}/_apis/wiki/wikis/{wiki.id}/pages?path=/&recursionLevel=full",
        f"/fabrikam/{project.id}/_apis/distributedtask/environments",
        f"/fabrikam/{project.id}/_apis/distributedtask/environments/{environment.id}/environmentdeploymentrecords",
        f"/fabrikam/{project.id}/_apis/release/definitions?$expand=environments,artifacts,lastRelease",
        f"/fabrikam/{project.id}/_apis/release/releases?$expand=environments,artifacts",
        f"/fabrikam/{project.id}/_apis/release/releases/{release.id}",
        f"/fabrikam/{project.id}/_apis/release/deployments",
        *quality_starts(org),
    ]


def quality_starts(org: Organisation) -> list[str]:
    """Test runs, their results, code coverage, Advanced Security alerts (routes/test.py, alerts.py)."""
    run = next(iter(org.test_runs.values()))
    build_id = next(iter(org.code_coverage))
    alerted = org.repositories[next(iter(org.advanced_security))]
    return [
        f"/fabrikam/{run.project_id}/_apis/test/runs?includeRunDetails=true",
        f"/fabrikam/{run.project_id}/_apis/test/runs/{run.id}/results",
        f"/fabrikam/{org.builds[build_id].project_id}/_apis/test/codecoverage?buildId={build_id}&flags=7",
        f"/fabrikam/{alerted.project_id}/_apis/alert/repositories/{alerted.id}/alerts?api-version=7.2-preview.1",
    ]


def wit_starts(org: Organisation) -> list[str]:
    """Work items with everything expanded, their updates, revisions and comments, types, fields, nodes, WIQL
    results (routes/wit.py)."""
    item = next(i for i in org.work_items.values() if not i.is_deleted and i.comments and i.relations)
    project = item.project_id
    ids = ",".join(str(i) for i in list(org.work_items)[:20])
    return [
        f"/fabrikam/{project}/_apis/wit/workitems?ids={ids}&$expand=all&errorPolicy=omit",
        f"/fabrikam/_apis/wit/workitems/{item.id}",
        f"/fabrikam/{project}/_apis/wit/workitems/{item.id}/updates",
        f"/fabrikam/{project}/_apis/wit/workitems/{item.id}/revisions?$expand=all",
        f"/fabrikam/{project}/_apis/wit/workitems/{item.id}/comments",
        f"/fabrikam/{project}/_apis/wit/workitemtypes",
        f"/fabrikam/{project}/_apis/wit/fields",
        f"/fabrikam/{project}/_apis/wit/classificationnodes?$depth=3",
        f"/fabrikam/{project}/_apis/wit/recyclebin",
        "/fabrikam/_apis/wit/workitemicons",
    ]


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
        *extras_starts(org),
        *work_starts(org),
        *wit_starts(org),
        "/fabrikam/_apis/hooks/publishers",  # service hooks (routes/hooks.py)
        "/fabrikam/_apis/hooks/consumers",
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
