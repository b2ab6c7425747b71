"""Sign-in with an OpenID Connect provider: authorization code flow with PKCE (S256).

The flow, and what each step checks:

1. :func:`begin_sign_in` makes a ``state`` (against forged callbacks), a ``nonce`` (binds the ID
   token to this attempt) and a PKCE verifier (the code is useless to whoever intercepts it). They
   travel in a short-lived cookie signed with a key derived from kiosk's master key
   (:func:`seal_attempt`); nothing is stored server-side between the two legs.
2. The callback: the ``state`` must equal the cookie's (constant time), the code is exchanged
   with the verifier and the client secret, and the ID token is verified — signature by a key of
   the provider's JWKS (found through discovery; fetched again once for an unknown ``kid``),
   ``iss`` equal to the configured issuer, ``aud`` containing the client id (and ``azp`` equal to
   it when there are several audiences), ``exp``/``iat``/``nbf`` with a small leeway, and the
   ``nonce``.
3. :func:`role_for` maps the token's groups to kiosk's role (admin before member); a person in
   none of the configured groups gets ``defaultRole``, or is refused when that is null.

joserfc (Authlib's JOSE library) verifies the signature; the claims are checked here, explicitly.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet

__all__ = [
    "OidcClient",
    "OidcError",
    "OidcProvider",
    "SignInAttempt",
    "begin_sign_in",
    "open_attempt",
    "pkce_challenge",
    "role_for",
    "seal_attempt",
]

#: Seconds an attempt (the trip to the provider and back) may take.
ATTEMPT_TTL = 600
#: Clock skew tolerated between kiosk and the provider, in seconds.
LEEWAY = 60
#: Signature algorithms accepted for ID tokens (never ``none``, never HMAC with the client secret).
ID_TOKEN_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")


class OidcError(Exception):
    """A sign-in that must not succeed; the message says why (shown to the person, logged)."""


@dataclass(frozen=True)
class OidcProvider:
    """The provider as configured in kiosk.yaml (``signIn.oidc``), with the secret resolved."""

    issuer: str
    client_id: str
    client_secret: str
    name: str = "OpenID Connect"
    scopes: tuple[str, ...] = ("openid", "email", "profile")
    groups_claim: str = "groups"
    email_claims: tuple[str, ...] = ("email", "preferred_username", "upn")
    admin_groups: frozenset[str] = frozenset()
    member_groups: frozenset[str] = frozenset()
    default_role: str | None = "member"


@dataclass(frozen=True)
class SignInAttempt:
    """One trip to the provider: what the callback must find again."""

    state: str
    nonce: str
    verifier: str
    next_path: str
    expires: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def pkce_challenge(verifier: str) -> str:
    """RFC 7636's S256 challenge of ``verifier``."""
    return _b64(hashlib.sha256(verifier.encode("ascii")).digest())


def begin_sign_in(next_path: str, *, now: float | None = None) -> SignInAttempt:
    """A fresh attempt: random state, nonce and PKCE verifier (43+ characters, RFC 7636)."""
    return SignInAttempt(
        state=secrets.token_urlsafe(32),
        nonce=secrets.token_urlsafe(32),
        verifier=secrets.token_urlsafe(48),
        next_path=next_path,
        expires=int((time.time() if now is None else now) + ATTEMPT_TTL),
    )


def seal_attempt(key: bytes, attempt: SignInAttempt) -> str:
    """The attempt as a cookie value: JSON and its HMAC-SHA256 under ``key``."""
    body = _b64(
        orjson.dumps(
            {
                "s": attempt.state,
                "n": attempt.nonce,
                "v": attempt.verifier,
                "p": attempt.next_path,
                "e": attempt.expires,
            }
        )
    )
    return body + "." + _b64(hmac.new(key, body.encode(), hashlib.sha256).digest())


