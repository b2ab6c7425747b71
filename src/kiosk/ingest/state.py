"""A resync's state, as it runs and after: per organisation, per resource of the mapping. Pure data.

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
    "OrgState",
    "ResourceState",
    "ResyncState",
    "ResyncStatus",
]

ResyncStatus = Literal["pending", "running", "completed", "failed", "aborted"]

#: Errors kept per resource and per organisation: enough to see the pattern, bounded.
MAX_ERRORS = 20


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _moment(text: Any) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


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
        data = asdict(self)
        for key in ("started_at", "finished_at", "next_resync_at", "updated_at"):
            data[key] = _iso(getattr(self, key))
        for org_data, org in zip(data["organizations"], self.organizations, strict=True):
            org_data["started_at"] = _iso(org.started_at)
            org_data["finished_at"] = _iso(org.finished_at)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ResyncState:
        """The inverse of :meth:`to_json`."""
        orgs = []
        for org in data.get("organizations", []):
            orgs.append(
                OrgState(
                    url=org["url"],
                    status=org.get("status", "pending"),
                    error=org.get("error"),
                    resources=[ResourceState(**resource) for resource in org.get("resources", [])],
                    deletion=DeletionReport(**org.get("deletion", {})),
                    requests=org.get("requests", 0),
                    started_at=_moment(org.get("started_at")),
                    finished_at=_moment(org.get("finished_at")),
                )
            )
        return cls(
            integration=data["integration"],
            status=data.get("status", "pending"),
            started_at=_moment(data.get("started_at")),
            finished_at=_moment(data.get("finished_at")),
            next_resync_at=_moment(data.get("next_resync_at")),
            interval_minutes=data.get("interval_minutes"),
            updated_at=_moment(data.get("updated_at")),
            organizations=orgs,
            trigger=data.get("trigger"),
        )
