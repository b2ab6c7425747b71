"""Fetchers of the kinds file, folder.

``file`` (selector ``files: {path, repos}``, ``includedFiles``): in every repository (or those
named in ``repos``), the files of the default branch that ``path`` names — a path, a glob, or a
list of them. Literal paths and each glob's base folder are asked for in one ``itemsbatch`` call
per repository (globs grouped by base path, each base read once at the deepest recursion its
globs need); each file found is then read and becomes ``{file: {path, objectId, size, isFolder,
commitId, content: {raw, parsed}}, repo: <repository>}`` as in the reference, ``parsed`` being
the content read as JSON, else YAML, else the text itself. Files over 1 MiB are skipped and
counted, as the reference skips them.

Globs: ``*`` and ``?`` match within one path segment, ``[…]`` a character class, and a ``**``
segment any number of segments; matching ignores case and wildcards match dotfiles (the
reference's wcmatch flags). Unlike the reference, a glob whose wildcard is not in its last
segment (``src/*/main.py``) reads its base folder fully, so it finds what it names.

``folder`` (selector ``folders: [{path, repos: [{name, branch}]}]``, ``project_name``,
``includedFiles``): the folders that ``path`` (``*`` within one segment) names, in the
repositories listed (on their branch, else the default one) or, for a pattern without
``repos``, in every repository. Each pattern is walked one level at a time from its literal
base (``items?scopePath=&recursionLevel=oneLevel`` on the branch asked for — the reference read
the default branch whatever ``branch`` said). Items are Azure's ``GitItem`` with
``__repository``, ``__branch``, ``__pattern``.

"No data": a disabled repository or one without a default branch is not read (Azure answers
404 below it); a path a repository does not have (404 ``GitItemNotFoundException``) gives
nothing for that repository. Both are counted in ``ctx.skipped``; any other error raises.
"""

from __future__ import annotations

import base64
import datetime as dt
import fnmatch
import functools
import json
import math
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import quote

import yaml

from kiosk.azure.errors import MalformedResponse, NoDataNotFound
from kiosk.ingest.fetch.base import Batch, FetchContext, Item, gather_bounded, merge_batches
from kiosk.ingest.fetch.git import all_repositories
from kiosk.ingest.fetch.included_files import IncludedFiles, branch_name, read_file_text, repository_path
from kiosk.ingest.kinds import FilePattern, FolderPattern
from kiosk.ingest.mapping import ResourceConfig

__all__ = [
    "FILE_BATCH",
    "MAX_FILE_BYTES",
    "FilePlan",
    "fetch_files",
    "fetch_folders",
    "glob_regex",
    "is_glob",
    "parse_content",
    "plan_files",
    "read_files",
    "read_pattern_folders",
    "repository_folder_patterns",
]

#: Files larger than this are skipped (the reference's ``MAX_ALLOWED_FILE_SIZE_IN_BYTES``).
MAX_FILE_BYTES: Final = 1024 * 1024
#: Files read (and yielded) per batch within one repository.
FILE_BATCH: Final = 50
_GLOB_CHARACTERS: Final = frozenset("*?[")
_REPOSITORY_GONE: Final = "gitrepositorynotfoundexception"


# ---------------------------------------------------------------------------------------------- globs


def is_glob(pattern: str) -> bool:
    """Whether ``pattern`` has a wildcard (``*``, ``?``, ``[``) rather than naming one path."""
    return any(character in _GLOB_CHARACTERS for character in pattern)


def glob_regex(pattern: str) -> re.Pattern[str]:
    """A regex matching the repository paths (no leading ``/``) that the glob ``pattern`` names."""
    segments = pattern.strip("/").split("/")
    parts: list[str] = []
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment == "**":
            parts.append(".*" if last else "(?:[^/]*/)*")
        else:
            parts.append(_segment_regex(segment) + ("" if last else "/"))
    return re.compile("".join(parts), re.IGNORECASE | re.DOTALL)


