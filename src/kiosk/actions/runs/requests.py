"""The bodies callers send about runs, checked before any transaction opens (pure).

A run (``POST /v1/actions/{id}/runs``), a decline, Port's report (``PATCH
/v1/actions/runs/{id}``) and a log line (``POST /v1/actions/runs/{id}/logs``). A refused body is a
422 naming the field, and leaves nothing behind.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kiosk.actions.runs.states import FAILURE, MAX_LABEL, REPORTABLE, SUCCESS, invalid
from kiosk.catalog.validation import is_url

MAX_EXTERNAL_ID = 500
MAX_TEXT = 100_000
MAX_LINKS = 50
RUN_BODY_KEYS = frozenset({"entity", "properties"})
PATCH_KEYS = frozenset({"status", "statusLabel", "link", "summary", "externalRunId"})
LOG_KEYS = frozenset({"message", "terminationStatus", "statusLabel"})


@dataclass(frozen=True)
class RunRequest:
    """``POST /v1/actions/{id}/runs``: the entity (DAY-2 / DELETE) and the inputs."""

    entity: str | None
    properties: Any


def parse_run_request(raw: Any) -> RunRequest:
    if not isinstance(raw, dict):
        raise invalid("body", "the run request must be a JSON object {entity?, properties}")
    unknown = sorted(set(raw) - RUN_BODY_KEYS)
    if unknown:
        raise invalid(unknown[0], f"{unknown[0]}: unknown field (a run takes 'entity' and 'properties')")
    entity = raw.get("entity")
    if isinstance(entity, dict) and "identifier" in entity:
        entity = entity["identifier"]  # Port's UI sends the entity object
    if entity is not None and not isinstance(entity, str):
        raise invalid("entity", "entity must be the identifier of an entity (a string)")
    return RunRequest(entity=entity, properties=raw.get("properties"))


def parse_decline(raw: Any) -> str | None:
    """A decline's body (``{reason?}``, or none at all): the reason."""
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise invalid("body", "the decline request must be a JSON object {reason?}")
    _reject_unknown(raw, frozenset({"reason"}), "a decline")
    return _optional_text(raw, "reason", MAX_LABEL - 20)


@dataclass(frozen=True)
class RunReport:
    """Port's run update: what a PATCH sets (None: left as it is)."""

    status: str | None
    label: str | None
    summary: str | None
    external_run_id: str | None
    links: list[str] | None


def parse_report(raw: Any) -> RunReport:
    if not isinstance(raw, dict):
        raise invalid("body", "the run update must be a JSON object")
    _reject_unknown(raw, PATCH_KEYS, "a run update")
    if not any(raw.get(k) is not None for k in PATCH_KEYS):
        raise invalid("body", f"the run update changes nothing (give one of {', '.join(sorted(PATCH_KEYS))})")
    return RunReport(
        status=_status(raw, "status", REPORTABLE),
        label=_optional_text(raw, "statusLabel", MAX_LABEL),
        summary=_optional_text(raw, "summary", MAX_TEXT),
        external_run_id=_optional_text(raw, "externalRunId", MAX_EXTERNAL_ID),
        links=_links(raw),
    )


@dataclass(frozen=True)
class RunLog:
    """Port's log line; a ``termination`` status finishes the run."""

    message: str
    termination: str | None
    label: str | None


def parse_log(raw: Any) -> RunLog:
    if not isinstance(raw, dict):
        raise invalid("body", "the log must be a JSON object {message, terminationStatus?, statusLabel?}")
    _reject_unknown(raw, LOG_KEYS, "a run log")
    message = raw.get("message")
    if not isinstance(message, str):
        raise invalid("message", "message is required and must be a string")
    if len(message) > MAX_TEXT:
        raise invalid("message", f"message must be at most {MAX_TEXT} characters")
    termination = _status(raw, "terminationStatus", (SUCCESS, FAILURE))
    return RunLog(message=message, termination=termination, label=_optional_text(raw, "statusLabel", MAX_LABEL))


def _reject_unknown(raw: Mapping[str, Any], allowed: frozenset[str], what: str) -> None:
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise invalid(unknown[0], f"{unknown[0]}: unknown field ({what} takes {', '.join(sorted(allowed))})")


def _optional_text(raw: Mapping[str, Any], key: str, limit: int) -> str | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise invalid(key, f"{key} must be a string")
    if len(value) > limit:
        raise invalid(key, f"{key} must be at most {limit} characters")
    return value


def _status(raw: Mapping[str, Any], key: str, allowed: Sequence[str]) -> str | None:
    value = raw.get(key)
    if value is None:
        return None
    if value not in allowed:
        raise invalid(key, f"{key} must be one of {', '.join(allowed)}")
    return str(value)


def _links(raw: Mapping[str, Any]) -> list[str] | None:
    value = raw.get("link")
    if value is None:
        return None
    links = [value] if isinstance(value, str) else value
    if not isinstance(links, list) or not all(isinstance(v, str) for v in links):
        raise invalid("link", "link must be a URL or a list of URLs")
    if len(links) > MAX_LINKS:
        raise invalid("link", f"link may hold at most {MAX_LINKS} URLs")
    for i, url in enumerate(links):
        if not is_url(url) or len(url) > 2000:
            raise invalid("link", f"link[{i}] must be an http:// or https:// URL")
    return list(links)
