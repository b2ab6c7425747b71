"""Route discovery as Azure DevOps answers it: resource locations, resource areas, connection data.

Microsoft's clients never hard-code a URL. Before its first call a client asks the org
``OPTIONS {org}/_apis`` for the list of *resource locations* (a GUID per REST resource, with its
area, resource name, route template and version range), looks its call's GUID up by exact string
equality, and fills the template. Clients of an area with an id (core, git, build…) first ask
``GET {org}/_apis/ResourceAreas`` where that area lives. A GUID missing from the list is a
``ValueError`` in the client; an area missing from a non-empty ResourceAreas list sends the client
to Microsoft's global host, which fails offline. So:

- :data:`LOCATIONS` is the one table of what the emulator serves (reference section 1.5); a route
  module that serves a new resource adds its row here, and ``OPTIONS`` lists exactly these.
- :data:`RESOURCE_AREAS` lists every area id the 7.1 clients know, all at the org's own URL (as
  Azure DevOps Server does), so no client ever leaves the emulator.

Pure data and pure functions; the routes are in :mod:`kiosk.emulator.routes.location`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from kiosk.emulator.models import stable_id

__all__ = [
    "LOCATIONS",
    "RESOURCE_AREAS",
    "ResourceLocation",
    "connection_data_json",
    "location_json",
    "resource_areas_json",
]


@dataclass(frozen=True)
class ResourceLocation:
    """One ``ApiResourceLocation``: how a client builds the URL of one REST resource."""

    id: str  # lower-case GUID: clients compare it with ==
    area: str
    resource_name: str
    route_template: str
    resource_version: int = 1  # >= the -preview.N clients send, or they lower N
    min_version: str = "1.0"  # <= 7.0: the SDK's default factory sends 7.0
    max_version: str = "7.2"
    released_version: str = "7.1"  # "0.0" for a preview-only route


def _loc(
    location_id: str, area: str, resource: str, template: str, version: int = 1, released: str = "7.1"
) -> ResourceLocation:
    return ResourceLocation(location_id, area, resource, template, version, released_version=released)


LOCATIONS: Final[tuple[ResourceLocation, ...]] = (
    # Location (discovery itself)
    _loc("e81700f7-3be2-46de-8624-2eb35882fcaa", "Location", "ResourceAreas", "_apis/{resource}/{areaId}"),
    _loc("00d9565f-ed9c-4a06-9a50-00e7896ccab4", "Location", "ConnectionData", "_apis/{resource}"),
    # Core
    _loc("603fe2ac-9723-48b9-88ad-09305aa6c6e1", "core", "projects", "_apis/projects/{*projectId}", 4),
    _loc("d30a3dd1-f8ba-442a-b86a-bd0c0c383e59", "core", "teams", "_apis/projects/{projectId}/teams/{*teamId}", 3),
    _loc(
        "294c494c-2600-4d7e-b76c-3dd50c3c95be",
        "core",
        "members",
        "_apis/projects/{projectId}/teams/{teamId}/members",
        2,
    ),
    # Git
    _loc(
        "225f7195-f9c7-4d14-ab28-a83f7ff77e1f", "git", "repositories", "{project}/_apis/git/repositories/{repositoryId}"
    ),
    _loc(
        "2d874a60-a811-4f62-9c9f-963a6ea0a55b",
        "git",
        "refs",
        "{project}/_apis/git/repositories/{repositoryId}/refs/{*filter}",
    ),
    _loc(
        "fb93c0db-47ed-4a31-8c20-47552878fb44",
        "git",
        "items",
        "{project}/_apis/git/repositories/{repositoryId}/items/{*path}",
    ),
    _loc(
        "630fd2e4-fb88-4f85-ad21-13f3fd1fbca9",
        "git",
        "itemsBatch",
        "{project}/_apis/git/repositories/{repositoryId}/itemsBatch",
    ),
    _loc(
        "c2570c3b-5b3f-41b8-98bf-5407bfde8d58",
        "git",
        "commits",
        "{project}/_apis/git/repositories/{repositoryId}/commits/{commitId}",
    ),
    _loc(
        "ea98d07b-3c87-4971-8ede-a613694ffb55",
        "git",
        "pushes",
        "{project}/_apis/git/repositories/{repositoryId}/pushes/{pushId}",
        2,
    ),
    _loc(
        "9946fd70-0d40-406e-b686-b4744cbbcc37",
        "git",
        "pullRequests",
        "{project}/_apis/git/repositories/{repositoryId}/pullRequests/{pullRequestId}",
    ),
    _loc("a5d28130-9cd2-40fa-9f08-902e7daa9efb", "git", "pullRequests", "{project}/_apis/git/pullrequests"),
    _loc(
        "01a46dea-7d46-4d40-bc84-319e7c260d99",
        "git",
        "pullRequests",
        "{project}/_apis/git/pullrequests/{pullRequestId}",
    ),
    _loc(
        "2c420070-a0a2-49cc-9639-c9f271c5ff07",
        "git",
        "policyConfigurations",
        "{project}/_apis/git/policy/configurations",
    ),
    # Policy
    _loc(
        "dad91cbe-d183-45f8-9c6e-9c1164472121",
        "policy",
        "configurations",
        "{project}/_apis/policy/configurations/{configurationId}",
    ),
    _loc("44096322-2d3d-466a-bb30-d1b7de69f61f", "policy", "types", "{project}/_apis/policy/types/{typeId}"),
    _loc(
        "8031090f-ef1d-4af6-85fc-698cd75d42bf",
        "core",
        "projectCollections",
        "_apis/projectCollections/{collectionId}",
        2,
    ),
    # Pipelines
    _loc("28e1305e-2afe-47bf-abaf-cbb0e6a91988", "pipelines", "pipelines", "{project}/_apis/pipelines/{pipelineId}"),
    _loc(
        "7859261e-d2e9-4a68-b820-a5d84cc5bb3d",
        "pipelines",
        "runs",
        "{project}/_apis/pipelines/{pipelineId}/runs/{runId}",
    ),
    _loc(
        "fb1b6d27-3957-43d5-a14b-a2d70403e545",
        "pipelines",
        "logs",
        "{project}/_apis/pipelines/{pipelineId}/runs/{runId}/logs/{logId}",
    ),
    # Build
    _loc(
        "dbeaf647-6167-421a-bda9-c9327b25e2e6",
        "build",
        "definitions",
        "{project}/_apis/build/definitions/{definitionId}",
        7,
    ),
    _loc("0cd358e1-9217-4d94-8269-1c1ee6f93dcf", "build", "builds", "{project}/_apis/build/builds/{buildId}", 7),
    _loc(
        "8baac422-4c6e-4de5-8532-db96d92acffa",
        "build",
        "Timeline",
        "{project}/_apis/build/builds/{buildId}/Timeline/{timelineId}",
        2,
    ),
    _loc(
        "35a80daf-7f30-45fc-86e8-6b813d9c90df",
        "build",
        "logs",
        "{project}/_apis/build/builds/{buildId}/logs/{logId}",
        2,
    ),
    # Core, Git and Build: what ingesters read beside the lists (routes/core.py, git.py, build.py)
    _loc("4976a71a-4487-49aa-8aab-a1eda469037a", "core", "properties", "_apis/projects/{projectId}/properties"),
    _loc("7a4d9ee9-3433-4347-b47a-7a80f1cf307e", "core", "teams", "_apis/teams", 3, released="0.0"),
    _loc(
        "5bf884f5-3e07-42e9-afb8-1b872267bf16",
        "git",
        "changes",
        "{project}/_apis/git/repositories/{repositoryId}/commits/{commitId}/changes",
    ),
    _loc(
        "d5b216de-d8d5-4d32-ae76-51df755b16d3",
        "git",
        "branchStats",
        "{project}/_apis/git/repositories/{repositoryId}/stats/branches",
    ),
    _loc(
        "52823034-34a8-4576-922c-8d8b77e9e4c4",
        "git",
        "pullRequestCommits",
        "{project}/_apis/git/repositories/{repositoryId}/pullRequests/{pullRequestId}/commits",
    ),
    _loc(
        "0a637fcc-5370-4ce8-b0e8-98091f5f9482",
        "git",
        "pullRequestWorkItems",
        "{project}/_apis/git/repositories/{repositoryId}/pullRequests/{pullRequestId}/workitems",
    ),
    _loc(
        "54572c7b-bbd3-45d4-80dc-28be08941620", "build", "changes", "{project}/_apis/build/builds/{buildId}/changes", 2
    ),
    _loc(
        "5a21f5d2-5642-47e4-a0bd-1356e6731bee",
        "build",
        "workitems",
        "{project}/_apis/build/builds/{buildId}/workitems",
        2,
    ),
    # Graph and member entitlements (vssps and vsaex in Azure; routes/graph.py, routes/entitlements.py)
    _loc("005e26ec-6b77-4e4f-a986-b3827bf241f5", "Graph", "Users", "_apis/{area}/{resource}/{userDescriptor}"),
    _loc("ebbe6af8-0b91-4c13-8cf1-777c14858188", "Graph", "Groups", "_apis/{area}/{resource}/{groupDescriptor}"),
    _loc(
        "e34b6394-6b30-4435-94a9-409a5eef3e31",
        "Graph",
        "MembershipsBatch",
        "_apis/Graph/Memberships/{subjectDescriptor}",
    ),
    _loc(
        "3fd2e6ca-fb30-443a-b579-95b19ed0934c",
        "Graph",
        "Memberships",
        "_apis/{area}/{resource}/{subjectDescriptor}/{containerDescriptor}",
    ),
    _loc(
        "1ffe5c94-1144-4191-907b-d0211cad36a8",
        "Graph",
        "MembershipStates",
        "_apis/{area}/{resource}/{subjectDescriptor}",
    ),
    _loc("4dd4d168-11f2-48c4-83e8-756fa0de027c", "Graph", "SubjectLookup", "_apis/{area}/{resource}"),
    _loc("05942c89-006a-48ce-bb79-baeb8abf99c6", "Graph", "SubjectQuery", "_apis/{area}/{resource}"),
    _loc("048aee0a-7072-4cde-ab73-7af77b1e0b4e", "Graph", "Descriptors", "_apis/{area}/{resource}/{storageKey}"),
    _loc("eb85f8cc-f0f6-4264-a5b1-ffe2e4d4801f", "Graph", "StorageKeys", "_apis/{area}/{resource}/{subjectDescriptor}"),
    _loc(
        "387f832c-dbf2-4643-88e9-c1aa94dbb737", "MemberEntitlementManagement", "UserEntitlements", "_apis/{resource}", 3
    ),
    _loc(
        "8480c6eb-ce60-47e9-88df-eca3c801638b",
        "MemberEntitlementManagement",
        "UserEntitlements",
        "_apis/{resource}/{userId}",
        3,
    ),
    # Work, wiki, environments, release (routes/work.py, wiki.py, environments.py, release.py)
    _loc("23ad19fc-3b8e-4877-8462-b3f92bc06b40", "work", "boards", "{project}/{team}/_apis/work/boards/{id}"),
    _loc(
        "c555d7ff-84e1-47df-9923-a3fe0cd8751b", "work", "columns", "{project}/{team}/_apis/work/boards/{board}/columns"
    ),
    _loc("0863355d-aefd-4d63-8669-984c9b7b0e78", "work", "rows", "{project}/{team}/_apis/work/boards/{board}/rows"),
    _loc(
        "c9175577-28a1-4b06-9197-8636af9f64ad",
        "work",
        "iterations",
        "{project}/{team}/_apis/work/teamsettings/iterations/{id}",
    ),
    _loc(
        "07ced576-58ed-49e6-9c1e-5cb53ab8bf2a",
        "work",
        "teamfieldvalues",
        "{project}/{team}/_apis/work/teamsettings/teamfieldvalues",
    ),
    _loc("c3c1012b-bea7-49d7-b45e-1664e566f84c", "work", "teamsettings", "{project}/{team}/_apis/work/teamsettings"),
    _loc("288d122c-dbd4-451d-aa5f-7dbbba070728", "wiki", "wikis", "{project}/_apis/wiki/wikis/{wikiIdentifier}", 2),
    _loc(
        "71323c46-2592-4398-8771-ced73dd87207",
        "wiki",
        "pagesBatch",
        "{project}/_apis/wiki/wikis/{wikiIdentifier}/pagesBatch",
    ),
    _loc("25d3fbc7-fe3d-46cb-b5a5-0b6f79caf27b", "wiki", "pages", "{project}/_apis/wiki/wikis/{wikiIdentifier}/pages"),
    _loc(
        "ceddcf75-1068-452d-8b13-2d4d76e1f970",
        "wiki",
        "pages",
        "{project}/_apis/wiki/wikis/{wikiIdentifier}/pages/{id}",
    ),
    # Test runs, results, code coverage (routes/test.py)
    _loc("cadb3810-d47d-4a3c-a234-fe5f3be50138", "Test", "Runs", "{project}/_apis/test/{resource}/{runId}", 3),
    _loc(
        "4637d869-3a76-4468-8057-0bb02aa385cf",
        "Test",
        "Results",
        "{project}/_apis/test/Runs/{runId}/{resource}/{testCaseResultId}",
        6,
    ),
    _loc("77560e8a-4e8c-4d59-894e-a5f264c24444", "Test", "CodeCoverage", "{project}/_apis/test/{resource}"),
    _loc(
        "8572b1fc-2482-47fa-8f74-7e3ed53ee54b",
        "distributedtask",
        "environments",
        "{project}/_apis/distributedtask/environments/{environmentId}",
    ),
    _loc(
        "51bb5d21-4305-4ea6-9dbb-b7488af73334",
        "distributedtask",
        "environmentdeploymentRecords",
        "{project}/_apis/distributedtask/environments/{environmentId}/environmentdeploymentrecords",
    ),
    _loc(
        "d8f96f24-8ea7-4cb6-baab-2df8fc515665",
        "Release",
        "definitions",
        "{project}/_apis/Release/definitions/{definitionId}",
        4,
    ),
    _loc(
        "a166fde7-27ad-408e-ba75-703c2cc9d500", "Release", "releases", "{project}/_apis/Release/releases/{releaseId}", 8
    ),
    _loc(
        "a7e426b1-03dc-48af-9dfe-c98bac612dcb",
        "Release",
        "environments",
        "{project}/_apis/Release/releases/{releaseId}/environments/{environmentId}",
        7,
    ),
    _loc("b005ef73-cddc-448e-9ba2-5193bf36b19f", "Release", "deployments", "{project}/_apis/Release/deployments", 2),
    # Work item tracking (routes/wit.py)
    _loc("1a9c53f7-f243-4447-b110-35ef023636e4", "wit", "wiql", "{project}/{team}/_apis/wit/wiql", 2),
    _loc("72c7ddf8-2cdc-4f60-90cd-ab71c14a399b", "wit", "workItems", "{project}/_apis/wit/workItems/{id}", 3),
    _loc("908509b6-4248-4475-a1cd-829139ba419f", "wit", "workItemsBatch", "{project}/_apis/wit/workItemsBatch"),
    _loc(
        "6570bf97-d02c-4a91-8d93-3abe9895b1a9",
        "wit",
        "updates",
        "{project}/_apis/wit/workItems/{id}/updates/{updateNumber}",
        3,
    ),
    _loc(
        "a00c85a5-80fa-4565-99c3-bcd2181434bb",
        "wit",
        "revisions",
        "{project}/_apis/wit/workItems/{id}/revisions/{revisionNumber}",
        3,
    ),
    _loc(
        "608aac0a-32e1-4493-a863-b9cf4566d257",
        "wit",
        "comments",
        "{project}/_apis/wit/workItems/{workItemId}/comments/{commentId}",
        4,
    ),
    _loc(
        "49e03b34-3be0-42e3-8a5d-e8dfb88ac954",
        "wit",
        "commentsVersions",
        "{project}/_apis/wit/workItems/{workItemId}/comments/{commentId}/versions/{version}",
    ),
    _loc("b70d8d39-926c-465e-b927-b1bf0e5ca0e0", "wit", "recyclebin", "{project}/_apis/wit/recycleBin/{id}", 2),
    _loc("7c8d7a76-4a09-43e8-b5df-bd792f4ac6aa", "wit", "workItemTypes", "{project}/_apis/wit/workItemTypes/{type}", 2),
    _loc(
        "7c9d7a76-4a09-43e8-b5df-bd792f4ac6aa",
        "wit",
        "workItemTypeStates",
        "{project}/_apis/wit/workItemTypes/{type}/states",
    ),
    _loc("b51fd764-e5c2-4b9b-aaf7-3395cf4bdd94", "wit", "fields", "{project}/_apis/wit/fields/{fieldNameOrRefName}", 3),
    _loc(
        "a70579d1-f53a-48ee-a5be-7be8659023b9",
        "wit",
        "classificationNodes",
        "{project}/_apis/wit/classificationNodes",
        2,
    ),
    _loc(
        "5a172953-1b41-49d3-840a-33f79c3ce89f",
        "wit",
        "classificationNodes",
        "{project}/_apis/wit/classificationNodes/{structureGroup}/{*path}",
        2,
    ),
    _loc("4e1eb4a5-1970-4228-a682-ec48eb2dca30", "wit", "workItemIcons", "_apis/wit/workItemIcons/{icon}"),
    # Service hooks
    _loc(
        "fc50d02a-849f-41fb-8af1-0a5216103269", "hooks", "subscriptions", "_apis/hooks/subscriptions/{subscriptionId}"
    ),
    _loc("c7c3c1cf-9e05-4c0d-a425-a0f922c2c6ed", "hooks", "subscriptionsQuery", "_apis/hooks/subscriptionsQuery"),
    _loc(
        "0c62d343-21b0-4732-997b-017fde84dc28",
        "hooks",
        "notifications",
        "_apis/hooks/subscriptions/{subscriptionId}/notifications/{notificationId}",
    ),
    _loc("1e83a210-5b53-43bc-90f0-d476a4e5d731", "hooks", "publishers", "_apis/hooks/publishers/{publisherId}"),
    _loc(
        "db4777cd-8e08-4a84-8ba3-c974ea033718",
        "hooks",
        "eventTypes",
        "_apis/hooks/publishers/{publisherId}/eventTypes/{eventTypeId}",
    ),
    _loc("4301c514-5f34-4f5d-a145-f0ea7b5b7d19", "hooks", "consumers", "_apis/hooks/consumers/{consumerId}"),
    _loc(
        "c3428e90-7a69-4194-8ed8-0f153185ee0d",
        "hooks",
        "actions",
        "_apis/hooks/consumers/{consumerId}/actions/{consumerActionId}",
    ),
)
"""Every resource the emulator serves, as ``OPTIONS {org}/_apis`` lists it."""


RESOURCE_AREAS: Final[tuple[tuple[str, str], ...]] = (
    ("79134c72-4a58-4b42-976c-04e7115f32bf", "core"),
    ("4e080c62-fa21-4fbc-8fef-2a10a2b38049", "git"),
    ("965220d5-5bb9-42cf-8d67-9b146df2a5a4", "build"),
    ("5264459e-e5e0-4bd8-b118-0985e68a4ec5", "wit"),
    ("1d4f49f9-02b9-4e26-b826-2cdb6195f2a9", "work"),
    ("fb13a388-40dd-4a04-b530-013a739c72ef", "policy"),
    ("bf7d82a0-8aa5-4613-94ef-6172a5ea01f3", "wiki"),
    ("a85b8835-c1a1-4aac-ae97-1c3d0ba72dbd", "distributedtask"),
    ("c2aa639c-3ccc-4740-b3b6-ce2a1e1d984e", "test"),
    ("c83eaf52-edf3-4034-ae11-17d38f25404c", "testresults"),
    ("bb1e7ec9-e901-4b68-999a-de7012b920f8", "graph"),
    ("8a3d49b8-91f0-46ef-b33d-dda338c25db3", "ims"),
    ("68ddce18-2501-45f1-a17b-7931a9922690", "MemberEntitlementManagement"),
    ("efc2f575-36ef-48e9-b672-0c6fb4a48ac5", "Release"),
    ("0d55247a-1c47-4462-9b1f-5e2125590ee6", "account"),
    ("94ff054d-5ee1-413d-9341-3f4a7827de2e", "audit"),
    ("8477aec9-a4c7-4bd4-a456-ba4c53c989cb", "contribution"),
    ("31c84e0a-3ece-48fd-a29d-100849af99ba", "dashboard"),
    ("6c2b0933-3600-42ae-bf8b-93d4f7e83594", "ExtensionManagement"),
    ("7ab4e64e-c4d8-4f50-ae73-5ef2e21642a5", "Packaging"),
    ("69d21c00-f135-441b-b5ce-3626378e0819", "gallery"),
    ("6f7f8c07-ff36-473c-bcf3-bd6cc9b6c066", "maven"),
    ("4c83cfc1-f33a-477e-a789-29d38ffca52e", "npm"),
    ("b3be7473-68ea-4a81-bfc7-9530baaa19ad", "nuget"),
    ("a81a0441-de52-4000-aa15-ff0e07bfbbaa", "pipelinePermissions"),
    ("4a933897-0488-45af-bd82-6fd3ad33f46a", "PipelinesChecks"),
    ("8ccfef3d-2b87-4e99-8ccb-66e343d2daa8", "Profile"),
    ("7658fa33-b1bf-4580-990f-fac5896773d3", "projectanalysis"),
    ("b40c1171-807a-493a-8f3f-5c26d5e2f5aa", "Provenance"),
    ("92f0314b-06c5-46e0-abe7-15fd9d13276a", "pypi"),
    ("2e504d18-2c0c-46f8-af8f-322d2af0068a", "sbom"),
    ("ea48a0a1-269c-42d8-b8ad-ddc8fcdcf578", "search"),
    ("1814ab31-2f4f-4a9f-8761-f4d77dc5a5d7", "serviceendpoint"),
    ("af607f94-69ba-4821-8159-f04e37b66350", "symbol"),
    ("8aa40520-446d-40e6-89f6-9c9f9ce44c48", "tfvc"),
    ("af68438b-ed04-4407-9eb6-f1dbae3f922e", "TokenAdmin"),
    ("d397749b-f115-4027-b6dd-77a65dd10d21", "upack"),
)
"""Every area id of Microsoft's 7.1 clients (``resource_area_identifier``), all served at the org's URL."""


def location_json(location: ResourceLocation) -> dict[str, Any]:
    """An ``ApiResourceLocation`` as Azure writes it."""
    return {
        "id": location.id,
        "area": location.area,
        "resourceName": location.resource_name,
        "routeTemplate": location.route_template,
        "resourceVersion": location.resource_version,
        "minVersion": location.min_version,
        "maxVersion": location.max_version,
        "releasedVersion": location.released_version,
    }


def resource_areas_json(base: str, org: str) -> list[dict[str, Any]]:
    """``ResourceAreaInfo`` for every area: all at ``{base}/{org}/``."""
    return [{"id": area_id, "name": name, "locationUrl": f"{base}/{org}/"} for area_id, name in RESOURCE_AREAS]


def _identity(org: str, name: str) -> dict[str, Any]:
    identity_id = stable_id(org.lower(), "identity", name)
    return {
        "id": identity_id,
        "descriptor": f"Microsoft.TeamFoundation.Identity;emulator\\{identity_id}",
        "subjectDescriptor": f"aad.{identity_id.replace('-', '')}",
        "providerDisplayName": name,
        "isActive": True,
        "properties": {"Account": {"$type": "System.String", "$value": name}},
        "resourceVersion": 2,
        "metaTypeId": 0,
    }


def connection_data_json(org: str, *, change_id: int) -> dict[str, Any]:
    """``ConnectionData``: who the caller is (the org's PAT user) and the location service's state."""
    user = _identity(org, f"{org} PAT user")
    return {
        "authenticatedUser": user,
        "authorizedUser": user,
        "instanceId": stable_id(org.lower(), "instance"),
        "deploymentId": stable_id("deployment"),
        "deploymentType": "hosted",
        "webApplicationRelativeDirectory": "/",
        "lastUserAccess": None,
        "locationServiceData": {
            "serviceOwner": "00025394-6065-48ca-87d9-7f5672854ef7",
            "defaultAccessMappingMoniker": "PublicAccessMapping",
            "lastChangeId": change_id,
            "lastChangeId64": change_id,
            "clientCacheFresh": False,
            "clientCacheTimeToLive": 3600,
            "serviceDefinitions": None,
            "accessMappings": None,
        },
    }
