"""The shape of kiosk.yaml, as pydantic models, plus a map from field paths back to YAML lines.

Each top-level section is one field of :class:`KioskConfig`; adding a section (``integrations``,
``receivers`` ...) is adding one field with its model. Unknown top-level keys are refused so a
typo such as ``entitites:`` fails loudly instead of applying nothing.

Blueprint, entity and action *contents* are kept as plain dicts checked only shallowly (an
identifier that is a string of the allowed characters, no duplicates): the catalog and action
services own the deep rules, and checking them twice would let the definitions drift apart.
The cross-section rules checked here are those only the file can point at the line of: an
AZURE-DEVOPS action names an organisation configured under ``azureDevOps.orgs``; receivers are
unique by project and name; watches are unique by name; integrations are unique by identifier.
Receivers, watches and integrations bring their own models (``kiosk.receivers.config``,
``kiosk.watches.config``, ``kiosk.ingest.config``), as delivery does; an integration's mapping is
read and checked by the loader (:mod:`kiosk.config.integrations`), which knows its file.

``retention:`` bounds what the receivers and the job queue keep (pruned by every kiosk process in
the background, see :mod:`kiosk.runtime.retention`); every key is optional::

    retention:
      receiverEvents:
        maxAgeDays: 7          # received events older than this are deleted, once processed
        maxPerReceiver: 10000  # and any beyond the newest 10,000 of each receiver
      jobs:
        doneMaxAgeDays: 1      # finished queue jobs (an event's job lives as long as the event)
        deadMaxAgeDays: 30     # dead letters: kept longer, operators inspect them
      intervalMinutes: 10      # how often each kiosk process prunes
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, StrictStr, ValidationInfo, field_validator

from kiosk.actions.model import AZURE_ORG_NAME, HEADER_NAME
from kiosk.catalog.identifiers import ENTITY_IDENTIFIER, SCHEMA_IDENTIFIER
from kiosk.config.secrets import SecretRef
from kiosk.config.signin import SignInConfig
from kiosk.core.jq_engine import JqLimits
from kiosk.delivery.config import DeliveryConfig, EgressConfig
from kiosk.errors import ConfigError
from kiosk.ingest.config import IntegrationSpec, LoadedMapping
from kiosk.ingest.defaults import default_mapping
from kiosk.ingest.mapping import MappingError, parse_port_app_config
from kiosk.receivers.config import ReceiverSpec
from kiosk.watches.config import WatchSpec

__all__ = [
    "ActionSpec",
    "AzureDevOpsConfig",
    "AzureDevOpsOrg",
    "BlueprintSpec",
    "EntitySpec",
    "EventRetention",
    "JobRetention",
    "JqConfig",
    "KioskConfig",
    "Loc",
    "RetentionConfig",
    "RunsConfig",
    "ServiceHookAuth",
    "SourceMap",
    "format_loc",
]

#: A path into the config, as pydantic reports it: ``("blueprints", 1, "relations", "owner")``.
Loc = tuple[str | int, ...]
_Item = TypeVar("_Item")

EntityIdentifier = Annotated[StrictStr, Field(min_length=1, max_length=1000, pattern=ENTITY_IDENTIFIER.pattern)]
#: Blueprint identifiers are stricter than entity ones in the catalog (they end up in JSON paths
#: and index names); checking that here gives the error a line number.
SchemaIdentifier = Annotated[StrictStr, Field(min_length=1, max_length=100, pattern=SCHEMA_IDENTIFIER.pattern)]
#: Azure DevOps organisation names (they are a path segment of every Azure URL).
AzureOrgName = Annotated[StrictStr, Field(pattern=AZURE_ORG_NAME.pattern)]


def format_loc(loc: Sequence[str | int]) -> str:
    """``("blueprints", 1, "relations", "owner")`` -> ``blueprints[1].relations.owner``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _position(lc: Any, kind: str, part: str | int) -> int | None:
    """0-based line of a mapping key / sequence item; None when ruamel kept none (``<<:`` merges)."""
    if lc is None:
        return None
    try:
        return int(getattr(lc, kind)(part)[0])
    except (KeyError, IndexError, TypeError):
        return None


