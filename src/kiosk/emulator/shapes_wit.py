"""Azure's JSON for work item tracking (reference 3.8): work items, updates, revisions, comments,
the recycle bin, work item types and states, fields, classification nodes and WIQL results.

Pure functions of :mod:`kiosk.emulator.org.model` objects. Work items are shaped straight from the
model (no copies): identity fields become IdentityRefs, dates Azure's timestamps. Every ``url``
and ``_links`` href is a route the emulator serves; work item URLs use the project's GUID, as
Azure's do, and links between work items the org-level form (``{org}/_apis/wit/workItems/{id}``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Final
from urllib.parse import quote

from kiosk.emulator.org.model import (
    ClassificationNode,
    FieldValue,
    Organisation,
    Project,
    User,
    WorkItem,
    WorkItemComment,
    WorkItemRelation,
    WorkItemType,
)
from kiosk.emulator.shapes_core import azure_date, identity_ref, links_json
from kiosk.emulator.wiql import FIELDS, FieldDef, QueryResult

__all__ = [
    "EXPANDS",
    "classification_node_json",
    "comment_json",
    "comment_list_json",
    "deleted_reference_json",
    "deleted_shallow_json",
    "deleted_work_item_json",
    "field_json",
    "query_result_json",
    "revision_json",
    "update_json",
    "work_item_fields",
    "work_item_json",
    "work_item_type_json",
    "work_item_type_state_json",
]

EXPANDS: Final = ("none", "relations", "fields", "links", "all")
"""``$expand`` values (any case): relations with ``relations``/``all``, ``_links`` with ``links``/``all``."""

_LATEST_REVISED: Final = "9999-01-01T00:00:00Z"
"""Azure's ``revisedDate`` of the latest update: it has not been superseded."""

_OPERATIONS: Final = {
    "string": ("Equals", "NotEquals", "GreaterThan", "LessThan", "GreaterThanEquals", "LessThanEquals", "Contains"),
    "integer": ("Equals", "NotEquals", "GreaterThan", "LessThan", "GreaterThanEquals", "LessThanEquals"),
    "double": ("Equals", "NotEquals", "GreaterThan", "LessThan", "GreaterThanEquals", "LessThanEquals"),
    "dateTime": ("Equals", "NotEquals", "GreaterThan", "LessThan", "GreaterThanEquals", "LessThanEquals"),
    "treePath": ("Equals", "NotEquals", "Under", "NotUnder"),
    "plainText": ("Contains", "NotContains", "ContainsWords", "NotContainsWords"),
    "html": ("Contains", "NotContains", "ContainsWords", "NotContainsWords"),
    "history": ("Contains", "NotContains", "ContainsWords", "NotContainsWords"),
    "boolean": ("Equals", "NotEquals"),
}
_OPERATION_NAMES: Final = {
    "Equals": "=",
    "NotEquals": "<>",
    "GreaterThan": ">",
    "LessThan": "<",
    "GreaterThanEquals": ">=",
    "LessThanEquals": "<=",
    "Contains": "Contains",
    "NotContains": "Does Not Contain",
    "ContainsWords": "Contains Words",
    "NotContainsWords": "Does Not Contain Words",
    "Under": "Under",
    "NotUnder": "Not Under",
}


# --- URLs -----------------------------------------------------------------------------------------


def work_item_url(org: Organisation, item: WorkItem) -> str:
    return f"{org.url}/{item.project_id}/_apis/wit/workItems/{item.id}"


def _linked_item_url(org: Organisation, item_id: int) -> str:
    return f"{org.url}/_apis/wit/workItems/{item_id}"


def _type_url(org: Organisation, project_id: str, type_name: str) -> str:
    return f"{org.url}/{project_id}/_apis/wit/workItemTypes/{quote(type_name, safe='')}"


def _field_url(org: Organisation, reference_name: str) -> str:
    return f"{org.url}/_apis/wit/fields/{quote(reference_name, safe='')}"


