"""A real OpenID Connect provider for the sign-in tests: ``oidc-provider-mock`` (Authlib's
server, RS256 ID tokens, discovery, JWKS) on loopback in a thread, and the person's trip through
its authorization form, as a browser makes it."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import httpx
import oidc_provider_mock

#: kiosk.yaml's signIn block for a provider at ``{issuer}``, secret from OIDC_TEST_SECRET.
SIGN_IN_CONFIG = """
signIn:
  oidc:
    name: Test IdP
    issuer: {issuer}
    clientId: kiosk-portal
    clientSecret: {{env: OIDC_TEST_SECRET}}
    roles: {{admin: [kiosk-admins], member: [kiosk-users]}}
    defaultRole: null
"""


@contextmanager
def oidc_provider(users: Sequence[oidc_provider_mock.User]) -> Iterator[str]:
    """The provider serving until the block ends; yields its issuer URL."""
    with oidc_provider_mock.run_server_in_thread(require_nonce=True, user_claims=users) as server:
        yield f"http://localhost:{server.server_port}"


def authorize_as(authorization_url: str, subject: str) -> str:
    """Submit the provider's authorization form as ``subject``; the redirect back (with code and state)."""
    with httpx.Client(timeout=30) as http:
        answer = http.post(authorization_url, data={"sub": subject})
    assert answer.status_code == 302, answer.text
    return answer.headers["location"]
