"""A receiver's URL: ``/webhooks/<type>/<hex sha256(project + name + secret)>``.

Neither Azure Container Registry nor Azure DevOps signs what it sends, so the secret lives in the
URL: whoever knows the URL may post to it. The digest is built exactly as Kargo builds it (a plain
concatenation, no separators, an empty project for a receiver without one), so its published test
vectors hold and a URL computed by either tool is the same. Rotating the secret changes the URL.

Pure: no IO.
"""

from __future__ import annotations

import hashlib

__all__ = ["PATH_PREFIX", "receiver_digest", "receiver_path"]

PATH_PREFIX = "/webhooks"


def receiver_digest(project: str | None, name: str, secret: str) -> str:
    """64 lowercase hex characters: sha256 of ``project + name + secret`` (UTF-8)."""
    return hashlib.sha256(f"{project or ''}{name}{secret}".encode()).hexdigest()


def receiver_path(receiver_type: str, digest: str) -> str:
    """The path a sender posts to, e.g. ``/webhooks/azure/7451…68cd``."""
    return f"{PATH_PREFIX}/{receiver_type}/{digest}"
