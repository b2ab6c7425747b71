"""Member entitlement routes (reference 3.2; Azure's ``vsaex`` host, served at the org's URL): user entitlements.

``GET {org}/_apis/userentitlements`` answers in two forms, chosen by api-version as Azure does:

- 5.0 and later (what Microsoft's 7.1 client sends): ``{members, items, continuationToken,
  totalCount}`` — the same entitlements under both ``members`` (the client reads it) and ``items``
  (Ocean reads it) — 100 a page, the next page's token in the *body* (null on the last page);
  ``select``, ``$filter``, ``$orderBy``.
- before 5.0 (4.1, what older ingesters send): ``{count, value}`` with ``top``/``skip``, ``filter``
  and ``sortOption``. The emulator otherwise serves 6.0 to 7.2; this route alone also takes 4.x.

``$filter`` is Azure's small grammar: ``licenseId``, ``licenseStatus``, ``userType`` and ``name``
compared with ``eq`` to a quoted value, joined by ``and``/``or``, grouped by parentheses
(``(licenseId eq 'Account-Stakeholder' or licenseId eq 'Account-Express') and name eq 'ana'``);
``name`` matches a display name or mail address containing the value, case-insensitively.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Annotated, Any, Final

from fastapi import Depends, FastAPI, Query, Request
from starlette.responses import Response

from kiosk.emulator.errors import AzureError
from kiosk.emulator.org.model import Organisation, User
from kiosk.emulator.routes.common import DeclaredResponses, continuation_page, existing, from_query, skip_page
from kiosk.emulator.routes.query_params import enum_pattern
from kiosk.emulator.service import Emulator
from kiosk.emulator.shapes_graph import LICENSE_IDS, user_entitlement_json
from kiosk.emulator.versioning import accept_version, resolve_api_version
from kiosk.web.responses import FastJSONResponse

__all__ = ["ENTITLEMENTS_PAGE", "add_entitlement_routes", "parse_entitlement_filter"]

ENTITLEMENTS_PAGE: Final = 100
"""Entitlements per page of the 5.0+ search, and the legacy ``top`` default."""
_LEGACY_MAX_TOP: Final = 10_000
_LEGACY_VERSION = re.compile(r"^[45]\.[0-9]+(-preview(\.[0-9]+)?)?$")
_TOKEN = re.compile(r"\s*(\(|\)|'(?:[^']|'')*'|[A-Za-z]+)")
_SELECTABLE: Final = frozenset({"license", "projects", "extensions", "grouprules", "all"})

Predicate = Callable[[User], bool]


def _legacy(version: str) -> bool:
    return version.startswith("4.")


async def _entitlement_version(
    request: Request, api_version: Annotated[str | None, Query(alias="api-version")] = None
) -> str:
    """The api-version, as elsewhere, except that 4.x and 5.x (older entitlement clients) are served too."""
    version = api_version if api_version is not None else accept_version(request.headers.get("accept"))
    if version is not None and _LEGACY_VERSION.match(version.strip()):
        return version.strip()
    return resolve_api_version(request.method, api_version, request.headers.get("accept"))


EntitlementVersion = Annotated[str, Depends(_entitlement_version)]


def _field(org: Organisation, name: str, value: str) -> Predicate:
    key = name.lower()
    wanted = value.lower()
    if key == "licenseid":
        return lambda u: LICENSE_IDS.get(u.access_level.account_license_type, "").lower() == wanted
    if key == "licensestatus":
        return lambda u: u.access_level.status.lower() == wanted
    if key == "usertype":
        return lambda u: u.meta_type.lower() == wanted
    if key == "name":
        return lambda u: wanted in u.display_name.lower() or wanted in u.mail.lower()
    raise AzureError(
        400, "InvalidFilterException", f"$filter: {name[:40]!r} is not one of licenseId, licenseStatus, userType, name"
    )


def parse_entitlement_filter(org: Organisation, text: str) -> Predicate:
    """A predicate over users for Azure's entitlement ``$filter`` (grammar in the module docstring)."""
    tokens: list[str] = []
    position = 0
    while position < len(text.rstrip()):
        match = _TOKEN.match(text, position)
        if match is None:
            raise AzureError(400, "InvalidFilterException", f"$filter: cannot read {text[position:][:40]!r}")
        tokens.append(match.group(1))
        position = match.end()
    at = 0

    def peek() -> str | None:
        return tokens[at] if at < len(tokens) else None

    def take() -> str:
        nonlocal at
        if at >= len(tokens):
            raise AzureError(400, "InvalidFilterException", "$filter: the expression ends too early")
        at += 1
        return tokens[at - 1]

    def primary() -> Predicate:
        word = take()
        if word == "(":
            inner = disjunction()
            if take() != ")":
                raise AzureError(400, "InvalidFilterException", "$filter: a parenthesis is not closed")
            return inner
        if word.startswith("'") or word == ")":
            raise AzureError(400, "InvalidFilterException", f"$filter: a field name is expected, not {word[:40]}")
        if take().lower() != "eq":
            raise AzureError(400, "InvalidFilterException", f"$filter: only eq compares ({word[:40]} …)")
        value = take()
        if not value.startswith("'"):
            raise AzureError(400, "InvalidFilterException", f"$filter: {word[:40]} eq needs a quoted value")
        return _field(org, word, value[1:-1].replace("''", "'"))

    def joined(word: str, operand: Callable[[], Predicate], combine: Callable[[Iterable[bool]], bool]) -> Predicate:
        """``operand (word operand)*``: the one operand alone, else ``combine`` (all/any) of them."""
        parts = [operand()]
        while (peek() or "").lower() == word:
            take()
            parts.append(operand())
        return parts[0] if len(parts) == 1 else (lambda u: combine(p(u) for p in parts))

    def conjunction() -> Predicate:
        return joined("and", primary, all)

    def disjunction() -> Predicate:
        return joined("or", conjunction, any)

    if not tokens:
        return lambda _: True
    predicate = disjunction()
    if at != len(tokens):
        raise AzureError(400, "InvalidFilterException", f"$filter: unexpected {tokens[at][:40]!r}")
    return predicate