def _comment_url(org: Organisation, item: WorkItem, comment_id: int) -> str:
    return f"{work_item_url(org, item)}/comments/{comment_id}"


# --- values ---------------------------------------------------------------------------------------


_IDENTITY_REFS: dict[tuple[str, str, str, str, str], dict[str, Any]] = {}
_IDENTITY_REFS_LIMIT: Final = 10_000


def _identity(org: Organisation, user: User) -> dict[str, Any]:
    """:func:`identity_ref`, built once per user as long as the user and the org's URL stay the same.

    Work items repeat the same few hundred people in every identity field; building each
    IdentityRef afresh was a third of a work item's shaping. The refs are shared, so they are
    never changed after they are built (nothing here or in the routes does).
    """
    key = (org.base_url, org.name, user.id, user.display_name, user.principal_name)
    ref = _IDENTITY_REFS.get(key)
    if ref is None:
        if len(_IDENTITY_REFS) >= _IDENTITY_REFS_LIMIT:
            _IDENTITY_REFS.clear()
        ref = _IDENTITY_REFS[key] = identity_ref(org, user) or {}
    return ref


def field_value_json(org: Organisation, value: FieldValue) -> Any:
    """A field's value in REST: identities as IdentityRefs, dates as Azure's timestamps."""
    if isinstance(value, User):
        return _identity(org, value)
    if isinstance(value, datetime):
        return azure_date(value)
    return value


def work_item_fields(item: WorkItem, rev: int | None = None) -> dict[str, FieldValue]:
    """The item's fields (at revision ``rev``), with the ones Azure computes: ``System.Rev``, ``System.Parent``."""
    fields = dict(item.fields) if rev is None or rev == item.rev else item.fields_at(rev)
    fields["System.Rev"] = item.rev if rev is None else rev
    parent = item.parent_id
    if parent is not None:
        fields["System.Parent"] = parent
    return fields


def _fields_json(org: Organisation, fields: Mapping[str, FieldValue], wanted: Iterable[str] | None) -> dict[str, Any]:
    names = fields.keys() if wanted is None else [name for name in wanted if name in fields]
    return {name: field_value_json(org, fields[name]) for name in names}


def _relation_json(org: Organisation, relation: WorkItemRelation) -> dict[str, Any]:
    target = relation.target
    url = _linked_item_url(org, target) if isinstance(target, int) else target
    attributes: dict[str, Any] = {"isLocked": False}
    if relation.name:
        attributes["name"] = relation.name
    return {"rel": relation.rel, "url": url, "attributes": attributes}


def _work_item_links(org: Organisation, item: WorkItem) -> dict[str, Any]:
    url = work_item_url(org, item)
    project = org.projects.get(item.project_id)
    web = f"{org.url}/{quote(project.name if project else item.project_id, safe='')}/_workitems/edit/{item.id}"
    return links_json(
        self=url,
        workItemUpdates=f"{url}/updates",
        workItemRevisions=f"{url}/revisions",
        workItemComments=f"{url}/comments",
        html=web,
        workItemType=_type_url(org, item.project_id, item.work_item_type),
        fields=f"{org.url}/{item.project_id}/_apis/wit/fields",
    )


def work_item_json(
    org: Organisation,
    item: WorkItem,
    *,
    expand: str = "none",
    fields: Iterable[str] | None = None,
    rev: int | None = None,
    links: bool = False,
) -> dict[str, Any]:
    """A ``WorkItem``: ``fields`` (all, or the reference names asked for), ``relations`` with
    ``$expand=relations|all``, ``_links`` with ``links|all`` (or ``links=True``: a single item's GET
    shows them), at revision ``rev`` when given (``asOf``)."""
    body: dict[str, Any] = {
        "id": item.id,
        "rev": item.rev if rev is None else rev,
        "fields": _fields_json(org, work_item_fields(item, rev), fields),
    }
    if expand in ("relations", "all") and item.relations:
        body["relations"] = [_relation_json(org, relation) for relation in item.relations]
    live = [comment for comment in item.comments if not comment.is_deleted]
    if live and rev is None:
        last = live[-1]
        body["commentVersionRef"] = {
            "commentId": last.id,
            "version": last.version,
            "url": f"{_comment_url(org, item, last.id)}/versions/{last.version}",
        }
    if links or expand in ("links", "all"):
        body["_links"] = _work_item_links(org, item)
    body["url"] = work_item_url(org, item)
    return body


