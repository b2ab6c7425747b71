"""Local users' passwords: argon2id hashes (argon2-cffi's defaults, RFC 9106's low-memory profile).

A person's password, unlike an API client's 256-bit secret, may be guessable: a slow, memory-hard
hash is what makes a stolen database expensive to attack. Checking an unknown email costs the same
as checking a wrong password (a hash is verified either way), so timing does not reveal which
accounts exist.
"""

from __future__ import annotations

import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

__all__ = ["MIN_PASSWORD_LENGTH", "hash_password", "password_problem", "verify_password", "verify_unknown"]

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024  # argon2 takes any length; a bound keeps a megabyte "password" out

_hasher = PasswordHasher()
# Verified against when the email is unknown (or has no password), so both paths do the same work.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def password_problem(password: str) -> str | None:
    """Why ``password`` is not acceptable as a new password, or None."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"the password must have at least {MIN_PASSWORD_LENGTH} characters"
    if len(password) > MAX_PASSWORD_LENGTH:
        return f"the password must have at most {MAX_PASSWORD_LENGTH} characters"
    return None


def hash_password(password: str) -> str:
    """The argon2id hash of ``password`` (salted; its parameters travel in the string)."""
    return _hasher.hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    """Whether ``password`` matches ``stored_hash``; a malformed hash never matches."""
    if len(password) > MAX_PASSWORD_LENGTH:
        password = password[:MAX_PASSWORD_LENGTH]  # same work as a maximal one; cannot match a longer one
        stored_hash = _DUMMY_HASH
    try:
        return _hasher.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def verify_unknown(password: str) -> bool:
    """The work of a verification for an account that does not exist; always False."""
    verify_password(_DUMMY_HASH, password)
    return False