def open_attempt(key: bytes, value: str | None, *, now: float | None = None) -> SignInAttempt:
    """The attempt sealed in ``value``; :class:`OidcError` when missing, altered or expired."""
    if not value or len(value) > 4096:
        raise OidcError("the sign-in attempt was not found (cookies blocked, or it was started elsewhere)")
    body, _, sig = value.partition(".")
    expected = _b64(hmac.new(key, body.encode(), hashlib.sha256).digest())
    if not hmac.compare_digest(sig.encode(), expected.encode()):
        raise OidcError("the sign-in attempt was altered")
    try:
        data = orjson.loads(_unb64(body))
        attempt = SignInAttempt(
            state=str(data["s"]),
            nonce=str(data["n"]),
            verifier=str(data["v"]),
            next_path=str(data["p"]),
            expires=int(data["e"]),
        )
    except (ValueError, KeyError, TypeError):
        raise OidcError("the sign-in attempt is malformed") from None
    if (time.time() if now is None else now) >= attempt.expires:
        raise OidcError("the sign-in attempt expired; sign in again")
    return attempt


def role_for(provider: OidcProvider, claims: Mapping[str, Any]) -> str:
    """kiosk's role for the person ``claims`` describe: admin if in an admin group, else member if
    in a member group (or no member groups are configured), else ``default_role``."""
    raw = claims.get(provider.groups_claim, [])
    groups = {str(g) for g in raw} if isinstance(raw, list) else ({str(raw)} if raw else set())
    if groups & provider.admin_groups:
        return "admin"
    if groups & provider.member_groups:
        return "member"
    if provider.default_role is None:
        raise OidcError("your account is in none of the groups allowed to sign in to kiosk")
    return provider.default_role


def email_of(provider: OidcProvider, claims: Mapping[str, Any]) -> str:
    """The person's email: the first of ``email_claims`` holding an address."""
    for name in provider.email_claims:
        value = claims.get(name)
        if isinstance(value, str) and "@" in value:
            return value
    raise OidcError(f"the ID token has no email address (looked at {', '.join(provider.email_claims)})")


def check_claims(provider: OidcProvider, claims: Mapping[str, Any], nonce: str, *, now: float | None = None) -> None:
    """The ID token's claims checks (OIDC Core 3.1.3.7); :class:`OidcError` on the first failure."""
    moment = time.time() if now is None else now
    if claims.get("iss") != provider.issuer:
        raise OidcError(f"the ID token's issuer {claims.get('iss')!r} is not {provider.issuer!r}")
    aud = claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else (aud if isinstance(aud, list) else [])
    if provider.client_id not in audiences:
        raise OidcError("the ID token was issued for another client (audience)")
    if len(audiences) > 1 and claims.get("azp") != provider.client_id:
        raise OidcError("the ID token's authorized party is another client")
    exp, iat = claims.get("exp"), claims.get("iat")
    if not isinstance(exp, int | float) or moment > exp + LEEWAY:
        raise OidcError("the ID token has expired")
    if not isinstance(iat, int | float) or iat > moment + LEEWAY:
        raise OidcError("the ID token was issued in the future")
    nbf = claims.get("nbf")
    if isinstance(nbf, int | float) and nbf > moment + LEEWAY:
        raise OidcError("the ID token is not valid yet")
    given = claims.get("nonce")
    if not isinstance(given, str) or not hmac.compare_digest(given.encode(), nonce.encode()):
        raise OidcError("the ID token's nonce does not match this sign-in attempt")
    if not isinstance(claims.get("sub"), str) or not claims["sub"]:
        raise OidcError("the ID token has no subject")