def revision_json(org: Organisation, item: WorkItem, rev: int, *, expand: str = "none") -> dict[str, Any]:
    """Revision ``rev`` of a work item: the whole item as it was (``…/revisions/{rev}``)."""
    body = work_item_json(org, item, expand=expand, rev=rev)
    body.pop("commentVersionRef", None)
    body["url"] = f"{work_item_url(org, item)}/revisions/{rev}"
    if "_links" in body:
        body["_links"]["self"] = {"href": body["url"]}
    return body


def update_json(org: Organisation, item: WorkItem, rev: int) -> dict[str, Any]:
    """A ``WorkItemUpdate``: what revision ``rev`` changed (``oldValue`` left out where there was none).

    ``revisedDate`` is Azure's: when the revision was superseded (9999-01-01 for the latest).
    """
    revision = item.revisions[rev - 1]
    changes: dict[str, Any] = {}
    for name, (old, new) in item.update_fields(rev).items():
        change: dict[str, Any] = {}
        if old is not None:
            change["oldValue"] = field_value_json(org, old)
        change["newValue"] = field_value_json(org, new)
        changes[name] = change
    changes["System.Rev"] = {"oldValue": rev - 1, "newValue": rev} if rev > 1 else {"newValue": rev}
    revised = item.revisions[rev].revised_date if rev < len(item.revisions) else None
    url = f"{work_item_url(org, item)}/updates/{rev}"
    body: dict[str, Any] = {
        "id": rev,
        "workItemId": item.id,
        "rev": rev,
        "revisedBy": _identity(org, revision.revised_by),
        "revisedDate": azure_date(revised) if revised is not None else _LATEST_REVISED,
        "fields": changes,
    }
    if revision.relations_added:
        body["relations"] = {"added": [_relation_json(org, relation) for relation in revision.relations_added]}
    body["_links"] = {
        "self": {"href": url},
        "workItemUpdates": {"href": f"{work_item_url(org, item)}/updates"},
        "parent": {"href": work_item_url(org, item)},
    }
    body["url"] = url
    return body


# --- comments -------------------------------------------------------------------------------------


def comment_json(org: Organisation, item: WorkItem, comment: WorkItemComment) -> dict[str, Any]:
    """A ``Comment`` (7.1-preview.4)."""
    body: dict[str, Any] = {
        "workItemId": item.id,
        "id": comment.id,
        "version": comment.version,
        "text": comment.text,
        "renderedText": comment.text,
        "format": "html",
        "createdBy": _identity(org, comment.created_by),
        "createdDate": azure_date(comment.created_date),
        "modifiedBy": _identity(org, comment.modified_by),
        "modifiedDate": azure_date(comment.modified_date),
        "mentions": [],
        "reactions": [],
        "url": _comment_url(org, item, comment.id),
    }
    if comment.is_deleted:
        body["isDeleted"] = True
    return body


def comment_list_json(
    org: Organisation,
    item: WorkItem,
    page: list[WorkItemComment],
    *,
    total: int,
    next_token: str | None,
) -> dict[str, Any]:
    """A ``CommentList``: the page, ``totalCount`` of the whole list, and the next page's token and URL."""
    url = f"{work_item_url(org, item)}/comments"
    body: dict[str, Any] = {
        "totalCount": total,
        "count": len(page),
        "comments": [comment_json(org, item, comment) for comment in page],
        "url": url,
    }
    if next_token is not None:
        body["continuationToken"] = next_token
        body["nextPage"] = f"{url}?continuationToken={next_token}"
    return body


