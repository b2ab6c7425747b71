"""Microsoft's ``azure-devops`` client, unmodified, pointed at an emulator.

The client caches route discovery on disk for 12 hours (``~/.azure-devops``), keyed by URL; a
changed emulator on a reused port would be masked by it. The cache directory is read when the
client is first imported, so this module points it at a private temporary directory before that
import: tests import the client through here only.
"""

from __future__ import annotations

import os
import tempfile

os.environ["AZURE_DEVOPS_CACHE_DIR"] = tempfile.mkdtemp(prefix="kiosk-azure-devops-cache-")

from azure.devops.connection import Connection
from msrest.authentication import BasicAuthentication

__all__ = ["connect"]


def connect(base_url: str, org: str, pat: str) -> Connection:
    """A connection to ``org`` on the emulator at ``base_url``, authenticated as Azure's docs show (empty user)."""
    return Connection(base_url=f"{base_url}/{org}", creds=BasicAuthentication("", pat))


def with_generated_org(
    config: str, *, projects: int = 3, repos: int = 8, workitems: int = 30, seed: int = 7, users: int | None = None
) -> str:
    """``config`` (tests/emulator/conftest.py's) with a generated organisation under its first org
    (``users``: how many, else the generator's default)."""
    sizes = f"projects: {projects}, repos: {repos}, workitems: {workitems}"
    if users is not None:
        sizes += f", users: {users}"
    generate = f"    generate: {{{sizes}, seed: {seed}}}\n"
    return config.replace("    projects:\n", generate + "    projects:\n", 1)
