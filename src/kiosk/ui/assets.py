"""The UI's static files (htmx, kiosk's CSS), served from the package with their content hash in
the URL: ``/ui/static/<hash>/<name>``. A new release changes the hash, so browsers may keep a file
for a year (``immutable``) and still never run a stale one."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources

from starlette.responses import Response

__all__ = ["STATIC_PREFIX", "StaticAssets"]

STATIC_PREFIX = "/ui/static"
_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
}
_CACHE = "public, max-age=31536000, immutable"


@dataclass(frozen=True)
class _Asset:
    body: bytes
    digest: str
    media_type: str


class StaticAssets:
    """Every file of ``kiosk/ui/static``, read once at start (a few tens of KiB)."""

    def __init__(self) -> None:
        self._files: dict[str, _Asset] = {}
        for entry in resources.files("kiosk.ui").joinpath("static").iterdir():
            suffix = "." + entry.name.rsplit(".", 1)[-1]
            if entry.is_file() and suffix in _TYPES:
                body = entry.read_bytes()
                digest = hashlib.sha256(body).hexdigest()[:16]
                self._files[entry.name] = _Asset(body, digest, _TYPES[suffix])

    def url(self, name: str) -> str:
        """The versioned URL of static file ``name`` (a KeyError for an unknown one: a template bug)."""
        return f"{STATIC_PREFIX}/{self._files[name].digest}/{name}"

    def response(self, digest: str, name: str) -> Response | None:
        """The file for this exact version, or None (an old or unknown URL is a 404, never another version)."""
        asset = self._files.get(name)
        if asset is None or asset.digest != digest:
            return None
        return Response(
            asset.body,
            media_type=asset.media_type,
            headers={"Cache-Control": _CACHE, "X-Content-Type-Options": "nosniff"},
        )
