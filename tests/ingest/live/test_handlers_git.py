"""The git event handlers over real HTTP against the emulator: each change made through its mutation
API, the event it raised wrapped as a subscription receives it, the handler's answer compared with
what the kind's fetcher reads from the same organisation (the item a resync would map)."""

from __future__ import annotations

from typing import Any

import pytest
from tests.emulator.conftest import CONFIG, EmulatorFactory, start_emulator
from tests.ingest.fetch.conftest import read_kind, resource, set_faults
from tests.ingest.live.emulated_events import ORG, Azure, stamped

from kiosk.azure.errors import ServerError
from kiosk.ingest.fetch.base import PROJECT_TAG_PREFIX, Item
from kiosk.ingest.live.event_fields import MalformedEvent
from kiosk.ingest.live.handlers_git import (
    CHILD_KINDS,
    HANDLERS,
    REPOSITORY_EVENTS,
    REPOSITORY_GONE,
    ZERO_OBJECT_ID,
    event_repository,
    handle_push_branches,
    handle_push_files,
    handle_push_folders,
    handle_repository,
    handle_repository_children,
)
from kiosk.ingest.live.model import Refetched

__all__ = ["start_emulator"]

FILES = {"files": {"path": ["README.md", "src/*.py"]}}
FOLDERS = {"folders": [{"path": "services/*", "repos": [{"name": "ledger"}]}]}


@pytest.fixture
def azure(start_emulator: EmulatorFactory) -> Azure:
    return Azure(start_emulator(config=CONFIG, execute=False))


def of_repository(items: list[Item], repository_id: str, field: str = "__repository") -> list[Item]:
    return [item for item in items if item[field]["id"] == repository_id]


def by_path(items: list[Item]) -> list[Item]:
    return sorted(items, key=lambda item: str(item["file"]["path"] if "file" in item else item["path"]))


def listed(azure: Azure, repository_id: str) -> dict[str, Any]:
    """The repository as the project's list gives it now."""
    found = azure.live.client.get(f"/{ORG}/web/_apis/git/repositories").json()["value"]
    return dict(next(repo for repo in found if repo["id"] == repository_id))


def ledger(azure: Azure, files: dict[str, str] | None = None) -> dict[str, Any]:
    """A new repository ``ledger`` with one commit of ``files`` on main; the repository as listed."""
    created, _ = azure.change("POST", "repositories", {"name": "ledger"})
    changes = [{"path": path, "content": text} for path, text in (files or {"README.md": "# Ledger\n"}).items()]
    azure.push("ledger", {"branch": "main", "changes": changes})
    return listed(azure, created["id"])


# ---------------------------------------------------------------------------------------------- branch


def test_a_push_s_branches_are_read_again_as_the_fetcher_yields_them(azure: Azure) -> None:
    repository = ledger(azure)
    main = azure.head("ledger")
    created = azure.push("ledger", {"refUpdates": [{"name": "feature", "newObjectId": main}]})
    moved = azure.push("ledger", {"branch": "feature", "changes": [{"path": "/a.txt", "content": "a"}]})
    branches = of_repository(read_kind(azure.live, "branch"), repository["id"])

    got = azure.run(handle_push_branches, resource("branch"), moved)

    feature = next(b for b in branches if b["name"] == "feature")
    assert got == Refetched("branch", items=[feature])
    assert feature["objectId"] == azure.head("ledger", "feature") != main
    assert feature["__repository"] == repository  # the repository as the list gives it, not the single read's
    assert got.items[0]["__organizationUrl"] == f"{azure.live.base_url}/{ORG}"

    # The creation, handled late, reads the branch as it is now (moved since).
    assert azure.run(handle_push_branches, resource("branch"), created) == Refetched("branch", items=[feature])


def test_a_deleted_branch_is_gone_as_the_fetcher_shaped_it(azure: Azure) -> None:
    repository = ledger(azure)
    main = azure.head("ledger")
    created = azure.push("ledger", {"refUpdates": [{"name": "feature", "newObjectId": main}]})
    before = next(b for b in read_kind(azure.live, "branch") if b["refName"] == "refs/heads/feature")
    deleted = azure.push(
        "ledger", {"refUpdates": [{"name": "feature", "oldObjectId": main, "newObjectId": ZERO_OBJECT_ID}]}
    )

    got = azure.run(handle_push_branches, resource("branch"), deleted)

    assert got == Refetched("branch", gone=[before])
    assert before["objectId"] == main and before["__repository"] == repository
    # A creation handled after the branch was deleted: read again, it is not there: gone.
    late = azure.run(handle_push_branches, resource("branch"), created)
    assert late == Refetched("branch", gone=[{**before, "objectId": ZERO_OBJECT_ID}])