_ORDER_KEYS: Final[dict[str, Callable[[User], Any]]] = {
    "name": lambda u: u.display_name.casefold(),
    "displayname": lambda u: u.display_name.casefold(),
    "datecreated": lambda u: u.date_created,
    "lastaccessed": lambda u: u.last_accessed_date,
    "lastaccesseddate": lambda u: u.last_accessed_date,
    "lastaccessdate": lambda u: u.last_accessed_date,
}
_ORDERS: Final[dict[str, tuple[str, bool]]] = {
    f"{field}{between}{direction}".lower(): (field.lower(), direction.lower().startswith("desc"))
    for field in ("name", "displayName", "dateCreated", "lastAccessed", "lastAccessedDate", "lastAccessDate")
    for between, direction in [
        ("", ""),
        *((" ", d) for d in ("asc", "desc", "ascending", "descending")),
        ("", "Ascending"),
        ("", "Descending"),
    ]
}
"""``$orderBy`` and the legacy ``sortOption``: a field, then ``asc``/``desc`` (or ``ascending``/``descending``)
after a space, or glued ``Ascending``/``Descending`` (``lastAccessDateDescending``) → (field, descending?)."""


def _ordered(users: list[User], order: str | None, parameter: str) -> list[User]:
    """Sorted by ``name``, ``dateCreated`` or ``lastAccessed``, ascending unless a descending direction follows."""
    if not order:
        return users
    chosen = _ORDERS.get(order.lower())
    if chosen is None:
        raise AzureError(
            400,
            "InvalidOrderByException",
            f"{parameter}: {order[:60]!r} is not name, dateCreated or lastAccessed with an optional asc or desc",
        )
    field, descending = chosen
    return sorted(users, key=_ORDER_KEYS[field], reverse=descending)