@dataclass(frozen=True)
class SourceMap:
    """Where each part of a loaded config came from, to put file and line into error messages.

    ``root`` is the ruamel.yaml round-trip tree; its mappings and sequences carry ``.lc``
    positions (0-based), which :meth:`line` turns into the 1-based line of the deepest node on
    ``loc`` that exists (a missing field points at the mapping that should have held it).
    """

    path: Path
    root: Any

    def line(self, loc: Sequence[str | int]) -> int:
        node = self.root
        lc = getattr(node, "lc", None)
        line = (lc.line + 1) if lc is not None and lc.line is not None else 1
        for part in loc:
            lc = getattr(node, "lc", None)
            if isinstance(node, dict) and part in node:
                position = _position(lc, "key", part)
                node = node[part]
            elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
                position = _position(lc, "item", part)
                node = node[part]
            else:
                break
            if position is not None:
                line = position + 1
        return line

    def describe(self, loc: Sequence[str | int]) -> str:
        """``kiosk.yaml:14: blueprints[1].relations.owner``."""
        where = f"{self.path}:{self.line(loc)}"
        field = format_loc(loc)
        return f"{where}: {field}" if field else where


class _CatalogDoc(BaseModel):
    """A Port document kept whole: every key passes through to the catalog untouched."""

    model_config = ConfigDict(extra="allow", frozen=True)

    def document(self) -> dict[str, Any]:
        """The Port document to hand to the catalog service."""
        return self.model_dump()


class BlueprintSpec(_CatalogDoc):
    """A Port blueprint: identifier, title, icon, description, schema, relations, ..."""

    identifier: SchemaIdentifier

    def relation_targets(self) -> list[str]:
        """Blueprints this one's relations point at (for ordering), in definition order."""
        relations = (self.model_extra or {}).get("relations")
        if not isinstance(relations, dict):
            return []
        return [r["target"] for r in relations.values() if isinstance(r, dict) and isinstance(r.get("target"), str)]


class EntitySpec(_CatalogDoc):
    """A Port entity plus the ``blueprint`` it belongs to."""

    identifier: EntityIdentifier
    blueprint: SchemaIdentifier

    @property
    def key(self) -> tuple[str, str]:
        return (self.blueprint, self.identifier)

    def entity_document(self) -> dict[str, Any]:
        """The entity as the catalog takes it (the blueprint travels in the call, not the body)."""
        doc = self.document()
        doc.pop("blueprint", None)
        return doc

    def relation_values(self) -> dict[str, list[str]]:
        """``{relation: [target identifiers]}`` whatever form (str, list, null) the file used."""
        relations = (self.model_extra or {}).get("relations")
        out: dict[str, list[str]] = {}
        if not isinstance(relations, dict):
            return out
        for name, value in relations.items():
            if isinstance(value, str):
                out[str(name)] = [value]
            elif isinstance(value, list):
                out[str(name)] = [v for v in value if isinstance(v, str)]
        return out


class ActionSpec(_CatalogDoc):
    """A Port self-service action (identifier, trigger, invocationMethod, ...), kept whole."""

    identifier: SchemaIdentifier

    def azure_org(self) -> str | None:
        """The organisation an AZURE-DEVOPS action posts to; None for other methods."""
        invocation = (self.model_extra or {}).get("invocationMethod")
        if isinstance(invocation, dict) and invocation.get("type") == "AZURE-DEVOPS":
            org = invocation.get("org")
            return org if isinstance(org, str) else None
        return None


