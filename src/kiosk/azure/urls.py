"""An organisation's URLs: the org host and the hosts Azure serves some areas from (pure).

Azure DevOps Services serves Graph and identities from ``vssps``, user entitlements from ``vsaex``
and releases from ``vsrm`` (reference azure-devops-rest.md §1.3): ``https://dev.azure.com/org`` has
``https://vssps.dev.azure.com/org`` and so on, and the older ``https://org.visualstudio.com`` has
``https://org.vssps.visualstudio.com``. Azure DevOps Server and kiosk's emulator serve every area on
the org URL itself (a server URL may carry a path: ``https://tfs.example.com/tfs/DefaultCollection``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote, urlsplit, urlunsplit

__all__ = ["Host", "OrgUrls", "path_segment"]

Host = Literal["core", "vssps", "vsaex", "vsrm", "advsec"]


def path_segment(value: str) -> str:
    """``value`` quoted for one path segment (a project or repository name with ``/``, ``#``, spaces…)."""
    return quote(value, safe="")


@dataclass(frozen=True)
class OrgUrls:
    """Base URLs of one organisation, without a trailing slash."""

    core: str
    vssps: str
    vsaex: str
    vsrm: str

    @classmethod
    def parse(cls, organization_url: str) -> OrgUrls:
        """The URLs for ``organization_url`` (``https://dev.azure.com/org``, ``https://org.visualstudio.com``,
        or a server/emulator URL); ValueError for anything that is not an absolute http(s) URL."""
        parts = urlsplit(organization_url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"organization URL must be an absolute http(s) URL, not {organization_url!r}")
        if "@" in parts.netloc:
            raise ValueError("organization URL must not carry credentials; give the PAT separately")
        path = parts.path.rstrip("/")
        core = urlunsplit((parts.scheme, parts.netloc, path, "", ""))
        host = parts.hostname.lower()
        netloc = parts.netloc.lower()
        if host == "dev.azure.com":
            return cls(
                core=core,
                vssps=urlunsplit((parts.scheme, f"vssps.{netloc}", path, "", "")),
                vsaex=urlunsplit((parts.scheme, f"vsaex.{netloc}", path, "", "")),
                vsrm=urlunsplit((parts.scheme, f"vsrm.{netloc}", path, "", "")),
            )
        if host.endswith(".visualstudio.com") and host.count(".") == 2:
            org = host.split(".", 1)[0]
            port = f":{parts.port}" if parts.port else ""

            def sub(area: str) -> str:
                return urlunsplit((parts.scheme, f"{org}.{area}.visualstudio.com{port}", path, "", ""))

            return cls(core=core, vssps=sub("vssps"), vsaex=sub("vsaex"), vsrm=sub("vsrm"))
        return cls(core=core, vssps=core, vsaex=core, vsrm=core)

    @property
    def advsec(self) -> str:
        """Advanced Security's host: ``https://advsec.dev.azure.com/org`` on ``dev.azure.com``, else the org URL
        itself (as the reference derives it; it has no ``*.visualstudio.com`` form)."""
        parts = urlsplit(self.core)
        if (parts.hostname or "").lower() == "dev.azure.com":
            return urlunsplit((parts.scheme, f"advsec.{parts.netloc.lower()}", parts.path, "", ""))
        return self.core

    def base(self, host: Host) -> str:
        return str(getattr(self, host))

    def url(self, host: Host, path: str) -> str:
        """``path`` (relative, e.g. ``{project}/_apis/git/repositories``) on ``host``; absolute URLs pass as is."""
        if path.startswith(("http://", "https://")):
            return path
        return f"{self.base(host)}/{path.lstrip('/')}"