def _segment_regex(segment: str) -> str:
    """One path segment of a glob: ``*``/``?`` stay within it, ``[…]`` is a class, the rest literal."""
    out: list[str] = []
    index = 0
    while index < len(segment):
        character = segment[index]
        index += 1
        if character == "*":
            out.append("[^/]*")
        elif character == "?":
            out.append("[^/]")
        elif character == "[":
            close = segment.find("]", index + 1 if segment[index : index + 1] in ("!", "^") else index)
            if close == -1:
                out.append(re.escape(character))
                continue
            body = segment[index:close]
            index = close + 1
            negate = body[:1] in ("!", "^")
            body = body[1:] if negate else body
            out.append("[" + ("^" if negate else "") + body.replace("\\", "\\\\") + "]")
        else:
            out.append(re.escape(character))
    return "".join(out)


@dataclass(frozen=True)
class FilePlan:
    """What one ``files.path`` asks of each repository: literal files, and globs by base folder.

    ``literals``: ``/a/b.json`` paths. ``globs``: base folder → (recursion level, the globs read
    from it). ``descriptors()`` are the ``itemsbatch`` item descriptors, literals first.
    """

    literals: tuple[str, ...]
    globs: dict[str, tuple[str, tuple[re.Pattern[str], ...]]] = field(default_factory=dict)

    def descriptors(self, branch: str) -> list[dict[str, str]]:
        wanted = [(path, "none") for path in self.literals]
        wanted += [(base, recursion) for base, (recursion, _) in self.globs.items()]
        return [
            {"path": path, "recursionLevel": recursion, "version": branch, "versionType": "branch"}
            for path, recursion in wanted
        ]

    def wanted(self, descriptor: dict[str, str], item: Item) -> bool:
        """Whether ``item`` (answered for ``descriptor``) is a file the plan names."""
        if item.get("gitObjectType") != "blob" or item.get("isFolder"):
            return False
        if descriptor["recursionLevel"] == "none":
            return True  # a literal path's descriptor answers that file alone
        path = str(item.get("path", "")).strip("/")
        return any(regex.fullmatch(path) for regex in self.globs[descriptor["path"]][1])


def plan_files(paths: str | Sequence[str]) -> FilePlan:
    """The itemsbatch plan of ``files.path``: each glob's base is its segments before the first
    wildcard; ``oneLevel`` when the wildcard is in the last segment (not ``**``), else ``full``."""
    literals: list[str] = []
    bases: dict[str, tuple[str, list[re.Pattern[str]]]] = {}
    for pattern in [paths] if isinstance(paths, str) else list(paths):
        normal = pattern.strip("/")
        if not normal:
            continue
        if not is_glob(normal):
            literals.append("/" + normal)
            continue
        segments = normal.split("/")
        fixed = 0
        while fixed < len(segments) and not is_glob(segments[fixed]):
            fixed += 1
        base = "/" + "/".join(segments[:fixed])
        rest = segments[fixed:]
        recursion = "oneLevel" if len(rest) == 1 and rest[0] != "**" else "full"
        level, regexes = bases.get(base, ("oneLevel", []))
        bases[base] = ("full" if "full" in (level, recursion) else "oneLevel", [*regexes, glob_regex(normal)])
    return FilePlan(
        tuple(dict.fromkeys(literals)),
        {base: (level, tuple(regexes)) for base, (level, regexes) in bases.items()},
    )


# ---------------------------------------------------------------------------------------------- content


class _TextKeepingLoader(yaml.SafeLoader):
    """YAML's safe loader, leaving dates as the text they are (the item must stay JSON)."""


_TextKeepingLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def parse_content(text: str) -> Any:
    """A file's content as the reference parses it: JSON, else YAML (a multi-document file is the
    list of its documents), else the text itself; always JSON-representable."""
    try:
        return json_value(json.loads(text))
    except ValueError:
        pass
    try:
        if text.startswith("---") and "---" in text[3:]:
            documents = [d for d in yaml.load_all(text, Loader=_TextKeepingLoader) if d is not None]
            if not documents:
                return text
            return json_value(documents if len(documents) > 1 else documents[0])
        value = yaml.load(text, Loader=_TextKeepingLoader)  # noqa: S506 - a SafeLoader
    except yaml.YAMLError:
        return text
    return text if value is None else json_value(value)