# --- recycle bin ----------------------------------------------------------------------------------


def _recycle_url(org: Organisation, item: WorkItem) -> str:
    return f"{org.url}/{item.project_id}/_apis/wit/recycleBin/{item.id}"


def deleted_shallow_json(org: Organisation, item: WorkItem) -> dict[str, Any]:
    """A ``WorkItemDeleteShallowReference``: the recycle bin's list."""
    return {"id": item.id, "url": _recycle_url(org, item)}


def deleted_reference_json(org: Organisation, item: WorkItem) -> dict[str, Any]:
    """A ``WorkItemDeleteReference``: who deleted it and when (its last change), with its title and type."""
    deleted_by = item.fields.get("System.ChangedBy")
    project = org.projects.get(item.project_id)
    return {
        "code": 200,
        "deletedBy": f"{deleted_by.display_name} <{deleted_by.principal_name}>"
        if isinstance(deleted_by, User)
        else None,
        "deletedDate": field_value_json(org, item.fields.get("System.ChangedDate")),
        "id": item.id,
        "message": None,
        "name": item.fields.get("System.Title"),
        "project": project.name if project is not None else None,
        "type": item.work_item_type,
        "url": _recycle_url(org, item),
    }


def deleted_work_item_json(org: Organisation, item: WorkItem) -> dict[str, Any]:
    """A ``WorkItemDelete``: the reference plus the item itself as it was deleted (``resource``)."""
    return {**deleted_reference_json(org, item), "resource": work_item_json(org, item, expand="relations")}


# --- types, states, fields ------------------------------------------------------------------------


def work_item_type_state_json(state_name: str, color: str, category: str) -> dict[str, Any]:
    return {"name": state_name, "color": color, "category": category}


def field_json(org: Organisation, field: FieldDef) -> dict[str, Any]:
    """A ``WorkItemField2``."""
    operations = _OPERATIONS.get("string" if field.is_identity else field.type, ("Equals", "NotEquals"))
    return {
        "name": field.name,
        "referenceName": field.reference_name,
        "description": field.description,
        "type": field.type,
        "usage": "workItem",
        "readOnly": field.read_only,
        "canSortBy": field.can_sort_by,
        "isQueryable": field.is_queryable,
        "supportedOperations": [
            {"referenceName": f"SupportedOperations.{op}", "name": _OPERATION_NAMES[op]} for op in operations
        ],
        "isIdentity": field.is_identity,
        "isPicklist": False,
        "isPicklistSuggested": False,
        "isLocked": False,
        "url": _field_url(org, field.reference_name),
    }


_TYPE_FIELDS: Final = tuple(
    field for field in FIELDS if field.reference_name.startswith("System.") or "Common" in field.reference_name
)


def work_item_type_json(org: Organisation, project: Project, kind: WorkItemType) -> dict[str, Any]:
    """A ``WorkItemType``: its states, the transitions between them, and its fields."""
    instances = [
        {
            "alwaysRequired": field.reference_name in ("System.Title", "System.State"),
            "defaultValue": None,
            "helpText": field.description,
            "referenceName": field.reference_name,
            "name": field.name,
            "url": _field_url(org, field.reference_name),
        }
        for field in _TYPE_FIELDS
    ]
    names = [state.name for state in kind.states]
    transitions = {"": [{"to": names[0], "actions": None}]} if names else {}
    for name in names:
        transitions[name] = [{"to": other, "actions": None} for other in names if other != name]
    url = _type_url(org, project.id, kind.name)
    return {
        "name": kind.name,
        "referenceName": kind.reference_name,
        "description": kind.description,
        "color": kind.color,
        "icon": {"id": kind.icon, "url": f"{org.url}/_apis/wit/workItemIcons/{kind.icon}?color={kind.color}&v=2"},
        "isDisabled": False,
        "xmlForm": "",
        "fields": instances,
        "fieldInstances": instances,
        "transitions": transitions,
        "states": [work_item_type_state_json(s.name, s.color, s.category) for s in kind.states],
        "_links": {"self": {"href": url}},
        "url": url,
    }


