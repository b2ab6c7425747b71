"""Raw examples of a kind for ``test-mapping``, kept without the secrets they may carry.

With ``sendRawDataExamples`` the resync keeps the first few raw items of each kind, so a user can
try a mapping on real data (``kiosk integrations test-mapping``) as in Port's mapping editor. The
items are Azure DevOps' own answers plus the integration's enrichment, and they are stored and
shown to anyone who may read the integration: nothing secret may survive. :func:`sample_examples`
copies the first items and replaces, each by :data:`REDACTED`:

* the value under any key that names a secret, case-insensitive, ignoring ``_``/``-``/``.``:
  containing ``password``, ``passwd``, ``passphrase``, ``secret``, ``token``, ``authorization``,
  ``credential``, ``privatekey``, ``apikey``, ``accesskey``, ``connectionstring``, ``signature``,
  ``cookie``, or equal to ``pat``, ``pwd``, ``key``, ``auth``, ``sig``, ``sas``. A boolean or null
  under such a key is kept: it says whether there is a secret, not what it is (``isSecret:
  true``, ``hasPassword: false``). Azure's shapes with such keys: service hook subscriptions'
  ``consumerInputs.basicAuthPassword``, service endpoints' ``authorization`` (scheme and
  parameters, all of it), ``accessToken``;
* the ``value`` of a variable marked ``isSecret: true`` (build and release definitions',
  variable groups', pipelines' ``variables: {name: {value, isSecret}}``): Azure usually blanks
  it, but not every API version does;
* in any string, wherever it occurs (a URL field, a README under ``__includedFiles``, a YAML
  file's content): the user information of a URL with a password (``https://user:pass@host`` →
  ``https://[redacted]@host``) or whose user name is token-like (32 or more letters and digits,
  as a PAT embedded in a git remote is); the value of a query parameter that names a secret
  (``?sig=…``, ``&access_token=…``); a ``Bearer``/``Basic`` credential (not a lower-case word
  after it: "Basic settings" stays); a PEM private key block.

Plain Azure user names in URLs (``https://org@dev.azure.com/org/…``, Azure's own ``remoteUrl``) are
kept: they are the organisation's name, not a credential.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Final

__all__ = ["REDACTED", "is_secret_key", "redact", "redact_text", "sample_examples"]

#: What a secret is replaced by.
REDACTED: Final = "[redacted]"

_SECRET_PARTS: Final = (
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "authorization",
    "credential",
    "privatekey",
    "apikey",
    "accesskey",
    "connectionstring",
    "signature",
    "cookie",
)
_SECRET_NAMES: Final = frozenset({"pat", "pwd", "key", "auth", "sig", "sas"})
_SEPARATORS: Final = re.compile(r"[_\-.\s]")


def is_secret_key(key: str) -> bool:
    """Whether a key names a secret (see the module docstring)."""
    name = _SEPARATORS.sub("", key).lower()
    return name in _SECRET_NAMES or any(part in name for part in _SECRET_PARTS)


#: ``scheme://userinfo@``: the user information of a URL (no ``/``, ``@`` or white space in it).
_URL_USERINFO: Final = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>[^/@\s\"'<>]+)@")
_TOKEN_LIKE: Final = re.compile(r"[A-Za-z0-9]{32,}")
#: ``?name=value`` or ``&name=value`` in a URL; the name is checked with :func:`is_secret_key`.
_QUERY_PARAM: Final = re.compile(r"(?P<lead>[?&])(?P<name>[A-Za-z0-9_.\-]+)=(?P<value>[^&#\s\"'<>]*)")
#: ``Bearer …``/``Basic …`` as in an Authorization header (the scheme capitalised, as HTTP writes it).
_HTTP_CREDENTIAL: Final = re.compile(
    r"\b(?P<scheme>Bearer|Basic|BEARER|BASIC)\s+(?P<credential>[A-Za-z0-9\-._~+/]{8,}=*)"
)
_PRIVATE_KEY: Final = re.compile(
    r"-----BEGIN (?P<kind>[A-Z0-9 ]*)PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)", re.DOTALL
)


def _userinfo(match: re.Match[str]) -> str:
    userinfo = match.group("userinfo")
    if ":" in userinfo or _TOKEN_LIKE.fullmatch(userinfo):
        return f"{match.group('scheme')}{REDACTED}@"
    return match.group(0)


def _query_param(match: re.Match[str]) -> str:
    if is_secret_key(match.group("name")) and match.group("value"):
        return f"{match.group('lead')}{match.group('name')}={REDACTED}"
    return match.group(0)


def _http_credential(match: re.Match[str]) -> str:
    credential = match.group("credential")
    if credential.isalpha() and credential.islower():  # a word ("Basic settings"), not a credential
        return match.group(0)
    return f"{match.group('scheme')} {REDACTED}"


def redact_text(text: str) -> str:
    """``text`` with the credentials it embeds replaced (URLs' user information with a password or
    a token, secret query parameters, ``Bearer``/``Basic`` credentials, private keys)."""
    if "://" in text:
        text = _URL_USERINFO.sub(_userinfo, text)
    if "=" in text:
        text = _QUERY_PARAM.sub(_query_param, text)
    if "Bearer" in text or "Basic" in text or "BEARER" in text or "BASIC" in text:
        text = _HTTP_CREDENTIAL.sub(_http_credential, text)
    if "PRIVATE KEY-----" in text:
        text = _PRIVATE_KEY.sub(REDACTED, text)
    return text


def redact(value: Any) -> Any:
    """A copy of ``value`` (JSON-like) with every secret replaced by :data:`REDACTED`."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, list):
        return [redact(item) for item in value]
    if isinstance(value, dict):
        secret_value = value.get("isSecret") is True
        out: dict[Any, Any] = {}
        for key, item in value.items():
            name = str(key)
            if (is_secret_key(name) or (secret_value and name == "value")) and not (
                item is None or isinstance(item, bool)
            ):
                out[key] = REDACTED
            else:
                out[key] = redact(item)
        return out
    return value


def sample_examples(items: Sequence[Any], limit: int = 5) -> list[Any]:
    """The first ``limit`` items, each a redacted copy (the items themselves are not changed)."""
    return [redact(item) for item in items[: max(limit, 0)]]
