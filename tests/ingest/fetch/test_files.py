"""The file and folder fetchers against a live emulator, and their pure parts (globs, parsing)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from tests.emulator.conftest import LiveEmulator
from tests.ingest.fetch.conftest import read_kind, set_faults

from kiosk.azure.errors import NotFound, ServerError
from kiosk.emulator.org.model import Commit, GitRef, GitRepository, Organisation, RepoFile
from kiosk.ingest.fetch import files
from kiosk.ingest.fetch.files import MAX_FILE_BYTES, glob_regex, parse_content, plan_files

# ---------------------------------------------------------------------------------------------- pure parts


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("*.md", "README.md", True),
        ("*.MD", "readme.md", True),  # case is ignored, as wcmatch's IGNORECASE does
        ("*.md", "docs/README.md", False),  # * stays within a segment
        ("**/*.md", "README.md", True),  # ** is zero or more segments
        ("**/*.md", "a/b/c.md", True),
        ("src/**", "src/a/b.py", True),
        ("src/**", "src", False),
        ("src/*/main.py", "src/app/main.py", True),
        ("src/*/main.py", "src/app/x/main.py", False),
        ("src/**/main.py", "src/app/x/main.py", True),
        ("*", ".gitignore", True),  # wildcards match dotfiles
        ("?.txt", "a.txt", True),
        ("?.txt", "ab.txt", False),
        ("[ab].txt", "b.txt", True),
        ("[!ab].txt", "b.txt", False),
        ("[!ab].txt", "c.txt", True),
        ("a+b(1).txt", "a+b(1).txt", True),  # regex characters are literal
        ("/port.yml", "port.yml", True),
    ],
)
def test_globs(pattern: str, path: str, matches: bool) -> None:
    assert (glob_regex(pattern).fullmatch(path) is not None) is matches


def test_plan_groups_globs_by_base_at_the_deepest_recursion_they_need() -> None:
    plan = plan_files(["port.yml", "/docs/a.md", "src/*.py", "src/*/main.py", "*.json", "**/*.yaml", "port.yml"])
    assert plan.literals == ("/port.yml", "/docs/a.md")
    assert {base: level for base, (level, _) in plan.globs.items()} == {"/src": "full", "/": "full"}
    assert len(plan.globs["/"][1]) == 2
    assert plan.descriptors("main") == [
        {"path": "/port.yml", "recursionLevel": "none", "version": "main", "versionType": "branch"},
        {"path": "/docs/a.md", "recursionLevel": "none", "version": "main", "versionType": "branch"},
        {"path": "/src", "recursionLevel": "full", "version": "main", "versionType": "branch"},
        {"path": "/", "recursionLevel": "full", "version": "main", "versionType": "branch"},
    ]
    assert plan_files("docs/*.md").globs["/docs"][0] == "oneLevel"
    assert plan_files("docs/**").globs["/docs"][0] == "full"


def test_content_is_parsed_as_json_then_yaml_then_kept_as_text() -> None:
    assert parse_content('{"a": [1, 2]}') == {"a": [1, 2]}
    assert parse_content("a: 1\nb: [x, y]\nwhen: 2024-01-02\n") == {"a": 1, "b": ["x", "y"], "when": "2024-01-02"}
    assert parse_content("---\na: 1\n---\nb: 2\n") == [{"a": 1}, {"b": 2}]
    assert parse_content("---\na: 1\n---\n") == {"a": 1}
    assert parse_content("just words") == "just words"
    assert parse_content("key: [unclosed") == "key: [unclosed"
    assert parse_content("") == ""
    assert parse_content("2: two\nnull: x\nyes: no\n") == {"2": "two", "null": "x", "true": False}
    assert parse_content("t: !!timestamp 2024-01-02T03:04:05Z\nb: !!binary aGk=\n") == {
        "t": "2024-01-02T03:04:05+00:00",
        "b": "aGk=",
    }
    json.dumps(parse_content("x: .nan\n"), allow_nan=False)


# ---------------------------------------------------------------------------------------------- helpers


def readable(org: Organisation) -> list[GitRepository]:
    return [repo for repo in org.repositories.values() if not repo.is_disabled and repo.default_branch]


def head(repo: GitRepository) -> Commit:
    commit = repo.head()
    assert commit is not None
    return commit


def rest_repositories(live: LiveEmulator) -> dict[str, dict[str, Any]]:
    org = live.organisation()
    found: dict[str, dict[str, Any]] = {}
    for project in org.projects.values():
        answer = live.client.get(f"/fabrikam/{project.id}/_apis/git/repositories", params={"api-version": "7.1"})
        found.update((repo["id"], repo) for repo in answer.json()["value"])
    return found


def folders_of(commit: Commit) -> set[str]:
    """Every folder of ``commit``'s tree (``/src``, ``/src/app``…)."""
    found: set[str] = set()
    for path in commit.files:
        parts = path.strip("/").split("/")[:-1]
        found.update("/" + "/".join(parts[: n + 1]) for n in range(len(parts)))
    return found


