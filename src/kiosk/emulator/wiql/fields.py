"""The work item fields an Agile organisation has: reference name, friendly name, type.

One table for everything that needs to know a field: WIQL resolves ``[State]`` or
``[System.State]`` here and compares values by the field's type, the fields API lists it, and
``fields=`` on the work item routes checks names against it. Types are Azure's field type names
(``string``, ``integer``, ``double``, ``dateTime``, ``plainText``, ``html``, ``treePath``,
``history``, ``boolean``); identity fields are ``string`` with ``is_identity`` set, as Azure
reports them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = ["FIELDS", "LINK_TYPE_FIELD", "FieldDef", "find_field"]


@dataclass(frozen=True, slots=True)
class FieldDef:
    reference_name: str
    name: str
    type: str
    is_identity: bool = False
    read_only: bool = False
    description: str = ""
    is_queryable: bool = True
    can_sort_by: bool = True

    @property
    def is_text(self) -> bool:
        """Long text (``plainText``, ``html``, ``history``): CONTAINS and CONTAINS WORDS, no ordering."""
        return self.type in ("plainText", "html", "history")


def _f(reference_name: str, name: str, type_: str, description: str, **flags: bool) -> FieldDef:
    return FieldDef(reference_name, name, type_, description=description, **flags)


FIELDS: Final[tuple[FieldDef, ...]] = (
    _f("System.Id", "ID", "integer", "The unique identifier of the work item.", read_only=True),
    _f("System.Rev", "Rev", "integer", "The revision number of the work item.", read_only=True),
    _f("System.Title", "Title", "string", "A short description of the work item."),
    _f("System.WorkItemType", "Work Item Type", "string", "The type of the work item.", read_only=True),
    _f("System.State", "State", "string", "Where the work item is in its workflow."),
    _f("System.Reason", "Reason", "string", "Why the work item is in its current state."),
    _f("System.AreaPath", "Area Path", "treePath", "The area of the product the work item belongs to."),
    _f("System.IterationPath", "Iteration Path", "treePath", "The iteration (sprint) of the work item."),
    _f("System.TeamProject", "Team Project", "string", "The project the work item belongs to.", read_only=True),
    _f("System.AssignedTo", "Assigned To", "string", "Who owns the work item now.", is_identity=True),
    _f("System.CreatedBy", "Created By", "string", "Who created the work item.", is_identity=True, read_only=True),
    _f("System.CreatedDate", "Created Date", "dateTime", "When the work item was created.", read_only=True),
    _f("System.ChangedBy", "Changed By", "string", "Who changed the work item last.", is_identity=True, read_only=True),
    _f("System.ChangedDate", "Changed Date", "dateTime", "When the work item was changed last.", read_only=True),
    _f("System.CommentCount", "Comment Count", "integer", "How many comments the discussion has.", read_only=True),
    _f("System.Tags", "Tags", "plainText", "Tags, separated by semicolons.", can_sort_by=False),
    _f("System.Description", "Description", "html", "What the work item is about.", can_sort_by=False),
    _f("System.History", "History", "history", "The discussion of the work item.", can_sort_by=False),
    _f("System.Parent", "Parent", "integer", "The id of the parent work item.", read_only=True),
    _f("System.BoardColumn", "Board Column", "string", "The column of the work item on its board.", read_only=True),
    _f("Microsoft.VSTS.Common.Priority", "Priority", "integer", "How important the work item is (1 highest)."),
    _f("Microsoft.VSTS.Common.Severity", "Severity", "string", "How badly a bug affects the product."),
    _f("Microsoft.VSTS.Common.StateChangeDate", "State Change Date", "dateTime", "When the state changed last."),
    _f("Microsoft.VSTS.Common.ResolvedDate", "Resolved Date", "dateTime", "When the work item was resolved."),
    _f("Microsoft.VSTS.Common.ClosedDate", "Closed Date", "dateTime", "When the work item was closed."),
    _f("Microsoft.VSTS.Common.ValueArea", "Value Area", "string", "Business or architectural value."),
    _f("Microsoft.VSTS.Scheduling.StoryPoints", "Story Points", "double", "The size of a user story."),
    _f("Microsoft.VSTS.Scheduling.RemainingWork", "Remaining Work", "double", "Hours of work left on a task."),
    _f("Microsoft.VSTS.Scheduling.Effort", "Effort", "double", "The effort a work item takes."),
    _f("Microsoft.VSTS.TCM.ReproSteps", "Repro Steps", "html", "How to reproduce a bug.", can_sort_by=False),
)
"""Every field of the emulator's Agile process, in the order the fields API lists them."""

LINK_TYPE_FIELD: Final = FieldDef(
    "System.Links.LinkType", "Link Type", "string", description="The type of a link (link queries)."
)
"""The link's own field in ``FROM WorkItemLinks`` queries."""

_BY_NAME: Final = {
    key.casefold(): field for field in (*FIELDS, LINK_TYPE_FIELD) for key in (field.reference_name, field.name)
}


def find_field(name: str) -> FieldDef | None:
    """The field ``name`` (reference or friendly name, any case), or None."""
    return _BY_NAME.get(name.strip().casefold())
