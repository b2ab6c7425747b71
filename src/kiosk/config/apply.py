"""Make the catalog match kiosk.yaml: idempotent, order-independent, with file/line errors.

Applying the same file twice reports every object ``unchanged`` and writes nothing, so the
server can apply its config on every start and ``kiosk apply`` can run from CI.

Order: a relation may point at a blueprint (or an entity) defined further down the file, or
at its own blueprint. Blueprints and then entities are applied in dependency order (a stable
topological sort by relation target, file order among equals). Where the references form a
cycle (A -> B -> A) no order works, so the targets that do not exist yet are first created
without their relations and then written in full: a two-pass fallback used only for the cycle.

Actions come last: they name a blueprint (and entity inputs name blueprints) that must exist.

Errors stop the run at the first failing object; everything applied before it stays applied
(re-running after the fix picks up where it stopped, as each write is idempotent). The error is a
:class:`ConfigError` naming the file, the object's line and, when the catalog says which, the
field inside it.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal, Protocol, TypeVar

from kiosk.actions.model import parse_action
from kiosk.catalog.blueprints import CompiledBlueprint, parse_blueprint
from kiosk.catalog.entities import validate_properties
from kiosk.catalog.validation import EntityError
from kiosk.config.model import EntitySpec, KioskConfig, Loc
from kiosk.errors import ConfigError, KioskError, NotFound

__all__ = ["ActionWriter", "ApplyReport", "ApplyResult", "CatalogWriter", "Status", "apply_config"]

Status = Literal["created", "updated", "unchanged"]
K = TypeVar("K", bound=Hashable)

#: Blueprint keys that may refer to relations (and so to other blueprints); a cycle stub omits them.
_RELATION_DEPENDENT_KEYS = ("relations", "mirrorProperties", "aggregationProperties", "calculationProperties")


class CatalogWriter(Protocol):
    """The part of :class:`kiosk.catalog.service.Catalog` that applying a config needs."""

    def get_blueprint(self, identifier: str) -> dict[str, Any]: ...

    def upsert_blueprint(self, raw: Any, *, actor: str | None = None) -> Status: ...

    def get_entity(self, blueprint: str, identifier: str) -> dict[str, Any]: ...

    def upsert_entity(
        self,
        blueprint: str,
        raw: Any,
        *,
        upsert: bool = ...,
        merge: bool = ...,
        create_missing: bool = ...,
        actor: str | None = ...,
    ) -> tuple[dict[str, Any], bool]: ...


class ActionWriter(Protocol):
    """The part of :class:`kiosk.actions.service.Actions` that applying a config needs."""

    def upsert_action(self, raw: Any, *, actor: str | None = None) -> Status: ...


@dataclass(frozen=True)
class ApplyResult:
    """What happened to one object of the file."""

    kind: Literal["blueprint", "entity", "action"]
    identifier: str
    status: Status
    #: The entity's blueprint; None for blueprints.
    blueprint: str | None = None


@dataclass
class ApplyReport:
    """One result per object, in file order (blueprints, then entities, then actions)."""

    results: list[ApplyResult] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """``{"created": n, "updated": n, "unchanged": n}`` (every key present)."""
        counter = Counter(r.status for r in self.results)
        return {status: counter.get(status, 0) for status in ("created", "updated", "unchanged")}

    @property
    def changed(self) -> bool:
        return any(r.status != "unchanged" for r in self.results)


def apply_config(
    catalog: CatalogWriter,
    config: KioskConfig,
    *,
    actor: str | None = "config",
    actions: ActionWriter | None = None,
) -> ApplyReport:
    """Upsert every blueprint, then every entity, then every action of ``config``.

    ``actions`` is where actions go; when not given and the file has some, an action store is
    made on the catalog's database (so ``kiosk apply`` applies a whole file without knowing
    about actions).
    """
    report = ApplyReport()
    # Check every action document before the first write of any kind.
    for i, spec in enumerate(config.actions):
        _guard(config, ("actions", i), spec.identifier, "action", partial(parse_action, spec.document()))
    report.results.extend(_apply_blueprints(catalog, config, actor))
    report.results.extend(_apply_entities(catalog, config, actor))
    if config.actions:
        writer = actions if actions is not None else _action_store_for(catalog, config)
        report.results.extend(_apply_actions(writer, config, actor))
    return report


def _action_store_for(catalog: CatalogWriter, config: KioskConfig) -> ActionWriter:
    """An action store on the same database as ``catalog`` (a :class:`Catalog`), configured by ``config``."""
    from kiosk.actions.service import Actions
    from kiosk.catalog.service import Catalog

    if not isinstance(catalog, Catalog):
        raise ConfigError(f"{config.describe(('actions',))}: this catalog cannot store actions; pass actions=")
    return Actions(
        catalog.db,
        azure_orgs=config.azureDevOps.orgs,
        sign_webhooks=config.delivery.signing_secret is not None,
    )


def _apply_actions(writer: ActionWriter, config: KioskConfig, actor: str | None) -> list[ApplyResult]:
    results = []
    for i, spec in enumerate(config.actions):
        status = _guard(
            config,
            ("actions", i),
            spec.identifier,
            "action",
            partial(writer.upsert_action, spec.document(), actor=actor),
        )
        results.append(ApplyResult("action", spec.identifier, status))
    return results


# --------------------------------------------------------------------------------- ordering


def dependency_order(keys: Sequence[K], deps: Mapping[K, Iterable[K]]) -> list[K]:
    """``keys`` ordered so each comes after the keys it depends on (those among ``keys``).

    Stable: among keys that are free to go, the earlier in ``keys`` goes first. Keys on (or
    behind) a cycle cannot be ordered; they follow the rest in their original order.
    """
    position = {k: i for i, k in enumerate(keys)}
    pending: dict[K, set[K]] = {k: {d for d in deps.get(k, ()) if d in position and d != k} for k in keys}
    dependents: dict[K, list[K]] = {k: [] for k in keys}
    for k, ds in pending.items():
        for d in ds:
            dependents[d].append(k)
    ready = [position[k] for k, ds in pending.items() if not ds]
    heapq.heapify(ready)
    out: list[K] = []
    done: set[K] = set()
    while ready:
        key = keys[heapq.heappop(ready)]
        out.append(key)
        done.add(key)
        for nxt in dependents[key]:
            pending[nxt].discard(key)
            if not pending[nxt] and nxt not in done:
                heapq.heappush(ready, position[nxt])
    out.extend(k for k in keys if k not in done)
    return out


def _exists(lookup: Callable[[], Any]) -> bool:
    try:
        lookup()
    except NotFound:
        return False
    return True


# --------------------------------------------------------------------------------- blueprints


def _apply_blueprints(catalog: CatalogWriter, config: KioskConfig, actor: str | None) -> list[ApplyResult]:
    specs = config.blueprints
    index = {bp.identifier: i for i, bp in enumerate(specs)}
    docs = [bp.document() for bp in specs]
    # Check every document before the first write, so a typo in the last blueprint does not
    # leave the first ones applied.
    for i, doc in enumerate(docs):
        _guard(config, ("blueprints", i), doc["identifier"], "blueprint", partial(parse_blueprint, doc))

    deps = {bp.identifier: bp.relation_targets() for bp in specs}
    statuses: dict[str, Status] = {}
    stubbed: set[str] = set()
    for ident in dependency_order(list(index), deps):
        i = index[ident]
        # Only a cycle leaves a target unapplied here: create it bare so the relation can point at it.
        for target in deps[ident]:
            if target in index and target not in statuses and target not in stubbed and target != ident:
                t = index[target]
                if not _exists(partial(catalog.get_blueprint, target)):
                    stub = {k: v for k, v in docs[t].items() if k not in _RELATION_DEPENDENT_KEYS}
                    _guard(
                        config,
                        ("blueprints", t),
                        target,
                        "blueprint",
                        partial(catalog.upsert_blueprint, stub, actor=actor),
                    )
                    stubbed.add(target)
        status = _guard(
            config, ("blueprints", i), ident, "blueprint", partial(catalog.upsert_blueprint, docs[i], actor=actor)
        )
        statuses[ident] = "created" if ident in stubbed else status
    return [ApplyResult("blueprint", bp.identifier, statuses[bp.identifier]) for bp in specs]


# --------------------------------------------------------------------------------- entities


def _canonical_relations(value: Any) -> dict[str, list[str]]:
    """Port's relation forms (str, list, null, missing) as ``{name: [ids]}`` without empty ones."""
    out: dict[str, list[str]] = {}
    if isinstance(value, Mapping):
        for name, targets in value.items():
            ids = [targets] if isinstance(targets, str) else list(targets or [])
            if ids:
                out[str(name)] = ids
    return out