@dataclass
class OidcClient:
    """Talks to the provider: discovery, the authorization URL, the code exchange, the JWKS.

    Discovery and the JWKS are cached for the process; the JWKS is fetched again (once per
    token) when a token names a key it does not hold, which is how providers rotate keys.
    """

    provider: OidcProvider
    transport: httpx.AsyncBaseTransport | None = None
    _metadata: dict[str, Any] | None = field(default=None, init=False)
    _keys: KeySet | None = field(default=None, init=False)

    def _http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=self.transport, timeout=10, follow_redirects=False)

    async def metadata(self) -> dict[str, Any]:
        """The provider's discovery document; its ``issuer`` must be the configured one."""
        if self._metadata is None:
            url = self.provider.issuer.rstrip("/") + "/.well-known/openid-configuration"
            async with self._http() as http:
                response = await http.get(url)
            if response.status_code != 200:
                raise OidcError(f"the provider's discovery document answered HTTP {response.status_code}")
            document = response.json()
            if document.get("issuer") != self.provider.issuer:
                raise OidcError(f"the provider calls itself {document.get('issuer')!r}, not {self.provider.issuer!r}")
            for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
                if not isinstance(document.get(name), str):
                    raise OidcError(f"the provider's discovery document has no {name}")
            self._metadata = document
        return self._metadata

    async def authorization_url(self, attempt: SignInAttempt, redirect_uri: str) -> str:
        """Where to send the browser: the provider's authorization endpoint with this attempt."""
        meta = await self.metadata()
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self.provider.client_id,
                "redirect_uri": redirect_uri,
                "scope": " ".join(self.provider.scopes),
                "state": attempt.state,
                "nonce": attempt.nonce,
                "code_challenge": pkce_challenge(attempt.verifier),
                "code_challenge_method": "S256",
            }
        )
        endpoint: str = meta["authorization_endpoint"]
        return endpoint + ("&" if "?" in endpoint else "?") + query

    async def _jwks(self, *, refresh: bool = False) -> KeySet:
        if self._keys is None or refresh:
            meta = await self.metadata()
            async with self._http() as http:
                response = await http.get(meta["jwks_uri"])
            if response.status_code != 200:
                raise OidcError(f"the provider's key set answered HTTP {response.status_code}")
            self._keys = KeySet.import_key_set(response.json())
        return self._keys

    async def finish(
        self, attempt: SignInAttempt, state: str | None, code: str | None, redirect_uri: str
    ) -> dict[str, Any]:
        """The verified ID token claims of the callback's ``code``; :class:`OidcError` otherwise."""
        if not state or not hmac.compare_digest(state.encode(), attempt.state.encode()):
            raise OidcError("the sign-in answer does not belong to this attempt (state)")
        if not code:
            raise OidcError("the provider sent no authorization code")
        id_token = await self.exchange(code, attempt.verifier, redirect_uri)
        return await self.verify_id_token(id_token, attempt.nonce)

    async def exchange(self, code: str, verifier: str, redirect_uri: str) -> str:
        """The ID token the provider gives for ``code`` (with the PKCE verifier and the client secret)."""
        meta = await self.metadata()
        async with self._http() as http:
            response = await http.post(
                meta["token_endpoint"],
                data={
                    "grant_type": "authorization_code",
                    "code": code,
                    "redirect_uri": redirect_uri,
                    "code_verifier": verifier,
                },
                auth=(self.provider.client_id, self.provider.client_secret),
            )
        if response.status_code != 200:
            raise OidcError(f"the provider refused the code exchange (HTTP {response.status_code})")
        id_token = response.json().get("id_token")
        if not isinstance(id_token, str):
            raise OidcError("the provider's token answer has no ID token")
        return id_token

    async def verify_id_token(self, id_token: str, nonce: str) -> dict[str, Any]:
        """The claims of ``id_token`` once its signature and claims are checked for this attempt."""
        claims = await self._verified_claims(id_token)
        check_claims(self.provider, claims, nonce)
        return claims

    async def _verified_claims(self, id_token: str) -> dict[str, Any]:
        for refresh in (False, True):
            keys = await self._jwks(refresh=refresh)
            try:
                return dict(jwt.decode(id_token, keys, algorithms=list(ID_TOKEN_ALGORITHMS)).claims)
            except InvalidKeyIdError:  # a key the cached set does not hold: the provider rotated
                if refresh:
                    raise OidcError("the ID token is signed by a key the provider does not publish") from None
            except (JoseError, ValueError) as exc:
                raise OidcError(f"the ID token's signature is not valid: {type(exc).__name__}") from None
        raise OidcError("the ID token cannot be verified")


def provider_groups(values: Sequence[str] | None) -> frozenset[str]:
    return frozenset(values or ())
