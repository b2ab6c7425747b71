"""Azure's JSON for wikis and wiki pages (reference 3.10).

Pure functions of :mod:`kiosk.emulator.org.model` objects. A wiki's pages form a tree by path
(``/Guides/Setup`` is a sub-page of ``/Guides``); the root ``/`` is not a stored page, as in
Azure, where it is the wiki's folder: it has sub-pages and no content.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from kiosk.emulator.org.model import Organisation, Wiki, WikiPage, blob_sha1

__all__ = [
    "ROOT_PATH",
    "child_pages",
    "page_detail_json",
    "page_etag",
    "page_json",
    "page_tree",
    "root_page_json",
    "wiki_json",
]

ROOT_PATH = "/"


def wiki_url(org: Organisation, wiki: Wiki) -> str:
    return f"{org.url}/{wiki.project_id}/_apis/wiki/wikis/{wiki.id}"


def _web_url(org: Organisation, wiki: Wiki) -> str:
    project = org.projects.get(wiki.project_id)
    project_name = project.name if project is not None else wiki.project_id
    return f"{org.url}/{quote(project_name, safe='')}/_wiki/wikis/{quote(wiki.name, safe='')}"


def _version(org: Organisation, wiki: Wiki) -> str:
    """The branch a wiki publishes: ``wikiMaster`` for a project wiki, the repository's default for a code wiki."""
    if wiki.type == "projectWiki":
        return "wikiMaster"
    repo = org.repositories.get(wiki.repository_id)
    branch = repo.default_branch if repo is not None and repo.default_branch else "refs/heads/main"
    return branch.removeprefix("refs/heads/")


def wiki_json(org: Organisation, wiki: Wiki) -> dict[str, Any]:
    """A ``WikiV2``."""
    return {
        "id": wiki.id,
        "versions": [{"version": _version(org, wiki)}],
        "url": wiki_url(org, wiki),
        "remoteUrl": _web_url(org, wiki),
        "type": wiki.type,
        "name": wiki.name,
        "projectId": wiki.project_id,
        "repositoryId": wiki.repository_id,
        "mappedPath": wiki.mapped_path,
        "isDisabled": False,
    }


def _parent_path(path: str) -> str:
    parent = path.rstrip("/").rpartition("/")[0]
    return parent or ROOT_PATH


def child_pages(wiki: Wiki, path: str) -> list[WikiPage]:
    """The direct sub-pages of ``path`` in sibling order."""
    key = path.casefold()
    children = [page for page in wiki.pages if _parent_path(page.path).casefold() == key and page.path != ROOT_PATH]
    return sorted(children, key=lambda page: (page.order, page.path))


def page_tree(wiki: Wiki, path: str = ROOT_PATH) -> list[WikiPage]:
    """Every page below ``path``, depth first, each before its sub-pages (the order pagesbatch lists them)."""
    pages: list[WikiPage] = []
    for child in child_pages(wiki, path):
        pages.append(child)
        pages.extend(page_tree(wiki, child.path))
    return pages


def page_etag(content: str) -> str:
    """The page's version, as Azure's ``ETag`` carries it: the object id of the page's markdown file."""
    return f'"{blob_sha1(content.encode())}"'


def page_json(
    org: Organisation, wiki: Wiki, page: WikiPage, *, depth: int = 0, include_content: bool = False
) -> dict[str, Any]:
    """A ``WikiPage``: ``depth`` levels of sub-pages (metadata only), the markdown with ``include_content``."""
    children = child_pages(wiki, page.path)
    body: dict[str, Any] = {
        "id": page.id,
        "path": page.path,
        "order": page.order,
        "gitItemPath": page.git_item_path,
        "subPages": [page_json(org, wiki, child, depth=depth - 1) for child in children] if depth > 0 else [],
        "url": f"{wiki_url(org, wiki)}/pages/{page.id}",
        "remoteUrl": f"{_web_url(org, wiki)}/{page.id}/{quote(page.path.rsplit('/', 1)[-1].replace(' ', '-'))}",
    }
    if children:
        body["isParentPage"] = True
    if include_content:
        body["content"] = page.content
    return body


def root_page_json(org: Organisation, wiki: Wiki, *, depth: int = 0) -> dict[str, Any]:
    """The wiki's root ``/``: a parent page without an id or content of its own."""
    return {
        "path": ROOT_PATH,
        "order": 0,
        "gitItemPath": ROOT_PATH,
        "subPages": [page_json(org, wiki, child, depth=depth - 1) for child in child_pages(wiki, ROOT_PATH)]
        if depth > 0
        else [],
        "url": f"{wiki_url(org, wiki)}/pages?path=%2F",
        "remoteUrl": _web_url(org, wiki),
        "isParentPage": True,
    }


def page_detail_json(page: WikiPage, *, with_view_stats: bool) -> dict[str, Any]:
    """A ``WikiPageDetail`` (pagesbatch): id and path, and view statistics when asked for (none recorded)."""
    body: dict[str, Any] = {"id": page.id, "path": page.path}
    if with_view_stats:
        body["viewStats"] = []
    return body