def _select(value: str | None) -> frozenset[str]:
    if not value:
        return frozenset()
    chosen = frozenset(part.strip().lower() for part in value.split(",") if part.strip())
    unknown = chosen - _SELECTABLE
    if unknown:
        raise AzureError(
            400,
            "InvalidSelectException",
            f"select: {sorted(unknown)[0][:40]!r} is not license, projects, extensions, grouprules or all",
        )
    return chosen


def _user(org: Organisation, user_id: str) -> User:
    message = f"The user with id {user_id[:64]} is not a member of this organization."
    return existing(org.users.get(user_id.lower()), "MemberNotFoundException", message)


@dataclass(frozen=True, slots=True)
class EntitlementsQuery:
    """A page of user entitlements in either api-version's form: ``$filter``/``$orderBy`` and the
    token, or the legacy ``filter``/``sortOption`` with ``top``/``skip``; ``select`` says what each shows."""

    token: Annotated[str | None, Query(alias="continuationToken", pattern=r"^[0-9]{1,9}$")] = None
    select: Annotated[str | None, Query(max_length=200, pattern=enum_pattern(_SELECTABLE, many=True))] = None
    filter_: Annotated[str | None, Query(alias="$filter", max_length=2000)] = None
    order_by: Annotated[str | None, Query(alias="$orderBy", max_length=100, pattern=enum_pattern(_ORDERS))] = None
    top: Annotated[int | None, Query(ge=0, le=_LEGACY_MAX_TOP)] = None
    skip: Annotated[int | None, Query(ge=0, le=100_000_000)] = None
    legacy_filter: Annotated[str | None, Query(alias="filter", max_length=2000)] = None
    sort_option: Annotated[str | None, Query(alias="sortOption", max_length=100, pattern=enum_pattern(_ORDERS))] = None


EntitlementsParams = Annotated[EntitlementsQuery, Depends(from_query(EntitlementsQuery))]


def add_entitlement_routes(app: FastAPI, emulator: Emulator, responses: DeclaredResponses) -> None:
    """Add the user entitlement routes over each org's users."""

    @app.get("/{org}/_apis/userentitlements", responses=responses)
    async def user_entitlements(org: str, query: EntitlementsParams, api_version: EntitlementVersion) -> Response:
        """Entitlements of the organisation's users, in the api-version's form (module docstring)."""
        data = emulator.organisation(org)
        chosen = _select(query.select)
        users = list(data.users.values())
        if _legacy(api_version):
            wanted = parse_entitlement_filter(data, query.legacy_filter or "")
            listed = _ordered([u for u in users if wanted(u)], query.sort_option, "sortOption")
            page = skip_page(listed, query.top, query.skip, default=ENTITLEMENTS_PAGE)
            items = [user_entitlement_json(data, u, chosen) for u in page]
            return FastJSONResponse({"count": len(items), "value": items})
        wanted = parse_entitlement_filter(data, query.filter_ or "")
        listed = _ordered([u for u in users if wanted(u)], query.order_by, "$orderBy")
        page_users, next_token = continuation_page(listed, None, query.token, default=ENTITLEMENTS_PAGE)
        items = [user_entitlement_json(data, u, chosen) for u in page_users]
        return FastJSONResponse(
            {"members": items, "items": items, "continuationToken": next_token, "totalCount": len(listed)}
        )

    @app.get("/{org}/_apis/userentitlements/{user_id}", responses=responses)
    async def user_entitlement(org: str, user_id: str, api_version: EntitlementVersion) -> Response:
        """One user's entitlement (by the user's id), projects and group rules included."""
        data = emulator.organisation(org)
        return FastJSONResponse(user_entitlement_json(data, _user(data, user_id), frozenset({"all"})))
