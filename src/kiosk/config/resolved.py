"""kiosk.yaml's secrets, resolved once when the server starts.

References (``{env: NAME}`` / ``{file: PATH}``) are resolved at start so that a missing variable or
unreadable file stops ``kiosk serve`` with one line naming the reference, instead of surfacing
hours later as a failed delivery. The values live only in memory, wrapped in
:class:`~kiosk.config.secrets.Secret` (registered for log redaction), and are looked up by the
reference names the delivery layer stores (``azureDevOps:<org>``, ``webhook``).

Receiver secrets (``receivers[].secret`` and their optional auth values) are resolved here too, so a
missing one stops the start like any other; the receiver registry then re-reads the references
itself on every request (see :mod:`kiosk.receivers.registry`), so a rotated secret takes effect at
once. ``base_dir`` is kept for that: it is where relative ``{file: PATH}`` references resolve from.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from kiosk.config.model import KioskConfig
from kiosk.config.secrets import Secret, resolve_secret

__all__ = ["ResolvedSecrets", "resolve_config_secrets"]


@dataclass(frozen=True)
class ResolvedSecrets:
    signing: dict[str, Secret] = field(default_factory=dict)
    pats: dict[str, Secret] = field(default_factory=dict)
    hook_auth: dict[str, tuple[str, Secret]] = field(default_factory=dict)
    #: Receiver secrets by receiver key (``project/name`` or ``name``), as read at start.
    receivers: dict[str, Secret] = field(default_factory=dict)
    #: Where relative ``{file: PATH}`` references were resolved from (None when built in code).
    base_dir: Path | None = None

    def signing_secret(self, ref: str) -> str | None:
        """The delivery layer's lookup: ``azureDevOps:<org>`` or ``webhook`` → the clear secret."""
        found = self.signing.get(ref)
        return found.reveal() if found is not None else None


def resolve_config_secrets(config: KioskConfig, *, base_dir: Path, env: Mapping[str, str]) -> ResolvedSecrets:
    """Resolve every secret reference in ``config`` (ConfigError naming the first that fails)."""
    resolved = ResolvedSecrets(base_dir=base_dir)
    for name, org in config.azureDevOps.orgs.items():
        if org.signingSecret is not None:
            resolved.signing[f"azureDevOps:{name}"] = resolve_secret(org.signingSecret, base_dir=base_dir, env=env)
        if org.pat is not None:
            resolved.pats[name] = resolve_secret(org.pat, base_dir=base_dir, env=env)
        if org.serviceHooks is not None:
            password = resolve_secret(org.serviceHooks.password, base_dir=base_dir, env=env)
            resolved.hook_auth[name] = (org.serviceHooks.username, password)
    if config.delivery.signing_secret is not None:
        resolved.signing["webhook"] = resolve_secret(config.delivery.signing_secret, base_dir=base_dir, env=env)
    for receiver in config.receivers:
        resolved.receivers[receiver.key] = resolve_secret(receiver.secret, base_dir=base_dir, env=env)
        auth = receiver.auth
        # Resolved only to fail the start early; the registry reads them when it builds the receiver.
        if auth is not None and auth.basic is not None:
            resolve_secret(auth.basic.password, base_dir=base_dir, env=env)
        if auth is not None and auth.header is not None:
            resolve_secret(auth.header.value, base_dir=base_dir, env=env)
    return resolved