def add_file(org: Organisation, repo: GitRepository, path: str, content: bytes) -> RepoFile:
    added = RepoFile.of(path, content)
    head(repo).files[path] = added
    org.changed()
    return added


# ---------------------------------------------------------------------------------------------- file kind


def test_a_literal_path_is_read_in_every_repository_with_the_reference_s_item_shape(
    generated_org: LiveEmulator,
) -> None:
    org = generated_org.organisation()
    disabled = readable(org)[-1]
    disabled.is_disabled = True
    org.changed()
    skipped: dict[str, int] = {}

    items = read_kind(generated_org, "file", {"files": {"path": "port.yml"}}, context={"skipped": skipped})

    repositories = rest_repositories(generated_org)
    assert sorted(item["repo"]["id"] for item in items) == sorted(repo.id for repo in readable(org))
    assert skipped == {"file: disabled repository": 1}
    for item in items:
        repo = org.repositories[item["repo"]["id"]]
        blob = head(repo).files["/port.yml"]
        text = blob.content.decode()
        assert item["repo"] == repositories[repo.id]
        assert item["file"] == {
            "path": "port.yml",
            "objectId": blob.object_id,
            "size": len(blob.content),
            "isFolder": False,
            "commitId": head(repo).commit_id,
            "content": {"raw": text, "parsed": parse_content(text)},
        }
        assert item["file"]["content"]["parsed"]["blueprint"] == "service"
        assert item["__organizationUrl"] == f"{generated_org.base_url}/fabrikam"


def test_globs_find_files_at_any_depth_once_each(generated_org: LiveEmulator) -> None:
    org = generated_org.organisation()
    paths = ["**/main.*", "*.MD", "src/*/main.py", "cmd/*/*.go"]

    items = read_kind(generated_org, "file", {"files": {"path": paths}})

    expected = sorted(
        (repo.id, path.lstrip("/"))
        for repo in readable(org)
        for path in head(repo).files
        if path.rsplit("/", 1)[-1].startswith("main.") or path == "/README.md"
    )
    assert sorted((item["repo"]["id"], item["file"]["path"]) for item in items) == expected
    assert any("/" in path for _, path in expected)
    assert len(readable(org)) < len(expected)  # every README, and the main.* sources


def test_repos_limits_the_repositories_read(generated_org: LiveEmulator) -> None:
    org = generated_org.organisation()
    chosen = readable(org)[1]

    items = read_kind(generated_org, "file", {"files": {"path": "README.md", "repos": [chosen.name.upper()]}})

    assert [item["repo"]["id"] for item in items] == [chosen.id]


def test_missing_paths_are_skipped_per_repository_and_the_others_still_read(generated_org: LiveEmulator) -> None:
    org = generated_org.organisation()
    skipped: dict[str, int] = {}
    selector = {"files": {"path": ["README.md", "no/such.json", "nowhere/*.json", "CODEOWNERS"]}}

    items = read_kind(generated_org, "file", selector, context={"skipped": skipped})

    assert sorted((item["repo"]["id"], item["file"]["path"]) for item in items) == sorted(
        (repo.id, path) for repo in readable(org) for path in ("README.md", "CODEOWNERS")
    )
    # the emulator refuses the whole batch with 404 GitItemNotFoundException, as Azure does; then each path alone
    assert skipped == {"file: path not in the repository": 2 * len(readable(org))}


def test_json_is_parsed_and_files_over_1_mib_are_skipped_and_counted(generated_org: LiveEmulator) -> None:
    org = generated_org.organisation()
    repo = readable(org)[0]
    small = add_file(org, repo, "/config/app.json", b'{"replicas": 3, "tags": ["a"]}')
    add_file(org, repo, "/config/huge.json", b'{"x": "' + b"y" * MAX_FILE_BYTES + b'"}')
    skipped: dict[str, int] = {}

    items = read_kind(generated_org, "file", {"files": {"path": "config/*.json"}}, context={"skipped": skipped})

    assert [(item["repo"]["id"], item["file"]["path"]) for item in items] == [(repo.id, "config/app.json")]
    assert items[0]["file"]["content"] == {"raw": small.content.decode(), "parsed": {"replicas": 3, "tags": ["a"]}}
    assert skipped == {"file: larger than 1 MiB": 1, "file: path not in the repository": len(readable(org)) - 1}


def test_included_files_of_file_items(generated_org: LiveEmulator) -> None:
    org = generated_org.organisation()

    items = read_kind(generated_org, "file", {"files": {"path": "port.yml"}, "includedFiles": ["/README.md", "x.txt"]})

    assert items
    for item in items:
        readme = head(org.repositories[item["repo"]["id"]]).files["/README.md"].content.decode()
        assert item["__includedFiles"] == {"/README.md": readme}