def json_value(value: Any) -> Any:
    """``value`` with what JSON cannot hold made JSON: keys as text, dates as ISO text, sets and
    tuples as lists, bytes as base64, non-finite floats as None."""
    if isinstance(value, dict):
        return {_json_key(key): json_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_value(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, dt.date | dt.datetime | dt.time):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    return str(value)


def _json_key(key: Any) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, bool) or key is None:
        return json.dumps(key)
    converted = json_value(key)
    return converted if isinstance(converted, str) else json.dumps(converted)


# ---------------------------------------------------------------------------------------------- file kind


async def fetch_files(ctx: FetchContext, resource: ResourceConfig) -> AsyncIterator[Batch]:
    """The file kind: the files ``files.path`` names in each repository (``files.repos``: only those)."""
    selector: FilePattern = resource.selector_value("files")
    plan = plan_files(selector.path)
    wanted_names = {name.casefold() for name in selector.repos} if selector.repos else None
    requested: list[str] = list(resource.selector_value("includedFiles") or [])
    repositories = [
        repo
        for repo in await all_repositories(ctx)
        if wanted_names is None or str(repo.get("name", "")).casefold() in wanted_names
    ]
    read = functools.partial(_repository_files, ctx, plan=plan, requested=requested)
    async for batch in merge_batches([functools.partial(read, repo) for repo in repositories], ctx.concurrency):
        yield batch


async def _repository_files(
    ctx: FetchContext, repository: Item, *, plan: FilePlan, requested: list[str]
) -> AsyncIterator[Batch]:
    """One repository's files of ``plan`` on its default branch, read ``FILE_BATCH`` at a time."""
    branch = branch_name(repository.get("defaultBranch"))
    if _unreadable(ctx, repository, branch, "file") or branch is None:
        return
    found = await _items_batch(ctx, repository, plan, branch)
    if found is None:
        return
    included = IncludedFiles(ctx, requested)
    for start in range(0, len(found), FILE_BATCH):
        chunk = found[start : start + FILE_BATCH]
        read = await gather_bounded(
            [functools.partial(_file_item, ctx, repository, branch, item) for item in chunk], ctx.concurrency
        )
        items = [ctx.stamp(item) for item in read if item is not None]
        if items and included:
            await included.attach(items, repository, branch)
        yield items


def _unreadable(ctx: FetchContext, repository: Item, branch: str | None, kind: str) -> bool:
    """True (and counted) for a repository Azure answers 404 below: disabled, or without the branch."""
    if repository.get("isDisabled"):
        ctx.skip(f"{kind}: disabled repository")
        return True
    if branch is None:
        ctx.skip(f"{kind}: repository without a default branch")
        return True
    return False


async def _items_batch(ctx: FetchContext, repository: Item, plan: FilePlan, branch: str) -> list[Item] | None:
    """The files of ``plan`` in ``repository`` (each path once, in the order asked), or None when
    the repository answered "no data" as a whole.

    All descriptors go in one call; if Azure answers that one of them is not there (it then
    refuses the whole batch), each is asked alone and the missing ones are skipped and counted.
    """
    descriptors = plan.descriptors(branch)
    if not descriptors:
        return []
    try:
        lists = await _post_items_batch(ctx, repository, descriptors)
    except NoDataNotFound as exc:
        if (exc.type_key or "").lower() == _REPOSITORY_GONE:
            ctx.skip("file: repository without data (404)", unread=True)
            return None
        if len(descriptors) == 1:
            ctx.skip("file: path not in the repository")
            return []
        lists = []
        for descriptor in descriptors:
            try:
                lists += await _post_items_batch(ctx, repository, [descriptor])
            except NoDataNotFound as missing:
                if (missing.type_key or "").lower() == _REPOSITORY_GONE:
                    raise
                ctx.skip("file: path not in the repository")
                lists.append([])
    found: dict[str, Item] = {}
    for descriptor, items in zip(descriptors, lists, strict=True):
        for item in items:
            if plan.wanted(descriptor, item):
                found.setdefault(str(item["path"]), item)
    return list(found.values())


