"""``signIn:`` in kiosk.yaml: how people sign in to the portal (local users, an OIDC provider),
the public URL browsers use, and how long sessions last.

```yaml
signIn:
  publicUrl: https://kiosk.example.com      # optional: the URL browsers use (redirect URI, cookies)
  localUsers: true                          # the email + password form (users made by `kiosk users`)
  session: {idleMinutes: 480, absoluteHours: 168}
  oidc:
    name: Microsoft                         # the button says "Sign in with Microsoft"
    issuer: https://login.microsoftonline.com/<tenant id>/v2.0
    clientId: 00000000-0000-0000-0000-000000000000
    clientSecret: {env: KIOSK_OIDC_CLIENT_SECRET}
    scopes: [openid, email, profile]
    groupsClaim: groups
    emailClaims: [email, preferred_username, upn]
    roles: {admin: [<group id>], member: [<group id>]}
    defaultRole: member                     # null: people in none of the groups are refused
```
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr

from kiosk.config.secrets import SecretRef

__all__ = ["OidcRoles", "OidcSettings", "SessionSettings", "SignInConfig"]


class OidcRoles(BaseModel):
    """Which provider groups (values of ``groupsClaim``) make an admin, which a member."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    admin: list[StrictStr] = Field(default_factory=list)
    member: list[StrictStr] = Field(default_factory=list)


class OidcSettings(BaseModel):
    """``signIn.oidc``: one OpenID Connect provider (authorization code + PKCE)."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    name: StrictStr = Field(default="OpenID Connect", min_length=1, max_length=60)
    issuer: StrictStr = Field(pattern=r"^https?://[^\s?#]+$")
    clientId: StrictStr = Field(min_length=1)
    clientSecret: SecretRef
    scopes: list[StrictStr] = Field(default_factory=lambda: ["openid", "email", "profile"])
    groupsClaim: StrictStr = "groups"
    emailClaims: list[StrictStr] = Field(default_factory=lambda: ["email", "preferred_username", "upn"], min_length=1)
    roles: OidcRoles = Field(default_factory=OidcRoles)
    defaultRole: Literal["admin", "member"] | None = "member"


class SessionSettings(BaseModel):
    """``signIn.session``: a session ends after ``idleMinutes`` without a request, and in any case
    ``absoluteHours`` after sign-in."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    idleMinutes: float = Field(default=8 * 60, gt=0, le=30 * 24 * 60)
    absoluteHours: float = Field(default=7 * 24, gt=0, le=365 * 24)


class SignInConfig(BaseModel):
    """``signIn:`` the portal's sign-in."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    publicUrl: StrictStr | None = Field(default=None, pattern=r"^https?://[^\s/?#]+(/[^\s?#]*)?$")
    localUsers: bool = True
    session: SessionSettings = Field(default_factory=SessionSettings)
    oidc: OidcSettings | None = None