def _canonical_team(value: Any) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _is_unchanged(existing: Mapping[str, Any], doc: Mapping[str, Any], blueprint: Mapping[str, Any]) -> bool:
    """Would writing ``doc`` (merge=False) leave ``existing`` as it is?

    The catalog fills property defaults, normalises date-times and renders every relation, so
    the wanted properties go through the catalog's own normalisation first.
    """
    wanted_props = {k: v for k, v in (doc.get("properties") or {}).items() if v is not None}
    try:
        validate_properties(CompiledBlueprint.build(dict(blueprint)), wanted_props)
    except EntityError:
        return False  # the write will fail and report it
    return (
        existing.get("identifier") == doc.get("identifier")
        and existing.get("title") == doc.get("title")
        and existing.get("icon") == doc.get("icon")
        and _canonical_team(existing.get("team")) == _canonical_team(doc.get("team"))
        and (existing.get("properties") or {}) == wanted_props
        and _canonical_relations(existing.get("relations")) == _canonical_relations(doc.get("relations"))
    )


def _apply_entities(catalog: CatalogWriter, config: KioskConfig, actor: str | None) -> list[ApplyResult]:
    specs = config.entities
    index = {e.key: i for i, e in enumerate(specs)}
    blueprints: dict[str, dict[str, Any]] = {}
    for i, spec in enumerate(specs):
        if spec.blueprint not in blueprints:
            blueprints[spec.blueprint] = _guard(
                config,
                ("entities", i, "blueprint"),
                spec.identifier,
                "entity",
                partial(catalog.get_blueprint, spec.blueprint),
            )

    def targets(spec: EntitySpec) -> list[tuple[str, str]]:
        rel_defs = blueprints[spec.blueprint].get("relations") or {}
        out: list[tuple[str, str]] = []
        for name, ids in spec.relation_values().items():
            rel = rel_defs.get(name)
            if isinstance(rel, Mapping) and isinstance(rel.get("target"), str):
                out.extend((rel["target"], t) for t in ids)
        return out

    deps = {spec.key: targets(spec) for spec in specs}
    statuses: dict[tuple[str, str], Status] = {}
    stubbed: set[tuple[str, str]] = set()
    for key in dependency_order(list(index), deps):
        i = index[key]
        spec = specs[i]
        loc: Loc = ("entities", i)
        for target in deps[key]:
            unapplied = target in index and target not in statuses and target not in stubbed and target != key
            if unapplied and _stub_entity(catalog, config, specs, index[target], actor):
                stubbed.add(target)
        doc = spec.entity_document()
        try:
            existing: dict[str, Any] | None = catalog.get_entity(spec.blueprint, spec.identifier)
        except NotFound:
            existing = None
        if existing is not None and key not in stubbed and _is_unchanged(existing, doc, blueprints[spec.blueprint]):
            statuses[key] = "unchanged"
            continue
        _guard(
            config,
            loc,
            spec.identifier,
            "entity",
            partial(
                catalog.upsert_entity, spec.blueprint, doc, upsert=True, merge=False, create_missing=False, actor=actor
            ),
        )
        statuses[key] = "created" if existing is None or key in stubbed else "updated"
    return [ApplyResult("entity", e.identifier, statuses[e.key], blueprint=e.blueprint) for e in specs]


