"""``signIn:`` in kiosk.yaml: the OIDC provider (secret by reference only), sessions, the public URL."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.support.config_files import config_error

from kiosk.config import parse_config
from kiosk.errors import ConfigError
from kiosk.ui import oidc_provider

VALID = """
signIn:
  publicUrl: https://kiosk.example.com
  session: {idleMinutes: 30, absoluteHours: 12}
  oidc:
    name: Microsoft
    issuer: https://login.microsoftonline.com/tenant-id/v2.0
    clientId: app-id
    clientSecret: {file: oidc-secret}
    roles: {admin: [g-admins], member: [g-devs]}
    defaultRole: null
"""


def test_valid_sign_in_resolves_the_secret_by_reference(tmp_path: Path) -> None:
    config = parse_config(VALID, Path("kiosk.yaml"))
    assert config.signIn.session.idleMinutes == 30 and config.signIn.localUsers is True
    (tmp_path / "oidc-secret").write_text("the-client-secret\n")
    provider = oidc_provider(config.signIn, base_dir=tmp_path, env={})
    assert provider is not None
    assert provider.client_secret == "the-client-secret"
    assert provider.admin_groups == {"g-admins"} and provider.default_role is None
    assert provider.scopes == ("openid", "email", "profile")


def test_missing_secret_stops_the_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="oidc-secret"):
        oidc_provider(parse_config(VALID, Path("kiosk.yaml")).signIn, base_dir=tmp_path, env={})


def test_no_provider_configured() -> None:
    assert (
        oidc_provider(
            parse_config("signIn: {localUsers: false}", Path("kiosk.yaml")).signIn, base_dir=Path("."), env={}
        )
        is None
    )


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("signIn:\n  oidc: {issuer: 'https://i', clientId: c, clientSecret: plain-text}\n", "clientSecret"),
        ("signIn:\n  publicUrl: kiosk.example.com\n", "publicUrl"),
        ("signIn:\n  sessions: {}\n", "sessions"),
        (
            "signIn:\n  oidc: {issuer: 'https://i', clientId: c, clientSecret: {env: S}, defaultRole: root}\n",
            "defaultRole",
        ),
    ],
)
def test_bad_sign_in_is_refused_with_its_field(tmp_path: Path, text: str, fragment: str) -> None:
    error = config_error(tmp_path, text)
    assert fragment in error.message
    assert "plain-text" not in error.message  # a literal secret is never echoed