def test_a_failed_items_batch_or_file_read_raises(generated_org: LiveEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    set_faults(generated_org, {"path": "*/itemsbatch", "errorRate": 1, "errorStatus": 503})
    with pytest.raises(ServerError):
        read_kind(generated_org, "file", {"files": {"path": "port.yml"}})

    set_faults(generated_org, {"path": "*/items", "errorRate": 1, "errorStatus": 500})
    monkeypatch.setattr(files, "FILE_BATCH", 1)
    with pytest.raises(ServerError) as caught:
        read_kind(generated_org, "file", {"files": {"path": "*"}})
    assert caught.value.status == 500 and "/items?" in caught.value.url


# ---------------------------------------------------------------------------------------------- folder kind


def test_folders_matching_a_pattern_in_every_repository(generated_org: LiveEmulator) -> None:
    org = generated_org.organisation()
    skipped: dict[str, int] = {}

    items = read_kind(generated_org, "folder", {"folders": [{"path": "src/*"}]}, context={"skipped": skipped})

    expected = sorted(
        (repo.id, folder)
        for repo in readable(org)
        for folder in folders_of(head(repo))
        if folder.startswith("/src/") and folder.count("/") == 2
    )
    assert expected
    assert sorted((item["__repository"]["id"], item["path"]) for item in items) == expected
    repositories = rest_repositories(generated_org)
    for item in items:
        assert item["__repository"] == repositories[item["__repository"]["id"]]
        assert item["__branch"] == "main" and item["__pattern"] == "src/*"
        assert item["gitObjectType"] == "tree" and item["isFolder"] is True
        assert item["commitId"] == head(org.repositories[item["__repository"]["id"]]).commit_id
    without_src = [repo for repo in readable(org) if "/src" not in folders_of(head(repo))]
    assert skipped == ({"folder: path not in the repository": len(without_src)} if without_src else {})


def test_a_pattern_is_walked_segment_by_segment(generated_org: LiveEmulator) -> None:
    org = generated_org.organisation()

    items = read_kind(generated_org, "folder", {"folders": [{"path": "*/*/*"}, {"path": "cmd"}]})

    expected = sorted(
        (repo.id, folder)
        for repo in readable(org)
        for folder in folders_of(head(repo))
        if folder.count("/") == 3 or folder == "/cmd"
    )
    assert sorted((item["__repository"]["id"], item["path"]) for item in items) == expected
    assert {item["__pattern"] for item in items} <= {"*/*/*", "cmd"}


def test_a_repository_s_branch_is_the_one_read(generated_org: LiveEmulator) -> None:
    org = generated_org.organisation()
    repo = readable(org)[0]
    tip = head(repo)
    docs_files = {**tip.files, "/docs/guide/index.md": RepoFile.of("/docs/guide/index.md", b"# guide\n")}
    commit = dataclasses.replace(tip, commit_id="d" * 40, parents=[tip.commit_id], files=docs_files)
    repo.commits[commit.commit_id] = commit
    repo.refs["refs/heads/docs"] = GitRef("refs/heads/docs", commit.commit_id, next(iter(org.users)))
    org.changed()
    skipped: dict[str, int] = {}
    selector = {
        "folders": [{"path": "docs/*", "repos": [{"name": repo.name, "branch": "docs"}, {"name": repo.name}]}],
        "includedFiles": ["docs/guide/index.md"],
    }

    items = read_kind(generated_org, "folder", selector, context={"skipped": skipped})

    assert [(item["path"], item["__branch"], item["commitId"]) for item in items] == [
        ("/docs/guide", "docs", commit.commit_id)
    ]
    assert items[0]["__includedFiles"] == {"docs/guide/index.md": "# guide\n"}
    assert skipped == {"folder: path not in the repository": 1}  # the default branch has no /docs


def test_project_name_limits_the_repositories_and_a_missing_project_raises(generated_org: LiveEmulator) -> None:
    org = generated_org.organisation()
    project = next(p for p in org.projects.values() if any(r.project_id == p.id for r in readable(org)))

    items = read_kind(generated_org, "folder", {"project_name": project.name.upper(), "folders": [{"path": "*"}]})

    assert items
    assert {item["__repository"]["project"]["id"] for item in items} == {project.id}
    with pytest.raises(NotFound):
        read_kind(generated_org, "folder", {"project_name": "no such project", "folders": [{"path": "*"}]})


def test_a_failed_folder_listing_raises(generated_org: LiveEmulator) -> None:
    set_faults(generated_org, {"path": "*/items", "errorRate": 1, "errorStatus": 500})

    with pytest.raises(ServerError):
        read_kind(generated_org, "folder", {"folders": [{"path": "src/*"}]})