def test_a_trimmed_push_payload_is_read_again_with_its_ref_updates(azure: Azure) -> None:
    ledger(azure)
    _, events = azure.change(
        "POST", "repositories/ledger/pushes", {"branch": "main", "changes": [{"path": "/b.txt", "content": "b"}]}
    )
    full, trimmed = azure.envelope(events[0]), azure.envelope(events[0], scoped=False)
    assert "refUpdates" not in trimmed["resource"] and "repository" not in trimmed["resource"]
    assert set(trimmed["resource"]) == {"pushId", "url"}

    expected = azure.run(handle_push_branches, resource("branch"), full)

    assert azure.run(handle_push_branches, resource("branch"), trimmed) == expected
    assert [item["objectId"] for item in expected.items] == [azure.head("ledger")]
    # The file kind needs the commits too: read again the same way.
    files = resource("file", {"files": {"path": "b.txt"}})
    assert azure.run(handle_push_files, files, trimmed) == azure.run(handle_push_files, files, full)
    assert [item["file"]["path"] for item in azure.run(handle_push_files, files, trimmed).items] == ["b.txt"]


def test_a_push_whose_repository_is_gone_makes_its_branches_gone(azure: Azure) -> None:
    repository = ledger(azure)
    moved = azure.commit("ledger", {"/c.txt": "c"})
    azure.change("DELETE", "repositories/ledger")

    got = azure.run(handle_push_branches, resource("branch"), moved)

    known = moved["resource"]["repository"]
    assert known["id"] == repository["id"]
    assert got == Refetched(
        "branch",
        gone=[
            stamped(
                azure,
                {
                    "name": "main",
                    "refName": "refs/heads/main",
                    "objectId": moved["resource"]["refUpdates"][0]["oldObjectId"],
                    "__repository": known,
                },
            )
        ],
    )


def test_a_failed_read_raises_and_a_push_naming_nothing_is_malformed(azure: Azure) -> None:
    ledger(azure)
    moved = azure.commit("ledger", {"/d.txt": "d"})
    set_faults(azure.live, {"path": "*/refs", "errorRate": 1, "errorStatus": 500})

    with pytest.raises(ServerError):
        azure.run(handle_push_branches, resource("branch"), moved)

    with pytest.raises(MalformedEvent):
        azure.run(handle_push_branches, resource("branch"), {"eventType": "git.push", "resource": {"pushId": 3}})


# ---------------------------------------------------------------------------------------------- file


def test_files_a_push_adds_edits_and_deletes_on_the_default_branch(azure: Azure) -> None:
    repository = ledger(azure, {"README.md": "# Ledger\n", "docs/guide.md": "guide"})
    added = azure.commit(
        "ledger", {"/src/app.py": "print('hi')\n", "/src/notes.txt": "not selected", "/config.json": '{"a": 1}'}
    )
    selected = resource("file", FILES)

    got = azure.run(handle_push_files, selected, added)

    expected = of_repository(read_kind(azure.live, "file", FILES), repository["id"], "repo")
    assert by_path(got.items) == [item for item in by_path(expected) if item["file"]["path"] == "src/app.py"]
    assert got.gone == [] and got.items[0]["file"]["content"]["raw"] == "print('hi')\n"

    edited = azure.commit("ledger", {"/src/app.py": "print('bye')\n", "/README.md": None, "/src/new.py": "x = 1\n"})
    got = azure.run(handle_push_files, selected, edited)

    expected = of_repository(read_kind(azure.live, "file", FILES), repository["id"], "repo")
    assert by_path(got.items) == by_path(expected)
    assert [item["file"]["path"] for item in by_path(got.items)] == ["src/app.py", "src/new.py"]
    now = expected[0]["repo"]  # the repository as listed now (its size grew)
    assert now["id"] == repository["id"] and now["size"] != repository["size"]
    assert got.gone == [stamped(azure, {"file": {"path": "README.md", "isFolder": False}, "repo": now})]