async def _post_items_batch(ctx: FetchContext, repository: Item, descriptors: list[dict[str, str]]) -> list[list[Item]]:
    path = repository_path(repository, "itemsbatch")
    answer = await ctx.rest.post(path, {"itemDescriptors": descriptors}, idempotent=True)
    lists = answer.get("value") if isinstance(answer, dict) else None
    if (
        not isinstance(lists, list)
        or len(lists) != len(descriptors)
        or not all(isinstance(items, list) and all(isinstance(i, dict) for i in items) for items in lists)
    ):
        raise MalformedResponse("POST", path, "itemsbatch did not answer one list of items per descriptor")
    return lists


async def _file_item(ctx: FetchContext, repository: Item, branch: str, found: Item) -> Item | None:
    """The reference's file item for ``found``; None when it is over 1 MiB or gone (both counted)."""
    path = str(found["path"]).lstrip("/")
    try:
        text = await read_file_text(ctx, repository, path, branch)
    except NoDataNotFound:
        ctx.skip("file: path not in the repository")
        return None
    if text is None:
        return None
    size = len(text.encode("utf-8"))
    if size > MAX_FILE_BYTES:
        ctx.skip("file: larger than 1 MiB")
        return None
    return {
        "file": {
            "path": path,
            "objectId": found.get("objectId"),
            "size": size,
            "isFolder": False,
            "commitId": found.get("commitId"),
            **(found.get("contentMetadata") or {}),
            "content": {"raw": text, "parsed": parse_content(text)},
        },
        "repo": repository,
    }


# ---------------------------------------------------------------------------------------------- folder kind


async def fetch_folders(ctx: FetchContext, resource: ResourceConfig) -> AsyncIterator[Batch]:
    """The folder kind: the folders each pattern names, per repository and branch."""
    patterns: list[FolderPattern] = list(resource.selector_value("folders") or [])
    if not patterns:
        return
    requested: list[str] = list(resource.selector_value("includedFiles") or [])
    repositories = await _folder_repositories(ctx, resource.selector_value("project_name"))
    producers = [
        functools.partial(_pattern_folders, ctx, repo, branch, path, requested)
        for repo in repositories
        for branch, path in repository_folder_patterns(patterns, repo)
    ]
    async for batch in merge_batches(producers, ctx.concurrency):
        yield batch


def repository_folder_patterns(patterns: Sequence[FolderPattern], repository: Item) -> list[tuple[str | None, str]]:
    """The (branch, pattern path) pairs the folder selector reads in ``repository``: a pattern without
    ``repos`` on the default branch (None), and one per entry naming the repository, on its branch.
    A pair asked twice (a pattern for all repositories and one naming this one) is read once."""
    name = str(repository.get("name", "")).casefold()
    pairs: list[tuple[str | None, str]] = []
    for pattern in patterns:
        if not pattern.repos:
            pairs.append((None, pattern.path))
        pairs += [(m.branch, pattern.path) for m in pattern.repos if m.name.casefold() == name]
    return list(dict.fromkeys(pairs))


async def read_pattern_folders(
    ctx: FetchContext, repository: Item, branch: str | None, pattern: str, requested: list[str]
) -> list[Item]:
    """The folder kind's items ``pattern`` names in ``repository`` on ``branch`` (None: its default
    branch), exactly as :func:`fetch_folders` makes them; none for a disabled repository, one
    without the branch, or a path it does not have."""
    items: list[Item] = []
    async for batch in _pattern_folders(ctx, repository, branch, pattern, requested):
        items += batch
    return items


