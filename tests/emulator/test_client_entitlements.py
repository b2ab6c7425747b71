"""Microsoft's client, unmodified, over member entitlements (reference 3.2): the 7.x search paged by a body token,
``$filter``, ``$orderBy``, ``select``; the legacy 4.1 form; one user's entitlement."""

from __future__ import annotations

from typing import Any

import pytest
from tests.emulator.conftest import LiveEmulator

from kiosk.emulator.routes.entitlements import ENTITLEMENTS_PAGE
from kiosk.emulator.shapes_graph import LICENSE_IDS

pytestmark = pytest.mark.generated_org(users=250)


def entitlements_client(emulator: LiveEmulator) -> Any:
    return emulator.sdk_client("azure.devops.v7_1.member_entitlement_management.MemberEntitlementManagementClient")


def test_search_pages_by_body_token_to_the_end(generated: LiveEmulator) -> None:
    org = generated.organisation()
    client = entitlements_client(generated)
    # The token and total are in the body; Microsoft's model reads ``members`` only, so page over HTTP.
    seen: list[str] = []
    tokens: list[str] = []
    token = None
    while True:
        params = {"api-version": "7.1-preview.3", **({"continuationToken": token} if token else {})}
        body = generated.client.get("/fabrikam/_apis/userentitlements", params=params).json()
        assert body["totalCount"] == len(org.users)
        assert body["items"] == body["members"]  # the same list twice: clients read one or the other
        seen += [m["id"] for m in body["members"]]
        token = body["continuationToken"]
        if token is None:
            break
        tokens.append(token)
        assert len(body["members"]) == ENTITLEMENTS_PAGE
    assert seen == list(org.users) and len(tokens) == 2
    assert [m.id for m in client.search_user_entitlements(continuation_token=tokens[0]).members] == seen[
        ENTITLEMENTS_PAGE : 2 * ENTITLEMENTS_PAGE
    ]
    first = client.search_user_entitlements().members[0]
    model = org.users[first.id]
    assert first.user.descriptor == model.descriptor and first.user.principal_name == model.principal_name
    assert first.access_level.account_license_type == model.access_level.account_license_type
    assert first.access_level.license_display_name == model.access_level.license_display_name
    assert first.access_level.status == "active" and first.date_created is not None
    assert first.last_accessed_date is not None


def test_filter_order_and_select(generated: LiveEmulator) -> None:
    org = generated.organisation()
    client = entitlements_client(generated)

    def everything(**kwargs: Any) -> list[Any]:
        """Every page through the client, its tokens read from the raw body (the client's model drops them)."""
        query = {"$filter": kwargs.get("filter"), "$orderBy": kwargs.get("order_by"), "api-version": "7.1-preview.3"}
        out: list[Any] = []
        token = None
        while True:
            out += client.search_user_entitlements(continuation_token=token, **kwargs).members
            params = {k: v for k, v in {**query, "continuationToken": token}.items() if v is not None}
            token = generated.client.get("/fabrikam/_apis/userentitlements", params=params).json()["continuationToken"]
            if token is None:
                return out

    stakeholders = everything(filter="licenseId eq 'Account-Stakeholder'")
    assert stakeholders and {m.id for m in stakeholders} == {
        u.id for u in org.users.values() if u.access_level.account_license_type == "stakeholder"
    }
    either = "(licenseId eq 'Account-Express' or licenseId eq 'Account-Stakeholder')"
    guests = everything(filter=f"userType eq 'guest' and {either}")
    wanted = ("Account-Express", "Account-Stakeholder")
    assert guests and {m.id for m in guests} == {
        u.id
        for u in org.users.values()
        if u.meta_type == "guest" and LICENSE_IDS[u.access_level.account_license_type] in wanted
    }
    named = everything(filter="name eq 'ana'")
    assert named and all("ana" in (m.user.display_name + m.user.mail_address).lower() for m in named)
    by_name = everything(order_by="name desc")
    names = [m.user.display_name.casefold() for m in by_name]
    assert names == sorted(names, reverse=True) and len(names) == len(org.users)
    by_access = everything(order_by="lastAccessed")
    dates = [m.last_accessed_date for m in by_access]
    assert dates == sorted(dates)
    plain = client.search_user_entitlements().members[0]
    assert plain.project_entitlements == []
    selected = client.search_user_entitlements(select="Projects,GroupRules").members
    with_projects = [m for m in selected if m.project_entitlements]
    assert with_projects
    for member in with_projects:
        for entitlement in member.project_entitlements:
            project = org.projects[entitlement.project_ref.id]
            assert entitlement.project_ref.name == project.name and entitlement.group.display_name
    assert any(m.group_assignments for m in selected)
    bad = generated.client.get("/fabrikam/_apis/userentitlements", params={"$filter": "colour eq 'blue'"})
    assert bad.status_code == 400 and bad.json()["typeKey"] == "InvalidFilterException"
    unclosed = generated.client.get("/fabrikam/_apis/userentitlements", params={"$filter": "(name eq 'a'"})
    assert unclosed.status_code == 400


def test_legacy_form_before_5_0(generated: LiveEmulator) -> None:
    org = generated.organisation()
    seen: list[str] = []
    skip = 0
    while True:
        response = generated.client.get(
            "/fabrikam/_apis/userentitlements", params={"api-version": "4.1-preview.1", "top": 40, "skip": skip}
        )
        assert response.status_code == 200
        body = response.json()
        assert set(body) == {"count", "value"} and body["count"] == len(body["value"])
        if not body["value"]:
            break
        seen += [e["id"] for e in body["value"]]
        skip += 40
    assert seen == list(org.users)
    sorted_page = generated.client.get(
        "/fabrikam/_apis/userentitlements",
        params={"api-version": "4.1-preview.1", "sortOption": "name descending", "filter": "userType eq 'member'"},
    ).json()["value"]
    names = [e["user"]["displayName"].casefold() for e in sorted_page]
    assert names == sorted(names, reverse=True)
    assert all(e["user"]["metaType"] == "member" for e in sorted_page)
    modern = generated.client.get("/fabrikam/_apis/userentitlements", params={"api-version": "7.1-preview.3"}).json()
    assert {"members", "items", "continuationToken", "totalCount"} <= set(modern)


def test_one_users_entitlement(generated: LiveEmulator) -> None:
    from azure.devops.exceptions import AzureDevOpsServiceError

    org = generated.organisation()
    client = entitlements_client(generated)
    in_projects = {d for g in org.groups.values() if g.project_id for d in g.member_descriptors}
    user = next(u for u in org.users.values() if u.descriptor in in_projects)
    entitlement = client.get_user_entitlement(user.id)
    assert entitlement.id == user.id and entitlement.user.display_name == user.display_name
    assert entitlement.project_entitlements  # the single answer carries everything
    with pytest.raises(AzureDevOpsServiceError):
        client.get_user_entitlement("00000000-0000-0000-0000-000000000000")