def test_files_elsewhere_are_left_alone(azure: Azure) -> None:
    ledger(azure)
    main = azure.head("ledger")
    azure.push("ledger", {"refUpdates": [{"name": "feature", "newObjectId": main}]})
    other_branch = azure.push("ledger", {"branch": "feature", "changes": [{"path": "/src/x.py", "content": "x"}]})
    on_main = azure.commit("ledger", {"/src/y.py": "y"})

    assert azure.run(handle_push_files, resource("file", FILES), other_branch) == Refetched("file")
    other_repos = resource("file", {"files": {"path": "src/*.py", "repos": ["payments"]}})
    assert azure.run(handle_push_files, other_repos, on_main) == Refetched("file")
    this_repo = resource("file", {"files": {"path": "src/*.py", "repos": ["LEDGER"]}})
    assert [i["file"]["path"] for i in azure.run(handle_push_files, this_repo, on_main).items] == ["src/y.py"]


def test_files_includedfiles_are_attached_and_a_failed_changes_read_raises(azure: Azure) -> None:
    repository = ledger(azure)
    pushed = azure.commit("ledger", {"/src/app.py": "a"})
    selector = {**FILES, "includedFiles": ["README.md"]}

    got = azure.run(handle_push_files, resource("file", selector), pushed)

    assert got.items == of_repository(read_kind(azure.live, "file", selector), repository["id"], "repo")[-1:]
    assert got.items[0]["__includedFiles"] == {"README.md": "# Ledger\n"}

    set_faults(azure.live, {"path": "*/changes", "errorRate": 1, "errorStatus": 500})
    with pytest.raises(ServerError):
        azure.run(handle_push_files, resource("file", FILES), pushed)


# ---------------------------------------------------------------------------------------------- folder


def test_folders_holding_what_a_push_changed_are_read_again_or_gone(azure: Azure) -> None:
    repository = ledger(azure)
    added = azure.commit("ledger", {"/services/a/x.py": "x", "/services/b/y.py": "y", "/docs/z.md": "z"})
    selected = resource("folder", FOLDERS)

    got = azure.run(handle_push_folders, selected, added)

    expected = read_kind(azure.live, "folder", FOLDERS)
    assert [item["path"] for item in expected] == ["/services/a", "/services/b"]
    assert got == Refetched("folder", items=expected)

    removed = azure.commit("ledger", {"/services/a/x.py": None})
    got = azure.run(handle_push_folders, selected, removed)

    assert got.items == []  # services/b is untouched
    assert got.gone == [
        stamped(
            azure,
            {
                "path": "/services/a",
                "isFolder": True,
                "gitObjectType": "tree",
                "__repository": listed(azure, repository["id"]),
                "__branch": "main",
                "__pattern": "services/*",
            },
        )
    ]
    edited = azure.commit("ledger", {"/services/b/y.py": "yy"})
    assert azure.run(handle_push_folders, selected, edited) == Refetched(
        "folder", items=read_kind(azure.live, "folder", FOLDERS)
    )


def test_folders_of_other_branches_repositories_and_projects_are_left_alone(azure: Azure) -> None:
    ledger(azure)
    main = azure.head("ledger")
    azure.push("ledger", {"refUpdates": [{"name": "feature", "newObjectId": main}]})
    on_feature = azure.push("ledger", {"branch": "feature", "changes": [{"path": "/services/c/z.py", "content": "z"}]})

    assert azure.run(handle_push_folders, resource("folder", FOLDERS), on_feature) == Refetched("folder")
    on_branch = {"folders": [{"path": "services/*", "repos": [{"name": "ledger", "branch": "feature"}]}]}
    got = azure.run(handle_push_folders, resource("folder", on_branch), on_feature)
    assert got == Refetched("folder", items=read_kind(azure.live, "folder", on_branch))
    assert [item["path"] for item in got.items] == ["/services/c"] and got.items[0]["__branch"] == "feature"
    copied = azure.push("ledger", {"refUpdates": [{"name": "copy", "newObjectId": azure.head("ledger", "feature")}]})
    on_copy = {"folders": [{"path": "services/*", "repos": [{"name": "ledger", "branch": "copy"}]}]}
    got = azure.run(handle_push_folders, resource("folder", on_copy), copied)  # no commits: every folder is new
    assert got == Refetched("folder", items=read_kind(azure.live, "folder", on_copy)) and len(got.items) == 1
    elsewhere = {**on_branch, "project_name": "payments"}
    assert azure.run(handle_push_folders, resource("folder", elsewhere), on_feature) == Refetched("folder")


# ---------------------------------------------------------------------------------------------- repository


