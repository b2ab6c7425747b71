"""Reading repository files for the git kinds: a file's text on a branch, and ``includedFiles``.

``includedFiles`` (a selector field of the repository, file and folder kinds) attaches files' text
to each item as ``__includedFiles: {<requested path>: <text>}``, read from the repository's
default branch (the folder kind: from the folder's ``__branch``). As in the reference, a requested
path is relative to the repository's root (a leading ``/`` changes nothing).

A requested file that the repository does not have gives no entry: Azure answers that read with a
404 ``GitItemNotFoundException`` (TF401174), one of its documented "no data" answers
(:class:`~kiosk.azure.errors.NoDataNotFound`), so it is skipped and counted. Unlike the reference,
which turned every failure into ``None``, any other error (a 5xx, a timeout, a 401, a plain 404)
raises, so a resync never mistakes a failed read for a file that is gone.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Final

from kiosk.azure.errors import NoDataNotFound
from kiosk.ingest.fetch.base import FetchContext, Item, gather_bounded

__all__ = [
    "INCLUDED_FILES_FIELD",
    "IncludedFiles",
    "branch_name",
    "read_file_text",
    "repository_path",
]

INCLUDED_FILES_FIELD: Final = "__includedFiles"
_MISSING_FILE: Final = "includedFiles: file not in the repository"


def branch_name(ref_name: str | None) -> str | None:
    """``main`` for ``refs/heads/main`` (a bare name is returned as it is); None for none."""
    if not ref_name:
        return None
    return ref_name.removeprefix("refs/heads/")


def repository_path(repository: Item, rest: str) -> str:
    """``{projectId}/_apis/git/repositories/{repoId}/<rest>``: a repository's own resources."""
    return f"{repository['project']['id']}/_apis/git/repositories/{repository['id']}/{rest}"


async def read_file_text(ctx: FetchContext, repository: Item, path: str, branch: str) -> str | None:
    """The text of the file ``path`` on ``branch``, or None when ``path`` is a folder.

    The item is asked for as JSON with its content (``includeContent=true``), which Azure gives as
    the file's text. A missing path raises :class:`NoDataNotFound` for the caller to decide on.
    """
    answer = await ctx.rest.get(
        repository_path(repository, "items"),
        params={"path": path, "versionType": "Branch", "version": branch, "includeContent": "true"},
    )
    if not isinstance(answer, dict) or answer.get("isFolder") or answer.get("gitObjectType") == "tree":
        return None
    content = answer.get("content")
    return content if isinstance(content, str) else ""


class IncludedFiles:
    """The ``includedFiles`` of one selector, read for items of one repository at a time.

    Each distinct (repository, branch, path) is read once per instance: many folders of a
    repository ask for the same root files. A fetcher makes one instance per repository it
    reads, so nothing outlives that repository's items.
    """

    def __init__(self, ctx: FetchContext, requested: Iterable[str]) -> None:
        self.ctx = ctx
        self.requested = list(dict.fromkeys(path for path in requested if path and path.strip("/")))
        self._read: dict[tuple[str, str, str], str | None] = {}

    def __bool__(self) -> bool:
        return bool(self.requested)

    async def attach(self, items: list[Item], repository: Item, branch: str | None) -> None:
        """Set ``__includedFiles`` on each of ``items`` (all of ``repository`` on ``branch``).

        With no branch to read (an empty repository) or a disabled repository, the field is an
        empty mapping: there is nothing to read there, and Azure would answer every read 404.
        """
        if not self.requested:
            return
        contents: dict[str, str] = {}
        if branch is not None and not repository.get("isDisabled"):
            texts = await gather_bounded(
                [functools.partial(self._text, repository, branch, path) for path in self.requested],
                self.ctx.concurrency,
            )
            contents = {path: text for path, text in zip(self.requested, texts, strict=True) if text is not None}
        for item in items:
            item[INCLUDED_FILES_FIELD] = dict(contents)

    async def _text(self, repository: Item, branch: str, requested: str) -> str | None:
        path = requested.lstrip("/")
        key = (str(repository["id"]), branch, path)
        if key in self._read:
            return self._read[key]
        try:
            text = await read_file_text(self.ctx, repository, path, branch)
        except NoDataNotFound:
            self.ctx.skip(_MISSING_FILE)
            text = None
        self._read[key] = text
        return text