async def read_files(ctx: FetchContext, repository: Item, paths: Sequence[str], requested: list[str]) -> list[Item]:
    """The file kind's items of the files ``paths`` (repository paths, taken literally) on
    ``repository``'s default branch, exactly as :func:`fetch_files` makes them. A path the branch
    does not have, a folder, or a file over 1 MiB gives no item; so does every path of a disabled
    repository or one without a default branch (the resync reads none there either)."""
    literals = tuple(dict.fromkeys("/" + path.strip("/") for path in paths if path.strip("/")))
    items: list[Item] = []
    async for batch in _repository_files(ctx, repository, plan=FilePlan(literals), requested=requested):
        items += batch
    return items


async def _folder_repositories(ctx: FetchContext, project_name: str | None) -> list[Item]:
    """Every repository, or those of ``project_name`` (a name or an id; a missing project raises
    Azure's 404 rather than reading nothing)."""
    if not project_name:
        return await all_repositories(ctx)
    wanted = project_name.casefold()
    for project in await ctx.projects():
        if str(project.get("name", "")).casefold() == wanted or str(project.get("id", "")).casefold() == wanted:
            return await ctx.repositories(project)
    await ctx.rest.get(f"_apis/projects/{quote(project_name, safe='')}")  # NotFound when there is no such project
    return []  # it exists, but carries an excluded tag


async def _pattern_folders(
    ctx: FetchContext, repository: Item, branch: str | None, pattern: str, requested: list[str]
) -> AsyncIterator[Batch]:
    """The folders ``pattern`` names in ``repository`` on ``branch`` (its default one when None)."""
    branch = branch or branch_name(repository.get("defaultBranch"))
    if _unreadable(ctx, repository, branch, "folder") or branch is None:
        return
    folders = await _walk(ctx, repository, branch, pattern)
    items = [
        ctx.stamp({**folder, "__repository": repository, "__branch": branch, "__pattern": pattern})
        for folder in folders
    ]
    if items and requested:
        await IncludedFiles(ctx, requested).attach(items, repository, branch)
    yield items


async def _walk(ctx: FetchContext, repository: Item, branch: str, pattern: str) -> list[Item]:
    """Folders matching ``pattern``, one level at a time from its literal base folder."""
    segments = [segment for segment in pattern.strip("/").split("/") if segment]
    if not segments:
        return []
    fixed = 0
    while fixed < len(segments) and not is_glob(segments[fixed]):
        fixed += 1
    base = "/" + "/".join(segments[:fixed])
    rest = segments[fixed:]
    if not rest:  # no wildcard: the folder itself, if it is one
        listed = await _folder_items(ctx, repository, branch, base, "none")
        return [item for item in listed or [] if _is_folder(item) and item.get("path") == base]
    frontier = [base]
    matched: list[Item] = []
    for segment in rest:
        lists = await gather_bounded(
            [functools.partial(_folder_items, ctx, repository, branch, folder, "oneLevel") for folder in frontier],
            ctx.concurrency,
        )
        matched = [
            item
            for folder, listed in zip(frontier, lists, strict=True)
            for item in listed or []
            if _is_folder(item)
            and item.get("path") != folder
            and fnmatch.fnmatchcase(str(item.get("path", "")).rsplit("/", 1)[-1], segment)
        ]
        frontier = [str(item["path"]) for item in matched]
        if not frontier:
            return []
    return matched


def _is_folder(item: Item) -> bool:
    return item.get("gitObjectType") == "tree" or bool(item.get("isFolder"))


async def _folder_items(ctx: FetchContext, repository: Item, branch: str, folder: str, level: str) -> list[Item] | None:
    """``folder`` and what it holds to ``level``; None (counted) when the branch has no such path."""
    params = {
        "scopePath": folder,
        "recursionLevel": level,
        "versionDescriptor.version": branch,
        "versionDescriptor.versionType": "branch",
    }
    items: list[Item] = []
    try:
        async for page in ctx.rest.pages_by_header_token(repository_path(repository, "items"), params=params, top=None):
            items += page
    except NoDataNotFound as exc:
        if (exc.type_key or "").lower() == _REPOSITORY_GONE:
            ctx.skip("folder: repository without data (404)", unread=True)
        else:
            ctx.skip("folder: path not in the repository")
        return None
    return items