class ServiceHookAuth(BaseModel):
    """The user name and password Azure DevOps sends (basic auth) with every service-hook event.

    Azure DevOps signs nothing it sends; this shared secret, checked on every call in constant
    time, is what tells kiosk an event is genuine. A call without it is refused — never let
    through because the header is missing (a fault of the system kiosk replaces).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    username: StrictStr = Field(default="kiosk", min_length=1, max_length=100, pattern=r"^[^:\s]+$")
    password: SecretRef


class AzureDevOpsOrg(BaseModel):
    """One Azure DevOps organisation that AZURE-DEVOPS actions may post to.

    The signing secret is the one the incoming-webhook service connection holds; it is named by
    reference and resolved when a delivery is sent, never stored. Without one, deliveries go
    unsigned (Azure lets a service connection skip the checksum).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    baseUrl: StrictStr = Field(default="https://dev.azure.com", pattern=r"^https?://[^\s/?#]+(/[^\s?#]*)?$")
    signatureHeader: StrictStr = Field(default="X-Port-Signature", pattern=HEADER_NAME.pattern)
    signingSecret: SecretRef | None = None
    pat: SecretRef | None = Field(
        default=None,
        description="A personal access token (Service Hooks read & write) kiosk uses to create its "
        "run-state subscription in this organisation.",
    )
    serviceHooks: ServiceHookAuth | None = Field(
        default=None,
        description="The basic auth Azure DevOps must send with service-hook events to kiosk; "
        "required to accept events from this organisation.",
    )

    def webhook_url(self, org: str, webhook: str) -> str:
        """Azure Pipelines' incoming-webhook URL for ``webhook`` in ``org``."""
        return (
            f"{self.baseUrl.rstrip('/')}/{org}/_apis/public/distributedtask/webhooks/{webhook}?api-version=6.0-preview"
        )


class AzureDevOpsConfig(BaseModel):
    """``azureDevOps:`` the organisations kiosk talks to, by name."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    orgs: dict[AzureOrgName, AzureDevOpsOrg] = Field(default_factory=dict)
    publicUrl: StrictStr | None = Field(
        default=None,
        pattern=r"^https?://[^\s/?#]+(/[^\s?#]*)?$",
        description="kiosk's URL as Azure DevOps reaches it; service hooks post to "
        "{publicUrl}/hooks/azure-devops/{org}. Without it kiosk creates no subscription.",
    )

    @field_validator("orgs", mode="before")
    @classmethod
    def _bare_orgs_take_defaults(cls, value: Any) -> Any:
        # ``orgs:`` empty means none; ``orgs: {contoso: }`` means contoso with every default.
        if value is None:
            return {}
        if isinstance(value, dict):
            return {name: ({} if org is None else org) for name, org in value.items()}
        return value


class RunsConfig(BaseModel):
    """``runs:`` how long an action run may stay in progress with nothing reported."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    expireAfterMinutes: float = Field(default=24 * 60, gt=0, le=30 * 24 * 60)