def repository_event(azure: Azure, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    _, events = azure.change(method, path, body)
    (event,) = events
    assert event.event_type in REPOSITORY_EVENTS
    return azure.envelope(event)


def test_a_created_renamed_and_disabled_repository_is_read_again(azure: Azure) -> None:
    created = repository_event(azure, "POST", "repositories", {"name": "ledger"})
    with_readme = resource("repository", {"includedFiles": ["README.md"]})

    got = azure.run(handle_repository, with_readme, created)

    listed = read_kind(azure.live, "repository", {"includedFiles": ["README.md"]})
    assert got == Refetched(
        "repository", items=[i for i in listed if i["id"] == created["resource"]["repository"]["id"]]
    )
    assert got.items[0]["__includedFiles"] == {} and "_links" not in got.items[0]
    assert azure.run(handle_repository_children("branch"), resource("branch"), created) == Refetched("branch")

    azure.commit("ledger", {"/README.md": "# L\n"})
    renamed = repository_event(azure, "PATCH", "repositories/ledger", {"name": "journal"})
    got = azure.run(handle_repository, with_readme, renamed)
    (journal,) = [
        i for i in read_kind(azure.live, "repository", {"includedFiles": ["README.md"]}) if i["name"] == "journal"
    ]
    assert got == Refetched("repository", items=[journal]) and journal["__includedFiles"] == {"README.md": "# L\n"}

    disabled = repository_event(azure, "PATCH", "repositories/journal", {"isDisabled": True})
    got = azure.run(handle_repository, resource("repository"), disabled)
    (listed,) = [i for i in read_kind(azure.live, "repository") if i["name"] == "journal"]
    assert got == Refetched("repository", items=[listed]) and listed["isDisabled"] is True


def test_a_deleted_repository_is_gone_with_every_child_kind(azure: Azure) -> None:
    repository = ledger(azure)
    deleted = repository_event(azure, "DELETE", "repositories/ledger")

    got = azure.run(handle_repository, resource("repository"), deleted)

    known = {"id": repository["id"], "name": "ledger", "project": {"id": repository["project"]["id"]}}
    assert got == Refetched("repository", gone=[stamped(azure, known)])
    for kind in CHILD_KINDS:
        selector = {"files": {"path": "*"}} if kind == "file" else None
        answer = azure.run(HANDLERS["git.repo.deleted"][kind], resource(kind, selector), deleted)
        assert answer == Refetched(kind, gone=[stamped(azure, {REPOSITORY_GONE: known})])


def test_a_disabled_repository_s_children_are_gone_and_come_back_when_enabled(azure: Azure) -> None:
    repository = ledger(azure)
    disabled = repository_event(azure, "PATCH", "repositories/ledger", {"isDisabled": True})

    for kind in CHILD_KINDS:
        selector = {"files": {"path": "*"}} if kind == "file" else None
        answer = azure.run(HANDLERS["git.repo.statuschanged"][kind], resource(kind, selector), disabled)
        assert answer == Refetched(kind, gone=[stamped(azure, {REPOSITORY_GONE: {**repository, "isDisabled": True}})])

    enabled = repository_event(azure, "PATCH", "repositories/ledger", {"isDisabled": False})
    branches = azure.run(HANDLERS["git.repo.statuschanged"]["branch"], resource("branch"), enabled)
    assert branches == Refetched("branch", items=of_repository(read_kind(azure.live, "branch"), repository["id"]))
    assert [item["name"] for item in branches.items] == ["main"]
    files = {"files": {"path": "*.md"}}
    got = azure.run(HANDLERS["git.repo.statuschanged"]["file"], resource("file", files), enabled)
    assert got == Refetched("file", items=of_repository(read_kind(azure.live, "file", files), repository["id"], "repo"))
    assert [item["file"]["path"] for item in got.items] == ["README.md"]


def test_a_renamed_repository_s_children_are_read_again_and_gone_under_the_old_name(azure: Azure) -> None:
    ledger(azure)
    renamed = repository_event(azure, "PATCH", "repositories/ledger", {"name": "journal"})

    got = azure.run(HANDLERS["git.repo.renamed"]["branch"], resource("branch"), renamed)

    (now,) = [item for item in read_kind(azure.live, "branch") if item["__repository"]["name"] == "journal"]
    assert got.items == [now]
    assert got.gone == [{**now, "__repository": {**now["__repository"], "name": "ledger"}}]


def test_a_repository_read_that_fails_raises(azure: Azure) -> None:
    created = repository_event(azure, "POST", "repositories", {"name": "ledger"})
    set_faults(azure.live, {"path": "*/_apis/git/repositories/*", "errorRate": 1, "errorStatus": 500})

    with pytest.raises(ServerError):
        azure.run(handle_repository, resource("repository"), created)
    with pytest.raises(ServerError):
        azure.run(handle_repository_children("branch"), resource("branch"), created)


def test_the_table_names_every_git_event_and_kind() -> None:
    assert set(HANDLERS) == {"git.push", *REPOSITORY_EVENTS}
    assert HANDLERS["git.push"] == {
        "branch": handle_push_branches,
        "file": handle_push_files,
        "folder": handle_push_folders,
    }
    for event_type in REPOSITORY_EVENTS:
        assert set(HANDLERS[event_type]) == {"repository", *CHILD_KINDS}
        assert HANDLERS[event_type]["repository"] is handle_repository


def test_a_repository_of_a_project_excluded_by_tag_is_left_out(azure: Azure) -> None:
    repository = ledger(azure)
    moved = azure.commit("ledger", {"/src/e.py": "e"})
    renamed = repository_event(azure, "PATCH", "repositories/ledger", {"name": "journal"})
    project = azure.live.organisation().projects[repository["project"]["id"]]
    project.properties[f"{PROJECT_TAG_PREFIX}pci"] = "true"
    excluded = {"excluded_tags": ("pci",)}

    # Other tags change nothing.
    assert azure.run(handle_push_branches, resource("branch"), moved, excluded_tags=("sox",)).items
    for handler, kind, selector in (
        (handle_push_branches, "branch", None),
        (handle_push_files, "file", FILES),
        (handle_push_folders, "folder", {"folders": [{"path": "src"}]}),
    ):
        assert azure.run(handler, resource(kind, selector), moved, **excluded) == Refetched(kind)
    got = azure.run(handle_repository, resource("repository"), renamed, **excluded)
    assert got == Refetched("repository", gone=[stamped(azure, listed(azure, repository["id"]))])
    got = azure.run(handle_repository_children("branch"), resource("branch"), renamed, **excluded)
    assert got == Refetched("branch", gone=[stamped(azure, {REPOSITORY_GONE: listed(azure, repository["id"])})])


def test_every_child_kind_of_a_re_enabled_repository_is_read_as_its_fetcher_reads_it(azure: Azure) -> None:
    repository = ledger(azure, {"README.md": "# L\n", "services/api/main.py": "x"})
    main = azure.head("ledger")
    azure.push("ledger", {"refUpdates": [{"name": "topic", "newObjectId": main}]})
    azure.push("ledger", {"branch": "topic", "changes": [{"path": "/t.txt", "content": "t"}]})
    azure.change(
        "POST",
        "repositories/ledger/pullrequests",
        {"sourceRefName": "refs/heads/topic", "targetRefName": "refs/heads/main", "title": "Topic"},
    )
    repository_event(azure, "PATCH", "repositories/ledger", {"isDisabled": True})
    enabled = repository_event(azure, "PATCH", "repositories/ledger", {"isDisabled": False})
    selectors: dict[str, dict[str, Any] | None] = {
        "branch": None,
        "file": {"files": {"path": ["README.md", "services/**"]}},
        "folder": {"folders": [{"path": "services/*"}]},
        "pull-request": None,
        "repository-policy": None,
    }
    where = {"file": "repo", "pull-request": "repository"}

    for kind in CHILD_KINDS:
        got = azure.run(HANDLERS["git.repo.statuschanged"][kind], resource(kind, selectors[kind]), enabled)
        every = read_kind(azure.live, kind, selectors[kind])
        assert got == Refetched(kind, items=of_repository(every, repository["id"], where.get(kind, "__repository")))
        assert got.items or kind == "repository-policy", kind


def test_the_repository_an_event_names_is_found_in_every_payload_shape() -> None:
    project, repo = "9eb61cac-eab8-5f94-995f-26ea8122518c", "a3aeedb2-87c2-4a61-96bc-271023a0651a"
    full = {"resource": {"repository": {"id": repo, "name": "ledger", "project": {"id": project, "name": "web"}}}}
    assert event_repository(full) == full["resource"]["repository"]
    deleted = {"resource": {"repositoryId": repo, "repositoryName": "ledger", "projectId": project}}
    assert event_repository(deleted) == {"id": repo, "name": "ledger", "project": {"id": project}}
    url = f"https://dev.azure.com/org/{project}/_apis/git/repositories/{repo}/pushes/3"
    assert event_repository({"resource": {"pushId": 3, "url": url}}) == {"id": repo, "project": {"id": project}}
    contained = {"resource": {"url": f"https://dev.azure.com/org/_apis/git/repositories/{repo}/pushes/3"}}
    # An organisation-level URL names no project (``org`` is not one); the container does.
    assert event_repository(contained) == {"id": repo}
    contained["resourceContainers"] = {"project": {"id": project}}
    assert event_repository(contained) == {"id": repo, "project": {"id": project}}