# --- classification nodes -------------------------------------------------------------------------


def _node_relative_path(project: Project, node: ClassificationNode) -> str:
    """The node's path below its root (``Web`` or ``Sprint 1``), '' for the root."""
    parts = node.path.strip("\\").split("\\")
    return "/".join(parts[2:])


def _node_url(org: Organisation, project: Project, node: ClassificationNode) -> str:
    group = "Areas" if node.structure_type == "area" else "Iterations"
    relative = _node_relative_path(project, node)
    suffix = "/" + "/".join(quote(part, safe="") for part in relative.split("/")) if relative else ""
    return f"{org.url}/{project.id}/_apis/wit/classificationNodes/{group}{suffix}"


def classification_node_json(
    org: Organisation, project: Project, node: ClassificationNode, depth: int, parent: ClassificationNode | None = None
) -> dict[str, Any]:
    """A ``WorkItemClassificationNode`` with ``depth`` levels of children (0: none)."""
    body: dict[str, Any] = {
        "id": node.id,
        "identifier": node.identifier,
        "name": node.name,
        "structureType": node.structure_type,
        "hasChildren": bool(node.children),
        "path": node.path,
    }
    if node.start_date is not None or node.finish_date is not None:
        body["attributes"] = {"startDate": azure_date(node.start_date), "finishDate": azure_date(node.finish_date)}
    if depth > 0 and node.children:
        body["children"] = [classification_node_json(org, project, child, depth - 1, node) for child in node.children]
    links: dict[str, Any] = {"self": {"href": _node_url(org, project, node)}}
    if parent is not None:
        links["parent"] = {"href": _node_url(org, project, parent)}
    body["_links"] = links
    body["url"] = _node_url(org, project, node)
    return body


# --- WIQL -----------------------------------------------------------------------------------------


def _field_reference(org: Organisation, field: FieldDef) -> dict[str, Any]:
    return {"referenceName": field.reference_name, "name": field.name, "url": _field_url(org, field.reference_name)}


def _item_reference(org: Organisation, base: str, item_id: int) -> dict[str, Any]:
    """``{id, url}`` of a work item; ``base`` is ``org.url``, computed once per result (it quotes the name)."""
    item = org.work_items.get(item_id)
    url = (
        f"{base}/{item.project_id}/_apis/wit/workItems/{item_id}"
        if item is not None
        else f"{base}/_apis/wit/workItems/{item_id}"
    )
    return {"id": item_id, "url": url}


def query_result_json(org: Organisation, result: QueryResult) -> dict[str, Any]:
    """A ``WorkItemQueryResult``: ids only (``workItems``), or ``workItemRelations`` for a link query."""
    body: dict[str, Any] = {
        "queryType": result.query_type,
        "queryResultType": "workItem" if result.relations is None else "workItemLink",
        "asOf": azure_date(result.as_of),
        "columns": [_field_reference(org, field) for field in result.columns],
        "sortColumns": [
            {"field": _field_reference(org, field), "descending": descending}
            for field, descending in result.sort_columns
        ],
    }
    base = org.url
    if result.relations is None:
        body["workItems"] = [_item_reference(org, base, item_id) for item_id in result.work_item_ids]
    else:
        body["workItemRelations"] = [
            {
                "rel": row.rel,
                "source": _item_reference(org, base, row.source) if row.source is not None else None,
                "target": _item_reference(org, base, row.target),
            }
            for row in result.relations
        ]
    return body