class EventRetention(BaseModel):
    """``retention.receiverEvents``: how many received events are kept, by age and per receiver.

    An event whose processing has not finished (its job is pending or leased) is never deleted,
    whatever its age: the sender was told it was stored, so it must survive until it is processed.
    The newest event of all is kept too (SQLite would hand a deleted newest id out again).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    maxAgeDays: float = Field(default=7, gt=0, le=3650)
    maxPerReceiver: int = Field(default=10_000, ge=1, le=10_000_000)


class JobRetention(BaseModel):
    """``retention.jobs``: how long finished jobs of the durable queue are kept.

    Pending and leased jobs are never deleted. Dead letters are kept longer than done jobs because
    operators inspect them. A received event's job holds the dedupe key that recognises its
    redelivery, so those done jobs are kept at least as long as the events themselves
    (``receiverEvents.maxAgeDays``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    doneMaxAgeDays: float = Field(default=1, gt=0, le=3650)
    deadMaxAgeDays: float = Field(default=30, gt=0, le=3650)


class RetentionConfig(BaseModel):
    """``retention:`` what kiosk keeps of received events and finished queue jobs, and how often
    each process prunes the rest (in small batches, safe with several processes on one database)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    receiverEvents: EventRetention = Field(default_factory=EventRetention)
    jobs: JobRetention = Field(default_factory=JobRetention)
    intervalMinutes: float = Field(default=10, ge=1, le=24 * 60)

    @field_validator("receiverEvents", "jobs", mode="before")
    @classmethod
    def _empty_is_defaults(cls, value: Any) -> Any:
        # ``jobs:`` with nothing under it parses as null; it means "every default", as for sections.
        return {} if value is None else value


class JqConfig(BaseModel):
    """``jq:`` the bounds of every user jq program (action body templates, automation conditions,
    generic receivers' mappings, watch reactions), evaluated by a pool of worker processes
    (:mod:`kiosk.core.jq_engine`) so that no program can freeze the server::

        jq:
          timeoutSeconds: 1   # one program over one input; past it the program is stopped
          memoryMiB: 256      # each worker's heap; a program that needs more is stopped
          workers: 2          # programs evaluated at once
          waitSeconds: 10     # how long a caller waits for a free worker
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    timeoutSeconds: float = Field(default=1.0, gt=0, le=300)
    memoryMiB: int = Field(default=256, ge=32, le=1024 * 1024)
    workers: int = Field(default=2, ge=1, le=64)
    waitSeconds: float = Field(default=10.0, gt=0, le=3600)

    def limits(self) -> JqLimits:
        return JqLimits(
            timeout_seconds=self.timeoutSeconds,
            memory_mib=self.memoryMiB,
            workers=self.workers,
            wait_seconds=self.waitSeconds,
        )


#: Sections that are lists; every other section is a mapping.
_LIST_SECTIONS = frozenset({"blueprints", "entities", "actions", "receivers", "watches", "integrations"})


class KioskConfig(BaseModel):
    """The whole of kiosk.yaml. One field per top-level section."""

    # Sections hold secret references; a rejected literal must not reach ValidationError's text.
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    blueprints: list[BlueprintSpec] = Field(default_factory=list)
    entities: list[EntitySpec] = Field(default_factory=list)
    actions: list[ActionSpec] = Field(default_factory=list)
    azureDevOps: AzureDevOpsConfig = Field(default_factory=AzureDevOpsConfig)
    egress: EgressConfig = Field(default_factory=EgressConfig)
    delivery: DeliveryConfig = Field(default_factory=DeliveryConfig)
    runs: RunsConfig = Field(default_factory=RunsConfig)
    receivers: list[ReceiverSpec] = Field(default_factory=list)
    watches: list[WatchSpec] = Field(default_factory=list)
    integrations: list[IntegrationSpec] = Field(default_factory=list)
    retention: RetentionConfig = Field(default_factory=RetentionConfig)
    jq: JqConfig = Field(default_factory=JqConfig)
    signIn: SignInConfig = Field(default_factory=SignInConfig)

    _source: SourceMap | None = PrivateAttr(default=None)
    #: Each integration's mapping, read and checked by the loader (see kiosk.config.integrations).
    _integration_mappings: dict[str, LoadedMapping] = PrivateAttr(default_factory=dict)

    @field_validator("*", mode="before")
    @classmethod
    def _empty_section_is_empty(cls, value: Any, info: ValidationInfo) -> Any:
        # ``entities:`` with nothing under it parses as null; it means "none" (or "defaults").
        if value is None:
            return [] if info.field_name in _LIST_SECTIONS else {}
        return value

    @property
    def source(self) -> SourceMap | None:
        """Where this config was loaded from (None when built in code)."""
        return self._source

    def with_source(self, source: SourceMap) -> KioskConfig:
        self._source = source
        return self

    def with_integration_mappings(self, mappings: dict[str, LoadedMapping]) -> KioskConfig:
        self._integration_mappings = dict(mappings)
        return self

    def integration_mapping(self, identifier: str) -> LoadedMapping:
        """Integration ``identifier``'s checked mapping; kiosk's default when the integration names none.

        A mapping file is read by :func:`kiosk.config.load_config`; a config built in code has its
        inline mappings checked here (a ConfigError without a line: there is no file).
        """
        loaded = self._integration_mappings.get(identifier)
        if loaded is not None:
            return loaded
        specs = [spec for spec in self.integrations if spec.identifier == identifier]
        if not specs:
            raise KeyError(f"no integration {identifier!r} in this config")
        value = specs[0].mapping_value
        if value is None:
            return LoadedMapping(default_mapping(), "default")
        if isinstance(value, str):
            raise ConfigError(f"integration {identifier!r}: mapping file {value} is read by load_config")
        try:
            return LoadedMapping(parse_port_app_config(value), "inline")
        except MappingError as exc:
            raise ConfigError(f"integration {identifier!r}: {exc}") from None

    def describe(self, loc: Sequence[str | int]) -> str:
        """``file:line: field`` when the config came from a file, else just the field path."""
        if self._source is not None:
            return self._source.describe(loc)
        return format_loc(loc) or "config"

    def consistency_errors(self) -> list[tuple[Loc, str]]:
        """Rules across items that pydantic checks one item at a time cannot see."""
        errors = _duplicates("blueprints", self.blueprints, lambda bp: f"blueprint identifier {bp.identifier!r}")
        errors += _duplicates(
            "entities",
            self.entities,
            lambda ent: f"entity {ent.identifier!r} of blueprint {ent.blueprint!r}",
            key=lambda ent: ent.key,
        )
        for i, action, first in _with_first_seen(self.actions, lambda action: action.identifier):
            if first is not None:
                errors.append(
                    (
                        ("actions", i, "identifier"),
                        f"duplicate action identifier {action.identifier!r} (also actions[{first}])",
                    )
                )
            org = action.azure_org()
            if org is not None and org not in self.azureDevOps.orgs:
                known = ", ".join(sorted(self.azureDevOps.orgs)) or "none is configured"
                errors.append(
                    (
                        ("actions", i, "invocationMethod", "org"),
                        f"Azure DevOps org {org!r} is not configured under azureDevOps.orgs ({known})",
                    )
                )
        errors += self._receiver_and_watch_errors()
        return errors

    def _receiver_and_watch_errors(self) -> list[tuple[Loc, str]]:
        errors = _duplicates(
            "receivers",
            self.receivers,
            lambda r: f"receiver {r.name!r} " + (f"in project {r.project!r}" if r.project else "without a project"),
            key=lambda r: r.key,
            field="name",
        )
        errors += _duplicates("watches", self.watches, lambda watch: f"watch {watch.name!r}", field="name")
        errors += _duplicates("integrations", self.integrations, lambda spec: f"integration {spec.identifier!r}")
        return errors


def _duplicates(
    section: str,
    items: Sequence[_Item],
    what: Callable[[_Item], str],
    *,
    key: Callable[[_Item], Hashable] | None = None,
    field: str = "identifier",
) -> list[tuple[Loc, str]]:
    """``duplicate <what> (also <section>[n])`` at ``<section>[i].<field>`` for each item whose key (by
    default its ``field``) an earlier item has."""
    by = key or (lambda item: getattr(item, field))
    return [
        ((section, i, field), f"duplicate {what(item)} (also {section}[{first}])")
        for i, item, first in _with_first_seen(items, by)
        if first is not None
    ]


def _with_first_seen(
    items: Sequence[_Item], key: Callable[[_Item], Hashable]
) -> Iterator[tuple[int, _Item, int | None]]:
    """Each item with its index and the index of the first earlier item with the same key (None if
    it is the first): one walk for every "duplicate X (also X[n])" rule, in the items' order."""
    first_index: dict[Hashable, int] = {}
    for i, item in enumerate(items):
        k = key(item)
        yield i, item, first_index.get(k)
        first_index.setdefault(k, i)
