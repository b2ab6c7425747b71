"""A resync's state, as it runs and after: per organisation, per resource of the mapping. Pure data.
An incremental pass has its own (:class:`IncrementalState`), kept beside the resync's.

The engine (:mod:`kiosk.ingest.resync`) updates one :class:`ResyncState` as it goes; the store
keeps it (``integration_state``), so ``kiosk integrations status``, ``GET /v1/integration/{id}``
and ``/metrics`` show the same thing, also from another process. :meth:`ResyncState.to_port`
gives Port's ``resyncState`` (what Ocean sends to ``PATCH /v1/integration/{id}/resync-state``:
``status``, ``lastResyncStart``, ``lastResyncEnd``, ``nextResync``, ``intervalInMinuets`` — sic,
Ocean's spelling — and ``updatedAt``), so a tool written for Port reads it unchanged.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

__all__ = [
    "MAX_ERRORS",
    "DeletionReport",
    "IncrementalOrgState",
    "IncrementalResourceState",
    "IncrementalState",
    "IncrementalStatus",
    "OrgState",
    "ResourceState",
    "ResyncState",
    "ResyncStatus",
]

#: ``skipped``: not run this time, with the reason beside it (an incremental pass's resource with no
#: cursor yet, a pass due while a full resync ran).
ResyncStatus = Literal["pending", "running", "completed", "failed", "aborted", "skipped"]

#: Errors kept per resource and per organisation: enough to see the pattern, bounded.
MAX_ERRORS = 20


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _moment(text: Any) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _with_iso_dates(value: Any) -> Any:
    """``value`` (what :func:`dataclasses.asdict` gives) with every datetime in it as ISO text:
    both states' ``to_json`` keep their moments this way."""
    if isinstance(value, datetime):
        return _iso(value)
    if isinstance(value, dict):
        return {key: _with_iso_dates(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_with_iso_dates(item) for item in value]
    return value


def _org_fields(org: dict[str, Any]) -> dict[str, Any]:
    """The fields an organisation's part has in both states (resync, incremental), read back from
    its JSON; the caller adds its resources (and the resync its deletion report)."""
    return {
        "url": org["url"],
        "status": org.get("status", "pending"),
        "error": org.get("error"),
        "requests": org.get("requests", 0),
        "started_at": _moment(org.get("started_at")),
        "finished_at": _moment(org.get("finished_at")),
    }


def _run_fields(data: dict[str, Any]) -> dict[str, Any]:
    """The fields both states (resync, incremental) have for the run itself, read back from its
    JSON; the caller adds its next-run moment, organisations and own fields."""
    return {
        "integration": data["integration"],
        "status": data.get("status", "pending"),
        "started_at": _moment(data.get("started_at")),
        "finished_at": _moment(data.get("finished_at")),
        "interval_minutes": data.get("interval_minutes"),
        "updated_at": _moment(data.get("updated_at")),
        "trigger": data.get("trigger"),
    }


@dataclass
class ResourceState:
    """One resource of the mapping (``index`` in file order) in one organisation.

    ``fetched`` raw items read from Azure; ``filtered`` kept out by ``selector.query``; ``mapped``
    entities produced; ``created``/``updated``/``unchanged`` as written; ``failed`` entities that
    could not be mapped or were refused by their blueprint, ``unidentified`` of them items whose
    identifier (or blueprint, selector, itemsToParse) itself failed; ``skipped`` "no data" answers skipped
    (by what). ``errors`` holds the first :data:`MAX_ERRORS` messages.
    """

    index: int
    kind: str
    blueprint: str | None = None
    status: ResyncStatus = "pending"
    fetched: int = 0
    filtered: int = 0
    mapped: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: int = 0
    unidentified: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def error(self, message: str) -> None:
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(message)


@dataclass
class DeletionReport:
    """The delete phase of one organisation: what it removed, or why it did not run."""

    ran: bool = False
    deleted: int = 0
    spared: int = 0
    candidates: int = 0
    existing: int = 0
    reason: str | None = None


@dataclass
class OrgState:
    """One organisation's part of a resync. ``error`` is what stopped it (then nothing was deleted)."""

    url: str
    status: ResyncStatus = "pending"
    error: str | None = None
    resources: list[ResourceState] = field(default_factory=list)
    deletion: DeletionReport = field(default_factory=DeletionReport)
    requests: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None


@dataclass
class ResyncState:
    """One integration's latest resync (or the running one)."""

    integration: str
    status: ResyncStatus = "pending"
    started_at: datetime | None = None
    finished_at: datetime | None = None
    next_resync_at: datetime | None = None
    interval_minutes: int | None = None
    updated_at: datetime | None = None
    organizations: list[OrgState] = field(default_factory=list)
    trigger: str | None = None

    def totals(self) -> dict[str, int]:
        """Sums over every organisation and resource (for the CLI's summary and ``/metrics``)."""
        out = {"fetched": 0, "mapped": 0, "created": 0, "updated": 0, "unchanged": 0, "failed": 0, "deleted": 0}
        for org in self.organizations:
            out["deleted"] += org.deletion.deleted
            for resource in org.resources:
                for name in ("fetched", "mapped", "created", "updated", "unchanged", "failed"):
                    out[name] += getattr(resource, name)
        return out

    def to_port(self) -> dict[str, Any]:
        """Port's ``resyncState`` for this integration."""
        return {
            "status": self.status if self.status != "pending" else None,
            "lastResyncStart": _iso(self.started_at),
            "lastResyncEnd": _iso(self.finished_at),
            "nextResync": _iso(self.next_resync_at),
            "intervalInMinuets": self.interval_minutes,
            "updatedAt": _iso(self.updated_at),
        }

    def to_json(self) -> dict[str, Any]:
        """Everything, as JSON-ready data (what the store keeps and the API's detail shows)."""
        data: dict[str, Any] = _with_iso_dates(asdict(self))
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ResyncState:
        """The inverse of :meth:`to_json`."""
        orgs = []
        for org in data.get("organizations", []):
            orgs.append(
                OrgState(
                    **_org_fields(org),
                    resources=[ResourceState(**resource) for resource in org.get("resources", [])],
                    deletion=DeletionReport(**org.get("deletion", {})),
                )
            )
        return cls(**_run_fields(data), next_resync_at=_moment(data.get("next_resync_at")), organizations=orgs)


# --------------------------------------------------------------------------------------------------
# The incremental sync's state: a record of its own, so the last full resync and the last
# incremental pass are both shown.

IncrementalStatus = ResyncStatus


@dataclass
class IncrementalResourceState(ResourceState):
    """One resource of an incremental pass: the resync's counters (``fetched`` is what was read,
    ``created + updated`` what was written), its cursor before and after the pass (the time,
    Azure's, before which every change is in the catalog; unchanged unless the pass read the
    resource without an error) and why it was skipped (``skipped_reason``: no cursor yet, a kind
    the incremental sync does not read)."""

    cursor_before: datetime | None = None
    cursor_after: datetime | None = None
    skipped_reason: str | None = None

    @property
    def written(self) -> int:
        return self.created + self.updated


@dataclass
class IncrementalOrgState:
    """One organisation's part of an incremental pass."""

    url: str
    status: IncrementalStatus = "pending"
    error: str | None = None
    resources: list[IncrementalResourceState] = field(default_factory=list)
    requests: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None


@dataclass
class IncrementalState:
    """One integration's latest incremental pass (or the running one). ``status`` ``skipped``: the
    pass was due while a full resync of the integration ran (the resync covers it)."""

    integration: str
    status: IncrementalStatus = "pending"
    started_at: datetime | None = None
    finished_at: datetime | None = None
    next_pass_at: datetime | None = None
    interval_minutes: int | None = None
    updated_at: datetime | None = None
    trigger: str | None = None
    reason: str | None = None
    organizations: list[IncrementalOrgState] = field(default_factory=list)

    def totals(self) -> dict[str, int]:
        """Sums over every organisation and resource: read, written (created + updated), unchanged, failed."""
        out = {"fetched": 0, "created": 0, "updated": 0, "written": 0, "unchanged": 0, "failed": 0, "skipped": 0}
        for org in self.organizations:
            for resource in org.resources:
                for name in ("fetched", "created", "updated", "unchanged", "failed"):
                    out[name] += getattr(resource, name)
                out["written"] += resource.written
                out["skipped"] += resource.status == "skipped"
        return out

    def to_json(self) -> dict[str, Any]:
        """Everything, as JSON-ready data (the store keeps it; the API and the CLI show it)."""
        data: dict[str, Any] = _with_iso_dates(asdict(self))
        for org_data, org in zip(data["organizations"], self.organizations, strict=True):
            for resource_data, resource in zip(org_data["resources"], org.resources, strict=True):
                resource_data["written"] = resource.written
        data["totals"] = self.totals()
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> IncrementalState:
        """The inverse of :meth:`to_json`."""
        orgs = []
        for org in data.get("organizations", []):
            resources = []
            for resource in org.get("resources", []):
                fields = {k: v for k, v in resource.items() if k not in ("written", "cursor_before", "cursor_after")}
                resources.append(
                    IncrementalResourceState(
                        **fields,
                        cursor_before=_moment(resource.get("cursor_before")),
                        cursor_after=_moment(resource.get("cursor_after")),
                    )
                )
            orgs.append(IncrementalOrgState(**_org_fields(org), resources=resources))
        return cls(
            **_run_fields(data),
            next_pass_at=_moment(data.get("next_pass_at")),
            reason=data.get("reason"),
            organizations=orgs,
        )