def _stub_entity(
    catalog: CatalogWriter, config: KioskConfig, specs: Sequence[EntitySpec], i: int, actor: str | None
) -> bool:
    """First pass of the cycle fallback: create the entity without relations if it is missing.

    Returns whether it created one. A blueprint with a required relation cannot take such a stub;
    the catalog's refusal then names the entity's line.
    """
    spec = specs[i]
    if _exists(partial(catalog.get_entity, spec.blueprint, spec.identifier)):
        return False
    stub = {k: v for k, v in spec.entity_document().items() if k != "relations"}
    _guard(
        config,
        ("entities", i),
        spec.identifier,
        "entity",
        partial(
            catalog.upsert_entity, spec.blueprint, stub, upsert=True, merge=False, create_missing=False, actor=actor
        ),
    )
    return True


# --------------------------------------------------------------------------------- errors

T = TypeVar("T")


def _guard(config: KioskConfig, loc: Loc, identifier: str, kind: str, call: Callable[[], T]) -> T:
    """Run one catalog call; a refusal becomes a ConfigError pointing into the file."""
    try:
        return call()
    except ConfigError:
        raise
    except KioskError as exc:
        field = _error_field(exc.details)
        message = exc.message
        # The catalog's message repeats what the location already says; keep the rest.
        for prefix in (f"{kind} {identifier!r}: ", *((f"{field}: ", f"{field} ") if field else ())):
            if message.startswith(prefix):
                message = message[len(prefix) :]
        full_loc = loc + _split_field(field)
        raise ConfigError(
            f"{config.describe(full_loc)}: {message}",
            details={"kind": kind, "identifier": identifier, "field": field, "error": exc.code},
        ) from None


def _error_field(details: Any) -> str | None:
    if isinstance(details, list) and details:
        details = details[0]
    if isinstance(details, Mapping) and isinstance(details.get("field"), str):
        return str(details["field"])
    return None


def _split_field(field: str | None) -> Loc:
    if not field:
        return ()
    return tuple(int(p) if p.isdigit() else p for p in field.split("."))
