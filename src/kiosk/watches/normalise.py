"""Repository keys: one spelling per git repository, container image or Helm chart.

A watch names a repository however its author copied it; an event names it however the sender
does. Both are reduced to a key here, and matching is then a dictionary lookup on the key.

Git (:func:`git_key`), ``host/path``, lower-case:

* scheme, user info (``org@dev.azure.com``), port, query, trailing ``/`` and ``.git`` dropped,
  ``%20`` decoded — so ``https://github.com/a/b.git``, ``git@github.com:a/b`` and
  ``ssh://git@github.com/a/b`` are one repository (the system kiosk replaces compared them as
  strings, so an SSH subscription never matched an https push);
* Azure DevOps spellings become ``dev.azure.com/<org>/<project>/_git/<repo>``: SSH
  (``git@ssh.dev.azure.com:v3/org/project/repo``), the old ``org.visualstudio.com`` host (with or
  without ``DefaultCollection``) and its SSH host ``vs-ssh.visualstudio.com``, and the short form
  ``dev.azure.com/org/_git/repo`` Azure uses when the repository is named like its project.

Ports are dropped because the SSH and https URLs of one repository differ in port as well as in
scheme; two different servers on one host name told apart only by port are not supported.

Images (:func:`image_key`): ``registry/repository`` without scheme, tag or digest; Docker Hub's
names lose the registry (``docker.io``, ``index.docker.io``, ...) and ``library/``, so ``nginx``
and ``docker.io/library/nginx`` are one image. Charts (:func:`chart_key`): ``oci://`` dropped.

Pure: no IO. The three key functions are memoised (bounded): a receiver sees the same few
repositories over and over, and a key is a function of its URL alone.
"""

from __future__ import annotations

from functools import lru_cache
from urllib.parse import unquote, urlsplit

__all__ = ["branch_ref", "chart_key", "git_key", "image_key", "ref_parts", "tag_ref"]

_DOCKER_HUB = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"})
_AZURE_SSH_HOSTS = frozenset({"ssh.dev.azure.com", "vs-ssh.visualstudio.com"})
_AZURE = "dev.azure.com"


def _split_git_url(url: str) -> tuple[str, str]:
    """(host, path) of a git URL in any of its forms, scp-like SSH included."""
    text = url.strip()
    if "://" not in text:
        # scp-like ``[user@]host:path`` (no scheme, a colon before the first slash) or a bare
        # ``host/path``.
        head, colon, rest = text.partition(":")
        if colon and "/" not in head:
            host = head.rpartition("@")[2]
            return host, rest
        text = "https://" + text
    parts = urlsplit(text)
    return parts.hostname or "", parts.path


def _azure_path(host: str, segments: list[str]) -> tuple[str, list[str]]:
    """Rewrite Azure DevOps hosts and paths to ``dev.azure.com`` + ``org/project/_git/repo``."""
    if host in _AZURE_SSH_HOSTS and len(segments) == 4 and segments[0] == "v3":
        _, org, project, repo = segments
        return _AZURE, [org, project, "_git", repo]
    if host.endswith(".visualstudio.com") and host not in _AZURE_SSH_HOSTS:
        org = host[: -len(".visualstudio.com")]
        if segments and segments[0] == "defaultcollection":
            segments = segments[1:]
        host, segments = _AZURE, [org, *segments]
    if host == _AZURE and len(segments) == 3 and segments[1] == "_git":
        org, _, repo = segments  # the project is omitted when it is named like the repository
        segments = [org, repo, "_git", repo]
    return host, segments


@lru_cache(maxsize=4096)
def git_key(url: str) -> str:
    """The key of a git repository URL (see the module docstring)."""
    host, path = _split_git_url(url.lower())
    path = unquote(path).strip("/")
    if path.endswith(".git"):
        path = path[: -len(".git")].rstrip("/")
    segments = [s for s in path.split("/") if s]
    host, segments = _azure_path(host, segments)
    return "/".join([host, *segments]) if segments else host


def _drop_scheme(text: str) -> str:
    _, sep, rest = text.partition("://")
    return rest if sep else text


@lru_cache(maxsize=4096)
def image_key(reference: str) -> str:
    """The key of a container image reference: ``registry/repository``, Docker Hub shortened."""
    text = _drop_scheme(reference.strip().lower()).strip("/")
    text = text.partition("@")[0]  # a digest
    first, slash, rest = text.partition("/")
    registry = ""
    if slash and ("." in first or ":" in first or first == "localhost"):
        registry, text = first, rest
    head, _, last = text.rpartition("/")
    last = last.partition(":")[0]  # a tag (the registry's port was split off above)
    path = f"{head}/{last}" if head else last
    if registry in _DOCKER_HUB or not registry:
        return path[len("library/") :] if path.startswith("library/") else path
    return f"{registry}/{path}"


@lru_cache(maxsize=4096)
def chart_key(url: str) -> str:
    """The key of a Helm chart repository URL: lower-case, ``oci://`` and trailing ``/`` dropped."""
    text = url.strip().lower()
    if text.startswith("oci://"):
        text = text[len("oci://") :]
    return text.rstrip("/")


# ------------------------------------------------------------------------------------------ refs


def ref_parts(ref: str) -> tuple[str, str]:
    """``("branch", "main")`` for ``refs/heads/main``, ``("tag", "v1")`` for ``refs/tags/v1``.

    Anything else is ``("other", ref)``: pull-request and notes refs are not branches.
    """
    if ref.startswith("refs/heads/"):
        return "branch", ref[len("refs/heads/") :]
    if ref.startswith("refs/tags/"):
        return "tag", ref[len("refs/tags/") :]
    return "other", ref


def branch_ref(name: str) -> str:
    return name if name.startswith("refs/") else f"refs/heads/{name}"


def tag_ref(name: str) -> str:
    return name if name.startswith("refs/") else f"refs/tags/{name}"
